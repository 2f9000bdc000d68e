"""Server5K data and domain rules: the tables, their migrations, and the rules of the race.

This module knows nothing of Tornado or HTTP: the rules here (time splitting, submission
validation, idempotency, race state changes, ranking) are plain functions over Peewee models,
so they can be tested without a server and reused by the command line.

Functions that write are run by the one writer thread (``store.py``), each inside its
transaction; functions that only read run on reader threads or in the command line's process.
Nothing here opens a transaction of its own on the server's behalf.
"""

import base64
import csv
import datetime as dt
import hashlib
import hmac
import io
import logging
import os
import re
import secrets
import unicodedata
import uuid

import peewee as pw
from playhouse.migrate import SqliteMigrator, migrate

log = logging.getLogger("server5k.models")

SCHEMA_VERSION = 3

# Durable commits: in WAL mode synchronous=FULL fsyncs the WAL on every commit, so a commit that
# returned is on disk even if the laptop loses power right after.
PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": 2,  # FULL
    "busy_timeout": 10000,
}

db = pw.SqliteDatabase(None, pragmas=PRAGMAS, lock_type="IMMEDIATE")

MAX_TIEMPO_MS = 24 * 60 * 60 * 1000

ESTADO_PROGRAMADA = "programada"
ESTADO_EN_CURSO = "en_curso"
ESTADO_FINALIZADA = "finalizada"


# --------------------------------------------------------------------------------------------
# Errors of the domain. Handlers map them to HTTP statuses; the CLI prints their detail.
# --------------------------------------------------------------------------------------------
class DomainError(Exception):
    """A rule said no. ``code`` is stable and machine-readable, ``detail`` is for people."""

    code = "error"

    def __init__(self, detail, code=None, errors=None):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.errors = errors


class Unauthenticated(DomainError):
    code = "not_authenticated"


class Invalid(DomainError):
    code = "invalid"


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class Conflict(DomainError):
    code = "conflict"


# --------------------------------------------------------------------------------------------
# Time helpers: every datetime in the database is naive UTC.
# --------------------------------------------------------------------------------------------
def utcnow():
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def iso(value):
    """ISO 8601 UTC with milliseconds and ``Z`` (the wire format), or None."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (value.microsecond // 1000)


_ZULU_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")


def parse_timestamp(text):
    """Parse an ISO 8601 timestamp to naive UTC. ``Z`` or an offset; naive means UTC."""
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise ValueError("not an ISO 8601 timestamp")
    if _ZULU_TIMESTAMP.fullmatch(text):  # the app's own form, UTC: no time zone arithmetic
        return dt.datetime.fromisoformat(text[:-1])
    value = dt.datetime.fromisoformat(text)
    offset = value.utcoffset()
    if offset is not None:
        value = value.replace(tzinfo=None) - offset
    return value


_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def uuid_hex(text):
    """A UUID's 32 lowercase hex digits (how id_registro is stored). ValueError if not a UUID.

    The usual 8-4-4-4-12 form is read without building a uuid.UUID (the hot path reads 15 per
    request); the other spellings uuid.UUID accepts (braces, ``urn:uuid:``, no dashes) still work.
    """
    if len(text) == 36 and _CANONICAL_UUID.fullmatch(text):
        return text.replace("-", "").lower()
    return uuid.UUID(text).hex


def split_tiempo(tiempo_ms):
    """Split elapsed milliseconds into (hours, minutes, seconds, milliseconds)."""
    seconds, ms = divmod(tiempo_ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return hours, minutes, seconds, ms


def format_ms(tiempo_ms):
    """``h:mm:ss.mmm`` (the results format), or None."""
    if tiempo_ms is None:
        return None
    hours, minutes, seconds, ms = split_tiempo(int(tiempo_ms))
    return "%d:%02d:%02d.%03d" % (hours, minutes, seconds, ms)


class UtcDateTimeField(pw.Field):
    """Naive-UTC datetime stored as fixed-width text, so text order is time order."""

    field_type = "TEXT"

    def db_value(self, value):
        if value is None:
            return None
        return value.isoformat(sep=" ", timespec="microseconds")

    def python_value(self, value):
        if value is None:
            return None
        return dt.datetime.fromisoformat(value)


# --------------------------------------------------------------------------------------------
# Passwords: scrypt (stdlib), salted. Slow on purpose: callers run it off the event loop.
# --------------------------------------------------------------------------------------------
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password):
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    b64 = base64.b64encode
    return "scrypt$%d$%d$%d$%s$%s" % (
        SCRYPT_N, SCRYPT_R, SCRYPT_P, b64(salt).decode(), b64(digest).decode())


def verify_password(password, stored):
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError, AttributeError):
        return False
    return hmac.compare_digest(actual, expected)


# A hash of nothing, checked against when the username does not exist, so a login for an
# unknown user costs the same time as one for a real user (no username oracle).
_DUMMY_HASH = None


def _dummy_hash():
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(8))
    return _DUMMY_HASH


def generate_password():
    return secrets.token_urlsafe(9)


def username_key(username):
    """The case-insensitive identity of a username (any Unicode)."""
    return unicodedata.normalize("NFKC", username).casefold().strip()


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
class BaseModel(pw.Model):
    class Meta:
        database = db


class SchemaVersion(BaseModel):
    version = pw.IntegerField()

    class Meta:
        table_name = "schema_version"


class User(BaseModel):
    username = pw.CharField(max_length=150)
    username_key = pw.CharField(max_length=150, unique=True)
    password_hash = pw.CharField()
    is_active = pw.BooleanField(default=True)
    is_organizer = pw.BooleanField(default=False)
    created_at = UtcDateTimeField(default=utcnow)

    class Meta:
        table_name = "user"

    def to_dict(self):
        return {"id": self.id, "username": self.username, "organizador": self.is_organizer}


class Competencia(BaseModel):
    nombre = pw.CharField(max_length=200)
    fecha_hora = UtcDateTimeField(null=True)
    started_at = UtcDateTimeField(null=True)
    finished_at = UtcDateTimeField(null=True)

    class Meta:
        table_name = "competencia"

    @property
    def estado(self):
        return estado_de(self.started_at, self.finished_at)

    def to_dict(self):
        return {
            "id": self.id,
            "nombre": self.nombre,
            "fecha_hora": iso(self.fecha_hora),
            "estado": self.estado,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


def estado_de(started_at, finished_at):
    """The race state is derived from its two timestamps, never stored separately."""
    if started_at is None:
        return ESTADO_PROGRAMADA
    if finished_at is None:
        return ESTADO_EN_CURSO
    return ESTADO_FINALIZADA


class Juez(BaseModel):
    """A judge: the guide's ``juez_profile``, one per user."""

    user = pw.ForeignKeyField(User, unique=True, backref="juez_profile", on_delete="CASCADE")
    competencia = pw.ForeignKeyField(Competencia, backref="jueces", on_delete="CASCADE")
    nombre = pw.CharField(max_length=200)
    is_active = pw.BooleanField(default=True)

    class Meta:
        table_name = "juez"

    def to_dict(self, equipos=None, competencia=None):
        if equipos is None:
            equipos = list(self.equipos.order_by(Equipo.dorsal))
        return {
            "id": self.id,
            "nombre": self.nombre,
            "competencia": (competencia or self.competencia).to_dict(),
            "equipos": [e.to_dict() for e in equipos],
        }


class Equipo(BaseModel):
    competencia = pw.ForeignKeyField(Competencia, backref="equipos", on_delete="CASCADE")
    nombre = pw.CharField(max_length=200)
    dorsal = pw.IntegerField()
    juez = pw.ForeignKeyField(Juez, backref="equipos", null=True, on_delete="SET NULL")

    class Meta:
        table_name = "equipo"
        indexes = ((("competencia", "dorsal"), True),)

    def to_dict(self):
        return {"id": self.id, "nombre": self.nombre, "dorsal": self.dorsal}


class RegistroTiempo(BaseModel):
    """One finish time. Never updated or deleted once stored."""

    id_registro = pw.UUIDField(unique=True)
    # No single-column indexes on these two: the composite indexes below start with equipo, and
    # judges are never deleted. Every index is written on each insert, on race day's hot path.
    equipo = pw.ForeignKeyField(Equipo, backref="registros", on_delete="RESTRICT", index=False)
    juez = pw.ForeignKeyField(Juez, backref="registros", on_delete="RESTRICT", index=False)
    tiempo = pw.IntegerField()
    horas = pw.IntegerField()
    minutos = pw.IntegerField()
    segundos = pw.IntegerField()
    milisegundos = pw.IntegerField()
    timestamp = UtcDateTimeField()
    received_at = UtcDateTimeField()
    # The race state when the server received the record: results flag early records.
    estado_carrera = pw.CharField(max_length=16)

    class Meta:
        table_name = "registro_tiempo"
        indexes = (
            # The idempotency lookup (same team, same timestamp, same tiempo); it also finds a
            # team's records for the results, so no other index on equipo is needed.
            (("equipo", "timestamp", "tiempo"), False),
        )


MODELS = [SchemaVersion, User, Competencia, Juez, Equipo, RegistroTiempo]

# Migrations from version N-1 to N: functions of a SqliteMigrator, run inside one transaction.
# Version 1 is the initial schema created by create_tables.
def _v2_drop_redundant_indexes(migrator):
    """Version 2: registro_tiempo loses its single-column equipo_id and juez_id indexes."""
    migrate(migrator.drop_index("registro_tiempo", "registrotiempo_equipo_id"),
            migrator.drop_index("registro_tiempo", "registrotiempo_juez_id"))


def _v3_drop_equipo_tiempo_index(migrator):
    """Version 3: registro_tiempo loses its (equipo_id, tiempo) index; the results read a team's
    records through (equipo_id, timestamp, tiempo), and every index costs each insert."""
    migrator.database.execute_sql('DROP INDEX IF EXISTS "registrotiempo_equipo_id_tiempo"')


MIGRATIONS = {2: _v2_drop_redundant_indexes, 3: _v3_drop_equipo_tiempo_index}


def open_database(path):
    """Point the models at ``path`` and bring its schema to SCHEMA_VERSION."""
    db.init(str(path), pragmas=PRAGMAS)
    with db.connection_context():
        with db.atomic():
            db.create_tables(MODELS, safe=True)
            row = SchemaVersion.select().first()
            if row is None:
                SchemaVersion.create(version=SCHEMA_VERSION)
                return
            if row.version > SCHEMA_VERSION:
                raise RuntimeError(
                    "database schema version %d is newer than this Server5K (%d)"
                    % (row.version, SCHEMA_VERSION))
            migrator = SqliteMigrator(db)
            for version in range(row.version + 1, SCHEMA_VERSION + 1):
                log.warning("migrating database schema to version %d", version)
                MIGRATIONS[version](migrator)
            if row.version != SCHEMA_VERSION:
                SchemaVersion.update(version=SCHEMA_VERSION).execute()


def get_competencia(competencia_id):
    """The competition row; NotFound (``competition_not_found``) if there is none."""
    comp = Competencia.get_or_none(Competencia.id == competencia_id)
    if comp is None:
        raise NotFound("La competencia %s no existe." % competencia_id, "competition_not_found")
    return comp


# --------------------------------------------------------------------------------------------
# Submissions: validation (pure) and storage (runs in the writer).
# --------------------------------------------------------------------------------------------
def validate_submission(body, max_records):
    """Check a ``enviar_tiempos`` body. Returns (equipo_id, records, ignored).

    Only the first ``max_records`` registros are considered; the rest are counted as ignored.
    Those are validated all-or-nothing: any problem raises Invalid with per-field errors.
    """
    if not isinstance(body, dict):
        raise Invalid("El cuerpo debe ser un objeto JSON.", "invalid_body")
    errors = {}
    equipo_id = body.get("equipo_id")
    if "equipo_id" not in body:
        errors["equipo_id"] = "Campo obligatorio."
    elif not _is_int(equipo_id) or not 1 <= equipo_id <= 2**62:
        errors["equipo_id"] = "Debe ser un entero positivo."
    registros = body.get("registros")
    records = []
    ignored = 0
    if "registros" not in body:
        errors["registros"] = "Campo obligatorio."
    elif not isinstance(registros, list):
        errors["registros"] = "Debe ser una lista."
    elif not registros:
        errors["registros"] = "La lista está vacía."
    else:
        considered = registros[:max_records]
        ignored = len(registros) - len(considered)
        for index, raw in enumerate(considered):
            record = parse_record(raw)
            if record is None:
                errors.update(record_errors(raw, "registros.%d" % index))
            else:
                records.append(record)
    if errors:
        raise Invalid("Los datos enviados no son válidos; no se guardó nada.",
                      "validation_error", errors)
    return equipo_id, records, ignored


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def parse_record(raw):
    """The rules of one record, in one place: its stored form, or None if it is not valid.

    ``{"tiempo": int ms 0..24 h, "timestamp": ISO 8601, "id_registro"?: UUID or null}``;
    returns ``{"tiempo", "timestamp" (naive UTC), "id_registro" (32 hex digits or None)}``.
    Other keys are ignored. Runs fifteen times per submission on the event loop: one pass.
    """
    if type(raw) is not dict:
        return None
    tiempo, stamp, given = raw.get("tiempo"), raw.get("timestamp"), raw.get("id_registro")
    if (type(tiempo) is not int or not 0 <= tiempo <= MAX_TIEMPO_MS or type(stamp) is not str
            or (given is not None and type(given) is not str)):
        return None
    try:
        return {"tiempo": tiempo, "timestamp": parse_timestamp(stamp),
                "id_registro": uuid_hex(given) if given is not None else None}
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
                "Debe estar entre 0 y %d ms (24 h)." % MAX_TIEMPO_MS if _is_int(raw["tiempo"])
                else "Debe ser un entero de milisegundos.")
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
# Who submits, for which team: one row per (user, team) asked about.
_SUBMITTERS_SQL = (
    'WITH req(uid, eid) AS (VALUES %s) '
    'SELECT req.uid, req.eid, u.is_active, j.id, j.is_active, e.id, e.juez_id, c.id, '
    'c.started_at, c.finished_at '
    'FROM req LEFT JOIN "user" AS u ON u.id = req.uid LEFT JOIN juez AS j ON j.user_id = u.id '
    'LEFT JOIN equipo AS e ON e.id = req.eid LEFT JOIN competencia AS c ON c.id = e.competencia_id')
# id_registro is unique across all teams: a known id with other data is a conflict.
_BY_ID_SQL = ("SELECT id_registro, equipo_id, timestamp, tiempo FROM registro_tiempo "
              "WHERE id_registro IN (%s)")
# Same team, same timestamp, same tiempo: one probe of the (equipo, timestamp, tiempo) index per
# record. The join keeps the VALUES list as the outer loop; a row-value
# ``(equipo_id, timestamp, tiempo) IN (VALUES ...)`` makes SQLite 3.40 scan instead
# (tests/test_models.py checks the plans).
_BY_KEY_SQL = ("WITH k(e, ts, t) AS (VALUES %s) "
               "SELECT r.equipo_id, r.timestamp, r.tiempo, r.id_registro "
               "FROM k CROSS JOIN registro_tiempo AS r "
               "ON r.equipo_id = k.e AND r.timestamp = k.ts AND r.tiempo = k.t")
# One multi-row INSERT rather than executemany: one step into SQLite instead of one per record.
_INSERT_SQL = ("INSERT INTO registro_tiempo (id_registro, equipo_id, juez_id, tiempo, horas, "
               "minutos, segundos, milisegundos, timestamp, received_at, estado_carrera) "
               "VALUES %s")
_INSERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_ROWS = 500  # rows per INSERT: 5,500 parameters, far below SQLite's 32,766


def _marks(n):
    return ", ".join("?" * n)


def _chunks(items, size):
    return (items[start:start + size] for start in range(0, len(items), size))


def _uuid_text(hex_id):
    return "%s-%s-%s-%s-%s" % (hex_id[:8], hex_id[8:12], hex_id[12:16], hex_id[16:20],
                               hex_id[20:])


def _submitter_error(row, equipo_id):
    """The DomainError refusing this (user, team) submission, or None if it may store."""
    _, _, user_active, juez_id, juez_active, found_equipo, equipo_juez = row[:7]
    if not user_active:
        return Unauthenticated("El usuario no existe o está inactivo.", "user_inactive")
    if juez_id is None:
        return Forbidden("El usuario no tiene perfil de juez.", "not_a_judge")
    if not juez_active:
        return Forbidden("El juez está inactivo.", "inactive_judge")
    if found_equipo is None:
        return NotFound("El equipo %d no existe." % equipo_id, "team_not_found")
    if equipo_juez != juez_id:
        return Forbidden("El equipo %d no está asignado a este juez." % equipo_id,
                         "team_not_assigned")
    return None


def store_submissions(jobs):
    """Store validated submissions, as if one after another. Runs in the writer.

    ``jobs`` is a list of (user_id, equipo_id, records) with records as validate_submission
    returns them. Returns one (True, {"created": [...], "duplicates": [...], "competencia_id":
    id}) or (False, DomainError) per job, in order. A refused job writes nothing; the others are
    unaffected by it. A record is a duplicate when its id_registro is already stored (or stored by
    an earlier job or record here) for this team with the same data, or when the team already has
    a record with the same timestamp and tiempo. An unexpected error (SQLite's) propagates: the
    caller rolls back everything this call wrote.
    """
    execute = db.execute_sql
    pairs = list({(user_id, equipo_id) for user_id, equipo_id, _ in jobs})
    submitters = {}
    for chunk in _chunks(pairs, 400):
        for row in execute(_SUBMITTERS_SQL % ", ".join(["(?, ?)"] * len(chunk)),
                           [value for pair in chunk for value in pair]).fetchall():
            submitters[row[0], row[1]] = row

    to_text = RegistroTiempo.timestamp.db_value
    keyed = []  # per job: its records as (hex id or None, (timestamp text, tiempo))
    ids, keys = set(), set()
    for user_id, equipo_id, records in jobs:
        mine = [(r["id_registro"], (to_text(r["timestamp"]), r["tiempo"])) for r in records]
        keyed.append(mine)
        for hex_id, key in mine:
            if hex_id:
                ids.add(hex_id)
            keys.add((equipo_id,) + key)
    by_id = {}  # hex id -> (equipo_id, timestamp, tiempo)
    for chunk in _chunks(list(ids), 500):
        for hex_id, *data in execute(_BY_ID_SQL % _marks(len(chunk)), chunk).fetchall():
            by_id[hex_id] = tuple(data)
    by_key = {}  # (equipo_id, timestamp, tiempo) -> hex id
    for chunk in _chunks(list(keys), 300):
        for equipo_id, stamp, tiempo, hex_id in execute(
                _BY_KEY_SQL % ", ".join(["(?, ?, ?)"] * len(chunk)),
                [value for key in chunk for value in key]).fetchall():
            by_key[equipo_id, stamp, tiempo] = hex_id

    now = RegistroTiempo.received_at.db_value(utcnow())
    outcomes, rows = [], []
    for (user_id, equipo_id, _), mine in zip(jobs, keyed):
        row = submitters.get((user_id, equipo_id))
        error = _submitter_error(row, equipo_id) if row else Unauthenticated(
            "El usuario no existe o está inactivo.", "user_inactive")
        if error is not None:
            outcomes.append((False, error))
            continue
        juez_id, competencia_id, started, finished = row[3], row[7], row[8], row[9]
        estado = estado_de(started, finished)
        # This job's additions are kept apart until the whole job is accepted.
        new_ids, new_keys, job_rows, created, duplicates = {}, {}, [], [], []
        for hex_id, key in mine:
            full_key = (equipo_id,) + key
            known = (new_ids.get(hex_id) or by_id.get(hex_id)) if hex_id else None
            if known is not None:
                if known != full_key:
                    error = Conflict("El id_registro %s ya existe con otros datos."
                                     % _uuid_text(hex_id), "id_registro_conflict")
                    break
                duplicates.append(_uuid_text(hex_id))
                continue
            stored_id = new_keys.get(full_key) or by_key.get(full_key)
            if stored_id is not None:  # stored before, or earlier in this same payload
                duplicates.append(_uuid_text(stored_id))
                continue
            hex_id = hex_id or uuid.uuid4().hex
            new_ids[hex_id] = full_key  # the same id again with other data: a conflict
            new_keys[full_key] = hex_id
            job_rows.append((hex_id, equipo_id, juez_id, key[1]) + split_tiempo(key[1])
                            + (key[0], now, estado))
            created.append(_uuid_text(hex_id))
        if error is not None:
            outcomes.append((False, error))
            continue
        by_id.update(new_ids)
        by_key.update(new_keys)
        rows.extend(job_rows)
        outcomes.append((True, {"created": created, "duplicates": duplicates,
                                "competencia_id": competencia_id}))
    for chunk in _chunks(rows, _INSERT_ROWS):
        execute(_INSERT_SQL % ", ".join([_INSERT_ROW] * len(chunk)),
                [value for row in chunk for value in row])
    return outcomes


def store_submission(user_id, equipo_id, records):
    """Store one validated submission (see store_submissions). Raises its DomainError."""
    ok, value = store_submissions([(user_id, equipo_id, records)])[0]
    if not ok:
        raise value
    return value



# --------------------------------------------------------------------------------------------
# Race state changes (run in the writer). Each returns the competition's new dict.
# --------------------------------------------------------------------------------------------
def start_competition(competencia_id):
    comp = get_competencia(competencia_id)
    if comp.estado == ESTADO_EN_CURSO:
        raise Conflict("La carrera ya está en curso.", "race_already_running")
    if comp.estado == ESTADO_FINALIZADA:
        raise Conflict("La carrera ya finalizó; use reiniciar para volver a programarla.",
                       "race_finished")
    comp.started_at = utcnow()
    comp.finished_at = None
    comp.save()
    return comp.to_dict()


def stop_competition(competencia_id):
    comp = get_competencia(competencia_id)
    if comp.estado != ESTADO_EN_CURSO:
        raise Conflict("La carrera no está en curso.", "race_not_running")
    comp.finished_at = utcnow()
    comp.save()
    return comp.to_dict()


def reset_competition(competencia_id, force=False):
    """False start: back to scheduled. Returns (competition dict, changed).

    Refused (Conflict) once records have arrived since started_at, unless forced; a forced reset
    keeps those records, which carry the race state at their receipt.
    """
    comp = get_competencia(competencia_id)
    if comp.estado == ESTADO_PROGRAMADA:
        return comp.to_dict(), False
    if not force:
        received = (RegistroTiempo.select()
                    .join(Equipo)
                    .where((Equipo.competencia == comp.id)
                           & (RegistroTiempo.received_at >= comp.started_at))
                    .count())
        if received:
            raise Conflict(
                "Ya se recibieron %d registros desde la salida; use force para reiniciar "
                "igualmente (los registros se conservan)." % received, "records_since_start")
    comp.started_at = None
    comp.finished_at = None
    comp.save()
    return comp.to_dict(), True


# --------------------------------------------------------------------------------------------
# Reads (run on reader threads).
# --------------------------------------------------------------------------------------------
def authenticate(username, password):
    """The active user with these credentials, or None. Slow (scrypt): never on the loop."""
    if not isinstance(username, str) or not isinstance(password, str):
        return None
    user = User.get_or_none(User.username_key == username_key(username))
    if user is None:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, user.password_hash) or not user.is_active:
        return None
    return user_identity(user.id)


def user_identity(user_id):
    """What a token and ``/api/me/`` say about a user: dict, or None if gone or inactive."""
    user = User.get_or_none(User.id == user_id)
    if user is None or not user.is_active:
        return None
    juez = Juez.get_or_none(Juez.user == user.id)
    return {
        "user": user.to_dict(),
        "juez_id": juez.id if juez is not None else None,
        "juez_active": bool(juez is not None and juez.is_active),
        "competencia_id": juez.competencia_id if juez is not None else None,
    }


def me(user_id):
    user = User.get_or_none(User.id == user_id)
    if user is None or not user.is_active:
        return None
    juez = Juez.get_or_none(Juez.user == user.id)
    return {"user": user.to_dict(), "juez": juez.to_dict() if juez is not None else None}


def competition_dict(competencia_id):
    return get_competencia(competencia_id).to_dict()


def all_competitions():
    return [c.to_dict() for c in Competencia.select().order_by(Competencia.id)]


def competition_judges(competencia_id):
    comp = get_competencia(competencia_id)
    jueces = (Juez.select(Juez, User).join(User)
              .where(Juez.competencia == comp.id).order_by(Juez.id))
    equipos = {}
    for equipo in Equipo.select().where(Equipo.competencia == comp.id).order_by(Equipo.dorsal):
        equipos.setdefault(equipo.juez_id, []).append(equipo.to_dict())
    return comp.to_dict(), [
        {"id": j.id, "nombre": j.nombre, "username": j.user.username, "activo": j.is_active,
         "equipos": equipos.get(j.id, [])}
        for j in jueces
    ]


# --------------------------------------------------------------------------------------------
# Results: the ranking rule (runs on reader threads and in the command line).
# --------------------------------------------------------------------------------------------
def arrived_before_start(received_at, estado_carrera, started_at):
    """Whether a record arrived before the (current) start of its race.

    True when the race has not started, when the record was received before ``started_at``
    (which also covers records of a false start that was reset and started again), or when the
    server stored it while the race was still scheduled (robust to a clock stepped backwards).
    """
    return (started_at is None or received_at < started_at
            or estado_carrera == ESTADO_PROGRAMADA)


def ranking(competencia_id, scored_per_team=15):
    """The standings of a competition: ``{"competencia", "registros_por_equipo", "clasificacion"}``.

    The rule (documented for organizers in the README):

    * a team's score counts its best ``scored_per_team`` times (its lowest ``tiempo``);
    * teams with more counted finishers rank ahead of teams with fewer;
    * then the lower total of the counted times wins;
    * equal (counted finishers, total) share a position, and the next position skips: 1, 2, 2, 4;
    * teams without records come last with ``posicion`` null.

    Teams that share a position, and teams without records, are listed by dorsal. Records that
    arrived before the start (see :func:`arrived_before_start`) count like any other, because
    a finish time is never thrown away silently; ``antes_de_salida`` says how many a team has,
    so the organizer can check them.
    """
    if not _is_int(scored_per_team) or scored_per_team < 1:
        raise ValueError("scored_per_team must be a positive integer")
    comp = get_competencia(competencia_id)
    teams = list(Equipo.select(Equipo.id, Equipo.nombre, Equipo.dorsal)
                 .where(Equipo.competencia == comp.id).tuples())
    times, early = {}, {}
    records = (RegistroTiempo
               .select(RegistroTiempo.equipo, RegistroTiempo.tiempo,
                       RegistroTiempo.received_at, RegistroTiempo.estado_carrera)
               .join(Equipo)
               .where(Equipo.competencia == comp.id)
               .tuples())
    for equipo_id, tiempo, received_at, estado in records:
        times.setdefault(equipo_id, []).append(tiempo)
        if arrived_before_start(received_at, estado, comp.started_at):
            early[equipo_id] = early.get(equipo_id, 0) + 1

    rows = []
    for equipo_id, nombre, dorsal in teams:
        all_times = sorted(times.get(equipo_id, ()))
        counted = all_times[:scored_per_team]
        total = sum(counted) if counted else None
        mean = (total + len(counted) // 2) // len(counted) if counted else None  # half up
        rows.append({
            "posicion": None,
            "equipo_id": equipo_id,
            "equipo": nombre,
            "dorsal": dorsal,
            "registros_contados": len(counted),
            "registros_recibidos": len(all_times),
            "tiempo_total_ms": total,
            "tiempo_total": format_ms(total),
            "mejor_ms": counted[0] if counted else None,
            "mejor": format_ms(counted[0]) if counted else None,
            "promedio_ms": mean,
            "promedio": format_ms(mean),
            "antes_de_salida": early.get(equipo_id, 0),
        })
    rows.sort(key=lambda r: (r["registros_contados"] == 0, -r["registros_contados"],
                             r["tiempo_total_ms"] or 0, r["dorsal"]))
    previous_key = None
    for index, row in enumerate(rows):
        if not row["registros_contados"]:
            break
        key = (row["registros_contados"], row["tiempo_total_ms"])
        row["posicion"] = rows[index - 1]["posicion"] if key == previous_key else index + 1
        previous_key = key
    return {"competencia": comp.to_dict(), "registros_por_equipo": scored_per_team,
            "clasificacion": rows}


# The CSV export's columns, in order: the ranking rows' keys (a spreadsheet gets both the
# readable h:mm:ss.mmm text and the exact milliseconds).
CSV_COLUMNS = ("posicion", "dorsal", "equipo", "equipo_id", "registros_contados",
               "registros_recibidos", "tiempo_total", "tiempo_total_ms", "mejor", "mejor_ms",
               "promedio", "promedio_ms", "antes_de_salida")


def ranking_csv(result):
    """A :func:`ranking` result as CSV text: a header row, then one row per team.

    Starts with a UTF-8 byte order mark so spreadsheets open accented team names correctly;
    empty cells stand for null. Cells that a spreadsheet would run as a formula are quoted
    with a leading apostrophe (CSV injection).
    """
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in result["clasificacion"]:
        writer.writerow([_csv_cell(row[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# --------------------------------------------------------------------------------------------
# Administration (the command line; runs in its own process).
# --------------------------------------------------------------------------------------------
def create_user(username, password, organizer=False):
    if not isinstance(username, str) or not username.strip() or len(username) > 150:
        raise Invalid("El nombre de usuario no es válido.", "invalid_username")
    key = username_key(username)
    if User.select().where(User.username_key == key).exists():
        raise Conflict("El usuario %r ya existe." % username, "username_taken")
    return User.create(username=username.strip(), username_key=key,
                       password_hash=hash_password(password), is_organizer=organizer)


def create_competition(nombre, fecha_hora=None):
    if not nombre or not nombre.strip():
        raise Invalid("El nombre de la competencia no puede estar vacío.", "invalid_name")
    return Competencia.create(nombre=nombre.strip(), fecha_hora=fecha_hora)


def create_judge(username, password, competencia_id, nombre=None):
    comp = get_competencia(competencia_id)
    with db.atomic():
        user = create_user(username, password)
        return Juez.create(user=user, competencia=comp, nombre=(nombre or username).strip())


def create_team(nombre, dorsal, juez_id):
    juez = Juez.get_or_none(Juez.id == juez_id)
    if juez is None:
        raise NotFound("El juez %s no existe." % juez_id, "judge_not_found")
    if not nombre or not nombre.strip():
        raise Invalid("El nombre del equipo no puede estar vacío.", "invalid_name")
    if Equipo.select().where((Equipo.competencia == juez.competencia_id)
                             & (Equipo.dorsal == dorsal)).exists():
        raise Conflict("El dorsal %d ya existe en esta competencia." % dorsal, "dorsal_taken")
    return Equipo.create(nombre=nombre.strip(), dorsal=dorsal, juez=juez,
                         competencia=juez.competencia_id)


def set_password(username, password):
    user = User.get_or_none(User.username_key == username_key(username))
    if user is None:
        raise NotFound("El usuario %r no existe." % username, "user_not_found")
    user.password_hash = hash_password(password)
    user.save()
    return user
