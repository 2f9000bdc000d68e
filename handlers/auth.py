"""Tokens and identity: ``/api/token/``, ``/api/token/refresh/``, ``/api/me/``."""

import models
from handlers.base import ApiError, BaseHandler


class TokenHandler(BaseHandler):
    """POST {username, password} -> {access, refresh}. Rate-limited per address and username."""

    async def post(self):
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
        key = (self.request.remote_ip, models.username_key(username))
        retry_after = self.limits.login.hit(key)
        if retry_after:
            raise ApiError(429, "rate_limited",
                           "Demasiados intentos de inicio de sesión; espere %d s." % retry_after,
                           headers={"Retry-After": str(retry_after)})
        identity = await self.db_hash(models.authenticate, username, password)
        if identity is None:
            raise ApiError(401, "invalid_credentials",
                           "Usuario o contraseña incorrectos, o usuario inactivo.")
        self.write_json(self.tokens.pair(identity))


class RefreshHandler(BaseHandler):
    """POST {refresh} -> {access} (and a new refresh when rotation is on)."""

    async def post(self):
        body = self.json_body()
        token = body.get("refresh")
        if not isinstance(token, str) or not token:
            raise ApiError(400, "validation_error", "Falta el token de refresco.",
                           {"refresh": "Campo obligatorio (texto)."})
        claims = self.tokens.decode(token, "refresh")
        identity = await self.db_read(models.user_identity, claims["user_id"])
        if identity is None:
            raise ApiError(401, "user_inactive", "El usuario no existe o está inactivo.")
        answer = {"access": self.tokens.issue("access", identity)}
        if self.config["auth"]["rotate_refresh_tokens"]:
            answer["refresh"] = self.tokens.issue("refresh", identity)
        self.write_json(answer)


class MeHandler(BaseHandler):
    """GET -> {user, juez}: how an app learns its juez_id, competition and teams."""

    async def get(self):
        identity = await self.authenticated()
        answer = await self.db_read(models.me, identity["user"]["id"])
        if answer is None:
            raise ApiError(401, "user_inactive", "El usuario no existe o está inactivo.")
        self.write_json(answer)


routes = [
    (r"/api/token/", TokenHandler),
    (r"/api/token/refresh/", RefreshHandler),
    (r"/api/me/", MeHandler),
]
