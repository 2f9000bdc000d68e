"""What the server keeps about each request: who sent it (the client's address, through
trusted proxies), the access log line (tokens and tickets taken out of the URI) and the count
of requests in flight that a graceful stop waits for."""

import asyncio
import ipaddress
import logging
import re
import time

access_log = logging.getLogger("tornado.access")

# Longer URIs are cut in the log (a flood of 8 KiB URLs must not become 8 KiB log lines).
MAX_LOGGED_URI = 500

_TOKEN_IN_URI = re.compile(r"([?&](?:token|ticket)=)[^&#]*", re.IGNORECASE)


def redact_uri(uri):
    """The URI with token and ticket query values replaced, for logs."""
    return _TOKEN_IN_URI.sub(r"\1[redacted]", uri)


def trusted_networks(addresses):
    """``server.trusted_proxies`` (addresses or networks, as text) as ip_network objects.
    ValueError names the first one that is neither."""
    return tuple(ipaddress.ip_network(text.strip(), strict=False) for text in addresses)


def _ip(text):
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1
    return mapped or address


def _trusted(address, trusted):
    return address is not None and any(address in network for network in trusted)


def is_trusted(text, trusted):
    """Whether the address ``text`` is one of the ``trusted`` networks (trusted_networks)."""
    return _trusted(_ip(text), trusted)


def client_address(request, trusted):
    """The address the request came from: the peer's, or, when the peer is one of the
    ``trusted`` proxies, the one it forwards: the last address of ``X-Forwarded-For`` that is
    not itself a trusted proxy (earlier ones are whatever the client wrote), else
    ``X-Real-IP``. A forwarded value that is not an address is ignored (the peer's is kept)."""
    peer = request.remote_ip
    if not trusted or not _trusted(_ip(peer), trusted):
        return peer
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        hops = [_ip(hop) for hop in forwarded.split(",")[-32:]]
        for hop in reversed(hops):
            if hop is None:
                return peer
            if not _trusted(hop, trusted):
                return str(hop)
        return str(hops[0])  # every hop is one of ours: the first one is the client
    real = _ip(request.headers.get("X-Real-IP", ""))
    return str(real) if real is not None else peer


def log_request(handler):
    """Tornado's access log line, with tokens taken out of the URI."""
    status = handler.get_status()
    if status < 400:
        log_method = access_log.info
    elif status < 500 or status == 503:  # 503: a full queue refused it at once, by design
        log_method = access_log.warning
    else:
        log_method = access_log.error
    request = handler.request
    uri = request.uri if len(request.uri) <= MAX_LOGGED_URI else (
        request.uri[:MAX_LOGGED_URI] + "...[%d more]" % (len(request.uri) - MAX_LOGGED_URI))
    log_method("%d %s %s (%s) %.2fms", status, request.method, redact_uri(uri),
               getattr(handler, "client_ip", request.remote_ip),
               1000.0 * request.request_time())


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
