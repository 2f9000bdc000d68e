"""The records as the organizer sees them: raw records plus corrections folded in one place
(``competition_state``), a record's and a team's view, history, audit and the CSV exports.
"""

import csv
import datetime as dt
import io
import json
from collections import defaultdict

import identity
import messages
import models
import race_defaults
import scoring


def get_registro(id_registro):
    """The stored record with this UUID (text); NotFound (``record_not_found``) otherwise."""
    try:
        hex_id = models.uuid_hex(id_registro) if isinstance(id_registro, str) else None
    except ValueError:
        hex_id = None
    row = hex_id and models.RegistroTiempo.get_or_none(models.RegistroTiempo.id_registro == hex_id)
    if not row:
        raise models.NotFound("El registro %s no existe." % str(id_registro)[:64],
                              "record_not_found")
    return row


# --------------------------------------------------------------------------------------------
# The records as the organizer sees them: raw records plus corrections, folded in one place.
# --------------------------------------------------------------------------------------------
_ROWS_SQL = ("SELECT r.id, r.id_registro, r.equipo_id, r.juez_id, r.tiempo, r.timestamp, "
             "r.received_at, r.estado_carrera, r.origen, r.oficial_al_recibir, r.protocolo, "
             "r.revision FROM registro_tiempo AS r JOIN equipo AS e ON e.id = r.equipo_id "
             "WHERE e.competencia_id = ?")
_ACCIONES_SQL = ("SELECT id, accion, registro_id, equipo_id, juez_id, valor, texto FROM accion "
                 "WHERE competencia_id = ? AND accion IN ('anular', 'restaurar', 'mover', "
                 "'corregir', 'aceptar', 'ajustar', 'estado', 'penalizacion') ORDER BY id")


class _Record:
    """One stored record with its corrections applied (see competition_state)."""

    __slots__ = ("row_id", "hex_id", "equipo_recibido", "juez_id", "tiempo_recibido",
                 "timestamp", "received_at", "estado_carrera", "origen", "oficial_al_recibir",
                 "protocolo", "revision", "equipo_id", "anulado", "base", "base_seq",
                 "aceptado", "tiempo", "cuenta", "antes_de_salida", "imposible")

    def __init__(self, row):
        (self.row_id, self.hex_id, self.equipo_recibido, self.juez_id, self.tiempo_recibido,
         self.timestamp, self.received_at, self.estado_carrera, self.origen,
         oficial, self.protocolo, self.revision) = row
        self.oficial_al_recibir = bool(oficial)
        self.equipo_id = self.equipo_recibido
        self.anulado = self.aceptado = self.cuenta = False
        self.base, self.base_seq = self.tiempo_recibido, 0

    @property
    def ausente(self):  # a 0 means an absent runner, never a finish, whatever the adjustments
        return self.base == 0

    @property
    def pendiente(self):
        return (self.oficial_al_recibir or self.revision is not None) and not self.aceptado

    def view(self):
        """The record object of ORGANIZER.md."""
        return {
            "id": models.uuid_text(self.hex_id), "equipo_id": self.equipo_id,
            "juez_id": self.juez_id,
            "timestamp": models.iso(dt.datetime.fromisoformat(self.timestamp)),
            "tiempo": self.tiempo, "tiempo_recibido": self.tiempo_recibido,
            "recibido_en": models.iso(dt.datetime.fromisoformat(self.received_at)),
            "estado_carrera": self.estado_carrera, "origen": self.origen,
            "protocolo": self.protocolo, "revision": self.revision,
            "anulado": self.anulado, "ausente": self.ausente,
            "antes_de_salida": self.antes_de_salida, "pendiente": self.pendiente,
            "cuenta": self.cuenta, "tiempo_imposible": self.imposible,
            "equipo_recibido_id": self.equipo_recibido,
        }


def competition_state(competencia_id, scored_per_team=race_defaults.COMPETITION_RULE,
                      equipo_id=None):
    """Every stored record of a competition (or only those now on team ``equipo_id``) with
    every correction applied, in arrival order, and each team's status and penalty.

    The one place corrections take effect: the standings, the records lists, the team pages and
    the corrections' own checks all read it. Returns ``{"competencia": Competencia,
    "equipos": {id: {"estado", "penalizacion_ms"}}, "records": [_Record], "contados": N,
    "finishers": {equipo_id: [_Record]}}``: ``finishers`` are each team's records that may
    count (below), fastest first, and ``N`` how many count (``scored_per_team``, else the
    competition's ``contados``, else the server's). Rules:

    * ``anular``/``restaurar`` void and restore; ``mover`` puts a record on another team;
      ``corregir`` sets the time that counts from then on; ``aceptar`` counts a pending record;
    * ``ajustar`` adds its delta to every app record (or one judge's) that is not absent,
      unless a later ``corregir`` of that record set its time since; paper times never move;
    * a record counts (``cuenta``) when it is not voided, absent, pending or negative, its
      team's estado is ok, and it is among the team's ``scored_per_team`` best times.
    """
    comp = models.get_competencia(competencia_id)
    scored_per_team = scoring.contados_of(comp, scored_per_team)
    tolerance_ms = race_defaults.DEFAULTS["tolerancia_ms"]
    execute = models.db.execute_sql
    acciones = execute(_ACCIONES_SQL, (comp.id,)).fetchall()
    moved = {}
    for _, accion, registro_id, target, *_ in acciones:
        if accion == "mover":
            moved[registro_id] = target
    if equipo_id is None:
        rows = execute(_ROWS_SQL, (comp.id,)).fetchall()
    else:
        ids = [rid for rid, target in moved.items() if target == equipo_id]
        rows = execute(_ROWS_SQL + " AND (r.equipo_id = ? OR r.id IN (%s))"
                       % models.sql_marks(len(ids)) if ids else _ROWS_SQL + " AND r.equipo_id = ?",
                       [comp.id, equipo_id] + ids).fetchall()
    records = [_Record(row) for row in sorted(rows)]
    by_id = {record.row_id: record for record in records}
    teams = defaultdict(_team_state)
    shifts = []  # (seq, juez_id or None, delta)
    for seq, accion, registro_id, target, juez_id, valor, texto in acciones:
        if accion == "ajustar":
            shifts.append((seq, juez_id, valor))
        elif accion in TEAM_ACCIONES:
            _apply_team(teams[target], accion, valor, texto)
        else:
            record = by_id.get(registro_id)
            if record is None:
                continue
            if accion == "anular":
                record.anulado = True
            elif accion == "restaurar":
                record.anulado = False
            elif accion == "mover":
                record.equipo_id = target
            elif accion == "corregir":
                record.base, record.base_seq = valor, seq
            elif accion == "aceptar":
                record.aceptado = True
    if equipo_id is not None:
        records = [r for r in records if r.equipo_id == equipo_id]
    started = models.db_text(comp.started_at)
    best = defaultdict(list)
    for record in records:
        # A paper time is the true time since the real start: never shifted (ORGANIZER.md).
        record.tiempo = 0 if record.ausente else record.base + sum(
            delta for seq, juez, delta in shifts
            if seq > record.base_seq and (juez is None or juez == record.juez_id)
            and record.origen != models.ORIGEN_MANUAL)
        record.antes_de_salida = arrived_before_start(record.received_at,
                                                      record.estado_carrera, started)
        record.imposible = record.tiempo < 0 or (
            not record.antes_de_salida and not record.ausente
            and record.tiempo > _elapsed_ms(comp.started_at, record.received_at) + tolerance_ms)
        if not (record.anulado or record.ausente or record.pendiente or record.tiempo < 0
                or teams[record.equipo_id]["estado"] != "ok"):
            best[record.equipo_id].append(record)
    for team_records in best.values():
        team_records.sort(key=lambda r: (r.tiempo, r.row_id))
        for record in team_records[:scored_per_team]:
            record.cuenta = True
    # (finishers before records: freeing the result then frees the records in arrival order,
    # as they lie in memory, which is measurably quicker than team by team)
    return {"competencia": comp, "equipos": teams, "contados": scored_per_team,
            "finishers": best, "records": records}


def _elapsed_ms(since, text):
    return (dt.datetime.fromisoformat(text) - since) // dt.timedelta(milliseconds=1)


def record_view(row):
    """The record object of one stored record (a RegistroTiempo), corrections applied."""
    equipo_now = _current_team(row)
    state = competition_state(models.Equipo.get_by_id(equipo_now).competencia_id,
                              equipo_id=equipo_now)
    return next(r.view() for r in state["records"] if r.row_id == row.id)


def _current_team(row):
    last_move = (models.Accion.select(models.Accion.equipo_id)
                 .where((models.Accion.registro_id == row.id) & (models.Accion.accion == "mover"))
                 .order_by(models.Accion.id.desc()).first())
    return last_move.equipo_id if last_move else row.equipo_id


TEAM_ACCIONES = ("estado", "penalizacion")


def _team_state():
    return {"estado": "ok", "penalizacion_ms": 0}


def _apply_team(state, accion, valor, texto):
    if accion == "estado":
        state["estado"] = texto
    else:
        state["penalizacion_ms"] = valor


def team_view(equipo, state=None):
    """The team object plus its estado and penalty (after corrections), its judge and its
    category."""
    if state is None:
        state = _team_state()
        for accion, valor, texto in (
                models.Accion.select(models.Accion.accion, models.Accion.valor, models.Accion.texto)
                .where((models.Accion.competencia == equipo.competencia_id)
                       & (models.Accion.equipo_id == equipo.id)
                       & models.Accion.accion.in_(TEAM_ACCIONES))
                .order_by(models.Accion.id).tuples()):
            _apply_team(state, accion, valor, texto)
    return dict(equipo.to_dict(), estado=state["estado"], penalizacion_ms=state["penalizacion_ms"],
                juez_id=equipo.juez_id, competencia_id=equipo.competencia_id,
                categoria=equipo.categoria)


# --------------------------------------------------------------------------------------------
# Results: the ranking rule (runs on reader threads and in the command line).
# --------------------------------------------------------------------------------------------
def arrived_before_start(received_at, estado_carrera, started_at):
    """Whether a record arrived before the (current) start of its race.

    True when the race has not started, when the record was received before ``started_at``
    (which also covers records of a false start that was reset and started again), or when the
    server stored it while the race was still scheduled (robust to a clock stepped backwards).
    Times are datetimes, or both the database's text form (whose order is time order).
    """
    return (started_at is None or received_at < started_at
            or estado_carrera == models.ESTADO_PROGRAMADA)


# The texts of times (h:mm:ss.mmm) in the standings' CSV: Excel's flavour writes their decimal
# comma, so a Spanish spreadsheet reads them as times. (No CSV has other numbers with decimals.)
CSV_TIME_COLUMNS = ("tiempo_total", "mejor", "promedio")


def csv_text(columns, rows, excel=False, decimal_columns=()):
    """CSV text: a header row, then the rows, in one of two flavours.

    * plain (the default, for programs): comma-separated, decimal point;
    * ``excel``: the same cells as Excel opens them in columns where the list separator is
      ``;`` and the decimal mark a comma (Spain, most of Europe and Latin America), see
      :func:`excel_csv`.

    Both start with a UTF-8 byte order mark so spreadsheets open accented team names correctly;
    empty cells stand for null. Cells that a spreadsheet would run as a formula are quoted
    with a leading apostrophe (CSV injection), in either flavour.
    """
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    cell = csv_cell
    for row in rows:  # (integers, most cells, as they are: no call each)
        writer.writerow([value if value.__class__ is int else cell(value) for value in row])
    text = out.getvalue()
    return excel_csv(text, decimal_columns) if excel else text


def csv_cell(value):
    """A CSV cell: None empty, text that a spreadsheet would run as a formula led by ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def excel_csv(text, decimal_columns=()):
    """Excel's flavour of a plain CSV text made by :func:`csv_text`: the same cells (formula guard
    included), separated by ``;``, and in the columns named in ``decimal_columns`` (the texts
    of times, ``0:19:45.200``) a decimal comma (``0:19:45,200``, which Excel reads as a time)."""
    rows = csv.reader(io.StringIO(text[1:] if text.startswith("\ufeff") else text))
    header = next(rows, [])
    decimal = [i for i, name in enumerate(header) if name in decimal_columns]
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        for i in decimal:
            row[i] = row[i].replace(".", ",")
        writer.writerow(row)
    return out.getvalue()


def competition_records(competencia_id, equipo_id=None, juez_id=None,
                        scored_per_team=race_defaults.COMPETITION_RULE):
    """``{"competencia", "registros"}``: the records of a competition as the organizer sees them
    (ORGANIZER.md record objects), oldest first, optionally of one team (now) or one judge."""
    state = competition_state(competencia_id, scored_per_team, equipo_id=equipo_id)
    records = [r.view() for r in state["records"]
               if juez_id is None or r.juez_id == juez_id]
    return {"competencia": state["competencia"].to_dict(), "registros": records}


def _usernames(ids):
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return dict(models.User.select(models.User.id, models.User.username)
                .where(models.User.id.in_(list(ids))).tuples())


def _entries(acciones):
    names = _usernames(a.usuario_id for a in acciones)
    return [{"id": a.id, "accion": a.accion, "objeto": a.objeto, "objeto_id": a.objeto_id,
             "usuario": names.get(a.usuario_id), "en": models.iso(a.en), "motivo": a.motivo,
             "antes": json.loads(a.antes) if a.antes else None,
             "despues": json.loads(a.despues) if a.despues else None} for a in acciones]


def record_history(id_registro):
    """``{"registro", "historial"}``: a record now, and every change that touched it, oldest
    first: its own corrections and the time adjustments that applied to it."""
    row = get_registro(id_registro)
    record = record_view(row)
    competencia_id = models.Equipo.get_by_id(record["equipo_id"]).competencia_id
    touching = (models.Accion.registro_id == row.id) | (
        (models.Accion.competencia == competencia_id) & (models.Accion.accion == "ajustar")
        & (models.Accion.juez_id.is_null() | (models.Accion.juez_id == row.juez_id)))
    entries = _entries(list(models.Accion.select().where(touching).order_by(models.Accion.id)))
    return {"registro": record,
            "historial": [{k: e[k] for k in ("accion", "usuario", "en", "motivo", "antes",
                                              "despues")} for e in entries]}


def audit_log(competencia_id):
    """``{"competencia", "acciones"}``: the competition's whole history, oldest first."""
    comp = models.get_competencia(competencia_id)
    acciones = list(models.Accion.select().where(models.Accion.competencia == comp.id)
                    .order_by(models.Accion.id))
    return {"competencia": comp.to_dict(), "acciones": _entries(acciones)}


AUDIT_CSV_COLUMNS = ("id", "en", "usuario", "accion", "objeto", "objeto_id", "motivo", "antes",
                     "despues")


def audit_csv(result, excel=False):
    """The audit log as CSV (UTF-8 with BOM; before/after as JSON text; ``excel``: the
    spreadsheet's flavour, :func:`csv_text`)."""
    return csv_text(AUDIT_CSV_COLUMNS, (
        [models.json_text(a[c]) if c in ("antes", "despues") else a[c] for c in AUDIT_CSV_COLUMNS]
        for a in result["acciones"]), excel=excel)


RECORDS_CSV_COLUMNS = ("id", "equipo_id", "juez_id", "origen", "timestamp", "recibido_en",
                       "estado_carrera", "tiempo_recibido", "tiempo", "cuenta", "anulado",
                       "ausente", "pendiente", "antes_de_salida", "tiempo_imposible",
                       "protocolo", "revision")


def records_csv(result, excel=False):
    """The organizer's records list as CSV, flags included (``excel``: :func:`csv_text`)."""
    return csv_text(RECORDS_CSV_COLUMNS,
                   ([r[c] for c in RECORDS_CSV_COLUMNS] for r in result["registros"]), excel=excel)


PUBLIC_RECORD_KEYS = ("id", "tiempo", "cuenta", "anulado", "ausente", "antes_de_salida",
                      "pendiente", "origen")


def team_detail(competencia_id, equipo_id, scored_per_team=race_defaults.COMPETITION_RULE):
    """Public: ``{"competencia", "equipo", "registros"}`` with no reasons and no judges."""
    comp = models.get_competencia(competencia_id)
    equipo = models.Equipo.get_or_none((models.Equipo.id == equipo_id)
                                       & (models.Equipo.competencia == comp.id))
    if equipo is None:
        raise models.NotFound("El equipo %s no es de esta competencia." % equipo_id,
                              "team_not_found")
    state = competition_state(comp.id, scored_per_team, equipo_id=equipo.id)
    view = team_view(equipo, state["equipos"][equipo.id])
    return {"competencia": comp.to_dict(),
            "equipo": {k: view[k] for k in ("id", "nombre", "dorsal", "estado",
                                            "penalizacion_ms")},
            "registros": [{k: v for k, v in r.view().items() if k in PUBLIC_RECORD_KEYS}
                          for r in state["records"]]}


def team_records(user_id, equipo_id, scored_per_team=race_defaults.COMPETITION_RULE):
    """The judge read-back: a team's records as stored and counted, for its assigned judge or
    an organizer. ``{"equipo", "registros"}``."""
    user = models.User.get_or_none(models.User.id == user_id)
    refusal = identity.session_refusal(user is not None and user.is_active, None)
    if refusal is not None:
        raise refusal
    equipo = models.Equipo.get_or_none(models.Equipo.id == equipo_id)
    if equipo is None:
        raise models.NotFound(messages.TEAM_NOT_FOUND % equipo_id, "team_not_found")
    if not user.is_organizer:
        identity.acting_judges(user.id)  # (raises unless it is an active judge somewhere)
        juez = models.Juez.get_or_none((models.Juez.user == user.id)
                                       & (models.Juez.competencia == equipo.competencia_id))
        refusal = identity.team_refusal(equipo.id, equipo.juez_id, juez and juez.id,
                                        juez is not None and juez.is_active)
        if refusal is not None:
            raise refusal
    state = competition_state(equipo.competencia_id, scored_per_team, equipo_id=equipo.id)
    return {"equipo": team_view(equipo, state["equipos"][equipo.id]),
            "registros": [r.view() for r in state["records"]]}
