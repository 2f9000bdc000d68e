"""JWT access and refresh tokens: HS256 only, token type checked, every claim required.

Tokens carry ``gen``, their user's token generation when they were issued (an extension claim:
a token without it is of generation 0). A password change or a deactivation moves the user's
generation on, and every place that accepts a token compares the two against the database
(``identity.user_identity``, the writer's submission check), so older tokens are refused at
once. Verified tokens are remembered here by their text; that memory only spares the
signature check, never the generation's.
"""

import secrets
import time
import uuid

import jwt

import messages
from handlers.errors import ApiError

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "jti", "token_type", "user_id"]
# Verified tokens remembered (a phone sends the same access token until it expires). Decoding
# costs ~60 us on the event loop, a third of a submission's own work; a dictionary hit costs ~1.
VERIFIED_CACHE_SIZE = 10_000


class TokenService:
    def __init__(self, secret, access_lifetime_s, refresh_lifetime_s):
        if not secret or len(secret) < 32:
            raise ValueError("the signing secret must be at least 32 characters")
        self._secret = secret
        self._verified = {}  # token -> claims of a token whose signature and claims checked out
        self._revoked = {}  # jti -> exp of tokens ended by a logout (models.TokenRevocado)
        self.lifetimes = {"access": access_lifetime_s, "refresh": refresh_lifetime_s}

    def issue(self, token_type, identity):
        now = int(time.time())
        claims = {
            "token_type": token_type,
            "iat": now,
            "exp": now + self.lifetimes[token_type],
            "jti": uuid.uuid4().hex,
            "user_id": identity["user"]["id"],
            "gen": identity.get("gen", 0),
        }
        if identity.get("juez_id") is not None:
            claims["juez_id"] = identity["juez_id"]  # its current judge (identity.current_judge)
            # [competencia_id, juez_id] of each of its active judges (one per competition it
            # times) whose race is not over: what a poll of a running competition tells the
            # judges board without a read (a judge of a monthly series does not carry years).
            claims["jueces"] = sorted(
                [competencia_id, juez_id] for juez_id, (competencia_id, active, finished)
                in identity.get("jueces", {}).items() if active and not finished)
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def pair(self, identity):
        return {"access": self.issue("access", identity),
                "refresh": self.issue("refresh", identity)}

    def decode(self, token, expected_type, expired_ok=False):
        """The claims of a valid token of ``expected_type``; ApiError(401) for anything else.

        A token that verified once is remembered by its exact text (signature included), so
        the same string can only give the same answer; its expiry is still checked every time.
        The claims dict is shared with that memory: read it, never change it.

        ``expired_ok``: an expired token is accepted too, for as long as a refresh token issued
        with it would last (``iat`` + the refresh lifetime), signature, type and logout checked
        as ever. Only to say whose a public read is (a phone that polls a public URL never
        learns its access token expired); never to authorize anything.
        """
        claims = self._verified.get(token) if isinstance(token, str) else None
        if claims is None:
            claims = self._verify(token, expired_ok)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        now = time.time()
        if claims["exp"] <= now and not (  # PyJWT's own rule, without leeway
                expired_ok and now < claims["iat"] + self.lifetimes["refresh"]):
            raise ApiError(401, "token_expired", "El token ha expirado.")
        if self._revoked and str(claims["jti"]) in self._revoked:
            raise ApiError(401, "token_revoked", messages.TOKEN_LOGGED_OUT)
        if claims.get("token_type") != expected_type:
            raise ApiError(401, "wrong_token_type",
                           "Se esperaba un token de tipo %s." % expected_type)
        return claims

    def revoke(self, revoked):
        """Refuse these tokens from now on: ``{jti: exp}`` (a logout, or the revoked tokens
        loaded at start-up). They are forgotten a refresh lifetime after they expire, when
        nothing accepts them any more (``decode``'s ``expired_ok`` included)."""
        kept = time.time() - self.lifetimes["refresh"]
        self._revoked = {jti: exp for jti, exp in self._revoked.items() if exp > kept}
        self._revoked.update((jti, exp) for jti, exp in revoked.items() if exp > kept)

    def _verify(self, token, expired_ok=False):
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise ApiError(401, "token_not_valid", "Token ausente o no válido.")
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM],
                                options={"require": REQUIRED_CLAIMS,
                                         "verify_exp": not expired_ok})
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "token_expired", "El token ha expirado.") from None
        except jwt.PyJWTError:
            raise ApiError(401, "token_not_valid", "Token no válido.") from None
        user_id = claims.get("user_id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise ApiError(401, "token_not_valid", "Token no válido.")
        if not all(isinstance(claims.get(name), (int, float)) for name in ("exp", "iat")):
            raise ApiError(401, "token_not_valid", "Token no válido.")
        gen = claims.setdefault("gen", 0)  # issued before generations existed: generation 0
        if not isinstance(gen, int) or isinstance(gen, bool):
            raise ApiError(401, "token_not_valid", "Token no válido.")
        return claims


class WsTickets:
    """Single-use tickets for the judge WebSocket, so access tokens stay out of URLs.

    ``POST /api/ws-ticket/`` trades an access token for a ticket; ``/ws/juez/{id}/?ticket=``
    spends it (the organizer's console likewise, through ``/api/organizador/ws-ticket/``). A
    ticket is bound to its user, judge and token generation, valid ``TTL_S`` seconds and usable
    once (spent even if the handshake then fails). Kept in memory on the event loop: one process
    serves the event, and a restart only costs the app one more ``POST``.
    """

    TTL_S = 30

    def __init__(self, clock=time.monotonic, max_tickets=100_000):
        self._clock = clock
        self._max_tickets = max_tickets
        self._tickets = {}

    def issue(self, user_id, juez_id, token_gen=0):
        now = self._clock()
        if len(self._tickets) >= self._max_tickets:
            self._tickets = {t: v for t, v in self._tickets.items() if v[2] > now}
            if len(self._tickets) >= self._max_tickets:  # flooded: drop the oldest half
                keep = sorted(self._tickets.items(), key=lambda item: item[1][2])
                self._tickets = dict(keep[len(keep) // 2:])
        ticket = secrets.token_urlsafe(32)
        self._tickets[ticket] = (user_id, juez_id, now + self.TTL_S, token_gen)
        return ticket

    def redeem(self, ticket):
        """(user_id, juez_id, token_gen) of a live ticket, which is spent. ApiError(401)
        otherwise."""
        entry = self._tickets.pop(ticket, None) if isinstance(ticket, str) else None
        if entry is None or entry[2] <= self._clock():
            raise ApiError(401, "ticket_not_valid",
                           "Ticket no válido, ya usado o caducado; pida otro en /api/ws-ticket/.")
        return entry[0], entry[1], entry[3]
