"""``python server5k.py backup FILE``: a consistent copy of the event while the server runs."""

import asyncio
import sqlite3
import uuid

from helpers import fetch, login, wait_for_async


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
