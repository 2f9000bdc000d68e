"""The first hour with Server5K (issue 11): the traps a new organizer falls into, each answered
with one clear line, and the README's race day followed word for word, reboot included."""

import asyncio
import csv
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys

import pytest
import yaml

import cli as cli_room
import config_schema
from helpers import (ROOT, LiveServer, fetch, free_port, judge_path, judge_socket, login,
                     next_message, registros, run_cli)


def one_line_error(result, *words):
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def conf(tmp_path):
    """A config file of an event whose server is not running."""
    path = tmp_path / "race.yaml"
    path.write_text("database:\n  path: race.db\n")
    return path


def cli(conf, *args, check=True, env=None):
    return run_cli(conf, *args, check=check, env=env)


# -- configuration ------------------------------------------------------------------------------
def test_a_config_file_that_does_not_exist_is_refused(tmp_path):
    env = dict(os.environ)
    env.pop("SERVER5K_CONFIG", None)
    missing = tmp_path / "nope.yaml"
    result = run_cli(missing, "competition", "list", check=False, env=env)
    assert result.returncode == 2
    one_line_error(result, str(missing), "--config", "does not exist")
    result = run_cli(missing, "serve", check=False, env=env)
    one_line_error(result, "does not exist")
    env["SERVER5K_CONFIG"] = str(tmp_path / "typo.yml")
    result = subprocess.run([sys.executable, str(ROOT / "server5k.py"), "competition", "list"],
                            env=env, cwd=str(tmp_path), capture_output=True, text=True)
    one_line_error(result, "typo.yml", "$SERVER5K_CONFIG")
    assert list(tmp_path.iterdir()) == []  # no empty database made where it stood


@pytest.mark.parametrize("section, key", [(s, k) for s, keys in config_schema.CONFIG_SCHEMA.items()
                                          for k in keys
                                          if keys[k].words.startswith(("an integer", "a number"))])
def test_every_number_out_of_range_is_refused_stating_the_range(tmp_path, section, key):
    (tmp_path / "c.yaml").write_text("%s:\n  %s: 100000000\n" % (section, key))
    with pytest.raises(config_schema.ConfigError) as info:
        config_schema.load_config(tmp_path / "c.yaml")
    message = str(info.value)
    assert "'%s.%s'" % (section, key) in message
    assert re.search(r"[0-9]+-[0-9]+|over [0-9.]+ and up to [0-9.]+", message), message


def test_a_database_in_a_folder_that_does_not_exist_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("database:\n  path: no/such/folder/race.db\n")
    for args in (["competition", "list"], ["init-db"], ["serve"]):
        one_line_error(run_cli(path, *args, check=False), "does not exist",
                       str(tmp_path / "no/such/folder"))


def test_a_second_serve_on_a_busy_port_names_the_address(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "c.yaml"
        path.write_text("server:\n  port: %d\ndatabase:\n  path: race.db\n" % port)
        env = dict(os.environ, SERVER5K_SECRET_KEY="s" * 40)  # (no log line of a new secret)
        one_line_error(run_cli(path, "serve", check=False, env=env), "127.0.0.1:%d" % port,
                       "already in use")


def test_every_command_and_option_explains_itself():
    parser = cli_room.build_parser()
    stack = [parser]
    while stack:
        current = stack.pop()
        for action in current._actions:
            if action.dest == "help" or action.help == "==SUPPRESS==":
                continue
            if hasattr(action, "choices") and isinstance(action.choices, dict):
                for name, sub in action.choices.items():
                    stack.append(sub)
                helps = {a.dest: a.help for a in action._choices_actions}
                assert all(helps.get(name) for name in action.choices), (current.prog, helps)
                continue
            assert action.help, "%s %s has no help" % (current.prog, action.option_strings or
                                                         action.dest)
    text = run_cli(ROOT / "config.yaml", "race", "start", "--help").stdout
    assert "SERVER5K_USER" in text and "SERVER5K_PASSWORD" in text


# -- the roster as spreadsheets save it ---------------------------------------------------------
SPANISH_EXCEL = ("Juez Usuario;Juez Nombre;Equipo;Dorsal\r\n"
                 "maría;María López;Tortugas;1\r\n"
                 "maría;María López;Liebres;2\r\n"
                 "josé;José Ruiz;Gacelas;3\r\n").encode("cp1252")


@pytest.mark.parametrize("name, data, note", [
    ("excel.csv", SPANISH_EXCEL, "Windows-1252"),
    ("bom.csv", "\ufeffjuez_usuario,juez_nombre,equipo,dorsal\nmaría,María López,Tortugas,1\n"
                "maría,María López,Liebres,2\njosé,José Ruiz,Gacelas,3\n".encode("utf-8"), None),
    ("semicolon-utf8.csv", "JUEZ_USUARIO; juez_nombre ;EQUIPO;dorsal\nmaría;María López;"
                           "Tortugas;1\nmaría;María López;Liebres;2\njosé;José Ruiz;Gacelas;3\n\n"
                           .encode("utf-8"), None),
])
def test_rosters_as_spreadsheets_save_them(conf, tmp_path, name, data, note):
    cli(conf, "competition", "add", "Con roster")
    roster = tmp_path / name
    roster.write_bytes(data)
    result = cli(conf, "import", str(roster), "--competition", "1")
    assert "imported 2 judges (2 new) and 3 teams" in result.stdout
    assert (note in result.stdout) if note else ("note:" not in result.stdout)
    teams = json.loads(cli(conf, "team", "list", "--json").stdout)
    assert [(t["nombre"], t["dorsal"], t["juez_usuario"]) for t in teams] == [
        ("Tortugas", 1, "maría"), ("Liebres", 2, "maría"), ("Gacelas", 3, "josé")]
    judges = json.loads(cli(conf, "judge", "list", "--json").stdout)
    assert [j["nombre"] for j in judges] == ["María López", "José Ruiz"]


def test_importing_again_adds_nothing_and_never_overwrites_passwords(conf, tmp_path):
    cli(conf, "competition", "add", "Con roster")
    roster = tmp_path / "roster.csv"
    roster.write_bytes(SPANISH_EXCEL)
    cli(conf, "import", str(roster), "--competition", "1")
    first = tmp_path / "roster-credenciales.csv"
    kept = first.read_text()
    again = cli(conf, "import", str(roster), "--competition", "1")
    assert "imported 2 judges (0 new) and 0 teams" in again.stdout
    assert first.read_text() == kept
    # A new judge in the roster later: its password goes to a new file, never over the old one.
    with roster.open("ab") as handle:
        handle.write("ana;Ana;Linces;4\r\n".encode("cp1252"))
    more = cli(conf, "import", str(roster), "--competition", "1")
    assert "(1 new)" in more.stdout and "roster-credenciales-2.csv" in more.stdout
    second = tmp_path / "roster-credenciales-2.csv"
    assert stat.S_IMODE(os.stat(second).st_mode) == 0o600
    with second.open(encoding="utf-8-sig") as handle:  # (a BOM, for spreadsheets)
        assert [row["usuario"] for row in csv.DictReader(handle)] == ["ana"]
    assert first.read_text() == kept


@pytest.mark.parametrize("text, words", [
    ("usuario;equipo\nx;y\n", ["faltan columnas: juez_usuario, juez_nombre, dorsal",
                               "su cabecera tiene: usuario, equipo"]),
    ("juez_usuario,juez_nombre,equipo,dorsal\nmaria,M,Tortugas,uno\n", ["línea 2", "'uno'"]),
    ("juez_usuario,juez_nombre,equipo,dorsal\nmaria,M,Tortugas,1\njose,J,Gacelas,1\n",
     ["línea 3", "el dorsal 1 también está en la línea 2"]),
    ("juez_usuario,juez_nombre,equipo,dorsal\nmaria,M,,1\n", ["línea 2", "falta equipo"]),
    ("juez_usuario,juez_nombre,equipo,dorsal\n", ["ninguna fila"]),
    ("", ["vacío"]),
])
def test_a_roster_that_cannot_be_used_says_exactly_why(conf, tmp_path, text, words):
    cli(conf, "competition", "add", "Con roster")
    roster = tmp_path / "bad.csv"
    roster.write_text(text, encoding="utf-8")
    one_line_error(cli(conf, "import", str(roster), "--competition", "1", check=False), *words)
    assert json.loads(cli(conf, "judge", "list", "--json").stdout) == []
    assert not (tmp_path / "bad-credenciales.csv").exists()


def test_the_wrong_competition_is_said_before_any_file_trouble(conf, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_bytes(SPANISH_EXCEL)
    (tmp_path / "roster-credenciales.csv").write_text("kept")
    one_line_error(cli(conf, "import", str(roster), "--competition", "7", check=False),
                   "competencia 7")


def test_team_add_takes_the_judges_username(conf):
    cli(conf, "competition", "add", "Una")
    cli(conf, "judge", "add", "pedro", "--competition", "1", "--password", "clave-larga")
    out = cli(conf, "team", "add", "Los Rápidos", "--dorsal", "7", "--judge", "PEDRO").stdout
    assert "judge pedro" in out
    assert "judge pedro" in cli(conf, "team", "list").stdout
    one_line_error(cli(conf, "team", "add", "B", "--dorsal", "8", "--judge", "nadie",
                       check=False), "nadie", "judge list")


# -- the running server, from the command line ---------------------------------------------------
def test_race_commands_speak_the_command_lines_words(spawn, event, config):
    server = spawn(config["database"]["path"]).start()
    as_org = {"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"}
    cid = str(event["competencia"])
    # --url without a scheme is taken as http://.
    url = "127.0.0.1:%d" % server.port
    started = server.cli("race", "start", cid, "--url", url, env=as_org).stdout
    assert "en_curso since" in started
    judge = asyncio.run(login(server.base_url, "juez1", "pass-juez1"))["access"]
    asyncio.run(fetch("POST", server.base_url + "/api/enviar_tiempos/", {
        "equipo_id": event["equipos"]["a"], "registros": registros([1_000_000])}, token=judge))
    one_line_error(server.cli("race", "reset", cid, env=as_org, check=False),
                   "race reset %s --force" % cid)
    stopped = server.cli("race", "stop", cid, env=as_org).stdout
    # The moments in local time, with their offset (race.timezone; the wire keeps UTC Z).
    assert re.search(r"finalizada at \S+[+-][0-9]{2}:[0-9]{2} \(started \S+[+-][0-9]{2}:[0-9]{2}\)",
                     stopped), stopped
    one_line_error(server.cli("race", "start", cid, env=as_org, check=False),
                   "race reset %s" % cid)
    # A late upload after the stop: stored, counted, and said by race status and the results.
    asyncio.run(fetch("POST", server.base_url + "/api/enviar_tiempos/", {
        "equipo_id": event["equipos"]["b"], "registros": registros([900_000])}, token=judge))
    status = server.cli("race", "status", cid, env=as_org).stdout
    assert "1 records arrived after the stop" in status
    code, result, _ = asyncio.run(fetch("GET", server.base_url
                                        + "/api/competencias/%s/resultados/" % cid))
    assert result["registros_tras_final"] == 1
    one_line_error(server.cli("race", "start", cid, "--url", "ftp://x", env=as_org,
                              check=False), "http://")


# -- the README's race day, word for word ------------------------------------------------------
def readme_section(title):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## " + title)
    return text[start:text.index("\n## ", start + 3)]


def test_race_day_step_by_step_as_the_readme_says_with_a_reboot(tmp_path):
    steps = readme_section("Race day, step by step")
    commands = [
        "cp config.yaml race.yaml", "export SERVER5K_CONFIG=$PWD/race.yaml",
        "python server5k.py init-db",
        'python server5k.py competition add "5K de Navidad" --date 2026-12-20T09:00:00+01:00',
        "python server5k.py organizer add ana",
        "python server5k.py import roster.csv --competition 1",
        "python server5k.py serve", "export SERVER5K_USER=ana SERVER5K_PASSWORD=...",
        "python server5k.py race status 1", "python server5k.py race start 1",
        "export SERVER5K_CONFIG=$PWD/race.yaml` first", "race stop 1",
        "python server5k.py results 1 --csv resultados.csv"]
    for command in commands:
        assert command in steps, "the README no longer says %r" % command

    # 1. Configure: race.yaml is config.yaml with the organizer's host, port and database.
    shutil.copy(ROOT / "config.yaml", tmp_path / "race.yaml")
    port = free_port()
    config = yaml.safe_load((tmp_path / "race.yaml").read_text())
    config["server"]["port"] = port
    config["database"]["path"] = "race.db"
    (tmp_path / "race.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, SERVER5K_CONFIG=str(tmp_path / "race.yaml"))
    env.pop("SERVER5K_SECRET_KEY", None)  # the README's recipe: the secret file

    def step(*args, extra=None):
        return run_cli(tmp_path / "race.yaml", *args, env=dict(env, **(extra or {})))

    out = step("init-db").stdout
    assert "signing secret: %s (mode 0600)" % (tmp_path / "race.db.secret") in out
    # 2. Set the event up.
    step("competition", "add", "5K de Navidad", "--date", "2026-12-20T09:00:00+01:00")
    password = re.search(r"password \(shown once\): (\S+)",
                         step("organizer", "add", "ana").stdout).group(1)
    (tmp_path / "roster.csv").write_bytes(SPANISH_EXCEL)
    step("import", str(tmp_path / "roster.csv"), "--competition", "1")
    with (tmp_path / "roster-credenciales.csv").open(encoding="utf-8-sig") as handle:
        creds = {row["usuario"]: row for row in csv.DictReader(handle)}
    # 3. Serve.
    server = LiveServer(tmp_path, tmp_path / "race.db", secret=None,
                        config_path=tmp_path / "race.yaml")
    organizer = {"SERVER5K_USER": "ana", "SERVER5K_PASSWORD": password}
    try:
        server.start()
        assert "1 competition(s) (1 5K de Navidad), 0 time records" in server.log()
        maria = creds["maría"]

        async def phone_until_the_reboot():
            tokens = await login(server.base_url, "maría", maria["contrasena"])
            ws, _ = await judge_socket(server.ws_base + judge_path(maria["juez_id"],
                                                                   tokens["access"]))
            # 4. Who is connected; 5. start (the CLI runs while the phone's socket waits).
            status = step("race", "status", "1", extra=organizer).stdout
            assert "judges connected: 1 of 2" in status
            assert "OK" in status and "maría" in status
            assert "notified: 1" in step("race", "start", "1", extra=organizer).stdout
            start = await next_message(ws)
            assert start["type"] == "carrera.iniciada"
            # 6. Times arrive.
            code, sent, _ = await fetch("POST", server.base_url + "/api/enviar_tiempos/", {
                "equipo_id": 1, "registros": registros([1_185_200, 1_200_000], ids=True)},
                token=tokens["access"])
            assert code == 201 and len(sent["created"]) == 2
            ws.close()
            return tokens, start["data"]["started_at"], sent

        tokens, started_at, sent = asyncio.run(phone_until_the_reboot())
        # ...and the laptop reboots in the middle of step 6: served again the same way.
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0
        server.start()

        async def phone_after():
            # The phone is still logged in: its access and refresh tokens both work.
            code, me, _ = await fetch("GET", server.base_url + "/api/me/",
                                      token=tokens["access"])
            assert code == 200 and me["juez"]["id"] == int(maria["juez_id"])
            code, refreshed, _ = await fetch("POST", server.base_url + "/api/token/refresh/",
                                             {"refresh": tokens["refresh"]})
            assert code == 200, refreshed
            ws, _ = await judge_socket(server.ws_base + judge_path(maria["juez_id"],
                                                                   refreshed["access"]))
            replay = await next_message(ws)
            assert replay["type"] == "carrera.iniciada"
            assert replay["data"]["started_at"] == started_at  # the original start
            ws.close()
            # The upload it was retrying lands once.
            code, again, _ = await fetch("POST", server.base_url + "/api/enviar_tiempos/", {
                "equipo_id": 1, "registros": [
                    {"timestamp": r["timestamp"], "tiempo": r["tiempo"], "id_registro": rid}
                    for r, rid in zip(registros([1_185_200, 1_200_000]), sent["created"])]},
                token=refreshed["access"])
            assert code == 201 and again["created"] == [] and len(again["duplicates"]) == 2

        asyncio.run(phone_after())
        step("race", "stop", "1", extra=organizer)
        # 7. The standings for the spreadsheet.
        out = step("results", "1", "--csv", str(tmp_path / "resultados.csv")).stdout
        assert "written to" in out
        with (tmp_path / "resultados.csv").open(encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
        assert rows[1][2] == "Tortugas" and rows[1][0] == "1"
    finally:
        server.stop()
