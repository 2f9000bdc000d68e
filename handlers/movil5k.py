"""The judges' app's second generation: Movil5K (JhostinTapia/Movil5K, docs/movil5k.md).

The same server, database, accounts and rules as the integration guide's protocol, in the
words Movil5K reads: ``POST /api/login/`` and ``/api/logout/``, English field names, the
judge's competitions and teams as arrays, and a team's whole set of records to
``POST /api/equipos/{id}/registros/`` answered with ``exito: true``. Every handler here is a
translation onto the domain functions the guide's handlers use (models: authentication, the
writer's submission checks and idempotency, corrections, standings); the rules of its own
(a record's timestamp is its receipt, a second set for a complete team waits for review) are
in submissions.store_app_set. Paths shared with the guide (``/api/me/``, ``/api/competencias/``,
``/api/competencias/{id}/``, ``/api/equipos/{id}/registros/``) answer what they answered
before, plus what Movil5K reads.

Error texts matter here: Movil5K chooses what to tell the judge by words and digits in them
(docs/movil5k.md, "Never losing a time"): "409", "ya tiene" or "No se permiten" anywhere mean
"another device sent this team" and mark the team sent; "competencia" + "no" + "curso" means
"the race is over"; "token" in a 401 makes it refresh its access token. Every handler here
words its refusals through :func:`app_error` (AppErrors).
"""

import datetime as dt
import re
import uuid

import models
import identity as identity_room
import race_control
import submissions
import venue_time
from handlers import accounts, auth, races, times
from handlers.base import BaseHandler
from handlers.bodies import SMALL_BODY_BYTES
from handlers.errors import ApiError

# While the race has not started, Movil5K's ``datetime`` is put at least this far ahead: the
# app starts its stopwatch by itself when ``datetime`` comes (from 1 s before to 31 s after),
# race started or not, and a poll never corrects a stopwatch that runs. A day ahead is never
# reached by a phone that polls (every 10 s), nor by one whose clock is minutes wrong or that
# lost the network for hours. docs/movil5k.md, "The times".
NOT_BEFORE = dt.timedelta(hours=24)


def app_datetime(comp, now=None):
    """Movil5K's ``datetime`` (never null): what the app counts its times from.

    Once the race has started: ``started_at``, the real start (adjusted, if the organizer
    adjusted it), so a phone that learns of the start by polling counts from it exactly. Before:
    the scheduled start if it is more than NOT_BEFORE away, else now + NOT_BEFORE, so the app's
    own start at ``datetime`` never fires before the real start, late, early or unscheduled.
    """
    if comp["started_at"] is not None:
        return comp["started_at"]
    ahead = (now or models.utcnow()) + NOT_BEFORE
    scheduled = venue_time.parse_timestamp(comp["fecha_hora"]) if comp["fecha_hora"] else None
    return models.iso(scheduled if scheduled is not None and scheduled > ahead else ahead)


def app_competition(comp, now=None):
    """A competition as both generations read it: the guide's object plus Movil5K's fields."""
    return dict(comp, name=comp["nombre"], datetime=app_datetime(comp, now), is_active=True,
                is_running=comp["estado"] == models.ESTADO_EN_CURSO)


def app_team(team):
    """A team (race_control.judge_teams) in Movil5K's words, with the guide's too."""
    return dict({k: team[k] for k in ("id", "nombre", "dorsal")},
                name=team["nombre"], number=team["dorsal"], category=team["categoria"],
                category_display=team["categoria"] or "Sin categoría",
                competition_id=team["competencia_id"],
                competition_name=team["competencia_nombre"],
                judge_username=team["juez_username"])


# What Movil5K reads in an error text (the body's ``detail``, which it shows as "ApiException:
# <text> (Status: <code>)"): timer_screen.dart _enviarDatos takes "409", "ya tiene" or "No se
# permiten" anywhere in it for "another device sent this team" and marks the team sent (its
# times are never sent again); _convertirErrorAmigable picks the judge's message by "401",
# "404" and "500" (and words); at login auth_provider.dart _getErrorMessage by "401", "403" and
# "500". So no number in a text to Movil5K may hold one of these by chance (team 1409 or 4090,
# "espere 409 s"): the status code, which the app adds itself, says them when they are meant.
APP_CODES = ("401", "403", "404", "409", "500")
APP_PHRASES = ("ya tiene", "No se permiten")
# Movil5K's words for the refusals whose shared text names an id or a wait (the app knows which
# team it sent; Retry-After says how long to wait, though the app ignores it). Other texts keep
# their numbers unless one holds an APP_CODES string (app_error).
APP_TEXTS = {
    "team_not_found": "Este equipo no existe en el servidor; avise al organizador.",
    "team_not_assigned": "Este equipo no está asignado a este juez.",
    "competition_not_found": "La competencia no existe en el servidor.",
    "id_registro_conflict": "Un id de este envío está guardado con otros datos; avise al "
                            "organizador.",
    "rate_limited": "Demasiadas peticiones seguidas; espere un momento y reintente.",
    "body_too_large": "El envío es demasiado grande.",  # (4096 bytes: "409")
    "invalid_json": "El envío no es JSON válido.",  # (Python's text names a line and column)
}
_NUMBER = re.compile(r" ?[0-9]+")


def app_error(error):
    """``error`` (an ApiError) as Movil5K must read it: never a 409 (the app takes any 409 for
    "another phone sent this team": 400, same code), in APP_TEXTS' words where its text names
    a number, and without any number that holds one of APP_CODES or any of APP_PHRASES
    whatever the text (a last guard for texts written later)."""
    status = 400 if error.status_code == 409 else error.status_code
    text = APP_TEXTS.get(error.code, error.detail)
    text = _NUMBER.sub(lambda m: "" if any(code in m.group() for code in APP_CODES)
                       else m.group(), text)
    if any(phrase in text for phrase in APP_PHRASES):
        text = "El servidor no aceptó la petición (%s)." % error.code
    if status == error.status_code and text == error.detail:
        return error
    return ApiError(status, error.code, text, error.errors, error.headers)


class AppErrors:
    """Mixin of every handler Movil5K calls: its refusals for the methods the app uses
    (``app_methods``) are worded by :func:`app_error`. (But ``/api/token/refresh/``, the
    guide's, whose texts for the app's body, ``{"refresh"}`` of a few hundred bytes, name no
    number: only a body over 4096 bytes would, which the guide's clients read as it is.)"""

    app_methods = ("GET", "POST")

    def error_answer(self, error):
        error = super().error_answer(error)
        return app_error(error) if self.request.method in self.app_methods else error


def _bool_argument(handler, name):
    value = handler.get_query_argument(name, None)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise ApiError(400, "validation_error", "%s debe ser true o false." % name,
                       {name: "Debe ser true o false."})
    return value.lower() == "true"


class LoginHandler(AppErrors, auth.TokenHandler):
    """POST /api/login/ {username, password} -> {access, refresh}: ``/api/token/`` (same
    limits, same tokens) for a judge's app. A user who is not an active judge is refused with
    403, which Movil5K shows as "Usuario inactivo. Contacta al administrador"; bad credentials
    are 401 ("Usuario o contraseña incorrectos")."""

    async def post(self):
        identity = await self.credentials()
        if identity["juez_id"] is None:
            raise ApiError(403, "not_a_judge", "El usuario no es juez: el organizador entra en "
                                               "/organizador/.")
        refusal = identity_room.judge_refusal(identity["juez_id"], identity["juez_active"])
        if refusal is not None:
            raise ApiError.from_domain(refusal)
        self.write_json(self.tokens.pair(identity))


class LogoutHandler(AppErrors, BaseHandler):
    """POST /api/logout/ {refresh} with Bearer access -> 200: that refresh token and the access
    token presented are refused from now on (401 ``token_revoked``), also after a restart: a
    lost phone's session ends here. A refresh token already revoked or expired is no error
    (the access token presented still ends)."""

    max_body_bytes = SMALL_BODY_BYTES

    async def post(self):
        access = self.access_claims()
        token = self.json_body().get("refresh")
        if not isinstance(token, str) or not token:
            raise ApiError(400, "validation_error", "Falta el token de refresco.",
                           {"refresh": "Campo obligatorio (texto)."})
        try:
            refresh = self.tokens.decode(token, "refresh")
        except ApiError as exc:
            if exc.code not in ("token_revoked", "token_expired"):
                raise
            refresh = None  # already logged out, or over by itself: the access token still ends
        if refresh is not None and refresh["user_id"] != access["user_id"]:
            raise ApiError(403, "not_your_token", "El token de refresco es de otro usuario.")
        ended = [claims for claims in (refresh, access) if claims is not None]
        await self.db_write(identity_room.end_session, ended)
        self.tokens.revoke({str(claims["jti"]): claims["exp"] for claims in ended})
        self.write_json({"detail": "Sesión cerrada."})


class MeHandler(AppErrors, auth.MeHandler):
    """GET /api/me/: the guide's {user, juez} plus what Movil5K reads at the top: ``id`` (the
    judge id of the socket URL; null for an organizer), ``first_name`` (the judge's name),
    ``last_name``, ``email``, ``telefono``, ``username``."""

    def write_json(self, obj, status=200):
        juez = obj.get("juez")
        super().write_json(dict(obj, id=juez["id"] if juez else None,
                                first_name=juez["nombre"] if juez else "", last_name="",
                                email=None, telefono=None, username=obj["user"]["username"]),
                           status)


class CompetenciasHandler(AppErrors, accounts.CompetenciasHandler):
    """/api/competencias/: for an organizer what it was ({"competencias": [...]}, and POST to
    create one). For a judge, GET answers Movil5K's list: an array holding the judge's
    competition (``?is_active=`` / ``?is_running=`` filter it)."""

    app_methods = ("GET",)

    async def prepare(self):
        if self.request.method != "GET":
            return await super().prepare()
        await BaseHandler.prepare(self)
        self.identity = await self.authenticated()
        self.user_id = self.identity["user"]["id"]

    async def get(self):
        if self.identity["user"]["organizador"]:
            return await super().get()
        refusal = identity_room.judge_refusal(self.identity["juez_id"],
                                              self.identity["juez_active"])
        if refusal is not None:
            raise ApiError.from_domain(refusal)
        # Each competition it times (its active judges'), the current one first.
        current = self.identity["competencia_id"]
        ids = sorted({cid for cid, active, _ in self.identity["jueces"].values() if active},
                     key=lambda cid: (cid != current, cid))
        wanted = {field: _bool_argument(self, field) for field in ("is_active", "is_running")}
        comps = []
        for cid in ids:
            comp = app_competition(await self.competition(cid))
            if all(value is None or comp[field] == value for field, value in wanted.items()):
                comps.append(comp)
        self.write_json(comps)


class CompetenciaHandler(AppErrors, races.CompetenciaHandler):
    """GET /api/competencias/{id}/ (public): the guide's competition object plus Movil5K's
    ``name``, ``datetime``, ``is_active`` and ``is_running``.

    Movil5K polls it every 10 s with its access token (the production build's only way to hear
    the start). The answer is public (200), so the app never learns the token expired (after
    5 minutes; it refreshes only after a 401): a token that holds but for its expiry still says
    whose the poll is (``identity_of_public_caller``). Such a poll is a judge's request, which
    never waits behind the anonymous turns of its address (a venue's Wi-Fi puts every phone
    and spectator behind one), and the judges board notes when the judge's app first saw the
    race running. Nothing else is authorized by it."""

    app_methods = ("GET",)

    _caller = None

    async def take_turn(self):
        self._caller = await self.identity_of_public_caller()
        if self._caller is None:
            await super().take_turn()

    def write_json(self, obj, status=200):
        if self.request.method == "GET":
            obj = app_competition(obj)
            if obj["is_running"] and self._caller is not None:
                # The caller's active judge in this competition, if it has one.
                juez_id = next((jid for jid, (cid, active, _) in self._caller["jueces"].items()
                                if cid == obj["id"] and active), None)
                if juez_id is not None:
                    self.hub.heard_start_by_poll(obj["id"], juez_id)
        super().write_json(obj, status)


class EquiposHandler(AppErrors, BaseHandler):
    """GET /api/equipos/[?competition_id=N] -> an array of the caller's teams (a judge's own;
    every team for an organizer), in Movil5K's words and the guide's."""

    async def get(self):
        user_id = (await self.authenticated())["user"]["id"]
        raw = self.get_query_argument("competition_id", None)
        competencia_id = None
        if raw is not None:
            if not raw.isdigit() or len(raw) > 18:
                raise ApiError(400, "validation_error", "competition_id debe ser un entero.",
                               {"competition_id": "Debe ser un entero positivo."})
            competencia_id = int(raw)
        teams = await self.db_read(race_control.judge_teams, user_id, competencia_id)
        self.write_json([app_team(team) for team in teams])


class EquipoRegistrosHandler(AppErrors, times.SubmittingHandler, times.EquipoRegistrosHandler):
    """/api/equipos/{eid}/registros/: GET is the judge's read-back (ORGANIZER.md); POST is
    Movil5K's set ``{"registros": [{"id_registro", "tiempo", ...}]}`` -> 201 ``{"exito": true,
    "mensaje", "total_guardados", "registros", "created", "duplicates", "ignored",
    "pendientes_revision"}``.

    ``total_guardados`` counts every record of the request the server now holds, new or
    already stored, so a repeat gets the very answer of the first time (the app marks its 15
    sent only when it equals what it sent). Same checks, writer and idempotency as
    ``/api/enviar_tiempos/``, whatever the race state; 201 means on disk.
    """

    app_methods = ("POST",)  # (GET is the guide's read-back)

    async def post(self, equipo_id):
        records, ignored = submissions.validate_app_set(
            await self.json_body_off_loop(), self.config["race"]["max_records_per_submission"])
        eid = int(equipo_id)
        # (an id stored with other data is a 409 elsewhere: a 400 here, app_error)
        result = await self.db_write(submissions.store_app_set, self.user_id, eid, records,
                                     self.token_gen)
        self.hub.records_stored(result["competencia_id"], eid, len(result["created"]))
        held = len(records)
        waiting = result["revision"]
        self.write_json({
            "exito": True,
            "mensaje": ("%d registros recibidos; %d esperan la revisión del organizador."
                        % (held, waiting) if waiting else "%d registros recibidos." % held),
            "total_guardados": held,
            "registros": [str(uuid.UUID(r["id_registro"])) for r in records],
            "created": result["created"], "duplicates": result["duplicates"],
            "ignored": ignored, "pendientes_revision": waiting,
        }, status=201)
