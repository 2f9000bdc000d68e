"""A judge's submission: validation (pure) and storage in batches (runs in the writer,
plain SQL on the writer's connection: the hot path of race day).
"""

import datetime as dt
import uuid
from collections import defaultdict

import identity
import ledger
import messages
import models
import venue_time


# --------------------------------------------------------------------------------------------
# Submissions: validation (pure) and storage (runs in the writer).
# --------------------------------------------------------------------------------------------
def validate_submission(body, max_records):
    """Check a ``enviar_tiempos`` body. Returns (equipo_id, records, ignored).

    Only the first ``max_records`` registros are considered; the rest are counted as ignored.
    Those are validated all-or-nothing: any problem raises Invalid with per-field errors.
    """
    if not isinstance(body, dict):
        raise models.Invalid("El cuerpo debe ser un objeto JSON.", "invalid_body")
    errors = {}
    equipo_id = body.get("equipo_id")
    if "equipo_id" not in body:
        errors["equipo_id"] = "Campo obligatorio."
    elif not models.is_int(equipo_id) or not 1 <= equipo_id <= 2**62:
        errors["equipo_id"] = "Debe ser un entero positivo."
    records = []
    ignored = 0
    registros = _registros(body, errors)
    if registros is not None:
        considered = registros[:max_records]
        ignored = len(registros) - len(considered)
        for index, raw in enumerate(considered):
            record = parse_record(raw)
            if record is None:
                errors.update(record_errors(raw, "registros.%d" % index))
            else:
                records.append(record)
    if errors:
        raise models.Invalid("Los datos enviados no son válidos; no se guardó nada.",
                             "validation_error", errors)
    return equipo_id, records, ignored


def _registros(body, errors):
    """A body's ``registros``: the list when it is a non-empty list, else None with the reason in
    ``errors`` (the same words for both generations of the app)."""
    registros = body.get("registros")
    if "registros" not in body:
        errors["registros"] = "Campo obligatorio."
    elif not isinstance(registros, list):
        errors["registros"] = "Debe ser una lista."
    elif not registros:
        errors["registros"] = "La lista está vacía."
    else:
        return registros
    return None


def parse_record(raw):
    """The rules of one record, in one place: its stored form, or None if it is not valid.

    ``{"tiempo": int ms 0..24 h, "timestamp": ISO 8601, "id_registro"?: UUID or null}``;
    returns ``{"tiempo", "timestamp" (naive UTC), "id_registro" (32 hex digits or None)}``.
    Other keys are ignored. Runs fifteen times per submission on the event loop: one pass.
    """
    if type(raw) is not dict:
        return None
    tiempo, stamp, given = raw.get("tiempo"), raw.get("timestamp"), raw.get("id_registro")
    if (type(tiempo) is not int or not 0 <= tiempo <= models.MAX_TIEMPO_MS or type(stamp) is not str
            or (given is not None and type(given) is not str)):
        return None
    try:
        return {"tiempo": tiempo, "timestamp": venue_time.parse_timestamp(stamp),
                "id_registro": models.uuid_hex(given) if given is not None else None}
    except (ValueError, TypeError, OverflowError):
        return None


# A valid record: record_errors tries each field of a refused one alone against these others.
_VALID_RECORD = {"tiempo": 0, "timestamp": "2000-01-01T00:00:00Z"}


def record_errors(raw, path):
    """Why :func:`parse_record` refused ``raw``: {field path: message}. Only builds messages;
    each field is judged by parse_record itself, beside fields known to be valid."""
    if not isinstance(raw, dict):
        return {path: "Cada registro debe ser un objeto."}
    errors = {}
    for field in ("tiempo", "timestamp", "id_registro"):
        if field not in raw:
            if field != "id_registro":
                errors[path + "." + field] = "Campo obligatorio."
            continue
        if parse_record(dict(_VALID_RECORD, **{field: raw[field]})) is not None:
            continue
        if field == "tiempo":
            errors[path + ".tiempo"] = (
                "Debe estar entre 0 y %d ms (24 h)." % models.MAX_TIEMPO_MS
                if models.is_int(raw["tiempo"]) else "Debe ser un entero de milisegundos.")
        elif field == "timestamp":
            errors[path + ".timestamp"] = "Debe ser una fecha ISO 8601."
        else:
            errors[path + ".id_registro"] = "Debe ser un UUID."
    return errors or {path: "Registro no válido."}  # (never empty: a refused record is named)


# The submission path is the hot path of race day (benchmarked in bench/run.py), so it speaks
# plain SQL on the writer's connection, and the writer stores every submission waiting in its
# queue with the same few statements (store_submissions). Each statement is a point where the
# writer thread gives up the GIL and must win it back from the event loop, so a batch costs a
# handful of statements, not a handful per submission.
#
# Who submits, for which team: one row per (user, team) asked about. ``j`` is the user's judge
# in the team's competition (a user may judge several, one judge row in each); the last column
# says whether any of its judges is active (NULL: it is no judge).
_SUBMITTERS_SQL = (
    'WITH req(uid, eid) AS (VALUES %s) '
    'SELECT req.uid, req.eid, u.is_active, j.id, j.is_active, e.id, e.juez_id, c.id, '
    'c.started_at, c.finished_at, c.oficial_en, u.token_gen, '
    '(SELECT max(aj.is_active) FROM juez AS aj WHERE aj.user_id = u.id) '
    'FROM req LEFT JOIN "user" AS u ON u.id = req.uid '
    'LEFT JOIN equipo AS e ON e.id = req.eid LEFT JOIN competencia AS c ON c.id = e.competencia_id '
    'LEFT JOIN juez AS j ON j.user_id = u.id AND j.competencia_id = e.competencia_id')
# id_registro is unique across all teams: a known id with other data is a conflict.
_BY_ID_SQL = ("SELECT id_registro, equipo_id, timestamp, tiempo FROM registro_tiempo "
              "WHERE id_registro IN (%s)")
# Same team (as first sent), same timestamp, same tiempo, sent by an app without an id: one
# probe of the (equipo, timestamp, tiempo) index per record (a paper time typed in by an
# organizer is never the phone's copy, a record sent with an id is only ever matched by it).
# The join keeps the VALUES list as the outer loop; a row-value ``(equipo_id, timestamp,
# tiempo) IN (VALUES ...)`` makes SQLite 3.40 scan instead (tests/test_models.py checks the
# plans).
_BY_KEY_SQL = ("WITH k(e, ts, t) AS (VALUES %s) "
               "SELECT r.equipo_id, r.timestamp, r.tiempo, r.id_registro "
               "FROM k CROSS JOIN registro_tiempo AS r "
               "ON r.equipo_id = k.e AND r.timestamp = k.ts AND r.tiempo = k.t "
               "AND r.origen = 'app' AND r.sin_id = 1 ORDER BY r.id")
# One multi-row INSERT rather than executemany: one step into SQLite instead of one per record.
_INSERT_SQL = ("INSERT INTO registro_tiempo (id_registro, equipo_id, juez_id, tiempo, horas, "
               "minutos, segundos, milisegundos, timestamp, received_at, estado_carrera, origen, "
               "oficial_al_recibir, sin_id, protocolo, revision) VALUES %s")
_INSERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'app', ?, ?, ?, ?)"
_INSERT_ROWS = 500  # rows per INSERT: 7,500 parameters, far below SQLite's 32,766


def _submitter_error(row, equipo_id, token_gen):
    """The DomainError refusing this (user, team) submission, or None if it may store: the
    session (identity.session_refusal: an active judge, its token's generation), then the team."""
    _, _, user_active, juez_id, juez_active, found_equipo, equipo_juez = row[:7]
    any_active = row[12]
    error = identity.session_refusal(user_active, row[11], token_gen,  # (0: "some judge")
                                     None if any_active is None else 0, any_active,
                                     identity.JUDGE_REQUIRED)
    if error is not None:
        return error
    if found_equipo is None:
        return models.NotFound(messages.TEAM_NOT_FOUND % equipo_id, "team_not_found")
    return identity.team_refusal(equipo_id, equipo_juez, juez_id, juez_active)


_NO_SUBMITTER = (None,) * 13  # a (user, team) the look-up did not return: no such user


def store_submissions(jobs):
    """Store validated submissions, as if one after another. Runs in the writer.

    ``jobs`` is a list of (user_id, equipo_id, records[, token_gen[, protocolo[, revision]]])
    with records as validate_submission returns them and token_gen the generation of the
    caller's token (a job of an earlier generation than the user's is refused: token_revoked;
    None: the caller vouches for the user); its new records are stored with ``protocolo``
    (default PROTOCOLO_GUIA) and ``revision`` (default None: nothing to review). Returns one
    (True, {"created": [...], "duplicates": [...], "competencia_id": id}) or (False,
    DomainError) per job, in order. A refused job writes nothing; the others are unaffected by
    it.

    Idempotency (PROTOCOL.md): a record with an ``id_registro`` is a duplicate when that id is
    already stored (or earlier here) with the same team and data, a conflict when with other
    data; records with different ids are different records whatever their times (two runners
    tied, three absent). A record without an id repeats one when its team (as first sent)
    holds a record stored without an id with the same timestamp and tiempo, counted as a
    multiset: k equal records in a job store as many as make k such records. A judge the team
    is no longer assigned to may repeat stored records (duplicates, 201), never add one. An
    unexpected error (SQLite's) propagates: the caller rolls back everything this call wrote.
    """
    execute = models.db.execute_sql
    pairs = list({(job[0], job[1]) for job in jobs})
    submitters = {}
    for chunk in models.chunks(pairs, 400):
        for row in execute(_SUBMITTERS_SQL % ", ".join(["(?, ?)"] * len(chunk)),
                           [value for pair in chunk for value in pair]).fetchall():
            submitters[row[0], row[1]] = row

    to_text = models.RegistroTiempo.timestamp.db_value
    keyed = []  # per job: its records as (hex id or None, (timestamp text, tiempo))
    ids, keys = set(), set()
    for user_id, equipo_id, records, *_ in jobs:
        mine = [(r["id_registro"], (to_text(r["timestamp"]), r["tiempo"])) for r in records]
        keyed.append(mine)
        for hex_id, key in mine:
            if hex_id:
                ids.add(hex_id)
            else:
                keys.add((equipo_id,) + key)
    by_id = {}  # hex id -> (equipo_id, timestamp, tiempo)
    for chunk in models.chunks(list(ids), 500):
        for hex_id, *data in execute(_BY_ID_SQL % models.sql_marks(len(chunk)), chunk).fetchall():
            by_id[hex_id] = tuple(data)
    by_key = defaultdict(list)  # (equipo_id, timestamp, tiempo) -> ids of records without one
    for chunk in models.chunks(list(keys), 300):
        for equipo_id, stamp, tiempo, hex_id in execute(
                _BY_KEY_SQL % ", ".join(["(?, ?, ?)"] * len(chunk)),
                [value for key in chunk for value in key]).fetchall():
            by_key[equipo_id, stamp, tiempo].append(hex_id)

    now = models.RegistroTiempo.received_at.db_value(models.utcnow())
    outcomes, rows = [], []
    for job, mine in zip(jobs, keyed):
        user_id, equipo_id = job[0], job[1]
        token_gen = job[3] if len(job) > 3 else None
        protocolo = job[4] if len(job) > 4 else models.PROTOCOLO_GUIA
        revision = job[5] if len(job) > 5 else None
        row = submitters.get((user_id, equipo_id))
        error = _submitter_error(row or _NO_SUBMITTER, equipo_id, token_gen)
        # A team reassigned since: its former judge's retries are answered, nothing is added.
        unassigned = error is not None and error.code == "team_not_assigned"
        if error is not None and not unassigned:
            outcomes.append((False, error))
            continue
        juez_id, competencia_id, started, finished = row[3], row[7], row[8], row[9]
        estado = models.estado_de(started, finished)
        oficial = row[10] is not None  # results official: the record waits for acceptance
        # This job's additions are kept apart until the whole job is accepted.
        new_ids, new_keys, job_rows, created, duplicates = {}, defaultdict(list), [], [], []
        repeated = defaultdict(int)  # records without an id of this job, per key so far
        conflict = None
        for hex_id, key in mine:
            full_key = (equipo_id,) + key
            if hex_id:
                known = new_ids.get(hex_id) or by_id.get(hex_id)
                if known is not None:
                    if known != full_key:
                        conflict = models.Conflict("El id_registro %s ya existe con otros datos."
                                                   % models.uuid_text(hex_id),
                                                   "id_registro_conflict")
                        break
                    duplicates.append(models.uuid_text(hex_id))
                    continue
                new_ids[hex_id] = full_key  # the same id again with other data: a conflict
                sin_id = False
            else:
                stored = by_key.get(full_key, ())
                seen = repeated[full_key]
                repeated[full_key] = seen + 1
                if seen < len(stored):  # the (seen+1)th equal record of this job is stored
                    duplicates.append(models.uuid_text(stored[seen]))
                    continue
                hex_id = uuid.uuid4().hex
                new_keys[full_key].append(hex_id)
                sin_id = True
            job_rows.append((hex_id, equipo_id, juez_id, key[1]) + venue_time.split_tiempo(key[1])
                            + (key[0], now, estado, oficial, sin_id, protocolo, revision))
            created.append(models.uuid_text(hex_id))
        if unassigned and (conflict is not None or created):
            conflict = error  # new records for a team that is not the caller's: refused
        if conflict is not None:
            outcomes.append((False, conflict))
            continue
        by_id.update(new_ids)
        for full_key, added in new_keys.items():
            by_key[full_key].extend(added)
        rows.extend(job_rows)
        outcomes.append((True, {"created": created, "duplicates": duplicates,
                                "competencia_id": competencia_id}))
    for chunk in models.chunks(rows, _INSERT_ROWS):
        execute(_INSERT_SQL % ", ".join([_INSERT_ROW] * len(chunk)),
                [value for row in chunk for value in row])
    return outcomes


def store_submission(user_id, equipo_id, records, token_gen=None):
    """Store one validated submission (see store_submissions). Raises its DomainError.

    Its batched form is store_submissions: the writer runs the consecutive submissions waiting
    in its queue through it, a few statements per commit instead of a few per submission."""
    job = (user_id, equipo_id, records) if token_gen is None else (
        user_id, equipo_id, records, token_gen)
    ok, value = store_submissions([job])[0]
    if not ok:
        raise value
    return value


store_submission.batched = store_submissions  # (read by writer.Writer)


# --------------------------------------------------------------------------------------------
# Movil5K's sets (the second generation of the judges' app, docs/movil5k.md): a team's whole
# set in one request, records with ids and no tap time. The same checks, idempotency and writer
# as the guide's submissions (store_submissions), with two rules of their own below.
# --------------------------------------------------------------------------------------------
def validate_app_set(body, max_records):
    """Check a Movil5K body ``{"registros": [{"id_registro": UUID, "tiempo": int ms, ...}]}``.
    Returns (records, ignored) in validate_submission's form, timestamps still None (the
    writer fills them in). All or nothing, like the guide's: Invalid with per-field errors.
    ``horas``/``minutos``/``segundos``/``milisegundos`` are not read: they are derived from
    ``tiempo``, as for every record."""
    if not isinstance(body, dict):
        raise models.Invalid("El cuerpo debe ser un objeto JSON.", "invalid_body")
    errors, records = {}, []
    registros = _registros(body, errors)
    if registros is not None:
        considered = registros[:max_records]
        for index, raw in enumerate(considered):
            path = "registros.%d" % index
            if isinstance(raw, dict) and raw.get("id_registro") is None:
                errors[path + ".id_registro"] = "Campo obligatorio (un UUID)."
                continue
            # The guide's record rules, with a placeholder tap time (Movil5K sends none).
            probe = dict(raw, timestamp=_VALID_RECORD["timestamp"]) if isinstance(
                raw, dict) else raw
            record = parse_record(probe)
            if record is None:
                errors.update(record_errors(probe, path))
            else:
                records.append(dict(record, timestamp=None))
    if errors:
        raise models.Invalid("Los datos enviados no son válidos; no se guardó nada.",
                             "validation_error", errors)
    return records, len(registros) - len(records)  # (registros is a list: no errors)


_APP_SET_KNOWN_SQL = ("SELECT id_registro, equipo_id, timestamp, revision FROM registro_tiempo "
                      "WHERE id_registro IN (%s)")
_TEAM_COMPETITION_SQL = "SELECT competencia_id FROM equipo WHERE id = ?"
# A team's full set in Movil5K: one record per runner, absent runners (tiempo 0) included; the
# app sends exactly this many or nothing (timer_provider.dart maxParticipantes,
# sync_service.dart syncRegistros).
APP_SET_SIZE = 15


def team_complete(equipo_id, leaving_out=(), set_size=APP_SET_SIZE):
    """Whether team ``equipo_id`` already holds a full set: ``set_size`` records on it now
    (corrections applied: moved in or out, voided) that stand, whoever sent them (either app,
    or the organizer by hand), absent runners included; not counting records waiting for
    review, nor those whose ids are in ``leaving_out`` (the request being stored)."""
    row = models.db.execute_sql(_TEAM_COMPETITION_SQL, (equipo_id,)).fetchone()
    if row is None:
        return False
    state = ledger.competition_state(row[0], equipo_id=equipo_id)
    leaving_out = set(leaving_out)
    standing = sum(1 for record in state["records"]
                   if not (record.anulado or record.pendiente or record.hex_id in leaving_out))
    return standing >= set_size


def store_app_set(user_id, equipo_id, records, token_gen=None, protocolo=models.PROTOCOLO_MOVIL5K):
    """Store a team's set sent without tap times (validate_app_set's records). Runs in the
    writer, as one job: the reads below see every job committed or run before it.

    * A record's ``timestamp`` is when the server first received it (the app sends no tap
      time): a repeat of a stored id keeps the stored one, so a retry is a plain duplicate.
    * A second set: when the team is already complete without this request's records (it
      holds a full set: :func:`team_complete`), the new ones are stored with ``revision =
      segundo_envio``: pending, counted only once an organizer accepts them (a second phone's
      set never silently doubles a team's times). A team holding fewer (a few records from
      the guide's app, a paper time the organizer typed or moved in) takes the set as it
      comes: its records count at once, beside the others, as any app's do.

    Returns store_submissions' result plus ``"revision"``: how many of this request's records
    wait for review. Raises its DomainError (nothing stored) like store_submission.
    """
    execute = models.db.execute_sql
    ids = [r["id_registro"] for r in records]
    known = {}
    for chunk in models.chunks(list(set(ids)), 500):
        sql = _APP_SET_KNOWN_SQL % models.sql_marks(len(chunk))
        for hex_id, team, stamp, revision in execute(sql, chunk).fetchall():
            known[hex_id] = (team, stamp, revision)
    now = models.utcnow()
    stamped = [dict(r, timestamp=dt.datetime.fromisoformat(known[r["id_registro"]][1])
                    if r["id_registro"] in known else now) for r in records]
    new = len(set(ids) - set(known))
    revision = (models.REVISION_SEGUNDO_ENVIO if new and team_complete(equipo_id, ids)
                else None)
    ok, result = store_submissions([(user_id, equipo_id, stamped, token_gen, protocolo,
                                     revision)])[0]
    if not ok:
        raise result
    waiting = sum(1 for team, _, rev in known.values() if team == equipo_id and rev)
    result["revision"] = waiting + (len(result["created"]) if revision else 0)
    return result
