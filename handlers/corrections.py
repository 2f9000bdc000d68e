"""The organizer's corrections (ORGANIZER.md "Records as the organizer sees them"): records
listed, voided, restored, moved, corrected, accepted, added from paper, times adjusted, team
statuses and penalties, official results, and the competition's history.

Each change is one writer job (models: the correction and its history entry in one
transaction); once committed, the live results page and the console are told at once.
Every endpoint needs an organizer's access token; a judge's gets 403 ``organizer_only``.
"""

import ledger
import race_control
import venue_time
from handlers.base import OrganizerHandler
from handlers.errors import ApiError


def _optional_int(handler, name):
    """A query argument that is a positive id, or None. 400 if it is something else."""
    value = handler.get_query_argument(name, None)
    if value is None or value == "":
        return None
    if not value.isdigit() or not 1 <= int(value) <= 2**62:
        raise ApiError(400, "validation_error", "%s debe ser un id." % name,
                       {name: "Debe ser un entero positivo."})
    return int(value)


class RegistrosHandler(OrganizerHandler):
    """GET -> {"competencia", "registros"} oldest first (``?equipo_id=``, ``?juez_id=``,
    ``?format=csv``, ``&excel=1`` for Excel's flavour); POST {"equipo_id", "tiempo",
    "timestamp"?, "motivo"} -> 201 a paper time (origen manual)."""

    async def get(self, competencia_id):
        cid = int(competencia_id)
        equipo_id, juez_id = _optional_int(self, "equipo_id"), _optional_int(self, "juez_id")
        flavour = self.csv_requested()
        if flavour:
            text = await self.db_read(_records_csv, cid, equipo_id, juez_id, flavour == "excel")
            return self.send_csv(text, "registros-competencia-%d.csv" % cid)
        self.write_json(await self.db_read(ledger.competition_records, cid, equipo_id, juez_id))

    async def post(self, competencia_id):
        body = self.json_body()
        timestamp = body.get("timestamp")
        if timestamp is not None:  # an organizer's date: without an offset, local time
            try:
                timestamp = venue_time.parse_local_timestamp(timestamp)
            except (ValueError, TypeError, OverflowError):
                raise ApiError(400, "validation_error", "La fecha no es válida.",
                               {"timestamp": "Debe ser una fecha ISO 8601."}) from None
        cid, record = await self.db_write(
            race_control.add_manual_record, self.user_id, int(competencia_id),
            body.get("equipo_id"), body.get("tiempo"), body.get("motivo"), timestamp)
        self.hub.corrected(cid, "registros", record)
        self.write_json(record, status=201)


def _records_csv(competencia_id, equipo_id, juez_id, excel):
    return ledger.records_csv(ledger.competition_records(competencia_id, equipo_id, juez_id),
                              excel=excel)


class RegistroActionHandler(OrganizerHandler):
    """POST /api/registros/{rid}/anular|restaurar|aceptar/ {"motivo"} -> the record."""

    ACTIONS = {"anular": race_control.void_record, "restaurar": race_control.restore_record,
               "aceptar": race_control.accept_record}

    async def post(self, id_registro, action):
        motivo = self.json_body().get("motivo")
        cid, record = await self.db_write(self.ACTIONS[action], self.user_id, id_registro,
                                          motivo)
        self.hub.corrected(cid, "registros", record)
        self.write_json(record)


class RegistroHandler(OrganizerHandler):
    """PATCH /api/registros/{rid}/ {"equipo_id"?, "tiempo"?, "motivo"} -> the record."""

    async def patch(self, id_registro):
        body = self.json_body()
        cid, record = await self.db_write(race_control.edit_record, self.user_id, id_registro,
                                          body.get("motivo"), body.get("equipo_id"),
                                          body.get("tiempo"))
        self.hub.corrected(cid, "registros", record)
        self.write_json(record)


class HistorialHandler(OrganizerHandler):
    """GET /api/registros/{rid}/historial/ -> {"registro", "historial"}."""

    async def get(self, id_registro):
        self.write_json(await self.db_read(ledger.record_history, id_registro))


class AjustarTiemposHandler(OrganizerHandler):
    """POST {"delta_ms", "juez_id"?, "motivo"} -> {"competencia", "registros_afectados"}.
    Without a judge the start moves too: the live race (clock, late judges' replay) follows."""

    async def post(self, competencia_id):
        body = self.json_body()
        cid = int(competencia_id)
        async with self.hub.lock(cid):
            comp, affected = await self.db_write(
                race_control.shift_times, self.user_id, cid, body.get("delta_ms"),
                body.get("motivo"), body.get("juez_id"))
            self.hub.update(comp)
        self.write_json({"competencia": comp, "registros_afectados": affected})


class EquipoCorrectionHandler(OrganizerHandler):
    """POST /api/equipos/{eid}/estado/ {"estado", "motivo"} and .../penalizacion/ {"ms",
    "motivo"} -> the team."""

    async def post(self, equipo_id, what):
        body = self.json_body()
        if what == "estado":
            team = await self.db_write(race_control.set_team_status, self.user_id, int(equipo_id),
                                       body.get("estado"), body.get("motivo"))
        else:
            team = await self.db_write(race_control.set_team_penalty, self.user_id, int(equipo_id),
                                       body.get("ms"), body.get("motivo"))
        self.hub.corrected(team["competencia_id"], "equipos", team)
        self.write_json(team)


class OficialHandler(OrganizerHandler):
    """POST .../oficializar/ {"motivo"?} and .../reabrir/ {"motivo"} -> the competition."""

    async def post(self, competencia_id, action):
        motivo = self.json_body().get("motivo") if self.has_body() else None
        cid = int(competencia_id)
        fn = race_control.make_official if action == "oficializar" else race_control.reopen_results
        async with self.hub.lock(cid):
            comp, changed = await self.db_write(fn, self.user_id, cid, motivo)
            if changed:
                self.hub.update(comp)
        self.write_json(comp)


class AuditoriaHandler(OrganizerHandler):
    """GET -> {"competencia", "acciones"} oldest first; ``?format=csv`` the same as CSV
    (``&excel=1``: Excel's flavour)."""

    async def get(self, competencia_id):
        cid = int(competencia_id)
        flavour = self.csv_requested()
        if flavour:
            text = await self.db_read(_audit_csv, cid, flavour == "excel")
            return self.send_csv(text, "auditoria-competencia-%d.csv" % cid)
        self.write_json(await self.db_read(ledger.audit_log, cid))


def _audit_csv(competencia_id, excel):
    return ledger.audit_csv(ledger.audit_log(competencia_id), excel=excel)
