"""Sending events to `K_SINK` (the broker ingress), over pooled keep-alive connections."""

import urllib3

from functions import tracing
from functions.ce import BaseCloudEvent, encode_binary
from functions.errors import ServiceUnavailable


class HttpSink:
    """POSTs events in binary mode to one URL; safe to share across threads.

    :param url: the sink, e.g. the broker ingress `http://127.0.0.1:8081/default/default`.
    :param timeout: seconds to wait for the sink's answer.
    """

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self._pool = urllib3.PoolManager(
            maxsize=16,
            timeout=urllib3.Timeout(total=timeout),
            # Retry only where the event cannot have been accepted: refused connections, and the
            # broker's own "try again" (503: produce failure, knative-semantics.md §2.2).
            retries=urllib3.Retry(
                total=3,
                connect=3,
                read=0,
                status=3,
                backoff_factor=0.05,
                status_forcelist=(503,),
                allowed_methods=None,
                raise_on_status=False,
            ),
        )

    def __call__(self, event: BaseCloudEvent) -> None:
        """Send one event; return when the sink accepted it (2xx).

        :raises ServiceUnavailable: the sink refused the event or cannot be reached.
        """
        headers, body = encode_binary(event)
        with tracing.send_span(self.url):
            try:
                headers.update(tracing.outgoing_headers())
                response = self._pool.request("POST", self.url, body=body, headers=headers)
            except urllib3.exceptions.HTTPError as exc:
                message = f"the broker at {self.url} cannot be reached: {exc}"
                raise ServiceUnavailable(message) from exc
        if not 200 <= response.status < 300:
            detail = response.data[:300].decode("utf-8", errors="replace")
            raise ServiceUnavailable(
                f"the broker at {self.url} refused the event: HTTP {response.status} {detail}"
            )
