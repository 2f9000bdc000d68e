"""The roster and accounts (ORGANIZER.md "Roster and accounts"): competitions created and listed,
judges and teams added and edited, a team removed, a roster CSV imported (with its preview),
and every judge listed (how the command line finds a judge by username).

Each change is one writer job (roster.py: the change and its history row in one transaction).
Passwords are checked and hashed before it, on the hashing threads, so the writer (the judges'
path) never spends scrypt's time. Once committed, the live results page and the console are
told; a judge whose tokens were revoked (deactivated, new password) has its open sockets closed
at once. Every endpoint needs an organizer's access token; a judge's gets 403
``organizer_only``.
"""

import asyncio
import json
import logging
import os

import tornado.iostream

import models
import identity
import race_control
import roster
import roster_import
import store
from handlers.base import OrganizerHandler
from handlers.errors import ApiError
from handlers.races import JuecesHandler
from handlers.sessions import REVOKED

log = logging.getLogger("server5k.accounts")


async def new_password(handler, password):
    """A new account's password, hashed on the hashing threads: (its hash, the password to show
    once: the one generated when the organizer gave none, else None, never echoed)."""
    shown = identity.generate_password() if password is None else None
    return await handler.db_hash(identity.new_password_hash,
                                 shown if password is None else password), shown


class CompetenciasHandler(OrganizerHandler):
    """GET -> {"competencias": [...]}; POST {"nombre", "fecha_hora"?} -> 201 the competition."""

    async def get(self):
        self.write_json({"competencias": await self.db_read(race_control.all_competitions)})

    async def post(self):
        body = self.json_body()
        comp = await self.db_write(roster.add_competition, self.user_id, body.get("nombre"),
                                   body.get("fecha_hora"))
        self.write_json(comp, status=201)


class CompetitionJudgesHandler(JuecesHandler):
    """GET: the judges board (handlers/races.py). POST {"username", "nombre"?, "password"?} ->
    201 {"juez", "password"}: the password is generated when absent, and answered only then
    (shown once; never stored in clear)."""

    async def post(self, competencia_id):
        body = self.json_body()
        password_hash, shown = await new_password(self, body.get("password"))
        juez = await self.db_write(roster.add_judge, self.user_id, int(competencia_id),
                                   body.get("username"), body.get("nombre"), None, password_hash,
                                   body.get("password") is not None)
        self.hub.corrected(juez["competencia"]["id"], "jueces", juez)
        # A judge of other competitions keeps the password it has: none to show.
        self.write_json({"juez": juez, "password": shown if juez["cuenta_nueva"] else None},
                        status=201)


class OrganizadoresHandler(OrganizerHandler):
    """POST {"username", "password"?} -> 201 the new organizer ({"id", "username",
    "organizador"}) with "password": the generated one when absent (shown once), else null.
    How ``organizer add`` creates one while a server runs."""

    async def post(self):
        body = self.json_body()
        password_hash, shown = await new_password(self, body.get("password"))
        user = await self.db_write(roster.add_organizer, self.user_id, body.get("username"),
                                   None, password_hash)
        self.write_json(dict(user, password=shown), status=201)


class JuecesListHandler(OrganizerHandler):
    """GET -> {"jueces": [{"id", "username", "nombre", "competencia_id", "activo"}]}: every
    judge of every competition."""

    async def get(self):
        self.write_json({"jueces": await self.db_read(roster.list_judges)})


class JuezHandler(OrganizerHandler):
    """PATCH {"nombre"?, "activo"?, "password"?} -> the judge. Deactivating it or a new
    password refuses its earlier tokens (401 ``token_revoked``) and closes its sockets."""

    async def patch(self, juez_id):
        body = self.json_body()
        password_hash = None
        if "password" in body:
            password_hash = await self.db_hash(identity.new_password_hash, body["password"])
        juez, revoked = await self.db_write(roster.edit_judge, self.user_id, int(juez_id), body,
                                            password_hash)
        if revoked:
            self.hub.close_juez(juez["id"], *REVOKED)
        self.hub.corrected(juez["competencia"]["id"], "jueces", juez)
        self.write_json(juez)


class EquiposHandler(OrganizerHandler):
    """POST {"nombre", "dorsal", "juez_id", "categoria"?} -> 201 the team."""

    async def post(self, competencia_id):
        body = self.json_body()
        team = await self.db_write(roster.add_team, self.user_id, int(competencia_id),
                                   body.get("nombre"), body.get("dorsal"), body.get("juez_id"),
                                   body.get("categoria"))
        self.hub.corrected(team["competencia_id"], "equipos", team)
        self.write_json(team, status=201)


class EquipoHandler(OrganizerHandler):
    """PATCH {"nombre"?, "dorsal"?, "juez_id"?, "categoria"?} -> the team; DELETE -> 204, or
    409 ``team_has_records``."""

    async def patch(self, equipo_id):
        team = await self.db_write(roster.edit_team, self.user_id, int(equipo_id),
                                   self.json_body())
        self.hub.corrected(team["competencia_id"], "equipos", team)
        self.write_json(team)

    async def delete(self, equipo_id):
        competencia_id = await self.db_write(roster.delete_team, self.user_id, int(equipo_id))
        self.hub.corrected(competencia_id, "equipos", {"id": int(equipo_id)})
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()


class ImportarHandler(OrganizerHandler):
    """POST the roster CSV (``Content-Type: text/csv``) -> {"jueces_nuevos",
    "equipos_nuevos", "equipos_cambiados", "credenciales", "jueces", "detalle", "notas",
    "dry_run"}. ``?dry_run=1``: the preview, nothing written.

    Nothing of it holds the writer, nor this process's interpreter lock (which the event loop
    needs), for more than a few ms (issue 22): the CSV is parsed, checked and planned in the
    worker process, which also makes the answer's JSON and cuts the plan into writer steps,
    and hands them over in a spool file (``roster_import.prepare_import``): here the answer is
    read and sent in pieces of ``roster_import.SPOOL_CHUNK`` bytes, and each step read and
    unpickled by its own writer job. The new judges' passwords are hashed one after another in
    the worker process, at its lower CPU priority (the hashing threads stay free for logins,
    and the event loop goes first on a laptop's two cores), never inside a write; then the steps
    are written, jobs of at most ``roster_import.IMPORT_STEP`` teams, so a start or a
    submission waits a few ms at most. While they run, other changes of this competition's
    teams are refused (409 ``import_in_progress``), so what the plan read stays true; each step
    checks it again anyway (409 ``roster_changed``, that step written not at all).

    Nothing is written unless the whole roster is right. A step that fails (``roster_changed``,
    a full disk) leaves the steps before it written, and is answered with its own status and
    code plus ``importado``: what was written, with the passwords of the new judges it made
    (``interrupted``), so none is lost; importing the same roster again completes it.
    """

    SOURCE = "El CSV"
    # A roster of 500 teams with their judges is about 30 KiB; 1 MiB is ~80,000 short rows.
    max_body_bytes = 1024 * 1024
    # How often, and how long apart, a spool read refused by the full reader queue is retried:
    # once steps are written, their answer (the new passwords) must not be lost to a busy queue.
    SPOOL_TRIES, SPOOL_RETRY_S = 50, 0.1

    async def post(self, competencia_id):
        cid = int(competencia_id)
        dry_run = self._dry_run()
        raw = self._csv_body()
        pieces = None
        try:
            if dry_run:  # never the writer: parsed, planned and answered in the worker process
                pieces = await self._prepare(raw, cid, True)
                credentials = []
            else:
                pieces, credentials = await self._import(raw, cid)
            await self._send(pieces, credentials)
        finally:
            if pieces is not None:
                await self._off_loop(roster_import.discard_spool, pieces["path"])

    async def _prepare(self, raw, cid, dry_run):
        return await self._run(self.store.compute, roster_import.prepare_import, (
            raw, cid, self.SOURCE, dry_run, roster_import.IMPORT_STEP, os.getpid()))

    async def _import(self, raw, cid):
        """(the prepared import, the credentials of its new judges), its steps written."""
        ours = True  # whether the competition's import mark is this request's to take off
        pieces, written, credentials = None, dict.fromkeys(roster_import.STEP_COUNTS, 0), []
        steps = 0
        try:
            try:
                await self.db_write(roster_import.begin_import, cid)
            except ApiError as exc:  # (another import's mark stays; a failed commit's goes)
                ours = exc.code != "import_in_progress"
                raise
            pieces = await self._prepare(raw, cid, False)
            prepared = {}
            for username in pieces["new_judges"]:
                # Hashed one at a time in the worker process, at its lower CPU priority: an
                # import of hundreds of judges is seconds of scrypt, and on a laptop's two
                # cores the event loop and the judges' logins (the hashing threads) go first.
                password = identity.generate_password()
                prepared[models.username_key(username)] = (password, await self._run(
                    self.store.compute, identity.hash_password, (password,)))
            judge_ids = {}
            try:
                for offset, length, counts in pieces["steps"]:
                    credentials += await self.db_write(
                        roster_import.apply_spooled_step, pieces["path"], offset, length,
                        self.user_id, prepared, judge_ids)
                    steps += 1
                    for name, count in counts.items():
                        written[name] += count
            except Exception as exc:  # noqa: BLE001  (answered with what was written)
                raise self.interrupted(exc, steps, len(pieces["steps"]), written,
                                       credentials) from None
        except BaseException:
            if pieces is not None:
                await self._off_loop(roster_import.discard_spool, pieces["path"])
            raise
        finally:
            if ours:
                try:
                    await self.db_write(roster_import.end_import, cid)
                except Exception:  # noqa: BLE001  (the answer, its passwords, still goes)
                    log.exception("the import mark of competition %d could not be removed", cid)
            if steps:
                self.hub.corrected(cid, "equipos", {})
        return pieces, credentials

    def interrupted(self, exc, steps, total, written, credentials):
        """The answer of an import stopped by ``exc`` after ``steps`` of its ``total`` writer
        steps: the failure's status and code, and ``importado``: {"pasos", "pasos_total",
        "causa" (the failure's own detail), "jueces_nuevos", "equipos_nuevos",
        "equipos_cambiados", "credenciales"}, what those steps wrote (they stay: nothing
        stored is ever undone) with the passwords of the new judges among them, shown once,
        here."""
        if not isinstance(exc, ApiError):
            log.error("a roster import stopped after %d of %d steps", steps, total,
                      exc_info=(type(exc), exc, exc.__traceback__))
            exc = ApiError(500, "internal_error", "Error interno del servidor.")
        detail = ("La importación se detuvo tras escribir %d de sus %d pasos (%d jueces, %d "
                  "equipos nuevos, %d corregidos): %s Lo escrito se queda, y las contraseñas "
                  "de sus jueces nuevos vienen en esta respuesta (no se vuelven a mostrar). "
                  "Vuelva a importar la misma lista para completarla." % (
                      steps, total, written["jueces"], written["equipos_nuevos"],
                      written["equipos_cambiados"], exc.detail.rstrip(".") + "."))
        return ApiError(exc.status_code, exc.code, detail, exc.errors, exc.headers, extra={
            "importado": {"pasos": steps, "pasos_total": total, "causa": exc.detail,
                          "jueces_nuevos": written["jueces"],
                          "equipos_nuevos": written["equipos_nuevos"],
                          "equipos_cambiados": written["equipos_cambiados"],
                          "credenciales": roster_import.credentials_answer(credentials)}})

    async def _send(self, pieces, credentials):
        """The prepared answer, read from the spool file and sent a piece at a time (none over
        ``roster_import.SPOOL_CHUNK`` bytes: neither a megabytes-long read nor a copy on the
        loop), the credentials where they go."""
        reads = roster_import.answer_pieces(pieces)
        secret = json.dumps(roster_import.credentials_answer(credentials), ensure_ascii=False,
                            separators=(",", ":")).encode()
        self.set_status(200)
        self.set_header("Content-Length", str(sum(
            len(secret) if where is None else where[1] for where in reads)))
        try:
            for where in reads:
                self.write(secret if where is None else await self._off_loop(
                    roster_import.read_spool, pieces["path"], *where))
                await self.flush()
        except tornado.iostream.StreamClosedError:
            if credentials:
                log.warning("the client of a roster import left before its answer: the "
                            "passwords of its %d new judges were shown to nobody (give them "
                            "new ones)", len(credentials))
            return
        self.finish()

    async def _off_loop(self, fn, *args):
        """``fn(*args)`` (a spool file's read or removal) on a reader thread; a full reader
        queue is waited out, not answered 503: an import's writes are done by then."""
        for _ in range(self.SPOOL_TRIES - 1):
            try:
                return await self.settled(asyncio.wrap_future(self.store.read(fn, *args)))
            except store.Busy:
                await asyncio.sleep(self.SPOOL_RETRY_S)
        return await self._run(self.store.read, fn, args)

    def _dry_run(self):
        value = self.get_query_argument("dry_run", "0")
        if value not in ("0", "1", "true", "false"):
            raise ApiError(400, "validation_error", "dry_run debe ser 1 o 0.",
                           {"dry_run": "1 (vista previa) o 0."})
        return value in ("1", "true")

    def _csv_body(self):
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "text/csv":
            raise ApiError(400, "unsupported_content_type",
                           "Se espera el CSV de la lista con Content-Type: text/csv.")
        raw = self.body_bytes()
        if not raw.strip():
            raise ApiError(400, "empty_body", "El cuerpo está vacío; se espera el CSV.")
        return raw
