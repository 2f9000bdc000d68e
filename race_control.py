"""The race: start, stop and reset, corrections (each an Accion row, never an overwrite),
official results, competition settings, and the judges' board. Runs in the writer.
"""

import datetime as dt
import uuid
from collections import defaultdict

import peewee as pw

import identity
import ledger
import messages
import models
import race_defaults
import scoring
import venue_time


def judge_teams(user_id, competencia_id=None):
    """The teams a user times, as the second generation lists them: a judge's own (by dorsal),
    every team for an organizer; optionally of one competition. Each: the team object, its
    ``categoria``, ``competencia_id``, ``competencia_nombre`` and ``juez_username``.
    Forbidden for a user who is neither (or an inactive judge)."""
    user = models.User.get_or_none(models.User.id == user_id)
    refusal = identity.session_refusal(user is not None and user.is_active, None)
    if refusal is not None:
        raise refusal
    query = (models.Equipo.select(models.Equipo,
                                  models.Competencia.nombre.alias("competencia_nombre"),
                                  models.User.username.alias("juez_username"))
             .join(models.Competencia).switch(models.Equipo).join(models.Juez, pw.JOIN.LEFT_OUTER)
             .join(models.User, pw.JOIN.LEFT_OUTER))
    if not user.is_organizer:
        judges = identity.acting_judges(user.id)  # (one per competition it times)
        query = query.where(models.Equipo.juez.in_([juez.id for juez in judges]))
    if competencia_id is not None:
        query = query.where(models.Equipo.competencia == competencia_id)
    return [dict(e.to_dict(), categoria=e.categoria, competencia_id=e.competencia_id,
                 competencia_nombre=e.competencia_nombre, juez_username=e.juez_username)
            for e in query.order_by(models.Equipo.competencia, models.Equipo.dorsal).objects()]


def _race_state(comp):
    return {"estado": comp.estado, "started_at": models.iso(comp.started_at),
            "finished_at": models.iso(comp.finished_at)}


def start_competition(competencia_id, user_id=None):
    comp = models.get_competencia(competencia_id)
    if comp.estado == models.ESTADO_EN_CURSO:
        raise models.Conflict("La carrera ya está en curso.", "race_already_running")
    if comp.estado == models.ESTADO_FINALIZADA:
        raise models.Conflict("La carrera ya finalizó; use reiniciar para volver a programarla.",
                              "race_finished")
    before = _race_state(comp)
    comp.started_at = comp.inicio_dado = models.utcnow()
    comp.finished_at = None
    comp.save()
    models.add_history(comp, "iniciar", "competencia", comp.id, user_id, None, before,
                       _race_state(comp))
    return comp.to_dict()


def stop_competition(competencia_id, user_id=None):
    comp = models.get_competencia(competencia_id)
    if comp.estado != models.ESTADO_EN_CURSO:
        raise models.Conflict("La carrera no está en curso.", "race_not_running")
    before = _race_state(comp)
    comp.finished_at = models.utcnow()
    comp.save()
    models.add_history(comp, "detener", "competencia", comp.id, user_id, None, before,
                       _race_state(comp))
    return comp.to_dict()


def reset_competition(competencia_id, force=False, user_id=None):
    """False start: back to scheduled. Returns (competition dict, changed).

    Refused (Conflict) once records have arrived since started_at, unless forced; a forced reset
    keeps those records, which carry the race state at their receipt.
    """
    comp = models.get_competencia(competencia_id)
    if comp.estado == models.ESTADO_PROGRAMADA:
        return comp.to_dict(), False
    if comp.oficial_en is not None:
        raise models.Conflict(
            "Los resultados son oficiales; reábralos antes de reiniciar la carrera.",
            "results_official")
    if not force:
        received = (models.RegistroTiempo.select()
                    .join(models.Equipo)
                    .where((models.Equipo.competencia == comp.id)
                           & (models.RegistroTiempo.received_at >= comp.started_at))
                    .count())
        if received:
            raise models.Conflict(
                "Ya se recibieron %d registros desde la salida; use force para reiniciar "
                "igualmente (los registros se conservan)." % received, "records_since_start")
    before = _race_state(comp)
    comp.started_at = comp.inicio_dado = None
    comp.finished_at = None
    comp.save()
    models.add_history(comp, "reiniciar", "competencia", comp.id, user_id, None, before,
                       dict(_race_state(comp), forzado=bool(force)))
    return comp.to_dict(), True


# --------------------------------------------------------------------------------------------
# Corrections (run in the writer). Records are never changed: each correction is an Accion row,
# applied on top by competition_state(). Each returns what its answer shows.
# --------------------------------------------------------------------------------------------
def check_motivo(motivo, required=True):
    """A correction's reason: non-empty text of at most MAX_MOTIVO characters. Invalid else."""
    if motivo is None and not required:
        return None
    if not isinstance(motivo, str) or not motivo.strip():
        raise models.Invalid("Falta el motivo de la corrección.", "validation_error",
                             {"motivo": "Obligatorio: diga por qué (texto, hasta %d caracteres)."
                       % models.MAX_MOTIVO})
    if len(motivo) > models.MAX_MOTIVO:
        raise models.Invalid("El motivo es demasiado largo.", "validation_error",
                             {"motivo": "Hasta %d caracteres." % models.MAX_MOTIVO})
    return motivo.strip()


def check_tiempo(value, field="tiempo"):
    """A time in ms as stored: a JSON integer 0..24 h. Invalid else."""
    if not models.is_int(value) or not 0 <= value <= models.MAX_TIEMPO_MS:
        raise models.Invalid("El tiempo no es válido.", "validation_error",
                             {field: "Debe ser un entero de milisegundos entre 0 y %d (24 h)."
                       % models.MAX_TIEMPO_MS})
    return value


def _team_of_competition(equipo_id, competencia_id, field="equipo_id"):
    if not models.is_int(equipo_id) or not 1 <= equipo_id <= 2**62:
        raise models.Invalid("El equipo no es válido.", "validation_error",
                             {field: "Debe ser el id (entero) de un equipo."})
    equipo = models.Equipo.get_or_none(models.Equipo.id == equipo_id)
    if equipo is None:
        raise models.NotFound(messages.TEAM_NOT_FOUND % equipo_id, "team_not_found")
    if equipo.competencia_id != competencia_id:
        raise models.Invalid("El equipo %d es de otra competencia." % equipo_id,
                             "team_other_competition",
                             {field: "Debe ser un equipo de esta competencia."})
    return equipo


def _record_change(accion, user_id, id_registro, motivo, change):
    """Apply one record correction: ``change(record object, competencia_id)`` returns the
    Accion payload, or None when there is nothing to change (a no-op: no history entry).
    Returns (competencia_id, the record object after)."""
    motivo = check_motivo(motivo)
    row = ledger.get_registro(id_registro)
    competencia_id = models.Equipo.get_by_id(row.equipo_id).competencia_id
    before = ledger.record_view(row)
    payload = change(before, competencia_id)
    if payload is None:
        return competencia_id, before
    entry = models.add_history(competencia_id, accion, "registro", before["id"], user_id, motivo,
                               _record_summary(before), None, registro_id=row.id, **payload)
    after = ledger.record_view(row)
    # The state after is the fold with this very row, so it is filled in once the row exists,
    # before the transaction commits: no one ever sees the entry without it.
    entry.despues = models.json_text(_record_summary(after))
    entry.save()
    return competencia_id, after


def _record_summary(record):
    """What a record's history shows before and after a change."""
    return {key: record[key] for key in ("equipo_id", "tiempo", "anulado", "pendiente", "cuenta",
                                         "protocolo")}


def void_record(user_id, id_registro, motivo):
    """Void a record (it stays stored, it no longer counts). Voiding a voided one: no-op."""
    return _record_change("anular", user_id, id_registro, motivo,
                          lambda rec, cid: None if rec["anulado"] else {})


def restore_record(user_id, id_registro, motivo):
    """Undo a void. Restoring a record that is not voided: no-op."""
    return _record_change("restaurar", user_id, id_registro, motivo,
                          lambda rec, cid: {} if rec["anulado"] else None)


def accept_record(user_id, id_registro, motivo):
    """A record received while the results were official now counts."""
    def change(rec, competencia_id):
        if not rec["pendiente"]:
            raise models.Conflict("El registro no está pendiente.", "record_not_pending")
        return {}
    return _record_change("aceptar", user_id, id_registro, motivo, change)


def edit_record(user_id, id_registro, motivo, equipo_id=None, tiempo=None):
    """Move a record to another team of its competition and/or correct the time that counts.

    ``tiempo`` is the time that counts from now on (adjustments made later still add to it).
    Both changes in one call are two history entries (mover, then corregir). Returns
    (competencia_id, the record object after).
    """
    if equipo_id is None and tiempo is None:
        raise models.Invalid("Nada que cambiar: indique equipo_id y/o tiempo.", "validation_error",
                             {"equipo_id": "equipo_id o tiempo obligatorio.",
                       "tiempo": "equipo_id o tiempo obligatorio."})
    if tiempo is not None:
        check_tiempo(tiempo)
    check_motivo(motivo)
    result = None
    if equipo_id is not None:
        def move(rec, competencia_id):
            _team_of_competition(equipo_id, competencia_id)
            return None if rec["equipo_id"] == equipo_id else {"equipo_id": equipo_id}
        result = _record_change("mover", user_id, id_registro, motivo, move)
    if tiempo is not None:
        result = _record_change("corregir", user_id, id_registro, motivo,
                                lambda rec, cid: None if rec["tiempo"] == tiempo
                                else {"valor": tiempo})
    return result


def add_manual_record(user_id, competencia_id, equipo_id, tiempo, motivo, timestamp=None):
    """A paper time typed in by an organizer: a record of its own (origen manual, no judge).

    ``timestamp`` (naive UTC) defaults to the start plus ``tiempo``, else now. It counts at
    once, also while the results are official (an organizer's own correction). Two equal
    entries are two records. Returns (competencia_id, the record object).
    """
    comp = models.get_competencia(competencia_id)
    check_tiempo(tiempo)
    motivo = check_motivo(motivo)
    equipo = _team_of_competition(equipo_id, comp.id)
    if timestamp is None:
        timestamp = (comp.started_at + dt.timedelta(milliseconds=tiempo)
                     if comp.started_at is not None else models.utcnow())
    row = models.RegistroTiempo.create(
        id_registro=uuid.uuid4(), equipo=equipo.id, juez=None, tiempo=tiempo,
        **dict(zip(("horas", "minutos", "segundos", "milisegundos"),
                   venue_time.split_tiempo(tiempo))),
        timestamp=timestamp, received_at=models.utcnow(), estado_carrera=comp.estado,
        origen=models.ORIGEN_MANUAL, oficial_al_recibir=False)
    record = ledger.record_view(row)
    models.add_history(comp, "manual", "registro", record["id"], user_id, motivo, None,
                       _record_summary(record), registro_id=row.id, equipo_id=equipo.id,
                       valor=tiempo)
    return comp.id, record


def shift_times(user_id, competencia_id, delta_ms, motivo, juez_id=None):
    """Add ``delta_ms`` to the counted time of every app record of the competition (or of one
    judge's), stored and still to come; a paper time (origen manual) is never shifted. Without a
    judge it is a late or early start, so started_at moves back by ``delta_ms`` too. Returns
    (competition dict, records affected).
    """
    comp = models.get_competencia(competencia_id)
    if not models.is_int(delta_ms) or delta_ms == 0 or abs(delta_ms) > models.MAX_TIEMPO_MS:
        raise models.Invalid("El ajuste no es válido.", "validation_error",
                             {"delta_ms": "Un entero de milisegundos distinto de 0, hasta 24 h."})
    motivo = check_motivo(motivo)
    if juez_id is not None:
        juez = (models.Juez.get_or_none(models.Juez.id == juez_id)
                if models.is_int(juez_id) and 1 <= juez_id <= 2**62 else None)  # SQLite: 64-bit ids
        if juez is None or juez.competencia_id != comp.id:
            raise models.NotFound("El juez %s no es de esta competencia." % juez_id,
                                  "judge_not_found")
    records = ledger.competition_state(comp.id)["records"]
    affected = [r for r in records if r.origen != models.ORIGEN_MANUAL  # paper times never move
                and (juez_id is None or r.juez_id == juez_id)]
    negative = [r for r in affected if not r.ausente and r.tiempo + delta_ms < 0]
    if negative:
        raise models.Conflict("El ajuste dejaría %d tiempos en negativo (p. ej. el registro %s)."
                              % (len(negative), models.uuid_text(negative[0].hex_id)),
                              "negative_time")
    before = after = None
    if juez_id is None:
        if comp.started_at is None:
            raise models.Conflict("La carrera no ha salido: no hay salida que ajustar.",
                                  "race_not_started")
        new_start = comp.started_at - dt.timedelta(milliseconds=delta_ms)
        if new_start > (comp.finished_at or models.utcnow()):
            raise models.Conflict("La salida quedaría después del final (o en el futuro).",
                                  "start_after_end")
        before = {"started_at": models.iso(comp.started_at)}
        comp.started_at = new_start
        comp.save()
        after = {"started_at": models.iso(comp.started_at)}
    models.add_history(comp, "ajustar", "juez" if juez_id is not None else "competencia",
                       juez_id if juez_id is not None else comp.id, user_id, motivo,
                       dict(before or {}, delta_ms=0), dict(after or {}, delta_ms=delta_ms),
                       juez_id=juez_id, valor=delta_ms)
    return comp.to_dict(), len(affected)


def set_team_status(user_id, equipo_id, estado, motivo):
    """A team's estado: ok, dns, dnf or dsq (the last three are listed unranked)."""
    if estado not in models.ESTADOS_EQUIPO:
        raise models.Invalid("Estado de equipo desconocido.", "validation_error",
                             {"estado": "Debe ser uno de: %s." % ", ".join(models.ESTADOS_EQUIPO)})
    return _team_change("estado", user_id, equipo_id, motivo, "estado", estado, texto=estado)


def set_team_penalty(user_id, equipo_id, ms, motivo):
    """A time penalty (signed ms, 0 clears) added to the team's total."""
    if not models.is_int(ms) or abs(ms) > models.MAX_TIEMPO_MS:
        raise models.Invalid(
            "La penalización no es válida.", "validation_error",
            {"ms": "Un entero de milisegundos (con signo; 0 la quita), hasta 24 h."})
    return _team_change("penalizacion", user_id, equipo_id, motivo, "penalizacion_ms", ms,
                        valor=ms)


def _team_change(accion, user_id, equipo_id, motivo, key, value, **payload):
    motivo = check_motivo(motivo)
    equipo = models.Equipo.get_or_none(models.Equipo.id == equipo_id)
    if equipo is None:
        raise models.NotFound(messages.TEAM_NOT_FOUND % equipo_id, "team_not_found")
    before = ledger.team_view(equipo)
    if before[key] == value:
        return before
    models.add_history(equipo.competencia_id, accion, "equipo", equipo.id, user_id, motivo,
                       {key: before[key]}, {key: value}, equipo_id=equipo.id, **payload)
    return ledger.team_view(equipo)


def make_official(user_id, competencia_id, motivo=None):
    """Freeze what counts: later arrivals are stored but wait (pendiente). Already official:
    no-op. Returns (competition dict, changed)."""
    comp = models.get_competencia(competencia_id)
    motivo = check_motivo(motivo, required=False)
    if comp.oficial_en is not None:
        return comp.to_dict(), False
    if comp.estado != models.ESTADO_FINALIZADA:
        raise models.Conflict("Detenga la carrera antes de oficializar los resultados.",
                              "race_not_finished")
    comp.oficial_en = models.utcnow()
    comp.save()
    models.add_history(comp, "oficializar", "competencia", comp.id, user_id, motivo,
                       {"oficial": False},
                       {"oficial": True, "oficial_en": models.iso(comp.oficial_en)})
    return comp.to_dict(), True


def reopen_results(user_id, competencia_id, motivo):
    """Back to provisional results (records that waited stay pending until accepted). Not
    official: no-op. Returns (competition dict, changed)."""
    comp = models.get_competencia(competencia_id)
    motivo = check_motivo(motivo)
    if comp.oficial_en is None:
        return comp.to_dict(), False
    before = {"oficial": True, "oficial_en": models.iso(comp.oficial_en)}
    comp.oficial_en = None
    comp.save()
    models.add_history(comp, "reabrir", "competencia", comp.id, user_id, motivo, before,
                       {"oficial": False})
    return comp.to_dict(), True


def update_competition(user_id, competencia_id, body):
    """The organizer's changes to a competition (``PATCH /api/competencias/{id}/``): ``body``
    is ``{"nombre"?, "oculta"?, "regla"?: {"tipo"?, "contados"?, "minimo"?}, "fecha_hora"?,
    "motivo"?}``; what is left out stays as it is (``contados`` null: the server's
    ``race.records_scored_per_team``; ``fecha_hora`` ISO 8601, in the venue's zone when it has
    no offset, or null; ``oculta`` true leaves it out of the public index).

    Each change is one history entry (``renombrar``, ``ocultar``/``mostrar``, ``regla``,
    ``programar``), in this transaction; the rule cannot change while the results are official
    (409 ``results_official``). Returns (competition dict, the rule in force, changed)."""
    if not isinstance(body, dict):
        raise models.Invalid("El cuerpo debe ser un objeto JSON.", "invalid_body")
    comp = models.get_competencia(competencia_id)
    motivo = check_motivo(body.get("motivo"), required=False)
    errors, rule, fecha = {}, None, _UNSET
    unknown = set(body) - {"nombre", "oculta", "regla", "fecha_hora", "motivo"}
    for key in sorted(unknown):
        errors[key] = ("Campo desconocido: se aceptan nombre, oculta, regla, fecha_hora y "
                       "motivo.")
    nombre = body.get("nombre", _UNSET)
    if nombre is not _UNSET:
        if not isinstance(nombre, str) or not nombre.strip():
            errors["nombre"] = "Obligatorio (texto)."
        elif len(nombre) > 200:
            errors["nombre"] = "Hasta 200 caracteres."
        else:
            nombre = nombre.strip()
    oculta = body.get("oculta", _UNSET)
    if oculta is not _UNSET and not isinstance(oculta, bool):
        errors["oculta"] = "Debe ser true (fuera del índice público) o false."
    if "regla" in body:
        rule = scoring.check_rule(body["regla"], comp, errors)
    if "fecha_hora" in body:
        fecha = body["fecha_hora"]
        if fecha is not None:
            try:
                fecha = venue_time.parse_local_timestamp(fecha)
                if not 2000 <= fecha.year <= 2999:
                    raise ValueError("not a date of an event")
            except (ValueError, TypeError, OverflowError):
                errors["fecha_hora"] = ("Una fecha ISO 8601 de 2000 a 2999 (sin desfase: hora "
                                        "local, %s), o null." % race_defaults.zone().key)
    if errors:
        raise models.Invalid("Los cambios de la competencia no son válidos.", "validation_error",
                             errors)
    changed = False
    before = {"tipo": comp.regla, "contados": comp.contados, "minimo": comp.minimo}
    if rule is not None and rule != before:
        if comp.oficial_en is not None:
            raise models.Conflict(
                "Los resultados son oficiales; reábralos antes de cambiar la regla.",
                "results_official")
        comp.regla, comp.contados, comp.minimo = rule["tipo"], rule["contados"], rule["minimo"]
        comp.save()
        models.add_history(comp, "regla", "competencia", comp.id, user_id, motivo, before, rule)
        changed = True
    if nombre is not _UNSET and nombre != comp.nombre:
        antes = {"nombre": comp.nombre}
        comp.nombre = nombre
        comp.save()
        models.add_history(comp, "renombrar", "competencia", comp.id, user_id, motivo, antes,
                           {"nombre": comp.nombre})
        changed = True
    if oculta is not _UNSET and oculta != bool(comp.oculta):
        comp.oculta = oculta
        comp.save()
        models.add_history(comp, "ocultar" if oculta else "mostrar", "competencia", comp.id,
                           user_id, motivo, {"oculta": not oculta}, {"oculta": oculta})
        changed = True
    if fecha is not _UNSET and fecha != comp.fecha_hora:
        antes = {"fecha_hora": models.iso(comp.fecha_hora)}
        comp.fecha_hora = fecha
        comp.save()
        models.add_history(comp, "programar", "competencia", comp.id, user_id, motivo, antes,
                           {"fecha_hora": models.iso(comp.fecha_hora)})
        changed = True
    return comp.to_dict(), scoring.competition_rule(comp), changed


_UNSET = object()


def competition_dict(competencia_id):
    return models.get_competencia(competencia_id).to_dict()


def all_competitions(public=False):
    """Every competition (``public``: those not hidden from the public index)."""
    query = models.Competencia.select().order_by(models.Competencia.id)
    if public:
        query = query.where(models.Competencia.oculta == False)  # noqa: E712  (SQL, not Python)
    return [c.to_dict() for c in query]


_ARRIVALS_SQL = ("SELECT r.equipo_id, COUNT(*) FROM registro_tiempo AS r "
                 "JOIN equipo AS e ON e.id = r.equipo_id WHERE e.competencia_id = ? "
                 "GROUP BY r.equipo_id")
# Each app record's implied start on the phone's clock (timestamp - tiempo as received) minus
# the moment the start was given, in ms, for the records received since the current start.
_IMPLIED_START_SQL = (
    "SELECT r.juez_id, CAST(ROUND((julianday(r.timestamp) - julianday(?)) * 86400000) AS INTEGER)"
    " - r.tiempo FROM registro_tiempo AS r JOIN equipo AS e ON e.id = r.equipo_id "
    "WHERE e.competencia_id = ? AND r.origen = 'app' AND r.received_at >= ? AND r.tiempo > 0 "
    "AND r.protocolo IS NOT 'movil5k'")  # Movil5K sends no tap time: its timestamp is receipt
# Each judge's first notice of the current start stored by any server process.
_NOTICES_SQL = ("SELECT juez_id, MIN(en) FROM aviso_salida WHERE competencia_id = ? AND en >= ? "
                "GROUP BY juez_id")


def given_start(comp):
    """The moment the current start was given (the server's clock when an organizer fired it),
    before any ``ajustar_tiempos``: started_at as its last ``iniciar`` set it. None when the
    race has not started."""
    if comp.started_at is None:
        return None
    given = comp.inicio_dado or comp.started_at  # (kept by start_competition since schema 10)
    return given.replace(microsecond=given.microsecond // 1000 * 1000)  # as the apps read it


def record_start_notice(competencia_id, juez_id, when):
    """Keep the moment the server first handed a judge's app the current start (run by the
    writer). Only the first of a start is kept: a replay after a restart adds nothing."""
    comp = models.Competencia.get_or_none(models.Competencia.id == competencia_id)
    given = given_start(comp) if comp is not None else None
    if given is None or when < given or models.AvisoSalida.select().where(
            (models.AvisoSalida.competencia_id == competencia_id)
            & (models.AvisoSalida.juez_id == juez_id)
            & (models.AvisoSalida.en >= given)).exists():
        return False
    models.AvisoSalida.create(competencia_id=competencia_id, juez_id=juez_id, en=when)
    return True


def competition_judges(competencia_id):
    """The judges board, as far as the database knows it: ``{"competencia", "jueces",
    "registros_tras_final", "inicio_dado"}``. ``inicio_dado``: the moment the current start
    was given (before adjustments). Each judge: id, nombre, username, activo, its teams each
    with ``registros`` (records that arrived for it) and ``categoria``,
    ``inicio_notificado_en`` (its first notice of the current start as stored, kept across
    restarts) and ``inicio_implicito_ms``: the median over its records of ``timestamp -
    tiempo - started_at`` net of the adjustments (its time as received against the start as
    given, less the adjustments made to that judge alone), how late its stopwatch started on
    the phone's clock (null without records since the current start). ``registros_tras_final``
    counts records received after the race was stopped (they are stored, and count unless
    the results were official)."""
    comp = models.get_competencia(competencia_id)
    jueces = (models.Juez.select(models.Juez, models.User).join(models.User)
              .where(models.Juez.competencia == comp.id).order_by(models.Juez.id))
    arrivals = dict(models.db.execute_sql(_ARRIVALS_SQL, (comp.id,)).fetchall())
    equipos = {}
    teams = models.Equipo.select().where(models.Equipo.competencia == comp.id)
    for equipo in teams.order_by(models.Equipo.dorsal):
        equipos.setdefault(equipo.juez_id, []).append(
            dict(equipo.to_dict(), registros=arrivals.get(equipo.id, 0),
                 categoria=equipo.categoria))
    implied = defaultdict(list)
    notices = {}
    late = 0
    given = given_start(comp)
    if given is not None:
        given_text = models.db_text(given)
        # Adjustments of one judge's records (a stopwatch started late, corrected).
        own = defaultdict(int)
        for juez_id, valor in models.db.execute_sql(
                "SELECT juez_id, valor FROM accion WHERE competencia_id = ? AND accion = "
                "'ajustar' AND juez_id IS NOT NULL", (comp.id,)):
            own[juez_id] += valor
        for juez_id, lag in models.db.execute_sql(_IMPLIED_START_SQL,
                                                  (given_text, comp.id, given_text)):
            implied[juez_id].append(lag - own[juez_id])
        for juez_id, en in models.db.execute_sql(_NOTICES_SQL, (comp.id, given_text)):
            notices[juez_id] = models.iso(dt.datetime.fromisoformat(en))
        if comp.finished_at is not None:
            late = models.db.execute_sql(
                "SELECT COUNT(*) FROM registro_tiempo AS r JOIN equipo AS e ON e.id = r.equipo_id"
                " WHERE e.competencia_id = ? AND r.received_at > ? AND r.origen = 'app'",
                (comp.id, models.db_text(comp.finished_at))).fetchone()[0]
    return {"competencia": comp.to_dict(), "registros_tras_final": late,
            "inicio_dado": models.iso(given), "jueces": [
                {"id": j.id, "nombre": j.nombre, "username": j.user.username,
                 "activo": j.is_active, "equipos": equipos.get(j.id, []),
                 "inicio_notificado_en": notices.get(j.id),
                 "inicio_implicito_ms": _median(implied.get(j.id))}
                for j in jueces]}


def _median(values):
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) // 2
