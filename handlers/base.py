"""What every Server5K handler shares: the application's services, JSON error answers, JSON
bodies, authentication and CORS.

Errors are answered in one place (``write_error``) as
``{"detail": ..., "code": ..., ["errors": {...}]}`` with ``Content-Type: application/json``:
never HTML, never a traceback.
"""

import asyncio
import collections
import concurrent.futures
import logging
import math
import secrets

import tornado.routing
import tornado.web
import tornado.websocket

import messages
import models
import identity as identity_room
import race_control
import store
from handlers.access import client_address, redact_uri
from handlers.connections import connection_of
from handlers.errors import ApiError, as_api_error, server_busy, too_many
from handlers.wire import CLOSE_NOT_READING, dumps, parse_json

log = logging.getLogger("server5k")

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

_BEARER = {"WWW-Authenticate": 'Bearer realm="api"'}

# Public reads (results, a team's records, the public pages): any HTTP cache (nginx's one-second
# micro-cache in deploy/, a CDN, the browser) may keep them a second, then serve them a few
# seconds more while it asks again, or for a minute while the server does not answer (a restart).
# Everything else is ``no-store`` (the handlers' defaults, and every error answer).
PUBLIC_CACHE_CONTROL = "public, max-age=1, stale-while-revalidate=5, stale-if-error=60"
# Validators that are not a hash of data alone carry this process's start, so an upgrade (new
# templates) or a restart never answers 304 for what an older process said.
BOOT = secrets.token_hex(4)


class ServiceMixin:
    """What every Server5K handler (REST or WebSocket) shares: the application's services
    (set up once in server5k.make_app), who the client is, its turn when it is anonymous, and
    JSON error answers."""

    # Anonymous requests take turns per client address (handlers.limits.Pacer): "public" for
    # public reads and pages, "login" for logins and refreshes, None for requests that carry a
    # judge's or an organizer's credentials (never held back).
    pace = None
    _client_ip = None

    @property
    def client_ip(self):
        """The client's address: the peer's, or the one a trusted proxy forwards."""
        if self._client_ip is None:
            self._client_ip = client_address(
                self.request, self.application.settings["server5k_trusted_proxies"])
        return self._client_ip

    _connection = None

    @property
    def client_connection(self):
        """The registry's record of the client connection (handlers/connections.py), or None
        when the server keeps none."""
        if self._connection is None:
            stream = getattr(getattr(self.request, "connection", None), "stream", None)
            if stream is None:  # a WebSocket, once upgraded, holds the stream itself
                stream = getattr(getattr(self, "ws_connection", None), "stream", None)
            self._connection = connection_of(stream)
        return self._connection

    def trust_connection(self):
        """Credentials were checked: the connection is a judge's or an organizer's (never
        capped nor shed as an anonymous one)."""
        if self.client_connection is not None:
            self.client_connection.trust()

    async def take_turn(self):
        """Wait for this anonymous request's turn; a 429 (after a wait) when it gets none. On a
        connection on probation (its address holds too many), a 503 with Connection: close."""
        if self.pace is None:
            return
        if self.client_connection is not None and self.client_connection.probation:
            refusal = server_busy(5, code="too_many_connections",
                                  detail="Demasiadas conexiones desde esta dirección; reintente "
                                         "más tarde.")
            refusal.headers["Connection"] = "close"
            raise refusal
        pacer = self.limits.pacer
        wait = pacer.turn((self.pace, self.client_ip))
        if wait is None:
            await asyncio.sleep(pacer.max_wait)  # a refusal costs a flood time too
            refusal = too_many("Demasiadas peticiones desde esta dirección; reintente más "
                               "tarde.", math.ceil(pacer.max_wait))
            refusal.headers["Connection"] = "close"
            raise refusal
        if wait > 0:
            await asyncio.sleep(wait)

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
    def standings(self):
        return self.application.settings["server5k_standings"]

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

    def public_url(self, path):
        """The address of ``path`` as phones reach it: ``server.public_url`` when set (the
        laptop cannot know its venue address), else the address this request came to."""
        base = self.config["server"]["public_url"] or "%s://%s" % (self.request.protocol,
                                                                   self.request.host)
        return base + path

    async def db_read(self, fn, *args):
        """Run a read of a judge or organizer (or an identity check) on a reader thread; domain
        errors become API errors, a full queue a 503."""
        return await self._run(self.store.read, fn, args)

    async def db_public(self, fn, *args):
        """Run an anonymous read on the public readers, which never hold up ``db_read``."""
        return await self._run(self.store.read_public, fn, args)

    async def db_write(self, fn, *args):
        """Run a write on the writer; returns once it is committed to disk."""
        return await self._run(self.store.write_from_loop, fn, args)

    async def db_hash(self, fn, *args):
        return await self._run(self.store.hash, fn, args)

    @classmethod
    async def _run(cls, submit, fn, args):
        async def job():
            future = submit(fn, *args)
            return await (future if asyncio.isfuture(future) else asyncio.wrap_future(future))
        return await cls.settled(job())

    @staticmethod
    async def settled(awaitable):
        """What ``awaitable`` gives; domain errors become API errors, a full queue a 503."""
        try:
            return await awaitable
        except models.DomainError as exc:
            raise ApiError.from_domain(exc) from None
        except store.Busy as exc:
            raise server_busy(exc.retry_after) from None
        except concurrent.futures.BrokenExecutor:  # a worker process died (logged): retry
            raise server_busy(1) from None

    async def competition(self, competencia_id, public=False):
        """The competition's dict: the live one on the hub, else read (ApiError 404 if none),
        on the public readers for an anonymous caller."""
        return self.hub.competition(competencia_id) or await (
            self.db_public if public else self.db_read)(race_control.competition_dict, competencia_id)

    def public_answer(self, etag):
        """Mark this answer as public and cacheable, with the strong validator ``etag`` (made
        once per change of what it depends on, never by hashing the body here). True when the
        client's ``If-None-Match`` already holds it: then it has been answered ``304`` and the
        caller must not make the body."""
        self.set_header("ETag", etag)
        self.set_header("Cache-Control", PUBLIC_CACHE_CONTROL)
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return True
        return False

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
        identity = await self.db_read(identity_room.user_identity, user_id, token_gen)
        if identity is None:
            raise ApiError(401, "user_inactive", messages.USER_INACTIVE)
        self.trust_connection()
        return identity

    def write_error(self, status_code, **kwargs):
        body_pending = getattr(self, "body_pending", None)
        if body_pending is not None and body_pending():
            # Answered before the body was read: Tornado then closes the connection, and says
            # so only if told now (else the client's next request on it meets a reset).
            self.set_header("Connection", "close")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 405 and not isinstance(exc, ApiError):
            reason = "Método %s no permitido aquí." % self.request.method
            if hasattr(self, "allowed_methods"):
                self.set_header("Allow", self.allowed_methods())
        else:
            reason = self._reason
        error = as_api_error(exc, status_code, reason)
        self.set_status(error.status_code)
        self.set_header("Cache-Control", "no-store")  # never cached, whatever was set before
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
class BaseHandler(ServiceMixin, tornado.web.RequestHandler):
    """JSON in, JSON out. Bodies are streamed so oversized ones are refused with a 413 whose cost
    does not grow with the body: what is over ``max_body_bytes`` is never kept nor parsed."""

    max_body_bytes = DEFAULT_BODY_BYTES

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

    async def prepare(self):
        # Counted from the headers on (the body may still be arriving) until the answer is sent
        # or the client goes away, so a shutdown waits for it.
        self.in_flight.count += 1
        self._counted = True
        await self.take_turn()
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
        return _json_object(self._raw_json_body())

    async def json_body_off_loop(self):
        """``json_body()`` for endpoints with large bodies: one over INLINE_PARSE_BYTES is
        parsed on a reader thread, so even a hostile one never stalls the event loop."""
        raw = self._raw_json_body()
        if len(raw) <= INLINE_PARSE_BYTES:
            return _json_object(raw)
        return await self.db_read(_json_object, raw)

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


def _json_object(raw):
    """Strict JSON (handlers.wire.parse_json) that must be an object; ApiError(400) else."""
    try:
        body = parse_json(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "El cuerpo no es JSON válido: %s" % (
            str(exc)[:200] if not isinstance(exc, UnicodeDecodeError) else "no es UTF-8"))
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "El cuerpo debe ser un objeto JSON.")
    return body


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


def _retrieve(future):
    """A write to a socket that closed fails; nobody waits for it, so it must not be logged."""
    if not future.cancelled():
        future.exception()
