"""The routes of last resort: a request whose URL or headers are too large is answered 414/431
whatever its path (the first route), and a path nobody serves 404 (the last), both in JSON.
"""

import tornado.routing

from handlers.base import BaseHandler
from handlers.errors import ApiError

# Requests whose URL or headers are larger than this are answered 414/431 (JSON) by
# OversizedRequest below. Past Tornado's own cap of the whole header block (server5k
# make_server, 64 KiB) Tornado closes the connection without an answer.
MAX_URI_BYTES = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024


class OversizedRequest(tornado.routing.Matcher):
    """The first route: matches a request whose URL or headers are over the limits above, so it
    is answered by TooLargeHandler whatever its path (WebSocket handshakes included)."""

    def match(self, request):
        if len(request.uri) > MAX_URI_BYTES:
            return {"target_kwargs": {"status": 414}}
        size = 0
        for name, value in request.headers.get_all():
            size += len(name) + len(value) + 4
        if size > MAX_HEADER_BYTES:
            return {"target_kwargs": {"status": 431}}
        return None


class TooLargeHandler(BaseHandler):
    """414 ``uri_too_long`` or 431 ``headers_too_large``, for any method, before any body."""

    pace = "public"  # whoever sends these sends no credentials worth reading

    def initialize(self, status):
        super().initialize()
        self.status = status

    async def prepare(self):
        await super().prepare()
        if self.status == 414:
            raise ApiError(414, "uri_too_long", "La URL supera %d bytes." % MAX_URI_BYTES,
                           headers={"Connection": "close"})
        raise ApiError(431, "headers_too_large",
                       "Las cabeceras superan %d bytes." % MAX_HEADER_BYTES,
                       headers={"Connection": "close"})


class NotFoundHandler(BaseHandler):
    """Every path nobody serves answers 404 JSON (OPTIONS on /api/ paths still answers 204)."""

    pace = "public"

    def _not_found(self, *args, **kwargs):
        raise ApiError(404, "not_found", "No existe: %s" % self.request.path)

    get = post = put = patch = delete = head = _not_found

    def options(self, *args, **kwargs):
        if not self.request.path.startswith("/api/"):
            self._not_found()
        super().options()

    def allowed_methods(self):
        return "GET, POST, OPTIONS"
