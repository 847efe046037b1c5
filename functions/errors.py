"""The functions' errors, rooted in one class.

Each error knows the HTTP status it maps to, so the app factory turns any of them into a JSON error
response without a special case per handler.
"""


class FunctionError(Exception):
    """Root of every error a function raises on purpose.

    :param message: what was expected and what was found, for a person to read.
    """

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidEvent(FunctionError):
    """The request is not a valid CloudEvent, or its `data` does not match its type's schema."""

    status = 400


class InvalidRequest(FunctionError):
    """A public-API request has a malformed body or fails the API schema."""

    status = 400


class NotFound(FunctionError):
    """The requested resource does not exist."""

    status = 404


class IdempotencyKeyReused(FunctionError):
    """An `Idempotency-Key` already names an operation made from a different request."""

    status = 422


class UnsupportedMediaType(FunctionError):
    """The request body is not of a media type the endpoint accepts."""

    status = 415


class ServiceUnavailable(FunctionError):
    """A dependency (the broker, a store) cannot be reached; the request may be retried."""

    status = 503


class StoreError(FunctionError):
    """A store failed to read or write; the caller may retry."""

    status = 503


class ConfigError(FunctionError):
    """A setting has an invalid value; the function cannot start."""
