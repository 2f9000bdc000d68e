"""One server per database, and the command line never beside it (issue 22 item 2): `serve`
holds an exclusive lock on DATABASE.lock for its life, a command working on the database alone
a shared one for its run. A second `serve` is refused, naming the first; a killed server's files
never block a restart; a command never writes the database while a server holds it, answering
or not; `serve` waits for a command that is writing. The real server as a subprocess."""

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

from helpers import request_json, run_cli, wait_for

import cli_local
import cli_output
import cli_remote
import config_schema
import roster
import server5k

ORG = {"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass-123"}


def competitions(db_path):
    with contextlib.closing(sqlite3.connect(str(db_path))) as conn:
        return [row[0] for row in conn.execute("SELECT nombre FROM competencia ORDER BY id")]


def run_file(srv):
    return json.loads(Path(srv.db_path + ".server.json").read_text())


def test_a_second_serve_is_refused_and_the_first_keeps_serving(spawn, tmp_path):
    first = spawn(tmp_path / "event.db").organize(organizer=("org", ORG["SERVER5K_PASSWORD"]))
    first.start()
    second = spawn(tmp_path / "event.db")  # the same database, another port
    for extra in ([], ["--demo"]):  # (--demo would write the demo event before listening)
        refused = run_cli(second.config_path, "serve", *extra, env=second.env(), check=False,
                          timeout=20)
        assert refused.returncode == 1
        assert refused.stderr.splitlines() == [
            "server5k: error: another server (pid %d, at %s) already serves %s: stop it first, "
            "or give this one another database.path" % (first.process.pid, first.base_url,
                                                        first.db_path)]
    # Nothing of the second one is left: the first's run file, no demo event, the first answers.
    assert run_file(first)["pid"] == first.process.pid
    assert json.loads(Path(first.db_path + ".lock").read_text())["pid"] == first.process.pid
    assert not os.path.exists(first.db_path + ".demo-credentials.json")
    assert competitions(first.db_path) == ["5K del Puerto"]
    assert request_json("GET", first.base_url + "/api/competencias/")[0] == 401
    # The command line still goes through the first one.
    done = first.cli("competition", "add", "Por el servidor", env=ORG)
    assert "served by %s" % first.base_url in done.stderr
    assert "POST /api/competencias/" in first.log()
    # An organizer's password: the server has no way to change it, so the command refuses (it
    # never writes beside the server), saying what to do; the password is the same.
    refused = first.cli("judge", "passwd", "org", "--password", "nueva-clave-9", env=ORG,
                        check=False)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "server5k: error: org is an organizer: its password is changed only with no server "
        "running for %s (the server has no way to change it, and this command never writes "
        "the database beside it): stop the server, run this again, serve again; or `organizer "
        "add` another organizer through it" % first.db_path]
    assert first.token("org", ORG["SERVER5K_PASSWORD"])
    # Once it stops (its run file goes with it), the second one starts.
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    assert not os.path.exists(first.db_path + ".server.json")
    second.start()
    assert run_file(second)["pid"] == second.process.pid
    assert second.cli("competition", "list", "--json", env=ORG).stdout.count("Por el servidor")


def test_a_killed_server_or_a_stale_run_file_never_blocks_a_restart(spawn, tmp_path):
    srv = spawn(tmp_path / "event.db").organize(organizer=("org", ORG["SERVER5K_PASSWORD"]))
    srv.start()
    killed = srv.process.pid
    srv.signal(signal.SIGKILL)
    srv.wait()
    assert run_file(srv)["pid"] == killed  # both files stay behind
    assert os.path.exists(srv.db_path + ".lock")
    srv.start()  # the kernel let the lock go with the process
    assert run_file(srv)["pid"] == srv.process.pid != killed
    srv.signal(signal.SIGKILL)
    srv.wait()
    # A run file naming a live process that serves nothing (a reused pid, with its start time):
    # neither the command line nor `serve` take its word for it.
    stale = {"pid": os.getpid(), "started": cli_remote.process_started(os.getpid()),
             "url": srv.base_url, "database": srv.db_path}
    Path(srv.db_path + ".server.json").write_text(json.dumps(stale))
    alone = srv.cli("competition", "add", "Sin servidor")
    assert "served by" not in alone.stderr
    srv.start()
    assert run_file(srv)["pid"] == srv.process.pid
    assert "Sin servidor" in srv.cli("competition", "list").stdout


def test_a_command_never_writes_beside_a_server_that_does_not_answer(spawn, tmp_path,
                                                                      monkeypatch):
    srv = spawn(tmp_path / "event.db").organize(organizer=("org", ORG["SERVER5K_PASSWORD"]))
    srv.start()
    monkeypatch.setattr(cli_remote, "SERVER_ANSWER_WAIT_S", 0.5)
    for name, value in ORG.items():
        monkeypatch.setenv(name, value)
    before = competitions(srv.db_path)
    # Its run file gone (removed by hand, or by a second server in earlier versions): the
    # lock still says a server serves the database.
    run = srv.db_path + ".server.json"
    saved = Path(run).read_text()
    os.unlink(run)
    for argv in (["competition", "add", "Nunca"], ["judge", "passwd", "org", "--password",
                                                   "otra-clave-1"], ["init-db"], ["demo"]):
        done = run_cli(srv.config_path, *argv, in_process=True, check=False)
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert done.stderr.splitlines() == [
            "server5k: error: a server (pid %d) holds %s but does not answer at %s; try again "
            "once it has started, or stop it" % (srv.process.pid, srv.db_path, srv.base_url)]
    Path(run).write_text(saved)
    # Stopped (SIGSTOP: it holds the lock and answers nothing): the same refusal.
    srv.signal(signal.SIGSTOP)
    try:
        done = run_cli(srv.config_path, "team", "list", in_process=True, check=False)
        assert done.returncode == 1 and "does not answer" in done.stderr
    finally:
        srv.signal(signal.SIGCONT)
    assert competitions(srv.db_path) == before
    assert not os.path.exists(srv.db_path + ".demo-credentials.json")
    assert "database is locked" not in srv.log()
    # Answering again: the change goes through it.
    done = run_cli(srv.config_path, "competition", "add", "Ahora si", in_process=True)
    assert "served by %s" % srv.base_url in done.stderr
    assert competitions(srv.db_path) == before + ["Ahora si"]


def test_serve_waits_for_a_command_that_is_writing_the_database(spawn, tmp_path):
    """The window between a command's look for a server and its write: the command holds the
    lock from the one to the other, and a `serve` started meanwhile waits for it."""
    srv = spawn(tmp_path / "event.db").organize(organizer=("org", ORG["SERVER5K_PASSWORD"]))
    config = config_schema.load_config(srv.config_path)
    assert cli_remote.claim_database(config) is None  # a command has looked: no server
    try:
        starting = threading.Thread(target=srv.start, kwargs={"timeout": 30}, daemon=True)
        starting.start()
        wait_for(lambda: "waiting up to 30 s for it to finish" in srv.log(), timeout=20,
                 what="the server waiting for the command")
        assert "listening on" not in srv.log()
        # The command writes now, the database alone (it holds the lock), and ends.
        done = run_cli(srv.config_path, "competition", "add", "Escrita a tiempo",
                       in_process=True)
        assert "served by" not in done.stderr
    finally:
        cli_remote.release_claims()
    starting.join(30)
    assert "listening on" in srv.log()
    _, tokens = request_json("POST", srv.base_url + "/api/token/",
                             {"username": "org", "password": ORG["SERVER5K_PASSWORD"]})
    _, listed = request_json("GET", srv.base_url + "/api/competencias/", token=tokens["access"])
    assert "Escrita a tiempo" in [c["nombre"] for c in listed["competencias"]]


def test_serve_refuses_after_waiting_for_a_command_too_long(tmp_path, monkeypatch):
    (tmp_path / "event.yaml").write_text(
        "database:\n  path: %s\nserver:\n  port: 1\n" % (tmp_path / "event.db"))
    monkeypatch.setenv("SERVER5K_SECRET_KEY", "s" * 40)
    config = config_schema.load_config(tmp_path / "event.yaml")
    monkeypatch.setattr(cli_remote, "COMMANDS_WAIT_S", 0.3)
    command = os.open(str(tmp_path / "event.db.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(command, fcntl.LOCK_SH)  # a command mid-way, in another process
        with pytest.raises(cli_output.CliError, match="a command is still working on .*event.db "
                                                      "after 0.3 s"):
            asyncio.run(server5k.serve(config, demo=True))
    finally:
        os.close(command)
    assert not (tmp_path / "event.db").exists()  # (--demo wrote nothing)
    assert not (tmp_path / "event.db.server.json").exists()
    # A change written alone without the lock is a programming error, never a silent write.
    with pytest.raises(RuntimeError, match="without its lock"):
        cli_local.write_alone(roster.add_competition, None, "Sin cerrojo", None)
