"""What the server keeps about each request: the access log line (tokens and tickets taken
out of the URI) and the count of requests in flight that a graceful stop waits for."""

import asyncio
import logging
import re
import time

access_log = logging.getLogger("tornado.access")

_TOKEN_IN_URI = re.compile(r"([?&](?:token|ticket)=)[^&#]*", re.IGNORECASE)


def redact_uri(uri):
    """The URI with token and ticket query values replaced, for logs."""
    return _TOKEN_IN_URI.sub(r"\1[redacted]", uri)


def log_request(handler):
    """Tornado's access log line, with tokens taken out of the URI."""
    status = handler.get_status()
    if status < 400:
        log_method = access_log.info
    elif status < 500:
        log_method = access_log.warning
    else:
        log_method = access_log.error
    request = handler.request
    log_method("%d %s %s (%s) %.2fms", status, request.method, redact_uri(request.uri),
               request.remote_ip, 1000.0 * request.request_time())


class InFlight:
    """How many API requests are being handled right now (headers read, answer not yet sent).

    A graceful shutdown stops accepting, then waits for this to reach zero so every submission
    already received is committed and answered before the database closes.
    """

    def __init__(self):
        self.count = 0

    async def wait_idle(self, timeout):
        """True once no request is in flight; False if ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while self.count > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True
