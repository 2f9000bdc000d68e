"""Graceful shutdown: SIGTERM/SIGINT stop accepting, answer what was already received, close the
judges' sockets with 1001 and a reason, close the database cleanly and exit 0."""

import asyncio
import json
import signal
import sqlite3
import uuid
from pathlib import Path

import pytest

from helpers import accepts_connections, judge_socket, login, wait_for, wait_for_async


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_lets_in_flight_submission_commit_then_exits_cleanly(sig, spawn, event, config):
    db_path = config["database"]["path"]
    server = spawn(db_path).start()
    equipo = event["equipos"]["a"]
    rid = str(uuid.uuid4())
    body = json.dumps({"equipo_id": equipo, "registros": [
        {"timestamp": "2025-11-11T12:00:00.000Z", "tiempo": 1234567, "id_registro": rid}]}).encode()

    async def scenario():
        tokens = await login(server.base_url, "juez1", "pass-juez1")
        ws, _ = await judge_socket("%s/ws/juez/%d/?token=%s" % (
            server.ws_base, event["jueces"][0], tokens["access"]))
        # A phone on slow Wi-Fi: headers and half the body are in when the signal arrives. It
        # asks for "100 Continue", which the server sends once it has read the headers and counts
        # the request in flight: the signal comes after that, never on a guess.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(("POST /api/enviar_tiempos/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                      "Expect: 100-continue\r\n"
                      "Content-Length: %d\r\n\r\n" % (tokens["access"], len(body))).encode())
        writer.write(body[:20])
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim.startswith(b"HTTP/1.1 100"), interim  # (what the wait waited for)
        server.signal(sig)

        assert await asyncio.wait_for(ws.read_message(), 10) is None
        assert ws.close_code == 1001
        assert ws.close_reason  # a reason the app can show
        ws.close()

        await wait_for_async(  # the listening socket closes first thing
            lambda: not accepts_connections(server.port), timeout=2,
            what="the server to stop accepting new connections after the signal")

        # Not a wait: the scenario. The rest of the body is slow too, arriving well after the
        # server began stopping (the socket and the listener are already closed, above).
        await asyncio.sleep(1.0)
        writer.write(body[20:])
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 201"), head
        length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")][0])
        answer = json.loads(await reader.readexactly(length))
        assert answer["created"] == [rid]
        writer.close()

    asyncio.run(scenario())
    assert server.wait(30) == 0, server.log()
    assert "stopped cleanly" in server.log()
    # Closed cleanly: the WAL was checkpointed into the database file, which alone holds the record.
    wal = Path(db_path + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT tiempo FROM registro_tiempo WHERE id_registro = ?",
                            (rid.replace("-", ""),)).fetchall()
    assert rows == [(1234567,)]


def test_shutdown_with_nothing_in_flight_is_quick_and_clean(spawn, event, config, monkeypatch):
    """Stopped right after it started: the standings worker, spawned at start-up and maybe
    still starting, is stopped with it (not waited for, not replaced)."""
    from test_crash import _processes_marked
    mark = uuid.uuid4().hex
    monkeypatch.setenv("SERVER5K_TEST_RUN", mark)  # (in the server's and its worker's environment)
    server = spawn(config["database"]["path"]).start()
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0, server.log()
    assert "stopped cleanly" in server.log()
    assert "worker process died" not in server.log()
    # (the worker is ended, not waited for: it may take a moment to be gone)
    wait_for(lambda: _processes_marked(("SERVER5K_TEST_RUN=%s" % mark).encode()) == [],
             timeout=5, what="the standings worker gone with its server")
