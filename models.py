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
import json
import logging
import os
import re
import secrets
import threading
import time
import unicodedata
import uuid
import zoneinfo
from collections import defaultdict

import peewee as pw
from playhouse.migrate import SqliteMigrator, migrate

log = logging.getLogger("server5k.models")

SCHEMA_VERSION = 8

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

ORIGEN_APP = "app"        # sent by a judge's phone
ORIGEN_MANUAL = "manual"  # a paper time typed in by an organizer

# Which judges' protocol sent an app record (registro_tiempo.protocolo; null for a paper time):
# the integration guide's ``/api/enviar_tiempos/`` or Movil5K's
# ``/api/equipos/{id}/registros/`` (docs/app-contract.md, "Two generations").
PROTOCOLO_GUIA = "guia"
PROTOCOLO_MOVIL5K = "movil5k"
# Why an app record waits for an organizer (registro_tiempo.revision): a team's second set, sent
# (a second phone) after the team already held other records. Stored, never counted until
# accepted (``aceptar``), like a record received while the results were official.
REVISION_SEGUNDO_ENVIO = "segundo_envio"

# A team's standing besides its times: ok, did not start, did not finish, disqualified.
ESTADOS_EQUIPO = ("ok", "dns", "dnf", "dsq")
MAX_MOTIVO = 500


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

    def __reduce__(self):  # whole across processes (a worker's answer), its code included
        return type(self), (self.detail, self.code, self.errors)


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
# What PROTOCOL.md accepts, and nothing more of what datetime.fromisoformat would: a calendar
# date and a time of day (hours and minutes at least; seconds and a fraction of up to nine
# digits, as phones send, optional), then Z, an offset (+01:00 or +0100) or nothing (UTC).
# Refused: week and ordinal dates, the basic format (20250101T000000), a bare date, an hour
# alone, a comma for the decimal point, offsets with seconds, anything after (a NUL, a newline).
_ISO_TIMESTAMP = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ]"
    r"(?P<time>[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.(?P<fraction>[0-9]{1,9}))?)?)"
    r"(?P<zone>Z|[+-][0-9]{2}:?[0-9]{2})?")


def parse_timestamp(text):
    """Parse an ISO 8601 timestamp (the forms _ISO_TIMESTAMP describes) to naive UTC. ``Z`` or
    an offset; naive means UTC. ValueError for anything else."""
    if not isinstance(text, str) or not 16 <= len(text) <= 40:
        raise ValueError("not an ISO 8601 timestamp")
    if _ZULU_TIMESTAMP.fullmatch(text):  # the app's own form, UTC: no time zone arithmetic
        return dt.datetime.fromisoformat(text[:-1])
    match = _ISO_TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError("not an ISO 8601 date and time: %r" % text[:40])
    fraction, zone = match["fraction"], match["zone"]
    time = match["time"][:-len(fraction) - 1] if fraction else match["time"]
    value = dt.datetime.fromisoformat("%sT%s%s%s" % (
        match["date"], time, "." + fraction[:6] if fraction else "",
        "+00:00" if zone == "Z" else zone or ""))
    offset = value.utcoffset()
    if offset is not None:
        value = value.replace(tzinfo=None) - offset
    return value


# The venue's time zone (config ``race.timezone``; None: this machine's). People see local times
# with their offset; the database and the wire stay in UTC.
def zone_named(name):
    """The IANA time zone ``name`` (``Europe/Madrid``). ValueError if there is none by that name."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError("%r is not an IANA time zone name" % (name,)) from None


def machine_zone():
    """This machine's time zone by its IANA name: $TZ, else what /etc/localtime links to, else
    /etc/timezone; else the current whole-hour UTC offset (Etc/GMT-1 for UTC+1), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        link = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in link:
            candidates.append(link.split("/zoneinfo/", 1)[1])
    except OSError:
        pass
    try:
        with open("/etc/timezone", encoding="utf-8") as handle:
            candidates.append(handle.read().strip())
    except OSError:
        pass
    offset = dt.datetime.now().astimezone().utcoffset() or dt.timedelta(0)
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    if not rest:
        candidates.append("Etc/GMT%+d" % -hours if hours else "UTC")
    for name in candidates:
        if name and not name.startswith("/"):
            try:
                return zone_named(name)
            except ValueError:
                continue
    return zoneinfo.ZoneInfo("UTC")


def zone():
    """The venue's time zone (a ZoneInfo, whose ``key`` is its IANA name)."""
    if DEFAULTS["zona"] is None:
        DEFAULTS["zona"] = machine_zone()
    return DEFAULTS["zona"]


def to_local(value):
    """A naive-UTC datetime as an aware datetime in the venue's zone (None stays None)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc).astimezone(zone())


def local_iso(value):
    """Local time with its offset, to the second, for people: ``2026-12-06T09:00:00+01:00``."""
    local = to_local(value)
    return None if local is None else local.isoformat(timespec="seconds")


def parse_local_timestamp(text):
    """An organizer's ISO 8601 date to naive UTC: with ``Z`` or an offset as given; without one,
    in the venue's zone (``2026-12-06T09:00`` is 09:00 there; of a time that a clock change
    makes happen twice, the first). ValueError otherwise. (A judge's app keeps PROTOCOL.md's
    rule, naive is UTC: :func:`parse_timestamp`.)"""
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        raise ValueError("not an ISO 8601 timestamp")
    value = dt.datetime.fromisoformat(text.strip())
    if value.utcoffset() is None:
        value = value.replace(tzinfo=zone())
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


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


# Clock text, the one grammar of it: static/duracion.js is its copy for the console, and both
# are tested on the same table of cases (tests/duration_cases.json). The sign is a plus, a
# hyphen or a minus sign (U+2212, what phones type); the decimal mark a point or a comma.
_DURATION = re.compile(
    r"(?P<sign>[+\-\u2212])?(?:(?P<ms>[0-9]+)(?:ms)?|(?P<secs>[0-9]+(?:[.,][0-9]{1,3})?)s|"
    r"(?:(?P<h>[0-9]+):)?(?P<m>[0-9]{1,2}):(?P<s>[0-9]{1,2}(?:[.,][0-9]{1,3})?))")


def parse_duration(text, signed=False):
    """Milliseconds from what an organizer types: ``1185200`` (ms), ``250ms``, ``+20s``,
    ``-1.5s``, ``19:45.2`` (m:ss.f) or ``0:19:45.200`` (h:mm:ss.mmm); ``,`` for the decimal
    point and ``−`` for the minus too. A sign only when ``signed``. ValueError with a plain
    message otherwise."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or (match["sign"] and not signed):
        raise ValueError("%r is not a time: use milliseconds or clock text such as 19:45.2, "
                         "0:19:45.200%s" % (text, ", +20s or -1.5s" if signed else ""))
    if match["ms"] is not None:
        value = int(match["ms"])
    elif match["secs"] is not None:
        value = round(float(match["secs"].replace(",", ".")) * 1000)
    else:
        seconds = float(match["s"].replace(",", "."))
        if match["h"] is not None and int(match["m"]) > 59 or seconds >= 60:
            raise ValueError("%r is not a time: minutes and seconds go up to 59" % text)
        value = (int(match["h"] or 0) * 3600 + int(match["m"]) * 60) * 1000 + round(
            seconds * 1000)
    return value if match["sign"] in (None, "+") else -value


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
    """Whether ``password`` is the one ``stored`` (an scrypt hash) was made of. A password
    verified in the last VERIFIED_TTL_S is recognised from memory (:class:`_Verified`), so a
    phone that logs in again (500 of them after an access point reboot) costs microseconds, not
    an scrypt each; a wrong password always costs the full scrypt."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        secret = password.encode("utf-8")
        if _VERIFIED.knows(stored, secret):
            return True
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(secret, salt=base64.b64decode(salt),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError, AttributeError):
        return False
    if not hmac.compare_digest(actual, expected):
        return False
    _VERIFIED.remember(stored, secret)
    return True


VERIFIED_TTL_S, VERIFIED_MAX = 12 * 3600, 4096


class _Verified:
    """Passwords verified recently, by the stored hash they matched: an HMAC of each under a key
    made at start-up and never written anywhere, so memory holds no password, and nothing that
    checks a guess without that key. A new password is a new stored hash: nothing remembered for
    the old one ever matches it. At most VERIFIED_MAX entries, the oldest forgotten first.
    (Someone who can read this process's memory has its signing secret too: this adds nothing
    they could not already do.)"""

    def __init__(self):
        self._key = os.urandom(32)
        self._entries = {}  # stored hash -> (HMAC, monotonic time verified); oldest first
        self._lock = threading.Lock()

    def _mac(self, secret):
        return hmac.new(self._key, secret, hashlib.sha256).digest()

    def knows(self, stored, secret):
        with self._lock:
            entry = self._entries.get(stored)
        if entry is None or time.monotonic() - entry[1] > VERIFIED_TTL_S:
            return False
        return hmac.compare_digest(entry[0], self._mac(secret))

    def remember(self, stored, secret):
        mac = self._mac(secret)
        with self._lock:
            self._entries.pop(stored, None)
            self._entries[stored] = (mac, time.monotonic())
            while len(self._entries) > VERIFIED_MAX:
                del self._entries[next(iter(self._entries))]


_VERIFIED = _Verified()


# A hash of nothing, checked against when the username does not exist, so a login for an
# unknown user costs the same time as one for a real user (no username oracle).
_DUMMY_HASH = None


def _dummy_hash():
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(8))
    return _DUMMY_HASH


def generate_password():
    """12 random characters: longer than any password a person must choose (MIN_PASSWORD).
    Never starting with ``-``, which spreadsheets opening a credentials file read as a
    formula (and CSV exports guard with a leading apostrophe)."""
    while True:
        password = secrets.token_urlsafe(9)
        if password[0] != "-":
            return password


MIN_PASSWORD = 8   # a password set by hand (API, command line) is at least this long
MAX_PASSWORD = 1024


def check_password(password, field="password"):
    """A password chosen by a person: text of MIN_PASSWORD to MAX_PASSWORD characters, not
    only spaces. Invalid (``validation_error``, 400) else."""
    if (not isinstance(password, str) or len(password) < MIN_PASSWORD
            or len(password) > MAX_PASSWORD or not password.strip()):
        raise Invalid("La contraseña debe tener entre %d y %d caracteres." % (
            MIN_PASSWORD, MAX_PASSWORD), "validation_error",
            {field: "Al menos %d caracteres." % MIN_PASSWORD})
    return password


def new_password_hash(password):
    """The stored form of a new password, once it passed :func:`check_password`. Slow (scrypt):
    the server runs it on its hashing threads, before the writer job that stores it."""
    return hash_password(check_password(password))


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
    # Tokens carry the generation they were issued in; a password change or a deactivation
    # moves it on, so every token issued before is refused at once.
    token_gen = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])

    class Meta:
        table_name = "user"

    def to_dict(self):
        return {"id": self.id, "username": self.username, "organizador": self.is_organizer}


class Competencia(BaseModel):
    nombre = pw.CharField(max_length=200)
    fecha_hora = UtcDateTimeField(null=True)
    started_at = UtcDateTimeField(null=True)
    finished_at = UtcDateTimeField(null=True)
    # When the results were made official (null: provisional). Like started_at, the current
    # state; every change of it is an Accion row saying who, when, why, before and after.
    oficial_en = UtcDateTimeField(null=True)
    # The event's scoring rule: suma, promedio or puntos; how many times count (null: the
    # server's race.records_scored_per_team); how many finishers a team needs to be ranked.
    regla = pw.CharField(max_length=16, default="suma", constraints=[pw.SQL("DEFAULT 'suma'")])
    contados = pw.IntegerField(null=True)
    minimo = pw.IntegerField(default=1, constraints=[pw.SQL("DEFAULT 1")])
    # Left out of the public index (a test race); its pages still open by their address.
    oculta = pw.BooleanField(default=False, constraints=[pw.SQL("DEFAULT 0")])

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
            "oficial": self.oficial_en is not None,
            "oficial_en": iso(self.oficial_en),
            "oculta": bool(self.oculta),
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
    categoria = pw.CharField(max_length=100, null=True)  # optional: standings per category

    class Meta:
        table_name = "equipo"
        indexes = ((("competencia", "dorsal"), True),)

    def to_dict(self):
        return {"id": self.id, "nombre": self.nombre, "dorsal": self.dorsal}


class RegistroTiempo(BaseModel):
    """One finish time as it arrived. Never updated or deleted once stored: corrections are
    Accion rows, applied on top of it by :func:`competition_state`."""

    id_registro = pw.UUIDField(unique=True)
    # No single-column indexes on these two: the composite indexes below start with equipo, and
    # judges are never deleted. Every index is written on each insert, on race day's hot path.
    equipo = pw.ForeignKeyField(Equipo, backref="registros", on_delete="RESTRICT", index=False)
    # The judge who sent it; null for a paper time typed in by an organizer (origen manual).
    juez = pw.ForeignKeyField(Juez, backref="registros", on_delete="RESTRICT", index=False,
                              null=True)
    tiempo = pw.IntegerField()
    horas = pw.IntegerField()
    minutos = pw.IntegerField()
    segundos = pw.IntegerField()
    milisegundos = pw.IntegerField()
    timestamp = UtcDateTimeField()
    received_at = UtcDateTimeField()
    # The race state when the server received the record: results flag early records.
    estado_carrera = pw.CharField(max_length=16)
    origen = pw.CharField(max_length=8, default=ORIGEN_APP)
    # Received while the results were official: it waits (pendiente) until an organizer accepts.
    oficial_al_recibir = pw.BooleanField(default=False)
    # Sent without an id_registro (the server made its id): only such records are matched by
    # content (team, timestamp, tiempo) when a phone repeats itself (PROTOCOL.md, idempotency).
    sin_id = pw.BooleanField(default=False, constraints=[pw.SQL("DEFAULT 0")])
    # Which judges' protocol sent it (PROTOCOLO_*; null for a paper time) and, when it waits for
    # an organizer for another reason than official results, why (REVISION_*). Version 6.
    protocolo = pw.CharField(max_length=16, null=True)
    revision = pw.CharField(max_length=16, null=True)

    class Meta:
        table_name = "registro_tiempo"
        indexes = (
            # The idempotency lookup (same team, same timestamp, same tiempo); it also finds a
            # team's records for the results, so no other index on equipo is needed.
            (("equipo", "timestamp", "tiempo"), False),
        )


class Accion(BaseModel):
    """One change an organizer made to a competition: its history entry (who, when, why, the
    state before and after) and, for corrections, the correction itself.

    Corrections are data: the standings, the records lists and the team pages apply these rows,
    in order, on top of the records as they arrived (:func:`competition_state`). A correction
    and its history entry are one row, so neither can exist without the other. Rows are only
    ever added. The ``*_id`` columns are plain integers (no foreign keys): history outlives a
    removed test team, and a table rebuild never has to touch it.
    """

    competencia = pw.ForeignKeyField(Competencia, backref="acciones", on_delete="RESTRICT",
                                     index=False)
    # anular, restaurar, mover, corregir, aceptar, manual, ajustar, estado, penalizacion,
    # oficializar, reabrir, iniciar, detener, reiniciar (and the roster's own actions).
    accion = pw.CharField(max_length=32)
    objeto = pw.CharField(max_length=16)        # registro, equipo, competencia, juez
    objeto_id = pw.CharField(max_length=64)     # a record's UUID, else the object's id
    registro_id = pw.IntegerField(null=True)    # registro_tiempo row of a record correction
    equipo_id = pw.IntegerField(null=True)      # target team of mover; team of estado/penalizacion
    juez_id = pw.IntegerField(null=True)        # ajustar: only this judge's records
    valor = pw.IntegerField(null=True)          # corregir: ms; ajustar: delta ms; penalizacion: ms
    texto = pw.CharField(max_length=16, null=True)  # estado: ok, dns, dnf, dsq
    usuario = pw.ForeignKeyField(User, null=True, on_delete="RESTRICT", index=False)
    en = UtcDateTimeField(default=utcnow)
    motivo = pw.TextField(null=True)
    antes = pw.TextField(null=True)             # JSON
    despues = pw.TextField(null=True)           # JSON

    class Meta:
        table_name = "accion"
        indexes = (
            (("competencia", "id"), False),     # a competition's history, in order
            (("registro_id",), False),          # a record's history
            (("equipo_id",), False),            # a team's estado, penalty and moves
        )


class AvisoSalida(BaseModel):
    """When the server first handed a judge's app ``carrera.iniciada`` (broadcast or replay),
    one row per judge and server process at most: the judges board keeps a judge's first
    notice of the current start across restarts (ORGANIZER.md). Plain integers, like Accion's."""

    competencia_id = pw.IntegerField()
    juez_id = pw.IntegerField()
    en = UtcDateTimeField()

    class Meta:
        table_name = "aviso_salida"
        indexes = ((("competencia_id", "juez_id", "en"), False),)


class TokenRevocado(BaseModel):
    """A token ended before its time by a logout (``POST /api/logout/``): its ``jti`` is
    refused from then on, also after a restart (the server loads the unexpired ones)."""

    jti = pw.CharField(max_length=64, unique=True)
    user = pw.IntegerField()
    expira_en = UtcDateTimeField()
    revocado_en = UtcDateTimeField(default=utcnow)

    class Meta:
        table_name = "token_revocado"


MODELS = [SchemaVersion, User, Competencia, Juez, Equipo, RegistroTiempo, Accion, AvisoSalida,
          TokenRevocado]

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


# Version 4's registro_tiempo, as create_tables makes it (tests/test_models.py compares).
_V4_REGISTRO_TIEMPO = (
    'CREATE TABLE "registro_tiempo_v4" ("id" INTEGER NOT NULL PRIMARY KEY, '
    '"id_registro" TEXT NOT NULL, "equipo_id" INTEGER NOT NULL, "juez_id" INTEGER, '
    '"tiempo" INTEGER NOT NULL, "horas" INTEGER NOT NULL, "minutos" INTEGER NOT NULL, '
    '"segundos" INTEGER NOT NULL, "milisegundos" INTEGER NOT NULL, "timestamp" TEXT NOT NULL, '
    '"received_at" TEXT NOT NULL, "estado_carrera" VARCHAR(16) NOT NULL, '
    '"origen" VARCHAR(8) NOT NULL, "oficial_al_recibir" INTEGER NOT NULL, '
    'FOREIGN KEY ("equipo_id") REFERENCES "equipo" ("id") ON DELETE RESTRICT, '
    'FOREIGN KEY ("juez_id") REFERENCES "juez" ("id") ON DELETE RESTRICT)')
_V3_COLUMNS = ("id, id_registro, equipo_id, juez_id, tiempo, horas, minutos, segundos, "
               "milisegundos, timestamp, received_at, estado_carrera")


def _v4_corrections(migrator):
    """Version 4: corrections, roster and scoring rules. registro_tiempo gains ``origen`` and
    ``oficial_al_recibir`` and its juez_id may be null (paper times), which SQLite can only do
    by rebuilding the table: every row is copied as it is; competencia gains ``oficial_en`` and
    its scoring rule, equipo its ``categoria``, user its ``token_gen``; the accion table is new
    (made by create_tables)."""
    database = migrator.database
    columns = {c.name for c in database.get_columns("registro_tiempo")}
    if "origen" not in columns:
        database.execute_sql(_V4_REGISTRO_TIEMPO)
        database.execute_sql('INSERT INTO "registro_tiempo_v4" (%s, origen, oficial_al_recibir) '
                             'SELECT %s, ?, 0 FROM "registro_tiempo"' % (_V3_COLUMNS, _V3_COLUMNS),
                             [ORIGEN_APP])
        database.execute_sql('DROP TABLE "registro_tiempo"')
        database.execute_sql('ALTER TABLE "registro_tiempo_v4" RENAME TO "registro_tiempo"')
        database.execute_sql('CREATE UNIQUE INDEX "registrotiempo_id_registro" '
                             'ON "registro_tiempo" ("id_registro")')
        database.execute_sql('CREATE INDEX "registrotiempo_equipo_id_timestamp_tiempo" '
                             'ON "registro_tiempo" ("equipo_id", "timestamp", "tiempo")')
    for table, column, ddl in (
            ("competencia", "oficial_en", "TEXT"),
            ("competencia", "regla", "VARCHAR(16) NOT NULL DEFAULT 'suma'"),
            ("competencia", "contados", "INTEGER"),
            ("competencia", "minimo", "INTEGER NOT NULL DEFAULT 1"),
            ("equipo", "categoria", "VARCHAR(100)"),
            ("user", "token_gen", "INTEGER NOT NULL DEFAULT 0")):
        if column not in {c.name for c in database.get_columns(table)}:
            database.execute_sql('ALTER TABLE "%s" ADD COLUMN "%s" %s' % (table, column, ddl))


def _v5_records_without_id(migrator):
    """Version 5: registro_tiempo says which records came without an id_registro. Earlier
    versions did not keep it; their app records were all matched by content, so they keep
    being (sin_id 1), paper times never are."""
    database = migrator.database
    if "sin_id" not in {c.name for c in database.get_columns("registro_tiempo")}:
        database.execute_sql('ALTER TABLE "registro_tiempo" ADD COLUMN "sin_id" INTEGER '
                             'NOT NULL DEFAULT 0')
        database.execute_sql("UPDATE registro_tiempo SET sin_id = 1 WHERE origen = ?",
                             [ORIGEN_APP])


def _v6_accion_equipo_index(migrator):
    """Version 6: accion gains an index on equipo_id. A team's estado, penalty and moves were
    looked up by scanning the competition's whole history, once per team: a roster of 5,000
    teams took 10 s to preview (issue 22)."""
    if migrator.database.table_exists("accion"):  # (else create_tables makes it, indexed)
        migrator.database.execute_sql('CREATE INDEX IF NOT EXISTS "accion_equipo_id" '
                                      'ON "accion" ("equipo_id")')


def _v7_hidden_competitions(migrator):
    """Version 7: competencia gains ``oculta`` (left out of the public index)."""
    database = migrator.database
    if "oculta" not in {c.name for c in database.get_columns("competencia")}:
        database.execute_sql('ALTER TABLE "competencia" ADD COLUMN "oculta" INTEGER NOT NULL '
                             'DEFAULT 0')


def _v8_protocols(migrator):
    """Version 8: registro_tiempo gains ``protocolo`` (every app record stored so far came
    through the integration guide's endpoint) and ``revision``; the token_revocado table is new
    (made by create_tables)."""
    database = migrator.database
    columns = {c.name for c in database.get_columns("registro_tiempo")}
    for column in ("protocolo", "revision"):
        if column not in columns:
            database.execute_sql('ALTER TABLE "registro_tiempo" ADD COLUMN "%s" VARCHAR(16)'
                                 % column)
    database.execute_sql('UPDATE "registro_tiempo" SET protocolo = ? WHERE origen = ? '
                         'AND protocolo IS NULL', [PROTOCOLO_GUIA, ORIGEN_APP])


MIGRATIONS = {2: _v2_drop_redundant_indexes, 3: _v3_drop_equipo_tiempo_index,
              4: _v4_corrections, 5: _v5_records_without_id, 6: _v6_accion_equipo_index,
              7: _v7_hidden_competitions, 8: _v8_protocols}


def open_database(path):
    """Point the models at ``path`` and bring its schema to SCHEMA_VERSION.

    A folder that does not exist, or a file SQLite cannot open, is an Invalid naming the path
    (the command line prints it as one line)."""
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    if path != ":memory:" and not os.path.isdir(folder):
        raise Invalid("database.path %s: the folder %s does not exist; create it or choose "
                      "another path" % (path, folder), "database_folder_missing")
    db.init(path, pragmas=PRAGMAS)
    try:
        _open_schema()
    except pw.OperationalError as exc:
        raise Invalid("cannot open the database %s: %s" % (path, exc),
                      "database_unusable") from None


def _open_schema():
    with db.connection_context():
        with db.atomic():
            # An existing database is migrated first, so create_tables below only adds the
            # tables (and indexes) a version introduced, never meets a table of an older shape.
            row = (SchemaVersion.select().first()
                   if db.table_exists(SchemaVersion._meta.table_name) else None)
            if row is not None:
                if row.version > SCHEMA_VERSION:
                    raise RuntimeError(
                        "database schema version %d is newer than this Server5K (%d)"
                        % (row.version, SCHEMA_VERSION))
                migrator = SqliteMigrator(db)
                for version in range(row.version + 1, SCHEMA_VERSION + 1):
                    log.warning("migrating database schema to version %d", version)
                    MIGRATIONS[version](migrator)
            db.create_tables(MODELS, safe=True)
            if row is None:
                SchemaVersion.create(version=SCHEMA_VERSION)
            elif row.version != SCHEMA_VERSION:
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
    'c.started_at, c.finished_at, c.oficial_en, u.token_gen '
    'FROM req LEFT JOIN "user" AS u ON u.id = req.uid LEFT JOIN juez AS j ON j.user_id = u.id '
    'LEFT JOIN equipo AS e ON e.id = req.eid LEFT JOIN competencia AS c ON c.id = e.competencia_id')
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


def _marks(n):
    return ", ".join("?" * n)


def _chunks(items, size):
    return (items[start:start + size] for start in range(0, len(items), size))


def _uuid_text(hex_id):
    return "%s-%s-%s-%s-%s" % (hex_id[:8], hex_id[8:12], hex_id[12:16], hex_id[16:20],
                               hex_id[20:])


def _submitter_error(row, equipo_id, token_gen):
    """The DomainError refusing this (user, team) submission, or None if it may store."""
    _, _, user_active, juez_id, juez_active, found_equipo, equipo_juez = row[:7]
    if not user_active:
        return Unauthenticated("El usuario no existe o está inactivo.", "user_inactive")
    if token_gen is not None and token_gen != row[11]:
        return Unauthenticated(TOKEN_REVOKED, "token_revoked")
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
    execute = db.execute_sql
    pairs = list({(job[0], job[1]) for job in jobs})
    submitters = {}
    for chunk in _chunks(pairs, 400):
        for row in execute(_SUBMITTERS_SQL % ", ".join(["(?, ?)"] * len(chunk)),
                           [value for pair in chunk for value in pair]).fetchall():
            submitters[row[0], row[1]] = row

    to_text = RegistroTiempo.timestamp.db_value
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
    for chunk in _chunks(list(ids), 500):
        for hex_id, *data in execute(_BY_ID_SQL % _marks(len(chunk)), chunk).fetchall():
            by_id[hex_id] = tuple(data)
    by_key = defaultdict(list)  # (equipo_id, timestamp, tiempo) -> ids of records without one
    for chunk in _chunks(list(keys), 300):
        for equipo_id, stamp, tiempo, hex_id in execute(
                _BY_KEY_SQL % ", ".join(["(?, ?, ?)"] * len(chunk)),
                [value for key in chunk for value in key]).fetchall():
            by_key[equipo_id, stamp, tiempo].append(hex_id)

    now = RegistroTiempo.received_at.db_value(utcnow())
    outcomes, rows = [], []
    for job, mine in zip(jobs, keyed):
        user_id, equipo_id = job[0], job[1]
        token_gen = job[3] if len(job) > 3 else None
        protocolo = job[4] if len(job) > 4 else PROTOCOLO_GUIA
        revision = job[5] if len(job) > 5 else None
        row = submitters.get((user_id, equipo_id))
        error = _submitter_error(row, equipo_id, token_gen) if row else Unauthenticated(
            "El usuario no existe o está inactivo.", "user_inactive")
        # A team reassigned since: its former judge's retries are answered, nothing is added.
        unassigned = error is not None and error.code == "team_not_assigned"
        if error is not None and not unassigned:
            outcomes.append((False, error))
            continue
        juez_id, competencia_id, started, finished = row[3], row[7], row[8], row[9]
        estado = estado_de(started, finished)
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
                        conflict = Conflict("El id_registro %s ya existe con otros datos."
                                            % _uuid_text(hex_id), "id_registro_conflict")
                        break
                    duplicates.append(_uuid_text(hex_id))
                    continue
                new_ids[hex_id] = full_key  # the same id again with other data: a conflict
                sin_id = False
            else:
                stored = by_key.get(full_key, ())
                seen = repeated[full_key]
                repeated[full_key] = seen + 1
                if seen < len(stored):  # the (seen+1)th equal record of this job is stored
                    duplicates.append(_uuid_text(stored[seen]))
                    continue
                hex_id = uuid.uuid4().hex
                new_keys[full_key].append(hex_id)
                sin_id = True
            job_rows.append((hex_id, equipo_id, juez_id, key[1]) + split_tiempo(key[1])
                            + (key[0], now, estado, oficial, sin_id, protocolo, revision))
            created.append(_uuid_text(hex_id))
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
    for chunk in _chunks(rows, _INSERT_ROWS):
        execute(_INSERT_SQL % ", ".join([_INSERT_ROW] * len(chunk)),
                [value for row in chunk for value in row])
    return outcomes


def store_submission(user_id, equipo_id, records, token_gen=None):
    """Store one validated submission (see store_submissions). Raises its DomainError."""
    job = (user_id, equipo_id, records) if token_gen is None else (
        user_id, equipo_id, records, token_gen)
    ok, value = store_submissions([job])[0]
    if not ok:
        raise value
    return value


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
        raise Invalid("El cuerpo debe ser un objeto JSON.", "invalid_body")
    registros = body.get("registros")
    errors, records = {}, []
    if "registros" not in body:
        errors["registros"] = "Campo obligatorio."
    elif not isinstance(registros, list):
        errors["registros"] = "Debe ser una lista."
    elif not registros:
        errors["registros"] = "La lista está vacía."
    else:
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
        raise Invalid("Los datos enviados no son válidos; no se guardó nada.",
                      "validation_error", errors)
    return records, len(registros) - len(records)


_APP_SET_KNOWN_SQL = ("SELECT id_registro, equipo_id, timestamp, revision FROM registro_tiempo "
                      "WHERE id_registro IN (%s)")
_TEAM_HOLDS_SQL = "SELECT COUNT(*) FROM registro_tiempo WHERE equipo_id = ?"


def store_app_set(user_id, equipo_id, records, token_gen=None, protocolo=PROTOCOLO_MOVIL5K):
    """Store a team's set sent without tap times (validate_app_set's records). Runs in the
    writer, as one job: the reads below see every job committed or run before it.

    * A record's ``timestamp`` is when the server first received it (the app sends no tap
      time): a repeat of a stored id keeps the stored one, so a retry is a plain duplicate.
    * A second set: when the team already holds records other than this request's, the new
      ones are stored with ``revision = segundo_envio``: pending, counted only once an
      organizer accepts them (a second phone's set never silently doubles a team's times).

    Returns store_submissions' result plus ``"revision"``: how many of this request's records
    wait for review. Raises its DomainError (nothing stored) like store_submission.
    """
    execute = db.execute_sql
    ids = [r["id_registro"] for r in records]
    known = {}
    for chunk in _chunks(list(set(ids)), 500):
        for hex_id, team, stamp, revision in execute(_APP_SET_KNOWN_SQL % _marks(len(chunk)),
                                                     chunk).fetchall():
            known[hex_id] = (team, stamp, revision)
    now = utcnow()
    stamped = [dict(r, timestamp=dt.datetime.fromisoformat(known[r["id_registro"]][1])
                    if r["id_registro"] in known else now) for r in records]
    held = execute(_TEAM_HOLDS_SQL, (equipo_id,)).fetchone()[0]
    mine = sum(1 for team, _, _ in known.values() if team == equipo_id)
    new = len(set(ids) - set(known))
    revision = REVISION_SEGUNDO_ENVIO if new and held > mine else None
    ok, result = store_submissions([(user_id, equipo_id, stamped, token_gen, protocolo,
                                     revision)])[0]
    if not ok:
        raise result
    waiting = sum(1 for team, _, rev in known.values() if team == equipo_id and rev)
    result["revision"] = waiting + (len(result["created"]) if revision else 0)
    return result


def end_session(tokens_claims):
    """Record the end of a session's tokens before their time (a logout: its refresh and access
    tokens); repeating it is a no-op. Runs in the writer. ``tokens_claims`` are the tokens'
    verified claims. (Unlike revoke_tokens, the user's other sessions keep working.)"""
    for claims in tokens_claims:
        expira = dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc).replace(tzinfo=None)
        (TokenRevocado.insert(jti=str(claims["jti"]), user=claims["user_id"], expira_en=expira)
         .on_conflict_ignore().execute())


def revoked_tokens():
    """{jti: expiry as a Unix time} of the revoked tokens that have not expired yet."""
    now = utcnow()
    return {jti: expira.replace(tzinfo=dt.timezone.utc).timestamp()
            for jti, expira in TokenRevocado.select(TokenRevocado.jti, TokenRevocado.expira_en)
            .where(TokenRevocado.expira_en > now).tuples()}


def judge_teams(user_id, competencia_id=None):
    """The teams a user times, as the second generation lists them: a judge's own (by dorsal),
    every team for an organizer; optionally of one competition. Each: the team object, its
    ``categoria``, ``competencia_id``, ``competencia_nombre`` and ``juez_username``.
    Forbidden for a user who is neither (or an inactive judge)."""
    user = User.get_or_none(User.id == user_id)
    if user is None or not user.is_active:
        raise Unauthenticated("El usuario no existe o está inactivo.", "user_inactive")
    query = (Equipo.select(Equipo, Competencia.nombre.alias("competencia_nombre"),
                           User.username.alias("juez_username"))
             .join(Competencia).switch(Equipo).join(Juez, pw.JOIN.LEFT_OUTER)
             .join(User, pw.JOIN.LEFT_OUTER))
    if not user.is_organizer:
        juez = Juez.get_or_none(Juez.user == user.id)
        if juez is None:
            raise Forbidden("El usuario no tiene perfil de juez.", "not_a_judge")
        if not juez.is_active:
            raise Forbidden("El juez está inactivo.", "inactive_judge")
        query = query.where(Equipo.juez == juez.id)
    if competencia_id is not None:
        query = query.where(Equipo.competencia == competencia_id)
    return [dict(e.to_dict(), categoria=e.categoria, competencia_id=e.competencia_id,
                 competencia_nombre=e.competencia_nombre, juez_username=e.juez_username)
            for e in query.order_by(Equipo.competencia, Equipo.dorsal).objects()]



# --------------------------------------------------------------------------------------------
# Race state changes (run in the writer). Each returns the competition's new dict.
# --------------------------------------------------------------------------------------------
def _history(comp, accion, objeto, objeto_id, user_id, motivo=None, antes=None, despues=None,
             **payload):
    """Add the Accion row of a change (run by the writer, inside the change's transaction)."""
    return Accion.create(competencia=comp if isinstance(comp, int) else comp.id, accion=accion,
                         objeto=objeto, objeto_id=str(objeto_id), usuario=user_id, en=utcnow(),
                         motivo=motivo, antes=_json(antes), despues=_json(despues), **payload)


def _json(value):
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _race_state(comp):
    return {"estado": comp.estado, "started_at": iso(comp.started_at),
            "finished_at": iso(comp.finished_at)}


def start_competition(competencia_id, user_id=None):
    comp = get_competencia(competencia_id)
    if comp.estado == ESTADO_EN_CURSO:
        raise Conflict("La carrera ya está en curso.", "race_already_running")
    if comp.estado == ESTADO_FINALIZADA:
        raise Conflict("La carrera ya finalizó; use reiniciar para volver a programarla.",
                       "race_finished")
    before = _race_state(comp)
    comp.started_at = utcnow()
    comp.finished_at = None
    comp.save()
    _history(comp, "iniciar", "competencia", comp.id, user_id, None, before, _race_state(comp))
    return comp.to_dict()


def stop_competition(competencia_id, user_id=None):
    comp = get_competencia(competencia_id)
    if comp.estado != ESTADO_EN_CURSO:
        raise Conflict("La carrera no está en curso.", "race_not_running")
    before = _race_state(comp)
    comp.finished_at = utcnow()
    comp.save()
    _history(comp, "detener", "competencia", comp.id, user_id, None, before, _race_state(comp))
    return comp.to_dict()


def reset_competition(competencia_id, force=False, user_id=None):
    """False start: back to scheduled. Returns (competition dict, changed).

    Refused (Conflict) once records have arrived since started_at, unless forced; a forced reset
    keeps those records, which carry the race state at their receipt.
    """
    comp = get_competencia(competencia_id)
    if comp.estado == ESTADO_PROGRAMADA:
        return comp.to_dict(), False
    if comp.oficial_en is not None:
        raise Conflict("Los resultados son oficiales; reábralos antes de reiniciar la carrera.",
                       "results_official")
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
    before = _race_state(comp)
    comp.started_at = None
    comp.finished_at = None
    comp.save()
    _history(comp, "reiniciar", "competencia", comp.id, user_id, None, before,
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
        raise Invalid("Falta el motivo de la corrección.", "validation_error",
                      {"motivo": "Obligatorio: diga por qué (texto, hasta %d caracteres)."
                       % MAX_MOTIVO})
    if len(motivo) > MAX_MOTIVO:
        raise Invalid("El motivo es demasiado largo.", "validation_error",
                      {"motivo": "Hasta %d caracteres." % MAX_MOTIVO})
    return motivo.strip()


def check_tiempo(value, field="tiempo"):
    """A time in ms as stored: a JSON integer 0..24 h. Invalid else."""
    if not _is_int(value) or not 0 <= value <= MAX_TIEMPO_MS:
        raise Invalid("El tiempo no es válido.", "validation_error",
                      {field: "Debe ser un entero de milisegundos entre 0 y %d (24 h)."
                       % MAX_TIEMPO_MS})
    return value


def get_registro(id_registro):
    """The stored record with this UUID (text); NotFound (``record_not_found``) otherwise."""
    try:
        hex_id = uuid_hex(id_registro) if isinstance(id_registro, str) else None
    except ValueError:
        hex_id = None
    row = hex_id and RegistroTiempo.get_or_none(RegistroTiempo.id_registro == hex_id)
    if not row:
        raise NotFound("El registro %s no existe." % str(id_registro)[:64], "record_not_found")
    return row


def _team_of_competition(equipo_id, competencia_id, field="equipo_id"):
    if not _is_int(equipo_id) or not 1 <= equipo_id <= 2**62:
        raise Invalid("El equipo no es válido.", "validation_error",
                      {field: "Debe ser el id (entero) de un equipo."})
    equipo = Equipo.get_or_none(Equipo.id == equipo_id)
    if equipo is None:
        raise NotFound("El equipo %d no existe." % equipo_id, "team_not_found")
    if equipo.competencia_id != competencia_id:
        raise Invalid("El equipo %d es de otra competencia." % equipo_id,
                      "team_other_competition",
                      {field: "Debe ser un equipo de esta competencia."})
    return equipo


def _record_change(accion, user_id, id_registro, motivo, change):
    """Apply one record correction: ``change(record object, competencia_id)`` returns the
    Accion payload, or None when there is nothing to change (a no-op: no history entry).
    Returns (competencia_id, the record object after)."""
    motivo = check_motivo(motivo)
    row = get_registro(id_registro)
    competencia_id = Equipo.get_by_id(row.equipo_id).competencia_id
    before = record_view(row)
    payload = change(before, competencia_id)
    if payload is None:
        return competencia_id, before
    entry = _history(competencia_id, accion, "registro", before["id"], user_id, motivo,
                     _record_summary(before), None, registro_id=row.id, **payload)
    after = record_view(row)
    # The state after is the fold with this very row, so it is filled in once the row exists,
    # before the transaction commits: no one ever sees the entry without it.
    entry.despues = _json(_record_summary(after))
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
            raise Conflict("El registro no está pendiente.", "record_not_pending")
        return {}
    return _record_change("aceptar", user_id, id_registro, motivo, change)


def edit_record(user_id, id_registro, motivo, equipo_id=None, tiempo=None):
    """Move a record to another team of its competition and/or correct the time that counts.

    ``tiempo`` is the time that counts from now on (adjustments made later still add to it).
    Both changes in one call are two history entries (mover, then corregir). Returns
    (competencia_id, the record object after).
    """
    if equipo_id is None and tiempo is None:
        raise Invalid("Nada que cambiar: indique equipo_id y/o tiempo.", "validation_error",
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
    comp = get_competencia(competencia_id)
    check_tiempo(tiempo)
    motivo = check_motivo(motivo)
    equipo = _team_of_competition(equipo_id, comp.id)
    if timestamp is None:
        timestamp = (comp.started_at + dt.timedelta(milliseconds=tiempo)
                     if comp.started_at is not None else utcnow())
    row = RegistroTiempo.create(
        id_registro=uuid.uuid4(), equipo=equipo.id, juez=None, tiempo=tiempo,
        **dict(zip(("horas", "minutos", "segundos", "milisegundos"), split_tiempo(tiempo))),
        timestamp=timestamp, received_at=utcnow(), estado_carrera=comp.estado,
        origen=ORIGEN_MANUAL, oficial_al_recibir=False)
    record = record_view(row)
    _history(comp, "manual", "registro", record["id"], user_id, motivo, None,
             _record_summary(record), registro_id=row.id, equipo_id=equipo.id, valor=tiempo)
    return comp.id, record


def shift_times(user_id, competencia_id, delta_ms, motivo, juez_id=None):
    """Add ``delta_ms`` to the counted time of every app record of the competition (or of one
    judge's), stored and still to come; a paper time (origen manual) is never shifted. Without a judge it is a late or early start, so
    started_at moves back by ``delta_ms`` too. Returns (competition dict, records affected).
    """
    comp = get_competencia(competencia_id)
    if not _is_int(delta_ms) or delta_ms == 0 or abs(delta_ms) > MAX_TIEMPO_MS:
        raise Invalid("El ajuste no es válido.", "validation_error",
                      {"delta_ms": "Un entero de milisegundos distinto de 0, hasta 24 h."})
    motivo = check_motivo(motivo)
    if juez_id is not None:
        juez = (Juez.get_or_none(Juez.id == juez_id)
                if _is_int(juez_id) and 1 <= juez_id <= 2**62 else None)  # SQLite: 64-bit ids
        if juez is None or juez.competencia_id != comp.id:
            raise NotFound("El juez %s no es de esta competencia." % juez_id, "judge_not_found")
    records = competition_state(comp.id)["records"]
    affected = [r for r in records if r.origen != ORIGEN_MANUAL  # paper times never move
                and (juez_id is None or r.juez_id == juez_id)]
    negative = [r for r in affected if not r.ausente and r.tiempo + delta_ms < 0]
    if negative:
        raise Conflict("El ajuste dejaría %d tiempos en negativo (p. ej. el registro %s)."
                       % (len(negative), _uuid_text(negative[0].hex_id)), "negative_time")
    before = after = None
    if juez_id is None:
        if comp.started_at is None:
            raise Conflict("La carrera no ha salido: no hay salida que ajustar.",
                           "race_not_started")
        new_start = comp.started_at - dt.timedelta(milliseconds=delta_ms)
        if new_start > (comp.finished_at or utcnow()):
            raise Conflict("La salida quedaría después del final (o en el futuro).",
                           "start_after_end")
        before = {"started_at": iso(comp.started_at)}
        comp.started_at = new_start
        comp.save()
        after = {"started_at": iso(comp.started_at)}
    _history(comp, "ajustar", "juez" if juez_id is not None else "competencia",
             juez_id if juez_id is not None else comp.id, user_id, motivo,
             dict(before or {}, delta_ms=0), dict(after or {}, delta_ms=delta_ms),
             juez_id=juez_id, valor=delta_ms)
    return comp.to_dict(), len(affected)


def set_team_status(user_id, equipo_id, estado, motivo):
    """A team's estado: ok, dns, dnf or dsq (the last three are listed unranked)."""
    if estado not in ESTADOS_EQUIPO:
        raise Invalid("Estado de equipo desconocido.", "validation_error",
                      {"estado": "Debe ser uno de: %s." % ", ".join(ESTADOS_EQUIPO)})
    return _team_change("estado", user_id, equipo_id, motivo, "estado", estado, texto=estado)


def set_team_penalty(user_id, equipo_id, ms, motivo):
    """A time penalty (signed ms, 0 clears) added to the team's total."""
    if not _is_int(ms) or abs(ms) > MAX_TIEMPO_MS:
        raise Invalid("La penalización no es válida.", "validation_error",
                      {"ms": "Un entero de milisegundos (con signo; 0 la quita), hasta 24 h."})
    return _team_change("penalizacion", user_id, equipo_id, motivo, "penalizacion_ms", ms,
                        valor=ms)


def _team_change(accion, user_id, equipo_id, motivo, key, value, **payload):
    motivo = check_motivo(motivo)
    equipo = Equipo.get_or_none(Equipo.id == equipo_id)
    if equipo is None:
        raise NotFound("El equipo %s no existe." % equipo_id, "team_not_found")
    before = team_view(equipo)
    if before[key] == value:
        return before
    _history(equipo.competencia_id, accion, "equipo", equipo.id, user_id, motivo,
             {key: before[key]}, {key: value}, equipo_id=equipo.id, **payload)
    return team_view(equipo)


def make_official(user_id, competencia_id, motivo=None):
    """Freeze what counts: later arrivals are stored but wait (pendiente). Already official:
    no-op. Returns (competition dict, changed)."""
    comp = get_competencia(competencia_id)
    motivo = check_motivo(motivo, required=False)
    if comp.oficial_en is not None:
        return comp.to_dict(), False
    if comp.estado != ESTADO_FINALIZADA:
        raise Conflict("Detenga la carrera antes de oficializar los resultados.",
                       "race_not_finished")
    comp.oficial_en = utcnow()
    comp.save()
    _history(comp, "oficializar", "competencia", comp.id, user_id, motivo, {"oficial": False},
             {"oficial": True, "oficial_en": iso(comp.oficial_en)})
    return comp.to_dict(), True


def reopen_results(user_id, competencia_id, motivo):
    """Back to provisional results (records that waited stay pending until accepted). Not
    official: no-op. Returns (competition dict, changed)."""
    comp = get_competencia(competencia_id)
    motivo = check_motivo(motivo)
    if comp.oficial_en is None:
        return comp.to_dict(), False
    before = {"oficial": True, "oficial_en": iso(comp.oficial_en)}
    comp.oficial_en = None
    comp.save()
    _history(comp, "reabrir", "competencia", comp.id, user_id, motivo, before, {"oficial": False})
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
        raise Invalid("El cuerpo debe ser un objeto JSON.", "invalid_body")
    comp = get_competencia(competencia_id)
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
        rule = _check_rule(body["regla"], comp, errors)
    if "fecha_hora" in body:
        fecha = body["fecha_hora"]
        if fecha is not None:
            try:
                fecha = parse_local_timestamp(fecha)
                if not 2000 <= fecha.year <= 2999:
                    raise ValueError("not a date of an event")
            except (ValueError, TypeError, OverflowError):
                errors["fecha_hora"] = ("Una fecha ISO 8601 de 2000 a 2999 (sin desfase: hora "
                                        "local, %s), o null." % zone().key)
    if errors:
        raise Invalid("Los cambios de la competencia no son válidos.", "validation_error", errors)
    changed = False
    before = {"tipo": comp.regla, "contados": comp.contados, "minimo": comp.minimo}
    if rule is not None and rule != before:
        if comp.oficial_en is not None:
            raise Conflict("Los resultados son oficiales; reábralos antes de cambiar la regla.",
                           "results_official")
        comp.regla, comp.contados, comp.minimo = rule["tipo"], rule["contados"], rule["minimo"]
        comp.save()
        _history(comp, "regla", "competencia", comp.id, user_id, motivo, before, rule)
        changed = True
    if nombre is not _UNSET and nombre != comp.nombre:
        antes = {"nombre": comp.nombre}
        comp.nombre = nombre
        comp.save()
        _history(comp, "renombrar", "competencia", comp.id, user_id, motivo, antes,
                 {"nombre": comp.nombre})
        changed = True
    if oculta is not _UNSET and oculta != bool(comp.oculta):
        comp.oculta = oculta
        comp.save()
        _history(comp, "ocultar" if oculta else "mostrar", "competencia", comp.id, user_id,
                 motivo, {"oculta": not oculta}, {"oculta": oculta})
        changed = True
    if fecha is not _UNSET and fecha != comp.fecha_hora:
        antes = {"fecha_hora": iso(comp.fecha_hora)}
        comp.fecha_hora = fecha
        comp.save()
        _history(comp, "programar", "competencia", comp.id, user_id, motivo, antes,
                 {"fecha_hora": iso(comp.fecha_hora)})
        changed = True
    return comp.to_dict(), competition_rule(comp), changed


_UNSET = object()


def _check_rule(value, comp, errors):
    """The new rule (``tipo``, ``contados``, ``minimo``) from a partial one, or None with
    ``errors`` filled in."""
    if not isinstance(value, dict):
        errors["regla"] = "Un objeto {tipo, contados, minimo}."
        return None
    rule = {"tipo": value.get("tipo", comp.regla), "contados": value.get("contados", comp.contados),
            "minimo": value.get("minimo", comp.minimo)}
    for key in sorted(set(value) - set(rule)):
        errors["regla." + key] = "Campo desconocido: tipo, contados o minimo."
    if rule["tipo"] not in REGLAS:
        errors["regla.tipo"] = "Debe ser uno de: %s." % ", ".join(REGLAS)
    if rule["contados"] is not None and not (_is_int(rule["contados"])
                                             and 1 <= rule["contados"] <= MAX_CONTADOS):
        errors["regla.contados"] = ("Un entero de 1 a %d, o null (el valor del servidor)."
                                    % MAX_CONTADOS)
    if not (_is_int(rule["minimo"]) and 1 <= rule["minimo"] <= MAX_CONTADOS):
        errors["regla.minimo"] = "Un entero de 1 a %d." % MAX_CONTADOS
    return None if any(k.startswith("regla") for k in errors) else rule


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

# Server-wide defaults (config.yaml ``race.*``), set once by the server and the command line.
# ``contados``: how many of a team's best times count. ``tolerancia_ms``: a counted time longer
# than the race had been running when it arrived, by more than this, is flagged
# ``tiempo_imposible`` for the organizer (it still counts: a person decides). Network delay only
# ever makes the server's elapsed time longer than the phone's stopwatch, so the tolerance only
# absorbs clock granularity and a judge who started the stopwatch by hand. ``zona``: the venue's
# time zone (None until asked: this machine's).
DEFAULTS = {"contados": 15, "tolerancia_ms": 5000, "zona": None}



class _CompetitionRule:
    def __repr__(self):
        return "COMPETITION_RULE"


# "Count as the competition's rule says": the default of every function that takes a count.
COMPETITION_RULE = _CompetitionRule()


def configure(contados=15, tolerancia_ms=5000, timezone=None):
    """The server's ``race.*`` settings; ``timezone`` an IANA name, None for this machine's."""
    DEFAULTS.update(contados=contados, tolerancia_ms=tolerancia_ms,
                    zona=zone_named(timezone) if timezone else machine_zone())


def configuration():
    """What ``configure`` was last given, as its keyword arguments (for a worker process to
    configure its models as this process did)."""
    return {"contados": DEFAULTS["contados"], "tolerancia_ms": DEFAULTS["tolerancia_ms"],
            "timezone": zone().key}


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
            "id": _uuid_text(self.hex_id), "equipo_id": self.equipo_id, "juez_id": self.juez_id,
            "timestamp": iso(dt.datetime.fromisoformat(self.timestamp)),
            "tiempo": self.tiempo, "tiempo_recibido": self.tiempo_recibido,
            "recibido_en": iso(dt.datetime.fromisoformat(self.received_at)),
            "estado_carrera": self.estado_carrera, "origen": self.origen,
            "protocolo": self.protocolo, "revision": self.revision,
            "anulado": self.anulado, "ausente": self.ausente,
            "antes_de_salida": self.antes_de_salida, "pendiente": self.pendiente,
            "cuenta": self.cuenta, "tiempo_imposible": self.imposible,
            "equipo_recibido_id": self.equipo_recibido,
        }


def competition_state(competencia_id, scored_per_team=COMPETITION_RULE, equipo_id=None):
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
    comp = get_competencia(competencia_id)
    scored_per_team = _contados(comp, scored_per_team)
    tolerance_ms = DEFAULTS["tolerancia_ms"]
    execute = db.execute_sql
    acciones = execute(_ACCIONES_SQL, (comp.id,)).fetchall()
    moved = {}
    for _, accion, registro_id, target, *_ in acciones:
        if accion == "mover":
            moved[registro_id] = target
    if equipo_id is None:
        rows = execute(_ROWS_SQL, (comp.id,)).fetchall()
    else:
        ids = [rid for rid, target in moved.items() if target == equipo_id]
        rows = execute(_ROWS_SQL + " AND (r.equipo_id = ? OR r.id IN (%s))" % _marks(len(ids))
                       if ids else _ROWS_SQL + " AND r.equipo_id = ?",
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
    started = db_text(comp.started_at)
    best = defaultdict(list)
    for record in records:
        # A paper time is the true time since the real start: never shifted (ORGANIZER.md).
        record.tiempo = 0 if record.ausente else record.base + sum(
            delta for seq, juez, delta in shifts
            if seq > record.base_seq and (juez is None or juez == record.juez_id)
            and record.origen != ORIGEN_MANUAL)
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


def db_text(value):
    """A datetime as the database stores it (text order is time order), or None."""
    return None if value is None else RegistroTiempo.received_at.db_value(value)


def _elapsed_ms(since, text):
    return (dt.datetime.fromisoformat(text) - since) // dt.timedelta(milliseconds=1)


def record_view(row):
    """The record object of one stored record (a RegistroTiempo), corrections applied."""
    equipo_now = _current_team(row)
    state = competition_state(Equipo.get_by_id(equipo_now).competencia_id, equipo_id=equipo_now)
    return next(r.view() for r in state["records"] if r.row_id == row.id)


def _current_team(row):
    last_move = (Accion.select(Accion.equipo_id)
                 .where((Accion.registro_id == row.id) & (Accion.accion == "mover"))
                 .order_by(Accion.id.desc()).first())
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
                Accion.select(Accion.accion, Accion.valor, Accion.texto)
                .where((Accion.competencia == equipo.competencia_id)
                       & (Accion.equipo_id == equipo.id) & Accion.accion.in_(TEAM_ACCIONES))
                .order_by(Accion.id).tuples()):
            _apply_team(state, accion, valor, texto)
    return dict(equipo.to_dict(), estado=state["estado"], penalizacion_ms=state["penalizacion_ms"],
                juez_id=equipo.juez_id, competencia_id=equipo.competencia_id,
                categoria=equipo.categoria)


# --------------------------------------------------------------------------------------------
# Reads (run on reader threads).
# --------------------------------------------------------------------------------------------
def authenticate(username, password):
    """The active user with these credentials (a judge: an active judge), or None. Slow
    (scrypt): never on the loop."""
    if not isinstance(username, str) or not isinstance(password, str):
        return None
    user = User.get_or_none(User.username_key == username_key(username))
    if user is None:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, user.password_hash) or not user.is_active:
        return None
    identity = user_identity(user.id)
    if identity is not None and identity["juez_id"] is not None and not identity["juez_active"]:
        return None  # a deactivated judge is an inactive user: it cannot log in
    return identity


def user_identity(user_id, token_gen=None):
    """What a token and ``/api/me/`` say about a user: dict, or None if gone or inactive.

    ``token_gen``: the generation a token carries (its ``gen`` claim); a token of an earlier
    generation than the user's (a password change or a deactivation since) is refused with
    Unauthenticated ``token_revoked``. Read from the database every time, so a change made by
    another process (the command line) counts at once.
    """
    user = User.get_or_none(User.id == user_id)
    if user is None or not user.is_active:
        return None
    if token_gen is not None and token_gen != user.token_gen:
        raise Unauthenticated(TOKEN_REVOKED, "token_revoked")
    juez = Juez.get_or_none(Juez.user == user.id)
    return {
        "user": user.to_dict(),
        "gen": user.token_gen,
        "juez_id": juez.id if juez is not None else None,
        "juez_active": bool(juez is not None and juez.is_active),
        "competencia_id": juez.competencia_id if juez is not None else None,
    }


TOKEN_REVOKED = ("La sesión ya no vale (cambió la contraseña o se desactivó el juez): inicie "
                 "sesión de nuevo.")


def token_generations(user_ids):
    """{user_id: token generation} of those users that are active (and, for a judge, whose
    judge is active): a socket opened by a user missing here, or with another generation, no
    longer has a valid session."""
    found = {}
    for chunk in _chunks(list(user_ids), 500):
        found.update(db.execute_sql(
            'SELECT u.id, u.token_gen FROM "user" AS u LEFT JOIN juez AS j ON j.user_id = u.id '
            "WHERE u.id IN (%s) AND u.is_active AND (j.id IS NULL OR j.is_active)"
            % _marks(len(chunk)), chunk).fetchall())
    return found


def revocation_mark():
    """A mark of every account's state that any revocation (a new password, a deactivation,
    a revoke_tokens), any user or judge made inactive or active, moves: one cheap aggregate,
    read often by the server to notice another process's changes (handlers/sessions.py)."""
    return tuple(db.execute_sql(
        'SELECT (SELECT total(token_gen) FROM "user"), '
        '(SELECT count(*) FROM "user" WHERE is_active), '
        "(SELECT count(*) FROM juez WHERE is_active)").fetchone())


def me(user_id):
    user = User.get_or_none(User.id == user_id)
    if user is None or not user.is_active:
        return None
    juez = Juez.get_or_none(Juez.user == user.id)
    return {"user": user.to_dict(), "juez": juez.to_dict() if juez is not None else None}


def competition_dict(competencia_id):
    return get_competencia(competencia_id).to_dict()


def all_competitions(public=False):
    """Every competition (``public``: those not hidden from the public index)."""
    query = Competencia.select().order_by(Competencia.id)
    if public:
        query = query.where(Competencia.oculta == False)  # noqa: E712  (SQL, not Python)
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
    row = (Accion.select(Accion.despues)
           .where((Accion.competencia == comp.id) & (Accion.accion == "iniciar"))
           .order_by(Accion.id.desc()).first())
    given = row and json.loads(row.despues or "{}").get("started_at")
    return parse_timestamp(given) if given else comp.started_at


def record_start_notice(competencia_id, juez_id, when):
    """Keep the moment the server first handed a judge's app the current start (run by the
    writer). Only the first of a start is kept: a replay after a restart adds nothing."""
    comp = Competencia.get_or_none(Competencia.id == competencia_id)
    given = given_start(comp) if comp is not None else None
    if given is None or when < given or AvisoSalida.select().where(
            (AvisoSalida.competencia_id == competencia_id) & (AvisoSalida.juez_id == juez_id)
            & (AvisoSalida.en >= given)).exists():
        return False
    AvisoSalida.create(competencia_id=competencia_id, juez_id=juez_id, en=when)
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
    comp = get_competencia(competencia_id)
    jueces = (Juez.select(Juez, User).join(User)
              .where(Juez.competencia == comp.id).order_by(Juez.id))
    arrivals = dict(db.execute_sql(_ARRIVALS_SQL, (comp.id,)).fetchall())
    equipos = {}
    for equipo in Equipo.select().where(Equipo.competencia == comp.id).order_by(Equipo.dorsal):
        equipos.setdefault(equipo.juez_id, []).append(
            dict(equipo.to_dict(), registros=arrivals.get(equipo.id, 0),
                 categoria=equipo.categoria))
    implied = defaultdict(list)
    notices = {}
    late = 0
    given = given_start(comp)
    if given is not None:
        given_text = db_text(given)
        # Adjustments of one judge's records (a stopwatch started late, corrected).
        own = defaultdict(int)
        for juez_id, valor in db.execute_sql(
                "SELECT juez_id, valor FROM accion WHERE competencia_id = ? AND accion = "
                "'ajustar' AND juez_id IS NOT NULL", (comp.id,)):
            own[juez_id] += valor
        for juez_id, lag in db.execute_sql(_IMPLIED_START_SQL, (given_text, comp.id, given_text)):
            implied[juez_id].append(lag - own[juez_id])
        for juez_id, en in db.execute_sql(_NOTICES_SQL, (comp.id, given_text)):
            notices[juez_id] = iso(dt.datetime.fromisoformat(en))
        if comp.finished_at is not None:
            late = db.execute_sql(
                "SELECT COUNT(*) FROM registro_tiempo AS r JOIN equipo AS e ON e.id = r.equipo_id"
                " WHERE e.competencia_id = ? AND r.received_at > ? AND r.origen = 'app'",
                (comp.id, db_text(comp.finished_at))).fetchone()[0]
    return {"competencia": comp.to_dict(), "registros_tras_final": late,
            "inicio_dado": iso(given), "jueces": [
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
            or estado_carrera == ESTADO_PROGRAMADA)


# The scoring rules an event may choose (ORGANIZER.md "Standings for the awards").
REGLAS = ("suma", "promedio", "puntos")
DESPLAZADORES = 2  # puntos: a team's runners after its counted N who only push others back
MAX_CONTADOS = 1000


def competition_rule(comp, scored_per_team=COMPETITION_RULE):
    """The rule in force for a Competencia: ``{"tipo", "contados", "minimo", "texto"}``.
    ``contados`` is ``scored_per_team`` when given, else the competition's, else the server's
    ``race.records_scored_per_team``; ``texto`` says the rule in words (the page, the CSV)."""
    contados = _contados(comp, scored_per_team)
    tipo = comp.regla if comp.regla in REGLAS else "suma"
    minimo = max(1, comp.minimo or 1)
    return {"tipo": tipo, "contados": contados, "minimo": minimo,
            "texto": rule_text(tipo, contados, minimo)}


def _contados(comp, scored_per_team):
    """N: the count given, else the competition's, else the server's."""
    if scored_per_team is COMPETITION_RULE:
        return comp.contados or DEFAULTS["contados"]
    return scored_per_team


def rule_text(tipo, contados, minimo):
    """A scoring rule in words, in Spanish like the results page."""
    de_los_mejores = ("del mejor tiempo" if contados == 1
                      else "de los %d mejores tiempos" % contados)
    if tipo == "promedio":
        text = ("Media %s de cada equipo: gana la media más baja (una penalización se suma a "
                "la media); igual media, igual puesto." % de_los_mejores)
    elif tipo == "puntos":
        text = ("Por puestos, como en cross: cada corredor de los equipos que clasifican suma "
                "el puesto en que llegó entre ellos; cuentan %s de cada equipo y los %d "
                "siguientes solo desplazan; gana la suma más baja y un empate lo decide el "
                "corredor %d.º de cada equipo (una penalización retrasa a todos los corredores "
                "del equipo)." % ("el primero" if contados == 1 else "los %d primeros" % contados,
                                  DESPLAZADORES, contados + 1))
    else:
        text = ("Suma %s de cada equipo: primero el equipo con más llegadas, luego el menor "
                "tiempo total (penalización incluida); igual total, igual puesto."
                % de_los_mejores)
    if minimo > 1:
        text += " Un equipo necesita al menos %d llegadas para clasificar." % minimo
    return text


def ranking(competencia_id, scored_per_team=COMPETITION_RULE):
    """The standings of a competition: ``{"competencia", "regla", "registros_por_equipo",
    "categorias", "registros_tras_final", "clasificacion"}``.

    The competition's rule (``regla``: ``tipo``, ``contados`` N, ``minimo`` M; documented for
    organizers in the README) applies to the records with every correction applied
    (:func:`competition_state`). A team's finishers are its records that are not voided,
    absent (``tiempo`` 0) or pending, of a team whose estado is ok; its best N count.

    * ``suma``: teams with more counted finishers rank ahead, then the lower total of the
      counted times plus the team's penalty;
    * ``promedio``: the lower mean of the counted times (half up to the ms) plus the penalty;
    * ``puntos``: the best N + 2 finishers of every team that has at least M are placed in time
      order (a penalty delays each runner of its team; equal times share a place); a team scores
      the sum of its best N places (``puntos``; the next two only displace), more scoring
      runners first, lowest sum wins, and a tie goes to the better (N+1)th place (a team
      that has one beats a team that has none);
    * equal scores share a position and the next one skips: 1, 2, 2, 4;
    * teams with fewer than M finishers, then teams without any, then teams whose estado is
      dnf, dns or dsq, follow every ranked team with ``posicion`` null; the first kind ordered
      by more finishers then lower total, the others by dorsal.

    Each team also has its ``categoria`` and ``posicion_categoria``, its position among the
    ranked teams of its category (the general order, filtered: :func:`only_category`); null
    without a category or a position. Teams that share a position are listed by dorsal.
    Records that arrived before the start count like any other, because a finish time is never
    thrown away silently; ``antes_de_salida`` says how many a team has.

    ``scored_per_team``, when given, is N instead of the competition's own.
    """
    if scored_per_team is not COMPETITION_RULE and (
            not _is_int(scored_per_team) or scored_per_team < 1):
        raise ValueError("scored_per_team must be a positive integer")
    state = competition_state(competencia_id, scored_per_team)
    comp = state["competencia"]
    regla = competition_rule(comp, state["contados"])
    tipo, n, minimo = regla["tipo"], regla["contados"], regla["minimo"]
    teams = list(Equipo.select(Equipo.id, Equipo.nombre, Equipo.dorsal, Equipo.categoria)
                 .where(Equipo.competencia == comp.id).tuples())
    kept, early, absent, pending = (defaultdict(int), defaultdict(int), defaultdict(int),
                                    defaultdict(int))
    for record in state["records"]:
        if record.anulado:
            continue
        team = record.equipo_id
        kept[team] += 1
        early[team] += record.antes_de_salida
        absent[team] += record.ausente
        pending[team] += record.pendiente
    finishers = {team: [r.tiempo for r in records]
                 for team, records in state["finishers"].items()}
    penalties = {team: state["equipos"][team]["penalizacion_ms"] for team, _, _, _ in teams}
    places = _places(finishers, penalties, n, minimo) if tipo == "puntos" else {}
    rows, keys = [], {}
    for equipo_id, nombre, dorsal, categoria in teams:
        done = finishers.get(equipo_id, ())
        times = done[:n]
        team = state["equipos"][equipo_id]
        penalty = team["penalizacion_ms"]
        total = sum(times) + penalty if times else None
        mean = (sum(times) + len(times) // 2) // len(times) if times else None  # half up
        puestos = places.get(equipo_id, [])
        points = sum(puestos[:n]) if puestos else None
        if team["estado"] != "ok":
            key = (3 + ("dnf", "dns", "dsq").index(team["estado"]),)
        elif not done:
            key = (2,)
        elif len(done) < minimo:
            key = (1, -len(times), total)
        elif tipo == "promedio":
            key = (0, mean + penalty)
        elif tipo == "puntos":
            key = (0, -min(len(puestos), n), points,
                   puestos[n] if len(puestos) > n else float("inf"))
        else:
            key = (0, -len(times), total)
        keys[equipo_id] = key
        rows.append({
            "posicion": None,
            "posicion_categoria": None,
            "equipo_id": equipo_id,
            "equipo": nombre,
            "dorsal": dorsal,
            "categoria": categoria,
            "estado": team["estado"],
            "registros_contados": len(times),
            "registros_recibidos": kept[equipo_id],
            "tiempo_total_ms": total,
            "tiempo_total": format_ms(total),
            "penalizacion_ms": penalty,
            "mejor_ms": times[0] if times else None,
            "mejor": format_ms(times[0]) if times else None,
            "promedio_ms": mean,
            "promedio": format_ms(mean),
            "puntos": points,
            "puestos": puestos,
            "antes_de_salida": early[equipo_id],
            "ausentes": absent[equipo_id],
            "pendientes": pending[equipo_id],
        })
    rows.sort(key=lambda r: keys[r["equipo_id"]] + (r["dorsal"],))
    previous = {}  # category (None: the general standings) -> (its last key, its position)
    counted = defaultdict(int)
    for index, row in enumerate(rows):
        key = keys[row["equipo_id"]]
        if key[0] != 0:
            break
        for category, field in ((None, "posicion"), (row["categoria"], "posicion_categoria")):
            if field == "posicion_categoria" and category is None:
                continue
            counted[category] += 1
            last_key, last_position = previous.get(category, (None, None))
            row[field] = last_position if key == last_key else counted[category]
            previous[category] = (key, row[field])
    finished = db_text(comp.finished_at)
    # (a paper time is typed in whenever the organizer can: it never "arrived after the end")
    late = sum(1 for r in state["records"] if finished is not None and r.received_at > finished
               and r.origen != ORIGEN_MANUAL)
    return {"competencia": comp.to_dict(), "regla": regla, "registros_por_equipo": n,
            "categorias": sorted({c for _, _, _, c in teams if c}, key=str.casefold),
            "registros_tras_final": late, "clasificacion": rows}


def _places(finishers, penalties, n, minimo):
    """Cross-country places: {equipo_id: [place, ...]} of the best ``n`` + DESPLAZADORES
    finishers of each team with at least ``minimo``, in time order (penalty added to each
    runner of its team); equal times share a place and the next one skips."""
    placed = sorted((tiempo + penalties.get(team, 0), team)
                    for team, times in finishers.items() if len(times) >= minimo
                    for tiempo in times[:n + DESPLAZADORES])
    places = defaultdict(list)
    place, previous = 0, None
    for index, (tiempo, team) in enumerate(placed, 1):
        if tiempo != previous:
            place, previous = index, tiempo
        places[team].append(place)
    return places


def only_category(result, categoria):
    """A :func:`ranking` result with only the teams of one category (a cheap filter: the rows
    and their positions are the full result's). Adds ``"categoria"``."""
    return dict(result, categoria=categoria,
                clasificacion=[r for r in result["clasificacion"] if r["categoria"] == categoria])


# The CSV export's columns, in order: the ranking rows' keys (a spreadsheet gets both the
# readable h:mm:ss.mmm text and the exact milliseconds).
# The last three are the same on every row: the rule in words, provisional or official, and
# the local time (with its offset) of the standings.
CSV_COLUMNS = ("posicion", "dorsal", "equipo", "equipo_id", "estado", "registros_contados",
               "registros_recibidos", "tiempo_total", "tiempo_total_ms", "penalizacion_ms",
               "mejor", "mejor_ms", "promedio", "promedio_ms", "antes_de_salida", "ausentes",
               "pendientes", "categoria", "posicion_categoria", "puntos", "puestos", "regla",
               "resultados", "actualizado_en")


# The texts of times (h:mm:ss.mmm) in the standings' CSV: Excel's flavour writes their decimal
# comma, so a Spanish spreadsheet reads them as times. (No CSV has other numbers with decimals.)
CSV_TIME_COLUMNS = ("tiempo_total", "mejor", "promedio")


def ranking_csv(result, now=None, excel=False):
    """A :func:`ranking` result as CSV text: a header row, then one row per team. ``now``
    (naive UTC, default now) is the time the standings are of; ``excel``: the flavour a
    Spanish spreadsheet opens in columns (:func:`_csv`)."""
    common = {"regla": result["regla"]["texto"],
              "resultados": "oficiales" if result["competencia"]["oficial"] else "provisionales",
              "actualizado_en": local_iso(now or utcnow())}
    return _csv(CSV_COLUMNS, (
        [" ".join(map(str, row["puestos"])) if c == "puestos" else common[c] if c in common
         else row[c] for c in CSV_COLUMNS] for row in result["clasificacion"]),
        excel=excel, decimal_columns=CSV_TIME_COLUMNS)


def _csv(columns, rows, excel=False, decimal_columns=()):
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
    cell = _csv_cell
    for row in rows:  # (integers, most cells, as they are: no call each)
        writer.writerow([value if value.__class__ is int else cell(value) for value in row])
    text = out.getvalue()
    return excel_csv(text, decimal_columns) if excel else text


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def excel_csv(text, decimal_columns=()):
    """Excel's flavour of a plain CSV text made by :func:`_csv`: the same cells (formula guard
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
                        scored_per_team=COMPETITION_RULE):
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
    return dict(User.select(User.id, User.username).where(User.id.in_(list(ids))).tuples())


def _entries(acciones):
    names = _usernames(a.usuario_id for a in acciones)
    return [{"id": a.id, "accion": a.accion, "objeto": a.objeto, "objeto_id": a.objeto_id,
             "usuario": names.get(a.usuario_id), "en": iso(a.en), "motivo": a.motivo,
             "antes": json.loads(a.antes) if a.antes else None,
             "despues": json.loads(a.despues) if a.despues else None} for a in acciones]


def record_history(id_registro):
    """``{"registro", "historial"}``: a record now, and every change that touched it, oldest
    first: its own corrections and the time adjustments that applied to it."""
    row = get_registro(id_registro)
    record = record_view(row)
    competencia_id = Equipo.get_by_id(record["equipo_id"]).competencia_id
    touching = (Accion.registro_id == row.id) | (
        (Accion.competencia == competencia_id) & (Accion.accion == "ajustar")
        & (Accion.juez_id.is_null() | (Accion.juez_id == row.juez_id)))
    entries = _entries(list(Accion.select().where(touching).order_by(Accion.id)))
    return {"registro": record,
            "historial": [{k: e[k] for k in ("accion", "usuario", "en", "motivo", "antes",
                                              "despues")} for e in entries]}


def audit_log(competencia_id):
    """``{"competencia", "acciones"}``: the competition's whole history, oldest first."""
    comp = get_competencia(competencia_id)
    acciones = list(Accion.select().where(Accion.competencia == comp.id).order_by(Accion.id))
    return {"competencia": comp.to_dict(), "acciones": _entries(acciones)}


AUDIT_CSV_COLUMNS = ("id", "en", "usuario", "accion", "objeto", "objeto_id", "motivo", "antes",
                     "despues")


def audit_csv(result, excel=False):
    """The audit log as CSV (UTF-8 with BOM; before/after as JSON text; ``excel``: the
    spreadsheet's flavour, :func:`_csv`)."""
    return _csv(AUDIT_CSV_COLUMNS, (
        [_json(a[c]) if c in ("antes", "despues") else a[c] for c in AUDIT_CSV_COLUMNS]
        for a in result["acciones"]), excel=excel)


RECORDS_CSV_COLUMNS = ("id", "equipo_id", "juez_id", "origen", "timestamp", "recibido_en",
                       "estado_carrera", "tiempo_recibido", "tiempo", "cuenta", "anulado",
                       "ausente", "pendiente", "antes_de_salida", "tiempo_imposible",
                       "protocolo", "revision")


def records_csv(result, excel=False):
    """The organizer's records list as CSV, flags included (``excel``: :func:`_csv`)."""
    return _csv(RECORDS_CSV_COLUMNS,
                ([r[c] for c in RECORDS_CSV_COLUMNS] for r in result["registros"]), excel=excel)


PUBLIC_RECORD_KEYS = ("id", "tiempo", "cuenta", "anulado", "ausente", "antes_de_salida",
                      "pendiente", "origen")


def team_detail(competencia_id, equipo_id, scored_per_team=COMPETITION_RULE):
    """Public: ``{"competencia", "equipo", "registros"}`` with no reasons and no judges."""
    comp = get_competencia(competencia_id)
    equipo = Equipo.get_or_none((Equipo.id == equipo_id) & (Equipo.competencia == comp.id))
    if equipo is None:
        raise NotFound("El equipo %s no es de esta competencia." % equipo_id, "team_not_found")
    state = competition_state(comp.id, scored_per_team, equipo_id=equipo.id)
    view = team_view(equipo, state["equipos"][equipo.id])
    return {"competencia": comp.to_dict(),
            "equipo": {k: view[k] for k in ("id", "nombre", "dorsal", "estado",
                                            "penalizacion_ms")},
            "registros": [{k: v for k, v in r.view().items() if k in PUBLIC_RECORD_KEYS}
                          for r in state["records"]]}


def team_records(user_id, equipo_id, scored_per_team=COMPETITION_RULE):
    """The judge read-back: a team's records as stored and counted, for its assigned judge or
    an organizer. ``{"equipo", "registros"}``."""
    user = User.get_or_none(User.id == user_id)
    if user is None or not user.is_active:
        raise Unauthenticated("El usuario no existe o está inactivo.", "user_inactive")
    equipo = Equipo.get_or_none(Equipo.id == equipo_id)
    if equipo is None:
        raise NotFound("El equipo %s no existe." % equipo_id, "team_not_found")
    if not user.is_organizer:
        juez = Juez.get_or_none(Juez.user == user.id)
        if juez is None:
            raise Forbidden("El usuario no tiene perfil de juez.", "not_a_judge")
        if equipo.juez_id != juez.id:
            raise Forbidden("El equipo %d no está asignado a este juez." % equipo.id,
                            "team_not_assigned")
    state = competition_state(equipo.competencia_id, scored_per_team, equipo_id=equipo.id)
    return {"equipo": team_view(equipo, state["equipos"][equipo.id]),
            "registros": [r.view() for r in state["records"]]}


# --------------------------------------------------------------------------------------------
# Administration (the command line; runs in its own process).
# --------------------------------------------------------------------------------------------
# A username's letters may come from one script, or from one of the mixes a real name can
# have (Unicode TS #39, "highly restrictive"): Latin with the Japanese, Chinese or Korean
# scripts. Digits, punctuation, symbols and combining marks go with any of them.
_SCRIPT_MIXES = ({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}, {"LATIN", "HAN", "BOPOMOFO"},
                 {"LATIN", "HAN", "HANGUL"})
# The first word of a character's Unicode name, where that word names a script (and the
# script it names: a few names start otherwise).
_SCRIPT_WORDS = {"CJK": "HAN", "ARABIC-INDIC": "ARABIC", "EXTENDED": "ARABIC"}
_SCRIPTS = {
    "LATIN", "GREEK", "COPTIC", "CYRILLIC", "ARMENIAN", "HEBREW", "ARABIC", "SYRIAC", "THAANA",
    "NKO", "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA", "TAMIL", "TELUGU",
    "KANNADA", "MALAYALAM", "SINHALA", "THAI", "LAO", "TIBETAN", "MYANMAR", "GEORGIAN",
    "HANGUL", "ETHIOPIC", "CHEROKEE", "CANADIAN", "OGHAM", "RUNIC", "KHMER", "MONGOLIAN",
    "HIRAGANA", "KATAKANA", "BOPOMOFO", "HAN", "YI", "TIFINAGH", "VAI", "JAVANESE", "BALINESE"}
# Joins the emoji on either side into one (👩‍👩‍👧); elsewhere it is an invisible character.
_ZWJ = "\u200d"


def _script(char):
    """The script of a letter or digit, or None when it goes with any script."""
    words = unicodedata.name(char, "").replace("HALFWIDTH ", "").replace("FULLWIDTH ", "").split()
    if not words:
        return None
    script = _SCRIPT_WORDS.get(words[0], words[0])
    return script if script in _SCRIPTS else None


def username_problem(username):
    """Why ``username`` cannot be a new account's, or None. Refused: control characters,
    invisible ones (zero-width, bidirectional controls, other format characters; a joiner
    between two emoji is part of them), unusual spaces, unassigned and private-use code points,
    and letters of scripts that do not go together (a Cyrillic "е" in a Latin name), which is
    how a look-alike of another judge's name is made."""
    if not isinstance(username, str) or not username.strip() or len(username) > 150:
        return "El nombre de usuario no es válido."
    scripts = set()
    for index, char in enumerate(username):
        kind = unicodedata.category(char)
        if char == _ZWJ and 0 < index < len(username) - 1 and all(
                unicodedata.category(c) in ("So", "Sk", "Mn")
                for c in (username[index - 1], username[index + 1])):
            continue
        if kind in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or (kind == "Zs" and char != " "):
            return ("El nombre de usuario contiene un carácter invisible, de control o un "
                    "espacio especial (U+%04X)." % ord(char))
        if kind[0] in "LN":
            script = _script(char)
            if script is not None:
                scripts.add(script)
    if len(scripts) > 1 and not any(scripts <= mix for mix in _SCRIPT_MIXES):
        return ("El nombre de usuario mezcla alfabetos (%s): parecería el de otra persona."
                % ", ".join(sorted(scripts)).lower())
    return None


def create_user(username, password, organizer=False, password_hash=None):
    """A new account. Its username must pass username_problem (existing accounts keep theirs)
    and be new, case and compatibility forms aside (username_key). ``password`` must pass
    :func:`check_password`; ``password_hash`` is its hash made beforehand
    (:func:`new_password_hash`, off the server's writer), else it is made here."""
    problem = username_problem(username)
    if problem is not None:
        raise Invalid(problem, "invalid_username")
    key = username_key(username)
    if User.select().where(User.username_key == key).exists():
        raise Conflict("El usuario %r ya existe." % username, "username_taken")
    return User.create(username=username.strip(), username_key=key,
                       password_hash=password_hash or new_password_hash(password),
                       is_organizer=organizer)


def create_competition(nombre, fecha_hora=None):
    if not nombre or not nombre.strip():
        raise Invalid("El nombre de la competencia no puede estar vacío.", "invalid_name")
    return Competencia.create(nombre=nombre.strip(), fecha_hora=fecha_hora)


def create_judge(username, password, competencia_id, nombre=None, password_hash=None):
    comp = get_competencia(competencia_id)
    with db.atomic():
        user = create_user(username, password, password_hash=password_hash)
        return Juez.create(user=user, competencia=comp, nombre=(nombre or username).strip())


def create_team(nombre, dorsal, juez_id, categoria=None):
    """A team timed by a judge; ``categoria`` (optional) groups it for the standings."""
    juez = Juez.get_or_none(Juez.id == juez_id)
    if juez is None:
        raise NotFound("El juez %s no existe." % juez_id, "judge_not_found")
    if not nombre or not nombre.strip():
        raise Invalid("El nombre del equipo no puede estar vacío.", "invalid_name")
    categoria = check_categoria(categoria)
    if Equipo.select().where((Equipo.competencia == juez.competencia_id)
                             & (Equipo.dorsal == dorsal)).exists():
        raise Conflict("El dorsal %d ya existe en esta competencia." % dorsal, "dorsal_taken")
    return Equipo.create(id=_unused_team_id(), nombre=nombre.strip(), dorsal=dorsal, juez=juez,
                         competencia=juez.competencia_id, categoria=categoria)


def _unused_team_id():
    """An id no team ever had: above every team's and every id the history names (a deleted
    team's creation, status and penalty rows stay in it), so a new team never inherits a
    deleted one's history. (SQLite alone reuses the highest id once its row is deleted.)"""
    highest = db.execute_sql(
        "SELECT MAX(id) FROM equipo UNION ALL "
        "SELECT MAX(equipo_id) FROM accion UNION ALL "
        "SELECT MAX(CAST(objeto_id AS INTEGER)) FROM accion WHERE objeto = 'equipo'").fetchall()
    return 1 + max(row[0] or 0 for row in highest)


MAX_CATEGORIA = 100


def check_categoria(value):
    """A team's category as stored: stripped text of at most MAX_CATEGORIA characters, or None
    (empty means none). Invalid otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.strip()) > MAX_CATEGORIA:
        raise Invalid("La categoría no es válida.", "validation_error",
                      {"categoria": "Texto de hasta %d caracteres, o vacío." % MAX_CATEGORIA})
    return value.strip()


def set_password(username, password):
    """A new password for any user (:func:`replace_password`). Returns the user."""
    user = User.get_or_none(User.username_key == username_key(username))
    if user is None:
        raise NotFound("El usuario %r no existe." % username, "user_not_found")
    password_hash = new_password_hash(password)
    with db.atomic():
        replace_password(user.id, password_hash)
    return User.get_by_id(user.id)


def replace_password(user_id, password_hash, by=None):
    """Store a user's new password (its hash, from new_password_hash) and refuse every token
    issued before, also by a server running in another process (token checks read the
    generation from the database). For a judge, a history row of ``by`` in its competition
    (never the password). Runs inside the caller's transaction."""
    User.update(password_hash=password_hash).where(User.id == user_id).execute()
    revoke_tokens(user_id)
    juez = Juez.get_or_none(Juez.user == user_id)
    if juez is not None:
        _history(juez.competencia_id, "contrasena", "juez", juez.id, by)


def revoke_tokens(user_id):
    """Refuse every token issued so far to this user (inside the change's transaction): tokens
    carry the generation they were issued in, and this moves the user's on."""
    User.update(token_gen=User.token_gen + 1).where(User.id == user_id).execute()
