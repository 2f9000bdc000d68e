"""What every Server5K handler (REST or WebSocket) shares: the application's services (set up
once in server5k.make_app), who the client is and its turn when anonymous, the database runners,
public caching, the identity behind a token, and JSON error answers.

Errors are answered in one place (``ServiceMixin.write_error``) as
``{"detail": ..., "code": ..., ["errors": {...}]}`` with ``Content-Type: application/json``:
never HTML, never a traceback.
"""

import asyncio
import concurrent.futures
import logging
import math
import secrets

import tornado.web

import messages
import models
import identity as identity_room
import race_control
import store
from handlers.access import client_address, redact_uri
from handlers.connections import connection_of
from handlers.errors import ApiError, as_api_error, server_busy, too_many
from handlers.wire import dumps

log = logging.getLogger("server5k")

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
        read = self.db_public if public else self.db_read
        return self.hub.competition(competencia_id) or await read(race_control.competition_dict,
                                                                  competencia_id)

    def public_answer(self, etag):
        """Mark this answer as public and cacheable, with the validator ``etag`` (made once per
        change of what it depends on, never by hashing the body here; weak, ``W/"..."``, when
        answers with the same meaning differ in bytes). True when the
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

    async def identity_of_public_caller(self):
        """Whose a public read is: the identity behind the request's ``Authorization: Bearer``
        access token, or None (no token, or one that does not hold). An expired token still
        says who (``TokenService.decode``'s ``expired_ok``: a phone that only polls a public
        URL never hears that its token expired), checked as every token is otherwise: its
        signature and type, not logged out, its user active and its generation current. Good
        for a judge's turn and the judges board only; never to authorize anything."""
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            claims = self.tokens.decode(token.strip(), "access", expired_ok=True)
            return await self.identity_of_user(claims["user_id"], claims["gen"])
        except ApiError:  # a public read: a token that does not hold is no token
            return None

    async def identity_of_user(self, user_id, token_gen):
        """The identity of an active user whose tokens of generation ``token_gen`` still hold.
        Raises ApiError(401) if gone, inactive or revoked (``token_revoked``)."""
        identity = await self.db_read(identity_room.user_identity, user_id, token_gen)
        if identity is None:
            raise ApiError(401, "user_inactive", messages.USER_INACTIVE)
        self.trust_connection()
        return identity

    def error_answer(self, error):
        """The ApiError this handler answers for ``error``: itself (handlers/movil5k.py words
        its answers so that Movil5K's text matching reads them right)."""
        return error

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
        error = self.error_answer(as_api_error(exc, status_code, reason))
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
