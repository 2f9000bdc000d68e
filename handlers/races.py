"""Competitions: the public object and the organizer's changes to it (scoring rule, scheduled
start), start/stop/reset, and who is connected."""

import asyncio

import addresses
import models
import race_control
import venue_time
from handlers.base import BaseHandler, OrganizerHandler
from handlers.errors import ApiError


class CompetenciaHandler(BaseHandler):
    """GET -> the competition object (public). PATCH (organizer) {"regla"?: {"tipo"?,
    "contados"?, "minimo"?}, "fecha_hora"?, "motivo"?} -> {"competencia", "regla"}: the
    scoring rule and the scheduled start, each change in the history; the live results page
    follows at once."""

    pace = "public"

    async def get(self, competencia_id):
        self.write_json(await self.competition(int(competencia_id), public=True))

    async def patch(self, competencia_id):
        user_id = (await self.organizer())["user"]["id"]
        body = self.json_body()
        cid = int(competencia_id)
        async with self.hub.lock(cid):
            comp, regla, changed = await self.db_write(race_control.update_competition, user_id,
                                                       cid, body)
            if changed:
                self.hub.update(comp)  # the results page recomputes with the new rule
        self.write_json({"competencia": comp, "regla": regla})


class RaceActionHandler(OrganizerHandler):
    """POST .../iniciar|detener|reiniciar/ (organizer) -> {competencia, notificados}.

    The state change is committed first, then applied to the live hub and broadcast in one
    step; a per-competition lock keeps concurrent organizer actions in commit order.
    """

    async def post(self, competencia_id, action):
        cid = int(competencia_id)
        force = self._force() if action == "reiniciar" else False
        async with self.hub.lock(cid):
            if action == "iniciar":
                comp = await self.db_write(race_control.start_competition, cid, self.user_id)
                changed = True
            elif action == "detener":
                comp = await self.db_write(race_control.stop_competition, cid, self.user_id)
                changed = True
            else:
                comp, changed = await self.db_write(race_control.reset_competition, cid, force,
                                                    self.user_id)
            notified = self.hub.change_state(comp) if changed else 0
        self.write_json({"competencia": comp, "notificados": notified})

    def _force(self):
        if not self.has_body():
            return False
        force = self.json_body().get("force", False)
        if not isinstance(force, bool):
            raise ApiError(400, "validation_error", "force debe ser true o false.",
                           {"force": "Debe ser booleano."})
        return force


class JuecesHandler(OrganizerHandler):
    """GET (organizer) -> the judges board: each judge's app connected now or not, and, for the
    current start, when it heard ``carrera.iniciada`` and how late its stopwatch started."""

    async def get(self, competencia_id):
        cid = int(competencia_id)
        board = await self.db_read(race_control.competition_judges, cid)
        comp = self.hub.competition(cid) or board["competencia"]
        # Lateness is measured from the moment the start was given: an adjustment moves
        # everyone's reference alike and makes nobody late (ORGANIZER.md).
        given = venue_time.parse_timestamp(board["inicio_dado"]) if board["inicio_dado"] else None
        alert_ms = self.config["race"]["start_lag_alert_ms"]
        for juez in board["jueces"]:
            juez["sockets"] = self.hub.sockets_of(juez["id"])
            juez["conectado"] = juez["sockets"] > 0
            juez["ultima_conexion"] = models.iso(self.hub.last_connected(juez["id"]))
            # The first notice: as stored (kept across restarts) or heard by this process.
            heard = [venue_time.parse_timestamp(juez["inicio_notificado_en"])] if juez[
                "inicio_notificado_en"] else []
            if given is not None and self.hub.start_heard_at(cid, juez["id"]) is not None:
                heard.append(self.hub.start_heard_at(cid, juez["id"]))
            heard = min(heard) if given is not None and heard else None
            juez["inicio_notificado_en"] = models.iso(heard)
            juez["retraso_inicio_ms"] = (
                (heard - given) // models.dt.timedelta(milliseconds=1) if heard else None)
            juez["alerta"] = any(lag is not None and lag > alert_ms for lag in (
                juez["retraso_inicio_ms"], juez["inicio_implicito_ms"]))
        board["competencia"] = comp
        board["conectados"] = sum(1 for j in board["jueces"] if j["conectado"])
        # Where the judges' phones can reach this server (tens of microseconds: on the loop).
        board["direcciones"] = addresses.phone_urls(self.config["server"])
        if self.replica is not None:  # how far behind the live copy is (file reads: off the loop)
            board["replica"] = await asyncio.get_running_loop().run_in_executor(
                None, self.replica.status)
        self.write_json(board)
