"""The local runtime's errors, rooted in one class."""


class LocalRuntimeError(Exception):
    """Root of every error the local runtime raises on purpose."""


class ManifestError(LocalRuntimeError, ValueError):
    """A manifest is missing, malformed, or refers to something that does not exist."""


class ConfigError(LocalRuntimeError, ValueError):
    """A setting (environment variable, ConfigMap key, annotation) has an invalid value."""


class BackendError(LocalRuntimeError):
    """A broker backend failed to store, read or acknowledge events."""

    #: Whether trying the same operation again may succeed.
    retriable: bool = True


class RuntimeStartError(LocalRuntimeError):
    """A `knlocal run` started as a child process (knlocal/process.py) did not get ready."""


class TraceNotFound(LocalRuntimeError):
    """`knlocal trace`: no tracing backend answers, or it has no trace of the operation."""
