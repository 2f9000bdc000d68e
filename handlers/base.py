"""The handlers' base classes: ``BaseHandler`` (JSON in and out, CORS, the count of requests in
flight, the caller's token and identity), ``OrganizerHandler`` (organizer-only, checked before
the body is read; CSV answers) and ``SocketHandler`` (the handshake checked before the upgrade,
bounded sends).

What they share lives in ``handlers.services`` (services, JSON errors) and ``handlers.bodies``
(streamed, bounded request bodies).
"""

import collections
import logging

import tornado.web
import tornado.websocket

from handlers.bodies import StreamedBody
from handlers.errors import ApiError
from handlers.services import ServiceMixin
from handlers.wire import CLOSE_NOT_READING, dumps

log = logging.getLogger("server5k")

_BEARER = {"WWW-Authenticate": 'Bearer realm="api"'}


# Unsent characters one judge's or console's socket may have waiting in the server (a start
# notice is ~500; a pong at most ~1,100). More means the other end is not reading.
MAX_QUEUED_CHARS = 64 * 1024


class SocketHandler(ServiceMixin, tornado.websocket.WebSocketHandler):
    """What the server's WebSockets (judges', spectators', consoles') share."""

    _queued = 0
    _unsent = None  # deque of (write future, characters) not yet handed to the kernel

    async def get(self, *args):
        """The handshake. ``open()`` runs after the 101, too late to refuse: every check (a
        plain GET, credentials, caps) is made here first by ``admit``, and a refusal is a JSON
        error with its status, never an upgrade."""
        try:
            self.require_websocket_upgrade()
            await self.admit(*args)
        except ApiError as exc:
            self.send_error(exc.status_code, exc_info=(type(exc), exc, exc.__traceback__))
            return
        # No await from admit's last check to open(): what it checked still holds there.
        await super().get(*args)

    async def admit(self, *args):
        """Check the handshake and keep what ``open()`` needs; raise ApiError to refuse it."""

    def send_text(self, text):
        """Write without waiting; False if the socket is already gone, or is closed now because
        what waits unsent for it would pass MAX_QUEUED_CHARS (code 4002, its connection dropped
        at once and its buffer freed: a peer that does not read never grows the server)."""
        unsent = self._unsent
        if unsent is None:
            unsent = self._unsent = collections.deque()
        while unsent and unsent[0][0].done():  # written out in order: forget what has gone
            self._queued -= unsent.popleft()[1]
        if self._queued + len(text) > MAX_QUEUED_CHARS:
            self._not_reading()
            return False
        try:
            future = self.write_message(text)
        except tornado.websocket.WebSocketClosedError:
            return False
        future.add_done_callback(_retrieve)
        unsent.append((future, len(text)))
        self._queued += len(text)
        return True

    def _not_reading(self):
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return
        log.warning("%s: closing a socket that does not read (%d characters unsent)",
                    self.request.path, self._queued)
        self.close(CLOSE_NOT_READING, "Demasiados datos sin leer")
        # The close frame waits behind the unread data: drop the connection now, and its buffer.
        connection.stream.close()
        self._unsent = None

    @property
    def alive(self):
        """Open and not closing. A ping timeout or a revocation starts closing at once, but
        Tornado tells ``on_close`` only after the close handshake (up to 5 s): registries count
        and sweep only the sockets that are alive."""
        connection = self.ws_connection
        return connection is not None and not connection.is_closing()


@tornado.web.stream_request_body
class BaseHandler(ServiceMixin, StreamedBody, tornado.web.RequestHandler):
    """JSON in, JSON out. Bodies are streamed so oversized ones are refused with a 413 whose cost
    does not grow with the body: what is over ``max_body_bytes`` is never kept nor parsed
    (``handlers.bodies.StreamedBody``)."""

    def initialize(self):
        super().initialize()
        self._counted = False

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        origin = self._cors_origin()
        if origin:
            self.set_header("Access-Control-Allow-Origin", origin)
            if origin != "*":
                self.set_header("Vary", "Origin")

    def _cors_origin(self):
        allowed = self.config["server"]["cors_origins"]
        if "*" in allowed:
            return "*"
        origin = self.request.headers.get("Origin")
        return origin if origin in allowed else None

    def options(self, *args, **kwargs):
        """CORS preflight: every /api/ path answers 204."""
        self.set_status(204)
        self.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.set_header("Access-Control-Allow-Methods", self.allowed_methods())
        self.set_header("Access-Control-Max-Age", "600")
        self.clear_header("Content-Type")
        self.finish()

    def allowed_methods(self):
        methods = [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
                   if getattr(type(self), m.lower()) is not getattr(tornado.web.RequestHandler,
                                                                     m.lower())]
        return ", ".join(methods + ["OPTIONS"])

    async def prepare(self):
        # Counted from the headers on (the body may still be arriving) until the answer is sent
        # or the client goes away, so a shutdown waits for it.
        self.in_flight.count += 1
        self._counted = True
        await self.take_turn()
        self.check_content_length()

    def on_finish(self):
        self._uncount()

    def on_connection_close(self):
        self._uncount()
        super().on_connection_close()

    def _uncount(self):
        if self._counted:
            self._counted = False
            self.in_flight.count -= 1

    def write_json(self, obj, status=200):
        self.set_status(status)
        self.finish(dumps(obj))

    def compute_etag(self):
        return None  # answers are no-store: hashing every body on the loop would buy nothing

    def access_claims(self):
        """The claims of the caller's ``Authorization: Bearer <access>`` token. Raises 401.

        Every authenticated handler starts here; it checks the token only (no database), so
        the submission path can leave the user's checks to the writer's transaction.
        """
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise ApiError(401, "not_authenticated",
                           "Falta la cabecera Authorization: Bearer <access>.", headers=_BEARER)
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "bad_authorization_header",
                           "La cabecera Authorization debe ser 'Bearer <access>'.",
                           headers=_BEARER)
        claims = self.tokens.decode(token.strip(), "access")
        self.trust_connection()  # a token the server signed: whose it is, is checked later
        return claims

    async def authenticated(self):
        """The caller's identity (token checked, user still active, token not revoked).
        Raises 401."""
        claims = self.access_claims()
        return await self.identity_of_user(claims["user_id"], claims["gen"])

    async def organizer(self):
        identity = await self.authenticated()
        if not identity["user"]["organizador"]:
            raise ApiError(403, "organizer_only", "Solo un organizador puede hacer esto.")
        return identity

    def excel_requested(self, fmt):
        """For ``?format=`` ``fmt``: None when it is not CSV, else whether ``?excel=1`` asks
        for the CSV a Spanish spreadsheet opens in columns (``;``, decimal comma) rather than
        the plain one for programs (the default). ``excel`` without CSV is a 400."""
        value = self.get_query_argument("excel", None)
        if value not in (None, "0", "1", "true", "false"):
            raise ApiError(400, "validation_error", "excel debe ser 1 o 0.",
                           {"excel": "Debe ser 1 (CSV para Excel) o 0 (CSV con comas)."})
        excel = value in ("1", "true")
        if fmt != "csv":
            if value is not None:
                raise ApiError(400, "validation_error", "excel solo vale con format=csv.",
                               {"excel": "Pida format=csv."})
            return None
        return excel


class OrganizerHandler(BaseHandler):
    """An organizer-only endpoint: the caller is checked as soon as the headers arrive, before
    any body is read; ``self.user_id`` is the organizer's, for the history (``self.identity``
    the whole identity)."""

    user_id = identity = None

    async def prepare(self):
        await super().prepare()
        method = self.request.method
        if method == "OPTIONS":  # a CORS preflight carries no credentials
            return
        if method not in self.allowed_methods().split(", "):
            raise tornado.web.HTTPError(405)  # the wrong method is told before credentials
        self.identity = await self.organizer()
        self.user_id = self.identity["user"]["id"]

    def send_csv(self, text, filename):
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", 'attachment; filename="%s"' % filename)
        self.finish(text.encode("utf-8"))

    def csv_requested(self):
        """None for JSON (the default), else the CSV's flavour: "csv" (plain, for programs)
        or "excel" (``?format=csv&excel=1``)."""
        fmt = self.get_query_argument("format", "json")
        if fmt not in ("json", "csv"):
            raise ApiError(400, "invalid_format", "Formato desconocido: use json o csv.",
                           {"format": "Debe ser json o csv."})
        excel = self.excel_requested(fmt)
        return None if excel is None else "excel" if excel else "csv"


def _retrieve(future):
    """A write to a socket that closed fails; nobody waits for it, so it must not be logged."""
    if not future.cancelled():
        future.exception()
