"""Tokens and identity: ``/api/token/``, ``/api/token/refresh/``, ``/api/me/`` and the
single-use socket tickets of ``/api/ws-ticket/``."""

import messages
import models
import identity as identity_room
from handlers.base import BaseHandler
from handlers.bodies import SMALL_BODY_BYTES
from handlers.errors import ApiError, too_many


class TokenHandler(BaseHandler):
    """POST {username, password} -> {access, refresh}. Guarded before any hashing
    (handlers.limits.LoginGuard): per address and username, per address, and lockouts; an
    address's password checks run one at a time (handlers.limits.Turns)."""

    max_body_bytes = SMALL_BODY_BYTES
    pace = "login"

    async def post(self):
        self.write_json(self.tokens.pair(await self.credentials()))

    async def credentials(self):
        """The identity of the body's username and password (ApiError 400/401/429 else)."""
        body = self.json_body()
        username, password = body.get("username"), body.get("password")
        errors = {}
        for field, value in (("username", username), ("password", password)):
            if not isinstance(value, str) or not value:
                errors[field] = "Campo obligatorio (texto)."
            elif len(value) > 1024:
                errors[field] = "Demasiado largo."
        if errors:
            raise ApiError(400, "validation_error", "Faltan credenciales.", errors)
        guard, address, key = self.limits.login, self.client_ip, models.username_key(username)
        retry_after = guard.check(address, key)
        if retry_after:
            raise too_many("Demasiados intentos de inicio de sesión; espere %d s." % retry_after,
                           retry_after)
        if not await self.limits.hashing.acquire(address):
            raise too_many("Demasiados inicios de sesión a la vez desde esta dirección; "
                           "reintente.", 1)
        try:
            retry_after = guard.address_wait(address)  # its failures while it waited count
            if retry_after:
                raise too_many("Demasiados intentos de inicio de sesión; espere %d s."
                               % retry_after, retry_after)
            identity = await self.db_hash(identity_room.authenticate, username, password)
        finally:
            self.limits.hashing.release(address)
        if identity is None:
            guard.failed(address, key)
            raise ApiError(401, "invalid_credentials", messages.INVALID_CREDENTIALS)
        guard.succeeded(address, key)
        self.trust_connection()  # a judge's or organizer's from now on (handlers/connections.py)
        return identity


class RefreshHandler(BaseHandler):
    """POST {refresh} -> {access} (and a new refresh when rotation is on)."""

    max_body_bytes = SMALL_BODY_BYTES
    pace = "login"

    async def post(self):
        body = self.json_body()
        token = body.get("refresh")
        if not isinstance(token, str) or not token:
            raise ApiError(400, "validation_error", "Falta el token de refresco.",
                           {"refresh": "Campo obligatorio (texto)."})
        claims = self.tokens.decode(token, "refresh")
        identity = await self.identity_of_user(claims["user_id"], claims["gen"])
        if identity["juez_id"] is not None and not identity["juez_active"]:
            # A deactivated judge cannot log in, nor renew a session (refused as an inactive user).
            raise ApiError(401, "user_inactive", messages.USER_INACTIVE)
        answer = {"access": self.tokens.issue("access", identity)}
        if self.config["auth"]["rotate_refresh_tokens"]:
            answer["refresh"] = self.tokens.issue("refresh", identity)
        self.write_json(answer)


class MeHandler(BaseHandler):
    """GET -> {user, juez}: how an app learns its juez_id, competition and teams."""

    async def get(self):
        identity = await self.authenticated()
        answer = await self.db_read(identity_room.me, identity["user"]["id"])
        if answer is None:
            raise ApiError(401, "user_inactive", messages.USER_INACTIVE)
        # ``server_time``: the judge app's second way to the server's clock, for a phone whose
        # socket never opens (a proxy that drops WebSockets): its polls of this give samples.
        self.write_json(dict(answer, server_time=models.iso(models.utcnow())))



class WsTicketHandler(BaseHandler):
    """POST (access token of a judge) -> {"ticket", "expires_in"}: a single-use ticket for
    ``/ws/juez/{juez_id}/?ticket=...``, so the long-lived access token never goes into a URL."""

    max_body_bytes = SMALL_BODY_BYTES

    async def post(self):
        identity = await self.authenticated()
        refusal = identity_room.judge_refusal(identity["juez_id"], identity["juez_active"])
        if refusal is not None:
            raise ApiError.from_domain(refusal)
        ticket = self.tickets.issue(identity["user"]["id"], identity["juez_id"], identity["gen"])
        self.write_json({"ticket": ticket, "expires_in": self.tickets.TTL_S})
