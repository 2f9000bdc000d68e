"""``python server5k.py backup FILE``: a consistent copy of the event while the server runs."""

import asyncio
import sqlite3
import uuid

import pytest

from helpers import fetch, login, registros, wait_for, wait_for_async


def records_in(path):
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0] for row in conn.execute("SELECT id_registro FROM registro_tiempo")}
    finally:
        conn.close()


def test_backup_while_judges_submit(spawn, event, config, tmp_path):
    server = spawn(config["database"]["path"], limits={"submissions_per_minute": 0}).start()
    answered, sent = [], []

    async def main():
        token = (await login(server.base_url, "juez1", "pass-juez1"))["access"]
        stop = asyncio.Event()

        async def phone():
            while not stop.is_set():
                rid = str(uuid.uuid4())
                sent.append(uuid.UUID(rid).hex)
                code, _, _ = await fetch("POST", server.base_url + "/api/enviar_tiempos/", {
                    "equipo_id": event["equipos"]["a"], "registros": [{
                        "timestamp": "2025-11-11T12:00:00Z", "tiempo": len(sent),
                        "id_registro": rid}]}, token=token)
                assert code == 201
                answered.append(uuid.UUID(rid).hex)

        phones = [asyncio.ensure_future(phone()) for _ in range(3)]
        await wait_for_async(lambda: len(answered) >= 20, timeout=30,
                             what="20 submissions answered")
        before = list(answered)
        result = await asyncio.to_thread(server.cli, "backup", str(tmp_path / "copia.db"))
        stop.set()
        await asyncio.gather(*phones)
        return before, result

    before, result = asyncio.run(main())
    assert result.returncode == 0, result.stderr
    assert "backup written" in result.stdout
    copy = records_in(tmp_path / "copia.db")
    assert set(before) <= copy <= set(sent)  # everything answered before it, nothing invented
    # It never overwrites a file.
    again = server.cli("backup", str(tmp_path / "copia.db"), check=False)
    assert again.returncode == 1 and "ya existe" in again.stderr
    assert records_in(tmp_path / "copia.db") == copy


def big_event(path, records, padding_mb=0):
    """An event database of ``records`` records, and ``padding_mb`` more of other data (a large
    database: many times the 1,024 pages a backup step of old copied)."""
    import models
    import registration
    import submissions
    models.open_database(str(path))
    with models.db.connection_context():
        comp = registration.create_competition("Grande")
        juez = registration.create_judge("juez", "una-clave", comp.id)
        equipo = registration.create_team("Equipo", 1, juez.id)
        rows = registros(records, validated=True, ids=True)
        for start in range(0, records, 2000):
            submissions.store_submission(juez.user_id, equipo.id, rows[start:start + 2000])
    models.db.close()
    if padding_mb:
        with sqlite3.connect(str(path)) as conn:
            conn.execute("CREATE TABLE relleno (datos BLOB)")
            conn.executemany("INSERT INTO relleno VALUES (randomblob(1048576))",
                             [()] * padding_mb)
        conn.close()


def test_a_large_database_under_constant_writes_is_backed_up(tmp_path):
    """The copy is taken in one step: commits arriving all along never make it start over."""
    import threading

    import store
    source = tmp_path / "grande.db"
    big_event(source, 20_000, padding_mb=40)
    stop, commits = threading.Event(), [0]

    def constant_writes():
        conn = sqlite3.connect(str(source), timeout=30)
        while not stop.is_set():
            with conn:
                conn.execute("UPDATE competencia SET nombre = ? WHERE id = 1",
                             ("Grande %d" % commits[0],))
            commits[0] += 1
        conn.close()

    writer = threading.Thread(target=constant_writes)
    writer.start()
    try:
        wait_for(lambda: commits[0] > 10, what="writes to be under way")
        done = []
        copier = threading.Thread(target=lambda: done.append(
            store.backup(source, tmp_path / "copia.db")))
        copier.start()
        copier.join(120)
        during = commits[0]
    finally:
        stop.set()
        writer.join(30)
    assert done == [20_000], "the backup did not finish under constant writes"
    assert during > 10
    assert len(records_in(tmp_path / "copia.db")) == 20_000
    assert sorted(p.name for p in tmp_path.iterdir() if "copia" in p.name) == ["copia.db"]


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_backup_leaves_no_file_behind(tmp_path, monkeypatch, failure):
    import store
    source = tmp_path / "evento.db"
    big_event(source, 100)
    real_copy = store._copy

    def copy_then_fail(source_path, target_path):
        real_copy(source_path, target_path)  # a whole copy on disk, under the temporary name
        raise failure

    monkeypatch.setattr(store, "_copy", copy_then_fail)
    with pytest.raises(type(failure)):
        store.backup(source, tmp_path / "copia.db")
    assert not any("copia" in p.name for p in tmp_path.iterdir())


def test_a_backup_is_checked_as_a_restored_copy_is(tmp_path):
    """One check for every copy (replica.check_copy): a database that is not Server5K's is
    refused with a clear message, and nothing is left under the name; an existing file is
    never replaced."""
    import models
    import store
    foreign = tmp_path / "otra.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notas (texto TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(models.Conflict) as refused:
        store.backup(foreign, tmp_path / "copia.db")
    assert refused.value.code == "backup_refused"
    assert "not a Server5K database" in str(refused.value.detail)
    assert not any("copia" in p.name for p in tmp_path.iterdir())

    (tmp_path / "ya.db").write_bytes(b"kept")
    source = tmp_path / "evento.db"
    big_event(source, 10)
    with pytest.raises(models.Conflict) as taken:
        store.backup(source, tmp_path / "ya.db")
    assert taken.value.code == "backup_exists"
    assert (tmp_path / "ya.db").read_bytes() == b"kept"


KILLED_BACKUP = """
import sys, time
import store
real_copy = store._copy
def copy_then_hang(source, target):
    real_copy(source, target)
    print("copied", flush=True)
    time.sleep(60)
store._copy = copy_then_hang
store.backup(sys.argv[1], sys.argv[2])
"""


def killed_backup(source, target):
    """A backup process killed (SIGKILL) once its copy is on disk under the temporary name."""
    import subprocess
    import sys

    from helpers import ROOT
    process = subprocess.Popen([sys.executable, "-c", KILLED_BACKUP, str(source), str(target)],
                               cwd=str(ROOT), stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "copied"
    process.kill()
    process.wait(10)
    process.stdout.close()
    return [p.name for p in target.parent.iterdir() if p.name.endswith(".partial")]


def test_a_killed_backups_file_is_removed_by_the_next_backup_or_start(tmp_path, spawn):
    """Issue 22 item 5: a killed backup left its whole-size .partial behind for ever."""
    import store
    source = tmp_path / "evento.db"
    big_event(source, 100)
    left = killed_backup(source, tmp_path / "copia.db")
    assert len(left) == 1 and not (tmp_path / "copia.db").exists()
    store.backup(source, tmp_path / "otra.db")  # the next backup into that folder cleans it
    assert sorted(p.name for p in tmp_path.iterdir() if "copia" in p.name or "otra" in p.name
                  ) == ["otra.db"]
    # One beside the database is cleaned when the server starts.
    assert len(killed_backup(source, tmp_path / "copia.db")) == 1
    server = spawn(source).start()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert "unfinished file(s) left by a stopped backup" in server.log()
    # A backup still running keeps its file.
    running = tmp_path / (".x.db.%d.abc123.partial" % __import__("os").getpid())
    running.write_text("")
    assert store.clean_partials(str(tmp_path)) == [] and running.exists()
