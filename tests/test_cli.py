"""The organizer's command line: setting an event up, importing a roster, errors."""

import csv
import json
import os
import stat

import pytest

from helpers import LiveServer


@pytest.fixture
def conf(tmp_path):
    """The command line of an event whose server is not running."""
    return LiveServer(tmp_path, tmp_path / "event.db")


def json_line(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_setting_up_an_event_with_json_output(conf):
    comp = json_line(conf.cli("competition", "add", "5K Navidad", "--date",
                        "2026-12-20T09:00:00+01:00", "--json"))
    assert comp["id"] == 1 and comp["fecha_hora"] == "2026-12-20T08:00:00.000Z"
    assert comp["estado"] == "programada"
    org = json_line(conf.cli("organizer", "add", "Ana", "--json"))
    assert org["organizador"] is True and len(org["password"]) >= 10  # generated, shown once
    judge = json_line(conf.cli("judge", "add", "pedro", "--competition", "1", "--name",
                         "Pedro Pérez", "--password", "clave-larga", "--json"))
    assert judge["nombre"] == "Pedro Pérez" and "password" not in judge
    team = json_line(conf.cli("team", "add", "Los Rápidos", "--dorsal", "7", "--judge",
                        str(judge["id"]), "--json"))
    assert team == {"id": 1, "nombre": "Los Rápidos", "dorsal": 7, "juez_id": judge["id"],
                    "competencia_id": 1, "categoria": None}
    veteranos = json_line(conf.cli("team", "add", "Los Lentos", "--dorsal", "8", "--judge",
                                   "pedro", "--category", " Veteranos ", "--json"))
    assert veteranos["categoria"] == "Veteranos"
    listing = conf.cli("team", "list").stdout
    assert "Los Rápidos" in listing and "dorsal 7" in listing
    assert "category Veteranos" in listing
    assert "pedro" in conf.cli("judge", "list").stdout
    assert "5K Navidad" in conf.cli("competition", "list").stdout
    assert json.loads(conf.cli("competition", "list", "--json").stdout)[0]["id"] == 1


def test_errors_exit_non_zero_with_one_line(conf):
    conf.cli("competition", "add", "Una")
    conf.cli("judge", "add", "pedro", "--competition", "1", "--password", "clave-larga")
    for args in (["judge", "add", "PEDRO", "--competition", "1", "--password", "clave-larga"],
                 ["judge", "add", "otro", "--competition", "99", "--password", "clave-larga"],
                 ["judge", "add", "otro", "--competition", "1", "--password", "corta"],
                 ["organizer", "add", "ana", "--password", "1234567"],
                 ["judge", "passwd", "pedro", "--password", "1234567"],
                 ["team", "add", "A", "--dorsal", "1", "--judge", "99"],
                 ["competition", "add", "x", "--date", "mañana"],
                 ["judge", "passwd", "nadie", "--password", "clave-larga"]):
        result = conf.cli(*args, check=False)
        assert result.returncode != 0, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("server5k: error:")
    conf.cli("team", "add", "A", "--dorsal", "1", "--judge", "1")
    dup = conf.cli("team", "add", "B", "--dorsal", "1", "--judge", "1", check=False)
    assert dup.returncode != 0 and "dorsal" in dup.stderr


def test_judge_passwd_generates_and_prints_once(conf):
    conf.cli("competition", "add", "Una")
    conf.cli("judge", "add", "pedro", "--competition", "1", "--password", "clave-vieja")
    out = conf.cli("judge", "passwd", "pedro").stdout
    assert "new password (shown once):" in out


def test_import_roster(conf, tmp_path):
    conf.cli("competition", "add", "Con roster")
    roster = tmp_path / "roster.csv"
    roster.write_text("juez_usuario,juez_nombre,equipo,dorsal\n"
                      "maria,María López,Tortugas,1\n"
                      "maria,María López,Liebres,2\n"
                      "jose,José Ruiz,Gacelas,3\n", encoding="utf-8")
    result = conf.cli("import", str(roster), "--competition", "1")
    assert "imported 2 judges (2 new) and 3 teams" in result.stdout
    creds_path = tmp_path / "roster-credenciales.csv"
    assert stat.S_IMODE(os.stat(creds_path).st_mode) == 0o600
    with creds_path.open(encoding="utf-8-sig") as handle:  # (a BOM, for spreadsheets)
        creds = list(csv.DictReader(handle))
    assert [c["usuario"] for c in creds] == ["maria", "jose"]
    for c in creds:  # passwords are never echoed
        assert c["contrasena"] not in result.stdout + result.stderr
    teams = json.loads(conf.cli("team", "list", "--json").stdout)
    assert [(t["nombre"], t["dorsal"]) for t in teams] == [
        ("Tortugas", 1), ("Liebres", 2), ("Gacelas", 3)]
    # A second import of the same roster adds nothing and needs no new credentials file.
    creds_path.rename(tmp_path / "kept.csv")
    again = conf.cli("import", str(roster), "--competition", "1")
    assert "imported 2 judges (0 new) and 0 teams" in again.stdout


def test_import_is_all_or_nothing(conf, tmp_path):
    conf.cli("competition", "add", "Con roster")
    roster = tmp_path / "bad.csv"
    roster.write_text("juez_usuario,juez_nombre,equipo,dorsal\n"
                      "maria,María,Tortugas,1\n"
                      "jose,José,Gacelas,uno\n", encoding="utf-8")
    result = conf.cli("import", str(roster), "--competition", "1", check=False)
    assert result.returncode != 0 and "línea 3" in result.stderr
    assert json.loads(conf.cli("judge", "list", "--json").stdout) == []
    assert not (tmp_path / "bad-credenciales.csv").exists()
    missing = tmp_path / "cols.csv"
    missing.write_text("usuario,equipo\nx,y\n")
    result = conf.cli("import", str(missing), "--competition", "1", check=False)
    assert result.returncode != 0 and "faltan columnas" in result.stderr


def test_race_without_a_running_server_says_so(conf):
    result = conf.cli("race", "start", "1", "--user", "a", "--password", "b", check=False)
    assert result.returncode != 0
    assert "not reachable" in result.stderr and "Traceback" not in result.stderr


def test_race_without_credentials_says_so(conf, monkeypatch):
    monkeypatch.delenv("SERVER5K_USER", raising=False)
    monkeypatch.delenv("SERVER5K_PASSWORD", raising=False)
    result = conf.cli("race", "status", "1", check=False)
    assert result.returncode != 0 and "credentials" in result.stderr


def test_init_db_and_demo_are_idempotent(conf):
    assert "schema version" in conf.cli("init-db").stdout
    first = conf.cli("demo").stdout
    second = conf.cli("demo").stdout
    assert first == second and "juez1" in first and "organizador" in first
    # Issue 20 item 9: the demo database only when asked for (a terminal without
    # SERVER5K_CONFIG must not list or change the demo event unawares).
    for args in (["competition", "list"], ["team", "add", "X", "--dorsal", "9", "--judge",
                                           "juez1"], ["results", "1"]):
        refused = conf.cli(*args, check=False)
        assert refused.returncode == 1 and "is the demo database" in refused.stderr
        assert "--demo" in refused.stderr and len(refused.stderr.splitlines()) == 1
    listed = conf.cli("--demo", "competition", "list", "--json")
    assert len(json.loads(listed.stdout)) == 1
    assert listed.stderr == "server5k: database %s (config %s)\n" % (conf.db_path,
                                                                      conf.config_path)


ESCAPES = "\x1b]0;hackeado\x07\x1b[2J\x9b31m\u202eadbeef\u200b\nfalso"


def test_names_never_reach_the_terminal_raw(conf, tmp_path):
    """Names come from rosters and the API: the tables and lines show their control, invisible
    and bidirectional characters escaped (the --json output stays exact)."""
    import models
    conf.cli("competition", "add", "Carrera" + ESCAPES)
    juez = json_line(conf.cli("judge", "add", "pedro", "--competition", "1", "--name",
                              "Pedro" + ESCAPES, "--password", "clave-larga", "--json"))
    conf.cli("team", "add", "Equipo" + ESCAPES, "--dorsal", "7", "--judge", str(juez["id"]))
    models.open_database(conf.db_path)
    with models.db.connection_context():  # an account from before usernames were checked
        models.User.update(username="pedro" + ESCAPES).execute()
    for args in (("results", "1"), ("team", "list"), ("judge", "list"),
                 ("competition", "list")):
        out = conf.cli(*args).stdout
        assert not any(c in out for c in "\x1b\x07\x9b\u202e\u200b"), (args, out)
        assert "\\x1b]0;hackeado\\x07" in out and "\\u202e" in out, (args, out)
        assert "\\x0afalso" in out  # a newline in a name cannot forge a line of the table
    raw = json.loads(conf.cli("team", "list", "--json").stdout)
    assert raw[0]["nombre"] == "Equipo" + ESCAPES


def test_server_answers_never_reach_the_terminal_raw(spawn, tmp_path):
    """race status and audit print what the running server answers: escaped too."""
    import models
    server = spawn(tmp_path / "event.db")
    server.cli("competition", "add", "Carrera")
    server.cli("organizer", "add", "ana", "--password", "clave-larga")
    server.cli("judge", "add", "pedro", "--competition", "1", "--password", "clave-larga")
    models.open_database(server.db_path)
    with models.db.connection_context():
        models.User.update(username="pedro" + ESCAPES).where(
            models.User.username == "pedro").execute()
    server.start()
    auth = ("--user", "ana", "--password", "clave-larga")
    server.cli("race", "shift", "1", "--by", "0", "--reason", "motivo" + ESCAPES, *auth,
               check=False)
    server.cli("race", "start", "1", *auth)
    server.cli("race", "shift", "1", "--by", "+1s", "--reason", "motivo" + ESCAPES, *auth)
    for args in (("race", "status", "1"), ("audit", "1")):
        out = server.cli(*args, *auth).stdout
        assert not any(c in out for c in "\x1b\x07\x9b\u202e\u200b"), (args, out)
        assert "\\x1b]0;hackeado\\x07" in out, (args, out)


def test_the_credentials_csv_guards_formula_cells_like_the_consoles_downloads(conf, tmp_path):
    """Issue 22 item 5: a judge named as a formula must not run when the organizer opens the
    credentials file in a spreadsheet; simulate reads the file back as it was."""
    import cli_local
    conf.cli("competition", "add", "Fórmulas")
    roster = tmp_path / "formulas.csv"
    roster.write_text('juez_usuario,juez_nombre,equipo,dorsal\n'
                      '+juez,"=HYPERLINK(""http://x.example"",""clic"")",@Equipo,1\n'
                      'normal,Normal,Otro,2\n', encoding="utf-8")
    conf.cli("import", str(roster), "--competition", "1")
    with (tmp_path / "formulas-credenciales.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[1][0] == "'+juez" and rows[1][3].startswith("'=HYPERLINK(")
    assert rows[2][0] == "normal" and rows[2][3] == "Normal"
    assert [cli_local.read_credential(cell) for cell in rows[1]][0] == "+juez"
    assert cli_local.read_credential("'plain") == "'plain"  # only guarded cells lose it
    judges = {j["username"]: j for j in json.loads(conf.cli("judge", "list", "--json").stdout)}
    assert judges["+juez"]["nombre"].startswith("=HYPERLINK(")  # stored as given


def test_error_lines_escape_terminal_control_characters(conf, tmp_path):
    """Issue 22 item 5: a roster's header cell ESC]0;...BEL retitled the organizer's terminal
    through the error line that lists the header."""
    conf.cli("competition", "add", "Escapes")
    roster = tmp_path / "escapes.csv"
    roster.write_text("\x1b]0;hackeado\x07,equipo,dorsal\nx,y,1\n", encoding="utf-8")
    result = conf.cli("import", str(roster), "--competition", "1", check=False)
    assert result.returncode == 1 and "faltan columnas" in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b]0;hackeado\\x07" in result.stderr
    assert len(result.stderr.splitlines()) == 1
