"""One way to change data (issue 21 item 4, issue 22 item 2): with a server running for the
database, every command line change goes through its API as an organizer (its writer orders it;
the standings and the judges see it; nothing waits on a lock); with none, the same domain
functions write the database. The real server as a subprocess, judges submitting meanwhile."""

import json
import signal
import threading

from helpers import registros, request_json, wait_for

ORG = {"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass-123"}


def roster_text(teams, judges, first_dorsal=100):
    return "juez_usuario,juez_nombre,equipo,dorsal,categoria\n" + "".join(
        "ruta%d,Juez de ruta %d,Equipo ruta %d,%d,C%d\n" % (
            n % judges, n % judges, n, first_dorsal + n, n % 3) for n in range(teams))


def set_up(srv):
    """An event made from the command line with no server running (the database directly)."""
    for args in (["competition", "add", "Carrera"],
                 ["organizer", "add", "org", "--password", ORG["SERVER5K_PASSWORD"]],
                 ["judge", "add", "juez1", "--competition", "1", "--password", "pass-juez1"],
                 ["team", "add", "Equipo A", "--dorsal", "1", "--judge", "juez1"]):
        done = srv.cli(*args)
        assert done.stderr.startswith("server5k: database %s (config" % srv.db_path)
        assert "served by" not in done.stderr


class Judge(threading.Thread):
    """A judge's phone sending a record every few ms until stopped: every answer kept."""

    def __init__(self, base_url, equipo_id):
        super().__init__(daemon=True)
        self.base_url, self.equipo_id = base_url, equipo_id
        self.answers, self.done = [], threading.Event()
        _, tokens = request_json("POST", base_url + "/api/token/",
                                 {"username": "juez1", "password": "pass-juez1"})
        self.token = tokens["access"]

    def run(self):
        n = 0
        while not self.done.is_set():
            n += 1
            status, answer = request_json(
                "POST", self.base_url + "/api/enviar_tiempos/",
                {"equipo_id": self.equipo_id, "registros": registros([60_000 + n], ids=True)},
                token=self.token)
            self.answers.append((status, answer))
            self.done.wait(0.02)


def test_cli_changes_go_through_a_running_server_while_judges_submit(spawn, tmp_path):
    srv = spawn(tmp_path / "event.db", limits={"submissions_per_minute": 0})
    set_up(srv)
    srv.start()
    run_file = tmp_path / "event.db.server.json"
    assert json.loads(run_file.read_text())["url"] == srv.base_url
    # Without an organizer's login it says so, and what is missing.
    refused = srv.cli("team", "add", "Sin login", "--dorsal", "5", "--judge", "juez1",
                      env={"SERVER5K_USER": "org", "SERVER5K_PASSWORD": ""}, check=False)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert "a server is running" in refused.stderr and "SERVER5K_PASSWORD" in refused.stderr
    assert "SERVER5K_USER " not in refused.stderr
    srv.cli("race", "start", "1", env=ORG)
    judge = Judge(srv.base_url, 1)
    judge.start()
    try:
        outputs = [srv.cli(*args, env=ORG) for args in (
            ["team", "add", "Equipo CLI", "--dorsal", "2", "--judge", "juez1", "--category",
             "Veteranos"],
            ["judge", "add", "juez2", "--competition", "1", "--password", "pass-juez2"],
            ["competition", "add", "Otra carrera"],
            ["organizer", "add", "org2", "--json"],
            ["judge", "passwd", "juez2", "--password", "otra-clave-2"])]
        roster = tmp_path / "ruta.csv"
        roster.write_text(roster_text(300, 4), encoding="utf-8")
        outputs.append(srv.cli("import", str(roster), "--competition", "1", env=ORG))
        fixed = tmp_path / "ruta2.csv"  # corrected: team 100 renamed
        fixed.write_text(roster_text(300, 4).replace("Equipo ruta 0,", "Equipo ruta cero,"),
                         encoding="utf-8")
        outputs.append(srv.cli("import", str(fixed), "--competition", "1", env=ORG))
    finally:
        judge.done.set()
        judge.join(10)
    for done in outputs:
        assert "is served by %s: the change went through it" % srv.base_url in done.stderr
    assert "imported 4 judges (4 new) and 300 teams" in outputs[5].stdout
    assert "1 teams corrected" in outputs[6].stdout
    assert "line 2: dorsal 100 nombre Equipo ruta 0 -> Equipo ruta cero" in outputs[6].stdout
    assert json.loads(outputs[3].stdout.splitlines()[-1])["organizador"] is True
    with open(tmp_path / "ruta-credenciales.csv", encoding="utf-8") as handle:
        assert len(handle.read().splitlines()) == 5
    # The judges kept submitting, every one answered 201; no lock anywhere.
    assert len(judge.answers) >= 5
    assert {status for status, _ in judge.answers} == {201}, judge.answers[-3:]
    assert "database is locked" not in srv.log() and "Traceback" not in srv.log()
    # The standings and the history see the changes (made by the organizer, through the API).
    _, results = request_json("GET", srv.base_url + "/api/competencias/1/resultados/")
    names = {row["equipo"]: row for row in results["clasificacion"]}
    assert names["Equipo CLI"]["categoria"] == "Veteranos" and "Equipo ruta cero" in names
    assert len(names) == 302
    _, tokens = request_json("POST", srv.base_url + "/api/token/",
                             {"username": "org", "password": ORG["SERVER5K_PASSWORD"]})
    _, audit = request_json("GET", srv.base_url + "/api/competencias/1/auditoria/",
                            token=tokens["access"])
    created = [a for a in audit["acciones"] if a["accion"] == "crear" and a["usuario"] == "org"]
    assert len(created) >= 1 + 1 + 4 + 300
    # juez2's new password works at once; the old one no longer does.
    assert request_json("POST", srv.base_url + "/api/token/",
                        {"username": "juez2", "password": "otra-clave-2"})[0] == 200
    srv.signal(signal.SIGTERM)
    srv.wait()
    assert not run_file.exists()  # a clean stop removes it
    # No server: the same command writes the database itself.
    alone = srv.cli("team", "add", "Equipo sin servidor", "--dorsal", "3", "--judge", "juez1")
    assert "served by" not in alone.stderr and "Equipo sin servidor" in alone.stdout


def test_a_killed_servers_run_file_is_ignored(spawn, tmp_path):
    srv = spawn(tmp_path / "event.db")
    set_up(srv)
    run_file = tmp_path / "event.db.server.json"
    srv.start()  # (it listens a moment before it writes its run file)
    wait_for(run_file.exists, what="the server's run file")
    srv.signal(signal.SIGKILL)
    srv.wait()
    assert run_file.exists()  # left behind by the kill
    done = srv.cli("team", "add", "Tras el corte", "--dorsal", "9", "--judge", "juez1")
    assert "served by" not in done.stderr and "Tras el corte" in done.stdout
    srv.start()  # a new server writes its own
    wait_for(lambda: json.loads(run_file.read_text())["pid"] == srv.process.pid,
             what="the new server's run file")
    listed = srv.cli("team", "list")
    assert "served by %s" % srv.base_url in listed.stderr and "Tras el corte" in listed.stdout


def test_simulate_creates_its_judges_through_a_running_server(spawn, tmp_path):
    srv = spawn(tmp_path / "event.db")
    set_up(srv)
    srv.start()
    done = srv.cli("simulate", "--judges", "2", "--competition", "1", "--create-demo",
                   "--start", env=ORG, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "POST /api/competencias/1/jueces/" in srv.log()
    assert "database is locked" not in srv.log()
    again = srv.cli("simulate", "--judges", "2", "--competition", "1", "--create-demo",
                    "--start", env=ORG, check=False)  # the same judges, their passwords kept
    assert again.returncode == 0, again.stdout + again.stderr
    teams = srv.cli("team", "list", "--json").stdout
    assert json.loads(teams)[-1]["nombre"] == "Equipo simulado 2" and len(json.loads(teams)) == 3
