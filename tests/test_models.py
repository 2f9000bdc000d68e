"""Domain rules without a server: time splitting, validation, idempotent storage, race states."""

import datetime as dt
import sqlite3
import uuid

import pytest

import models
import identity
import race_control
import registration
import submissions
import venue_time
import store
from helpers import registros


def test_split_tiempo_and_format():
    assert venue_time.split_tiempo(0) == (0, 0, 0, 0)
    assert venue_time.split_tiempo(12345) == (0, 0, 12, 345)
    assert venue_time.split_tiempo(3_723_004) == (1, 2, 3, 4)
    assert venue_time.format_ms(3_723_004) == "1:02:03.004"
    assert venue_time.format_ms(None) is None


def test_parse_timestamp_zulu_offset_and_naive_are_utc():
    expected = dt.datetime(2025, 11, 11, 12, 0, 0)
    assert venue_time.parse_timestamp("2025-11-11T12:00:00.000Z") == expected
    assert venue_time.parse_timestamp("2025-11-11T13:00:00+01:00") == expected
    assert venue_time.parse_timestamp("2025-11-11T12:00:00") == expected
    for bad in ["", "ayer", "2025-13-01T00:00:00Z", 12345, None, "x" * 100]:
        with pytest.raises((ValueError, TypeError)):
            venue_time.parse_timestamp(bad)


@pytest.mark.parametrize("text, expected", [
    ("2025-11-11T12:00:00.000Z", (12, 0, 0, 0)),
    ("2025-11-11T12:00:00Z", (12, 0, 0, 0)),
    ("2025-11-11T12:00:00.123456789Z", (12, 0, 0, 123456)),  # nanoseconds, as some phones send
    ("2025-11-11T13:30:00.5+01:30", (12, 0, 0, 500000)),
    ("2025-11-11T10:00:00-0200", (12, 0, 0, 0)),
    ("2025-11-11T12:00", (12, 0, 0, 0)),
    ("2025-11-11 12:00:00", (12, 0, 0, 0)),
])
def test_timestamps_accepted_are_a_date_and_a_time(text, expected):
    assert venue_time.parse_timestamp(text) == dt.datetime(2025, 11, 11, *expected)


@pytest.mark.parametrize("text", [
    "2025-W01-1", "2025-W46-2T12:00:00Z", "2025-315T12:00:00Z", "20250101T000000",
    "20251111T120000Z", "2025-01-01", "2025-11-11T12", "2025-11-11T12Z",
    "2025-01-01T00:00:00\x00", "2025-11-11T12:00:00Z\n", " 2025-11-11T12:00:00Z",
    "2025-11-11T12:00:00,5Z", "2025-11-11T12:00:00+01", "2025-11-11T12:00:00+01:00:30",
    "2025-11-11T12:00.5", "2025-11-11T12:00:00.Z", "\uff12025-11-11T12:00:00Z",
    "2025-11-11T12:00:00.1234567890Z", "2025-11-11T24:00:00Z", "2025-02-30T12:00:00Z",
])
def test_timestamps_refused_are_what_protocol_md_does_not_pin(text):
    with pytest.raises(ValueError):
        venue_time.parse_timestamp(text)


@pytest.mark.parametrize("username", [
    "juez1", "José Ñandú", "María.López", "O'Brien", "jean-luc", "Straße", "Ǆemal", "Zoë",
    "ΣΊΣΥΦΟΣ", "Иван", "裁判員", "山田たろう", "Tanaka太郎", "김민준", "حكم_السباق", "नमस्ते",
    "juez🏃\u200d♀️", "👩\u200d👩\u200d👧", "x" * 150])
def test_real_names_in_one_script_are_valid_usernames(username):
    assert identity.username_problem(username) is None


@pytest.mark.parametrize("username, why", [
    ("juеz1", "alfabetos"),           # a Cyrillic е among Latin letters
    ("pаypal", "alfabetos"),          # a Cyrillic а
    ("ΑΒC", "alfabetos"),             # Greek capitals that look Latin, and a C
    ("juez١", "alfabetos"),           # an Arabic-Indic one after Latin letters
    ("jue\u200bz1", "invisible"),     # zero-width space
    ("juez\u200d1", "invisible"),     # a joiner that joins no emoji
    ("juez\u202e1", "invisible"),     # right-to-left override
    ("\u2066juez1", "invisible"),     # a bidi isolate
    ("\ufeffjuez1", "invisible"),     # a byte order mark
    ("juez\u00ad1", "invisible"),     # a soft hyphen
    ("ju\u00a0ez1", "espacio"),       # a no-break space
    ("juez\x1b[31m", "control"),      # a terminal escape
    ("juez\n1", "control"),
    ("juez\U000f0000", "invisible"),  # private use
])
def test_look_alike_and_invisible_usernames_are_refused(username, why):
    assert why in identity.username_problem(username)


def test_create_user_refuses_look_alikes_and_old_accounts_keep_working(database):
    with models.db.connection_context():
        with pytest.raises(models.Invalid) as refused:
            identity.create_user("juеz1", "una-clave")
        assert refused.value.code == "invalid_username"
        # An account made before this rule (written directly, as an old database holds it)
        # still logs in.
        models.User.create(username="viеjo", username_key=models.username_key("viеjo"),
                           password_hash=identity.hash_password("una-clave"))
        assert identity.authenticate("viеjo", "una-clave")["user"]["username"] == "viеjo"


def test_iso_has_milliseconds_and_z():
    assert models.iso(dt.datetime(2025, 1, 2, 3, 4, 5, 678999)) == "2025-01-02T03:04:05.678Z"
    assert models.iso(None) is None


def test_validate_submission_keeps_first_n_and_counts_the_rest():
    body = {"equipo_id": 1, "registros": [
        {"timestamp": "2025-11-11T12:00:00Z", "tiempo": i} for i in range(17)]}
    equipo_id, records, ignored = submissions.validate_submission(body, 15)
    assert (equipo_id, len(records), ignored) == (1, 15, 2)
    assert [r["tiempo"] for r in records] == list(range(15))


def test_validate_submission_is_all_or_nothing_with_field_paths():
    body = {"equipo_id": 1, "registros": [
        {"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1},
        {"timestamp": "no", "tiempo": 1.5},
        {"tiempo": True},
        {"timestamp": "2025-11-11T12:00:00Z", "tiempo": models.MAX_TIEMPO_MS + 1,
         "id_registro": "not-a-uuid"},
        "texto",
    ]}
    with pytest.raises(models.Invalid) as info:
        submissions.validate_submission(body, 15)
    assert info.value.errors == {
        "registros.1.timestamp": "Debe ser una fecha ISO 8601.",
        "registros.1.tiempo": "Debe ser un entero de milisegundos.",
        "registros.2.tiempo": "Debe ser un entero de milisegundos.",
        "registros.2.timestamp": "Campo obligatorio.",
        "registros.3.tiempo": "Debe estar entre 0 y 86400000 ms (24 h).",
        "registros.3.id_registro": "Debe ser un UUID.",
        "registros.4": "Cada registro debe ser un objeto.",
    }


@pytest.mark.parametrize("body, field", [
    ({"registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1}]}, "equipo_id"),
    ({"equipo_id": "1", "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1}]},
     "equipo_id"),
    ({"equipo_id": True, "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1}]},
     "equipo_id"),
    ({"equipo_id": 1}, "registros"),
    ({"equipo_id": 1, "registros": []}, "registros"),
    ({"equipo_id": 1, "registros": {"a": 1}}, "registros"),
])
def test_validate_submission_rejects_bad_top_level(body, field):
    with pytest.raises(models.Invalid) as info:
        submissions.validate_submission(body, 15)
    assert field in info.value.errors


def test_passwords_are_salted_scrypt():
    first, second = identity.hash_password("secreto"), identity.hash_password("secreto")
    assert first != second and first.startswith("scrypt$")
    assert identity.verify_password("secreto", first)
    assert not identity.verify_password("Secreto", first)
    assert not identity.verify_password("secreto", "garbage")


@pytest.fixture
def database(tmp_path):
    models.open_database(tmp_path / "models.db")
    models.db.connect(reuse_if_open=True)
    yield tmp_path / "models.db"
    models.db.close()


@pytest.fixture
def one_team_race(database):
    """(competition, judge, a second judge with no team, the first judge's one team)."""
    comp = registration.create_competition("Prueba")
    juez = registration.create_judge("Juez.Uno", "clave-juez", comp.id)
    otro = registration.create_judge("juez.dos", "clave-juez", comp.id)
    equipo = registration.create_team("Equipo", 7, juez.id)
    return comp, juez, otro, equipo


def test_database_is_wal_with_foreign_keys_and_full_sync(database):
    assert models.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert models.db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert models.db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2


def test_schema_is_versioned_and_reopening_keeps_data(database):
    registration.create_competition("Sigue aquí")
    models.db.close()
    models.open_database(database)
    assert models.SchemaVersion.get().version == models.SCHEMA_VERSION
    assert models.Competencia.get().nombre == "Sigue aquí"


def test_the_start_as_given_survives_adjustments_and_a_version_9_database_learns_it(
        one_team_race, database):
    """``inicio_dado``: started_at as the start set it; an adjustment moves started_at alone, a
    reset clears both. A race started under schema 9 has its given start read from history."""
    comp = one_team_race[0]
    given = race_control.start_competition(comp.id)["started_at"]
    adjusted = race_control.shift_times(None, comp.id, 20_000, "salida tarde")
    after = models.Competencia.get_by_id(comp.id).to_dict()
    assert after["inicio_dado"] == given != after["started_at"]
    assert adjusted is not None
    models.db.execute_sql('ALTER TABLE "competencia" DROP COLUMN "inicio_dado"')
    models.SchemaVersion.update(version=9).execute()
    models.db.close()
    models.open_database(database)
    migrated = models.Competencia.get_by_id(comp.id).to_dict()
    assert (migrated["inicio_dado"], migrated["started_at"]) == (given, after["started_at"])
    reset, _ = race_control.reset_competition(comp.id, force=True)
    assert reset["inicio_dado"] is None and reset["started_at"] is None


def test_newer_schema_is_refused(database):
    models.SchemaVersion.update(version=models.SCHEMA_VERSION + 1).execute()
    models.db.close()
    with pytest.raises(RuntimeError, match="newer"):
        models.open_database(database)


def test_usernames_are_case_insensitive_and_unicode(one_team_race):
    with pytest.raises(models.Conflict):
        identity.create_user("JUEZ.UNO", "clave-otra")
    user = identity.create_user("Ñandú Ölçer", "clave-ñandú")
    assert identity.authenticate("ñandú ölçer", "clave-ñandú")["user"]["id"] == user.id
    assert identity.authenticate("juez.uno", "clave-juez")["juez_id"] is not None
    assert identity.authenticate("juez.uno", "wrong") is None
    assert identity.authenticate("nadie", "clave-juez") is None


def test_store_splits_time_and_keeps_race_state(one_team_race):
    comp, juez, _, equipo = one_team_race
    result = submissions.store_submission(juez.user_id, equipo.id,
                                          registros([3_723_004], validated=True))
    assert len(result["created"]) == 1 and result["duplicates"] == []
    row = models.RegistroTiempo.get()
    assert (row.horas, row.minutos, row.segundos, row.milisegundos) == (1, 2, 3, 4)
    assert row.estado_carrera == "programada"
    assert row.juez_id == juez.id and str(row.id_registro) == result["created"][0]


def test_store_is_idempotent_by_id_and_by_content(one_team_race):
    comp, juez, _, equipo = one_team_race
    rid = uuid.uuid4().hex
    first = submissions.store_submission(juez.user_id, equipo.id, registros(
        [1000, 2000], ids=[rid, None], validated=True))
    again = submissions.store_submission(  # both again (12:00:00, 12:00:01) as first sent
        juez.user_id, equipo.id, registros([1000, 2000], ids=[rid, None], validated=True))
    assert again["created"] == []
    assert again["duplicates"] == first["created"]
    # Equal records without an id count as a multiset: a second one is a second runner; a
    # record without an id never repeats one sent with an id.
    more = submissions.store_submission(
        juez.user_id, equipo.id, registros([2000], at="2025-11-11T12:00:01Z", validated=True) * 2
        + registros([1000], validated=True))
    assert more["duplicates"] == [first["created"][1]] and len(more["created"]) == 2
    assert models.RegistroTiempo.select().count() == 4


def test_reused_id_with_other_data_is_a_conflict_and_stores_nothing(one_team_race):
    comp, juez, _, equipo = one_team_race
    rid = uuid.uuid4().hex
    submissions.store_submission(juez.user_id, equipo.id,
                                 registros([1000], ids=[rid], validated=True))
    with pytest.raises(models.Conflict):
        with models.db.atomic():
            submissions.store_submission(
                juez.user_id, equipo.id,
                registros([5000], at="2025-11-11T12:00:05Z", validated=True)
                + registros([9999], ids=[rid], validated=True))  # rid at 12:00:00, other tiempo
    assert models.RegistroTiempo.select().count() == 1


def test_store_checks_judge_team_and_user(one_team_race):
    comp, juez, otro, equipo = one_team_race
    one = registros([1], validated=True)
    with pytest.raises(models.Forbidden, match="no está asignado"):
        submissions.store_submission(otro.user_id, equipo.id, one)
    with pytest.raises(models.NotFound):
        submissions.store_submission(juez.user_id, 999, one)
    organizer = identity.create_user("org", "clave-org", organizer=True)
    with pytest.raises(models.Forbidden, match="perfil de juez"):
        submissions.store_submission(organizer.id, equipo.id, one)
    models.Juez.update(is_active=False).where(models.Juez.id == juez.id).execute()
    with pytest.raises(models.Forbidden, match="inactivo"):
        submissions.store_submission(juez.user_id, equipo.id, one)
    models.User.update(is_active=False).where(models.User.id == juez.user_id).execute()
    with pytest.raises(models.Unauthenticated):
        submissions.store_submission(juez.user_id, equipo.id, one)
    assert models.RegistroTiempo.select().count() == 0


def test_race_state_changes(one_team_race):
    comp, juez, _, equipo = one_team_race
    started = race_control.start_competition(comp.id)
    assert started["estado"] == "en_curso" and started["started_at"].endswith("Z")
    with pytest.raises(models.Conflict):
        race_control.start_competition(comp.id)
    stopped = race_control.stop_competition(comp.id)
    assert stopped["estado"] == "finalizada"
    with pytest.raises(models.Conflict):
        race_control.stop_competition(comp.id)
    with pytest.raises(models.Conflict):
        race_control.start_competition(comp.id)
    reset, changed = race_control.reset_competition(comp.id)
    assert changed and reset["estado"] == "programada" and reset["started_at"] is None
    again, changed = race_control.reset_competition(comp.id)
    assert not changed and again == reset
    with pytest.raises(models.NotFound):
        race_control.start_competition(999)


def test_reset_after_records_needs_force_and_keeps_records(one_team_race):
    comp, juez, _, equipo = one_team_race
    race_control.start_competition(comp.id)
    submissions.store_submission(juez.user_id, equipo.id, registros([10], validated=True))
    with pytest.raises(models.Conflict) as info:
        race_control.reset_competition(comp.id)
    assert info.value.code == "records_since_start"
    reset, changed = race_control.reset_competition(comp.id, force=True)
    assert changed and reset["estado"] == "programada"
    kept = models.RegistroTiempo.get()
    assert kept.estado_carrera == "en_curso"


@pytest.mark.parametrize("sql, params", [
    (submissions._BY_KEY_SQL % "(?, ?, ?), (?, ?, ?)", (1, "x", 1, 2, "y", 2)),
    (submissions._BY_ID_SQL % "?, ?", ("a" * 32, "b" * 32)),
    (submissions._SUBMITTERS_SQL % "(?, ?), (?, ?)", (1, 2, 3, 4)),
])
def test_submission_lookups_search_indexes_never_scan_tables(one_team_race, sql, params):
    plan = [row[-1] for row in models.db.execute_sql("EXPLAIN QUERY PLAN " + sql,
                                                     params).fetchall()]
    scans = [step for step in plan if step.startswith("SCAN")
             and not step.startswith(("SCAN k", "SCAN req")) and "CONSTANT ROWS" not in step]
    assert not scans, plan
    assert any(step.startswith("SEARCH") for step in plan), plan


def test_writer_commits_jobs_in_savepoints(database):
    models.db.close()
    writer = store.Writer()
    writer.start()
    try:
        ok = writer.submit(registration.create_competition, "Una")
        bad = writer.submit(registration.create_competition, "")
        assert ok.result(5).nombre == "Una"
        with pytest.raises(models.Invalid):
            bad.result(5)
    finally:
        writer.stop()
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT nombre FROM competencia").fetchall() == [("Una",)]


def test_version_1_database_is_migrated_keeping_its_records(one_team_race):
    comp, juez, _, equipo = one_team_race
    submissions.store_submission(juez.user_id, equipo.id, registros([42], validated=True))
    # Make this a version-1 event database: the indexes it had that later versions dropped.
    models.db.execute_sql('CREATE INDEX "registrotiempo_equipo_id_tiempo" ON "registro_tiempo" '
                          '("equipo_id", "tiempo")')
    models.db.execute_sql('CREATE INDEX "registrotiempo_equipo_id" ON "registro_tiempo" '
                          '("equipo_id")')
    models.db.execute_sql('CREATE INDEX "registrotiempo_juez_id" ON "registro_tiempo" '
                          '("juez_id")')
    models.SchemaVersion.update(version=1).execute()
    path = models.db.database
    models.db.close()
    models.open_database(path)
    models.db.connect(reuse_if_open=True)
    indexes = {row[0] for row in models.db.execute_sql(
        "SELECT name FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name = 'registro_tiempo'")}
    assert "registrotiempo_equipo_id" not in indexes
    assert "registrotiempo_juez_id" not in indexes
    assert "registrotiempo_equipo_id_tiempo" not in indexes  # version 3
    assert "registrotiempo_equipo_id_timestamp_tiempo" in indexes
    assert models.SchemaVersion.get().version == models.SCHEMA_VERSION == 10
    assert [r.tiempo for r in models.RegistroTiempo.select()] == [42]


def test_results_read_a_teams_records_through_an_index(one_team_race):
    comp, juez, _, equipo = one_team_race
    plan = [row[-1] for row in models.db.execute_sql(
        "EXPLAIN QUERY PLAN SELECT r.equipo_id, r.tiempo FROM registro_tiempo AS r "
        "JOIN equipo AS e ON e.id = r.equipo_id WHERE e.competencia_id = ?", (comp.id,))]
    assert not any(step.startswith("SCAN r") for step in plan), plan


V3_SCHEMA = [
    'CREATE TABLE "competencia" ("id" INTEGER NOT NULL PRIMARY KEY, "nombre" VARCHAR(200) NOT '
    'NULL, "fecha_hora" TEXT, "started_at" TEXT, "finished_at" TEXT)',
    'CREATE TABLE "user" ("id" INTEGER NOT NULL PRIMARY KEY, "username" VARCHAR(150) NOT NULL, '
    '"username_key" VARCHAR(150) NOT NULL, "password_hash" VARCHAR(255) NOT NULL, "is_active" '
    'INTEGER NOT NULL, "is_organizer" INTEGER NOT NULL, "created_at" TEXT NOT NULL)',
    'CREATE UNIQUE INDEX "user_username_key" ON "user" ("username_key")',
    'CREATE TABLE "juez" ("id" INTEGER NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, '
    '"competencia_id" INTEGER NOT NULL, "nombre" VARCHAR(200) NOT NULL, "is_active" INTEGER NOT '
    'NULL, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE, FOREIGN KEY '
    '("competencia_id") REFERENCES "competencia" ("id") ON DELETE CASCADE)',
    'CREATE UNIQUE INDEX "juez_user_id" ON "juez" ("user_id")',
    'CREATE INDEX "juez_competencia_id" ON "juez" ("competencia_id")',
    'CREATE TABLE "equipo" ("id" INTEGER NOT NULL PRIMARY KEY, "competencia_id" INTEGER NOT '
    'NULL, "nombre" VARCHAR(200) NOT NULL, "dorsal" INTEGER NOT NULL, "juez_id" INTEGER, '
    'FOREIGN KEY ("competencia_id") REFERENCES "competencia" ("id") ON DELETE CASCADE, FOREIGN '
    'KEY ("juez_id") REFERENCES "juez" ("id") ON DELETE SET NULL)',
    'CREATE INDEX "equipo_competencia_id" ON "equipo" ("competencia_id")',
    'CREATE INDEX "equipo_juez_id" ON "equipo" ("juez_id")',
    'CREATE UNIQUE INDEX "equipo_competencia_id_dorsal" ON "equipo" ("competencia_id", "dorsal")',
    'CREATE TABLE "registro_tiempo" ("id" INTEGER NOT NULL PRIMARY KEY, "id_registro" TEXT NOT '
    'NULL, "equipo_id" INTEGER NOT NULL, "juez_id" INTEGER NOT NULL, "tiempo" INTEGER NOT NULL, '
    '"horas" INTEGER NOT NULL, "minutos" INTEGER NOT NULL, "segundos" INTEGER NOT NULL, '
    '"milisegundos" INTEGER NOT NULL, "timestamp" TEXT NOT NULL, "received_at" TEXT NOT NULL, '
    '"estado_carrera" VARCHAR(16) NOT NULL, FOREIGN KEY ("equipo_id") REFERENCES "equipo" '
    '("id") ON DELETE RESTRICT, FOREIGN KEY ("juez_id") REFERENCES "juez" ("id") ON DELETE '
    'RESTRICT)',
    'CREATE UNIQUE INDEX "registrotiempo_id_registro" ON "registro_tiempo" ("id_registro")',
    'CREATE INDEX "registrotiempo_equipo_id_timestamp_tiempo" ON "registro_tiempo" '
    '("equipo_id", "timestamp", "tiempo")',
    'CREATE TABLE "schema_version" ("id" INTEGER NOT NULL PRIMARY KEY, "version" INTEGER NOT '
    'NULL)',
]


def _shape(path):
    """Every table's columns (name, type, not null, default) and every index, by name."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {table: ([row[1:5] for row in conn.execute('PRAGMA table_info("%s")' % table)],
                        sorted(row[1:3] for row in conn.execute('PRAGMA index_list("%s")'
                                                                % table)),
                        [row[2:] for row in conn.execute('PRAGMA foreign_key_list("%s")'
                                                         % table)])
                for table in tables}


def test_a_version_3_database_migrates_to_exactly_the_fresh_schema(tmp_path):
    old = tmp_path / "v3.db"
    with sqlite3.connect(old) as conn:
        for statement in V3_SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (3)")
        conn.execute("INSERT INTO competencia (nombre, started_at) VALUES ('Vieja', "
                     "'2026-01-01 09:00:00.000000')")
        conn.execute("INSERT INTO user (username, username_key, password_hash, is_active, "
                     "is_organizer, created_at) VALUES ('j', 'j', 'x', 1, 0, '2026-01-01')")
        conn.execute("INSERT INTO juez (user_id, competencia_id, nombre, is_active) "
                     "VALUES (1, 1, 'J', 1)")
        conn.execute("INSERT INTO equipo (competencia_id, nombre, dorsal, juez_id) "
                     "VALUES (1, 'E', 1, 1)")
        conn.execute("INSERT INTO registro_tiempo VALUES (1, '%s', 1, 1, 61000, 0, 1, 1, 0, "
                     "'2026-01-01 09:01:01.000000', '2026-01-01 09:02:00.000000', 'en_curso')"
                     % uuid.UUID(int=7).hex)
    models.open_database(old)
    fresh = tmp_path / "fresh.db"
    models.open_database(fresh)
    assert _shape(old) == _shape(fresh)
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == 10
        # (an app record of before version 5 may have come without an id: matched by content)
        assert conn.execute("SELECT id_registro, juez_id, tiempo, origen, oficial_al_recibir, "
                            "sin_id FROM registro_tiempo").fetchall() == [
            (uuid.UUID(int=7).hex, 1, 61000, "app", 0, 1)]
        assert conn.execute("SELECT regla, contados, minimo, oficial_en, oculta FROM competencia"
                            ).fetchall() == [("suma", None, 1, None, 0)]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_password_verified_lately_is_known_without_scrypt_and_a_wrong_one_never_is(monkeypatch):
    """After an access point reboot every phone logs in again: a password verified in the last
    hours is recognised from memory; a wrong one, or the old password after a change, still
    costs a whole scrypt and fails."""
    import hashlib
    stored = identity.hash_password("pass-juez9")
    calls = []
    real_scrypt = hashlib.scrypt
    monkeypatch.setattr(identity.hashlib, "scrypt",
                        lambda *a, **kw: calls.append(1) or real_scrypt(*a, **kw))
    assert identity.verify_password("pass-juez9", stored) and len(calls) == 1
    assert identity.verify_password("pass-juez9", stored) and len(calls) == 1  # from memory
    assert not identity.verify_password("pass-juez8", stored) and len(calls) == 2
    assert not identity.verify_password("pass-juez9\udfff", stored)  # never a 500
    renewed = identity.hash_password("otra-clave-9")
    calls.clear()
    assert not identity.verify_password("pass-juez9", renewed) and len(calls) == 1
    # Forgotten after its time: scrypt again.
    real_monotonic = identity.time.monotonic
    monkeypatch.setattr(identity.time, "monotonic",
                        lambda: real_monotonic() + identity.VERIFIED_TTL_S + 1)
    calls.clear()
    assert identity.verify_password("pass-juez9", stored) and len(calls) == 1
