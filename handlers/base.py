"""What every Server5K handler shares: JSON errors, JSON bodies, authentication, CORS, logging.

Errors are answered in one place (``write_error``) as
``{"detail": ..., "code": ..., ["errors": {...}]}`` with ``Content-Type: application/json``:
never HTML, never a traceback.
"""

import asyncio
import json
import logging
import re
import time

import tornado.web

import models

log = logging.getLogger("server5k")
access_log = logging.getLogger("tornado.access")

# Bodies larger than this are refused with 413 before they are read. Fifteen records are about
# 2 KiB; an app that sends a few hundred (extras are ignored) still fits.
MAX_BODY_BYTES = 256 * 1024
# Deeper JSON than this is not a submission: refuse it before it costs anything.
MAX_JSON_DEPTH = 32

DOMAIN_STATUS = {
    models.Unauthenticated: 401,
    models.Invalid: 400,
    models.NotFound: 404,
    models.Forbidden: 403,
    models.Conflict: 409,
}

STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    429: "rate_limited",
    500: "internal_error",
}


class ApiError(tornado.web.HTTPError):
    """An answer other than success. Raised anywhere in a handler; rendered by write_error."""

    def __init__(self, status, code, detail, errors=None, headers=None):
        super().__init__(status)
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    @classmethod
    def from_domain(cls, exc):
        status = next((s for kind, s in DOMAIN_STATUS.items() if isinstance(exc, kind)), 400)
        return cls(status, exc.code, exc.detail, exc.errors)


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


def _reject_duplicate_keys(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):  # a key came twice: name it
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError("duplicated key %r" % key)
            seen.add(key)
    return obj


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e400: no JSON number means infinity
        raise ValueError("number out of range: %s" % text[:40])
    return value


def _check_text(value):
    """ValueError if any string (key or value) holds a lone surrogate (from a ``\\ud800``
    escape): such text cannot be stored in SQLite or written back as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text with an unpaired surrogate escape") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _depth(value):
    """Nesting depth of parsed JSON, walked without recursion (only containers are visited)."""
    if not isinstance(value, (dict, list)):
        return 0
    deepest, stack = 1, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return deepest


_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys,
                            parse_constant=_reject_constant, parse_float=_finite_float)


def parse_json(raw):
    """Strict JSON: UTF-8, no duplicated keys, no NaN/Infinity/overflowing numbers, no unpaired
    surrogates, bounded depth. ValueError else."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if text.startswith("\ufeff"):
        raise ValueError("Unexpected UTF-8 BOM")
    value = _DECODER.decode(text)
    # The walks below are only needed when the text could hold what they look for: nesting
    # deeper than the number of brackets cannot be, and bytes that decoded as UTF-8 hold no lone
    # surrogate unless a \u escape made one.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise ValueError("JSON nested deeper than %d levels" % MAX_JSON_DEPTH)
    if "\\u" in text or text is raw:
        _check_text(value)
    return value


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


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
        """Decode an access token and check its user is still active. Raises ApiError(401)."""
        claims = self.tokens.decode(token, "access")
        return await self.identity_of_user(claims["user_id"])

    async def identity_of_user(self, user_id):
        """The identity of an active user. Raises ApiError(401) if gone or inactive."""
        identity = await self.db_read(models.user_identity, user_id)
        if identity is None:
            raise ApiError(401, "user_inactive", "El usuario no existe o está inactivo.")
        return identity

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, models.DomainError):
            exc = ApiError.from_domain(exc)
        if isinstance(exc, ApiError):
            self.set_status(exc.status_code)
            for name, value in exc.headers.items():
                self.set_header(name, value)
            body = {"detail": exc.detail, "code": exc.code}
            if exc.errors:
                body["errors"] = exc.errors
        else:
            if status_code >= 500:
                status_code = 500
                self.set_status(500)
            detail = {
                404: "No existe.",
                405: "Método %s no permitido aquí." % self.request.method,
                500: "Error interno del servidor.",
            }.get(status_code, self._reason)
            body = {"detail": detail, "code": STATUS_CODES.get(status_code, "error")}
            if status_code == 405 and hasattr(self, "allowed_methods"):
                self.set_header("Allow", self.allowed_methods())
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(dumps(body))

    def log_exception(self, typ, value, tb):
        if isinstance(value, (ApiError, models.DomainError)):
            return  # an answer, not a failure
        if isinstance(value, tornado.web.HTTPError):
            return super().log_exception(typ, value, tb)
        log.error("Uncaught exception %s %s", self.request.method,
                  redact_uri(self.request.uri), exc_info=(typ, value, tb))


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

    def json_body(self):
        """The request body as a JSON object. Raises ApiError(400/413) otherwise."""
        if self._body_too_large:
            raise ApiError(413, "body_too_large", "El cuerpo supera %d bytes." % MAX_BODY_BYTES)
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() not in ("application/json", ""):
            raise ApiError(400, "unsupported_content_type",
                           "Se espera Content-Type: application/json.")
        raw = b"".join(self._body_parts)
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

    async def authenticated(self):
        """The caller's identity from ``Authorization: Bearer <access>``. Raises 401."""
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise ApiError(401, "not_authenticated",
                           "Falta la cabecera Authorization: Bearer <access>.",
                           headers={"WWW-Authenticate": 'Bearer realm="api"'})
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "bad_authorization_header",
                           "La cabecera Authorization debe ser 'Bearer <access>'.",
                           headers={"WWW-Authenticate": 'Bearer realm="api"'})
        return await self.identity_from_token(token.strip())

    async def organizer(self):
        identity = await self.authenticated()
        if not identity["user"]["organizador"]:
            raise ApiError(403, "organizer_only", "Solo un organizador puede hacer esto.")
        return identity

    def path_int(self, value, what):
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if not 1 <= number <= 2**62:
            raise ApiError(404, "not_found", "%s %s no existe." % (what, value))
        return number


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
