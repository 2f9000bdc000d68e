"""What every Server5K handler shares: the application's services, JSON error answers, JSON
bodies, authentication and CORS.

Errors are answered in one place (``write_error``) as
``{"detail": ..., "code": ..., ["errors": {...}]}`` with ``Content-Type: application/json``:
never HTML, never a traceback.
"""

import asyncio
import logging

import tornado.web
import tornado.websocket

import models
from handlers.access import redact_uri
from handlers.errors import ApiError, as_api_error
from handlers.wire import dumps, parse_json

log = logging.getLogger("server5k")

# Bodies larger than this are refused with 413 before they are read. Fifteen records are about
# 2 KiB; an app that sends a few hundred (extras are ignored) still fits.
MAX_BODY_BYTES = 256 * 1024

_BEARER = {"WWW-Authenticate": 'Bearer realm="api"'}


class ServiceMixin:
    """What every Server5K handler (REST or WebSocket) shares: the application's services
    (set up once in server5k.make_app) and JSON error answers."""

    @property
    def config(self):
        return self.application.settings["server5k_config"]

    @property
    def store(self):
        return self.application.settings["server5k_store"]

    @property
    def hub(self):
        return self.application.settings["server5k_hub"]

    @property
    def spectators(self):
        return self.application.settings["server5k_spectators"]

    @property
    def replica(self):
        """The live copy's supervisor (replica.Replicator), or None."""
        return self.application.settings.get("server5k_replica")

    @property
    def consoles(self):
        return self.application.settings["server5k_consoles"]

    @property
    def tokens(self):
        return self.application.settings["server5k_tokens"]

    @property
    def limits(self):
        return self.application.settings["server5k_limits"]

    @property
    def tickets(self):
        return self.application.settings["server5k_tickets"]

    @property
    def in_flight(self):
        return self.application.settings["server5k_in_flight"]

    async def db_read(self, fn, *args):
        """Run a read on a reader thread; domain errors become API errors."""
        return await self._await(self.store.read(fn, *args))

    async def db_write(self, fn, *args):
        """Run a write on the writer; returns once it is committed to disk."""
        return await self._await(self.store.write_from_loop(fn, *args))

    async def db_hash(self, fn, *args):
        return await self._await(self.store.hash(fn, *args))

    @staticmethod
    async def _await(future):
        try:
            return await (future if asyncio.isfuture(future) else asyncio.wrap_future(future))
        except models.DomainError as exc:
            raise ApiError.from_domain(exc) from None

    async def competition(self, competencia_id):
        """The competition's dict: the live one on the hub, else read (ApiError 404 if none)."""
        return self.hub.competition(competencia_id) or await self.db_read(
            models.competition_dict, competencia_id)

    def require_websocket_upgrade(self):
        """A plain GET on a WebSocket URL gets a JSON 400 rather than Tornado's text one."""
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise ApiError(400, "websocket_expected",
                           "Esta URL es un WebSocket (Upgrade: websocket).")

    async def identity_from_token(self, token):
        """Decode an access token and check its user is still active and the token not revoked.
        Raises ApiError(401)."""
        claims = self.tokens.decode(token, "access")
        return await self.identity_of_user(claims["user_id"], claims["gen"])

    async def identity_of_user(self, user_id, token_gen):
        """The identity of an active user whose tokens of generation ``token_gen`` still hold.
        Raises ApiError(401) if gone, inactive or revoked (``token_revoked``)."""
        identity = await self.db_read(models.user_identity, user_id, token_gen)
        if identity is None:
            raise ApiError(401, "user_inactive", "El usuario no existe o está inactivo.")
        return identity

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 405 and not isinstance(exc, ApiError):
            reason = "Método %s no permitido aquí." % self.request.method
            if hasattr(self, "allowed_methods"):
                self.set_header("Allow", self.allowed_methods())
        else:
            reason = self._reason
        error = as_api_error(exc, status_code, reason)
        self.set_status(error.status_code)
        for name, value in error.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(dumps(error.body()))

    def log_exception(self, typ, value, tb):
        if isinstance(value, (ApiError, models.DomainError)):
            return  # an answer, not a failure
        if isinstance(value, tornado.web.HTTPError):
            return super().log_exception(typ, value, tb)
        log.error("Uncaught exception %s %s", self.request.method,
                  redact_uri(self.request.uri), exc_info=(typ, value, tb))


class SocketHandler(ServiceMixin, tornado.websocket.WebSocketHandler):
    """What the server's WebSockets (judges', spectators', consoles') share."""

    @property
    def alive(self):
        """Open and not closing. A ping timeout or a revocation starts closing at once, but
        Tornado tells ``on_close`` only after the close handshake (up to 5 s): registries count
        and sweep only the sockets that are alive."""
        connection = self.ws_connection
        return connection is not None and not connection.is_closing()


@tornado.web.stream_request_body
class BaseHandler(ServiceMixin, tornado.web.RequestHandler):
    """JSON in, JSON out. Bodies are streamed so oversized ones are refused with a 413."""

    def initialize(self):
        self._body_parts = []
        self._body_size = 0
        self._body_too_large = False
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

    def prepare(self):
        # Counted from the headers on (the body may still be arriving) until the answer is sent
        # or the client goes away, so a shutdown waits for it.
        self.in_flight.count += 1
        self._counted = True
        length = self.request.headers.get("Content-Length")
        if length is not None:
            try:
                too_large = int(length) > MAX_BODY_BYTES
            except ValueError:
                raise ApiError(400, "bad_request", "Content-Length no válido.")
            if too_large:
                raise ApiError(413, "body_too_large",
                               "El cuerpo supera %d bytes." % MAX_BODY_BYTES)

    def data_received(self, chunk):
        if self._body_too_large:
            return
        self._body_size += len(chunk)
        if self._body_size > MAX_BODY_BYTES:
            self._body_too_large = True
            self._body_parts = []
        else:
            self._body_parts.append(chunk)

    def has_body(self):
        return any(part.strip() for part in self._body_parts)

    def body_bytes(self):
        """The request body as received. Raises ApiError(413) if it was too large."""
        if self._body_too_large:
            raise ApiError(413, "body_too_large", "El cuerpo supera %d bytes." % MAX_BODY_BYTES)
        return b"".join(self._body_parts)

    def json_body(self):
        """The request body as a JSON object. Raises ApiError(400/413) otherwise."""
        raw = self.body_bytes()
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() not in ("application/json", ""):
            raise ApiError(400, "unsupported_content_type",
                           "Se espera Content-Type: application/json.")
        if not raw.strip():
            raise ApiError(400, "empty_body", "El cuerpo está vacío; se espera un objeto JSON.")
        try:
            body = parse_json(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, "invalid_json", "El cuerpo no es JSON válido: %s" % (
                str(exc)[:200] if not isinstance(exc, UnicodeDecodeError) else "no es UTF-8"))
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", "El cuerpo debe ser un objeto JSON.")
        return body

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
        return self.tokens.decode(token.strip(), "access")

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


class OrganizerHandler(BaseHandler):
    """An organizer-only endpoint: the caller is checked as soon as the headers arrive, before
    any body is read; ``self.user_id`` is the organizer's, for the history (``self.identity``
    the whole identity)."""

    user_id = identity = None

    async def prepare(self):
        super().prepare()
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
        fmt = self.get_query_argument("format", "json")
        if fmt not in ("json", "csv"):
            raise ApiError(400, "invalid_format", "Formato desconocido: use json o csv.",
                           {"format": "Debe ser json o csv."})
        return fmt == "csv"


class NotFoundHandler(BaseHandler):
    """Every path nobody serves answers 404 JSON (OPTIONS on /api/ paths still answers 204)."""

    def _not_found(self, *args, **kwargs):
        raise ApiError(404, "not_found", "No existe: %s" % self.request.path)

    get = post = put = patch = delete = head = _not_found

    def options(self, *args, **kwargs):
        if not self.request.path.startswith("/api/"):
            self._not_found()
        super().options()

    def allowed_methods(self):
        return "GET, POST, OPTIONS"
