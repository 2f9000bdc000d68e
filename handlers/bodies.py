"""Request bodies: what one may weigh per endpoint, streamed so that an oversized one is
refused with a 413 whose cost does not grow with it, a refusal made before the body was read
answered once it has arrived (so the connection lives on), and JSON bodies parsed strictly (large
ones off the event loop).
"""

import tornado.web

from handlers.errors import ApiError
from handlers.wire import parse_json

# What a request body may weigh, per endpoint (a handler's ``max_body_bytes``): larger ones are
# refused with 413, before a byte is read when Content-Length says so. The default fits every
# organizer's correction (a 500-character reason included); logins, refreshes and tickets are a
# few hundred bytes; submissions set their own (fifteen records are about 2 KiB, and an app that
# sends a few hundred, extras ignored, still fits).
DEFAULT_BODY_BYTES = 16 * 1024
SMALL_BODY_BYTES = 4 * 1024
# Bodies up to this size are parsed on the event loop (well under a millisecond even for
# hostile JSON); larger ones on a reader thread (json_body_off_loop).
INLINE_PARSE_BYTES = 4 * 1024
# A request refused before its body was read (no token, a limit) whose body is announced up to
# this size is answered once the body has arrived, so its connection stays open for the next
# request (a judge's submission is about 2 KiB); a larger one is answered at once and closed.
READ_BEFORE_REFUSING = 16 * 1024


class StreamedBody:
    """The body half of ``handlers.base.BaseHandler`` (a ``tornado.web.RequestHandler`` under
    ``@tornado.web.stream_request_body``): what is over ``max_body_bytes`` is never kept nor
    parsed."""

    max_body_bytes = DEFAULT_BODY_BYTES

    def initialize(self):
        self._body_parts = []
        self._body_size = 0
        self._body_too_large = False

    def check_content_length(self):
        """Refuse at once (413, before a byte is read) a body whose Content-Length is over
        ``max_body_bytes``; a Content-Length that is not a number is a 400."""
        length = self.request.headers.get("Content-Length")
        if length is not None:
            try:
                too_large = int(length) > self.max_body_bytes
            except ValueError:
                raise ApiError(400, "bad_request", "Content-Length no válido.")
            if too_large:
                raise self._too_large()

    def _too_large(self):
        return ApiError(413, "body_too_large", "El cuerpo supera %d bytes." % self.max_body_bytes)

    def data_received(self, chunk):
        if self._body_too_large:
            return
        self._body_size += len(chunk)
        if self._body_size > self.max_body_bytes:
            self._body_too_large = True
            self._body_parts = []
        else:
            self._body_parts.append(chunk)

    def body_pending(self):
        """True while a request body is announced and not all of it has arrived: an answer
        sent now makes Tornado close the connection once it is written."""
        headers = self.request.headers
        announced = headers.get("Content-Length", "0").strip() not in ("", "0") or (
            "chunked" in headers.get("Transfer-Encoding", "").lower())
        # Tornado's own flag of a streamed body that has fully arrived (no public accessor).
        arrived = getattr(self.request, "_body_future", None)
        return announced and arrived is not None and not arrived.done()

    def _handle_request_exception(self, e):
        """A refusal before the body was read (``prepare``: credentials, a limit, a wrong
        method) is answered once the body has arrived, when it is absent or announced within
        READ_BEFORE_REFUSING and ``max_body_bytes``: Tornado closes a connection answered
        before its request is read (even a GET without a body), and the client's next request
        on it met a reset. What arrives is kept within the limit (``data_received``), and a
        body that does not come is cut by the server's body timeout. A larger or chunked body,
        a 413, or an answer that says ``Connection: close`` is answered at once, with
        ``Connection: close``."""
        prepared = getattr(self, "_prepared_future", None)  # Tornado's: body reading waits on it
        arrived = getattr(self.request, "_body_future", None)
        if (prepared is None or prepared.done() or arrived is None or arrived.done()
                or not self._answer_after_body(e)):
            return super()._handle_request_exception(e)
        prepared.set_result(None)  # the connection now reads the body (and drops it)
        arrived.add_done_callback(lambda future: self._answer_late(future, e))

    def _answer_after_body(self, exc):
        if not isinstance(exc, tornado.web.HTTPError) or exc.status_code == 413:
            return False
        if isinstance(exc, ApiError) and exc.headers.get("Connection", "").lower() == "close":
            return False
        headers = self.request.headers
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            return False
        try:
            return int(headers.get("Content-Length", "0")) <= min(self.max_body_bytes,
                                                                   READ_BEFORE_REFUSING)
        except ValueError:
            return False

    def _answer_late(self, arrived, exc):
        if arrived.cancelled() or arrived.exception() is not None or self._finished:
            return  # the client went away (or the body timed out): nobody to answer
        self.log_exception(type(exc), exc, exc.__traceback__)
        self.send_error(exc.status_code, exc_info=(type(exc), exc, exc.__traceback__))

    def has_body(self):
        return any(part.strip() for part in self._body_parts)

    def body_bytes(self):
        """The request body as received. Raises ApiError(413) if it was too large."""
        if self._body_too_large:
            raise self._too_large()
        return b"".join(self._body_parts)

    def _raw_json_body(self):
        raw = self.body_bytes()
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() not in ("application/json", ""):
            raise ApiError(400, "unsupported_content_type",
                           "Se espera Content-Type: application/json.")
        if not raw.strip():
            raise ApiError(400, "empty_body", "El cuerpo está vacío; se espera un objeto JSON.")
        return raw

    def json_body(self):
        """The request body as a JSON object. Raises ApiError(400/413) otherwise. Parsed here on
        the event loop: for endpoints whose bodies are small (``max_body_bytes``)."""
        return json_object(self._raw_json_body())

    async def json_body_off_loop(self):
        """``json_body()`` for endpoints with large bodies: one over INLINE_PARSE_BYTES is
        parsed on a reader thread, so even a hostile one never stalls the event loop."""
        raw = self._raw_json_body()
        if len(raw) <= INLINE_PARSE_BYTES:
            return json_object(raw)
        return await self.db_read(json_object, raw)


def json_object(raw):
    """Strict JSON (handlers.wire.parse_json) that must be an object; ApiError(400) else."""
    try:
        body = parse_json(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "El cuerpo no es JSON válido: %s" % (
            str(exc)[:200] if not isinstance(exc, UnicodeDecodeError) else "no es UTF-8"))
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "El cuerpo debe ser un objeto JSON.")
    return body

