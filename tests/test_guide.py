"""The integration guide, run as written against `serve --demo`, and the CLI start on race day."""

import asyncio
import json
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest
import websockets

from helpers import request_json


# The guide's "Example: connect with Python (websockets)", unchanged but for the two
# placeholders and a bounded number of messages (the guide's loop runs forever).
GUIDE_CLIENT = '''
import asyncio, websockets

async def run():
    token = "%(token)s"
    juez_id = "%(juez_id)s"
    url = f"ws://127.0.0.1:%(port)d/ws/juez/{juez_id}/?token={token}"
    async with websockets.connect(url) as ws:
        print("Connected")
        for _ in range(2):
            msg = await ws.recv()
            print("Received:", msg)

asyncio.run(run())
'''


@pytest.fixture
def demo_server(spawn, tmp_path):
    server = spawn(tmp_path / "event.db").start("--demo")
    creds = {m[0]: m[1] for m in re.findall(r"(\S+)\s+password (\S+)", server.log())}
    return server, creds


def test_demo_prints_credentials(demo_server):
    server, creds = demo_server
    assert set(creds) >= {"organizador", "juez1", "juez2"}
    assert "race start" in server.log()


def test_guide_flow_with_its_python_client_curl_and_the_cli(demo_server, tmp_path):
    server, creds = demo_server
    status, tokens = request_json("POST", server.base_url + "/api/token/",
                               {"username": "juez1", "password": creds["juez1"]})
    assert status == 200
    client_file = tmp_path / "guide_client.py"
    client_file.write_text(GUIDE_CLIENT % {"token": tokens["access"], "juez_id": 1,
                                           "port": server.port})
    judge = subprocess.Popen([sys.executable, "-u", str(client_file)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert judge.stdout.readline().strip() == "Connected"
        hello = json.loads(judge.stdout.readline().split("Received: ", 1)[1])
        assert hello["type"] == "conexion.establecida"
        # The organizer fires the start from the command line.
        started = server.cli("race", "start", "1",
                     env={"SERVER5K_USER": "organizador",
                          "SERVER5K_PASSWORD": creds["organizador"]})
        assert "en_curso" in started.stdout and "judge sockets notified: 1" in started.stdout
        message = json.loads(judge.stdout.readline().split("Received: ", 1)[1])
        assert message["type"] == "carrera.iniciada"
        assert message["data"]["mensaje"] == "La carrera ha iniciado"
        assert judge.wait(10) == 0
    finally:
        judge.kill()
        judge.wait()
        judge.stdout.close()
        judge.stderr.close()

    # The guide's curl example, as written (host and port aside).
    curl = shutil.which("curl")
    payload = ('{ "equipo_id": 1, "registros": [ { "timestamp": "2025-11-11T12:00:00.000Z", '
               '"tiempo": 12345 } ] }')
    if curl:
        result = subprocess.run(
            [curl, "-s", "-w", "\n%{http_code}", "-X", "POST",
             server.base_url + "/api/enviar_tiempos/",
             "-H", "Authorization: Bearer " + tokens["access"],
             "-H", "Content-Type: application/json", "-d", payload],
            capture_output=True, text=True, timeout=20)
        body, code = result.stdout.rsplit("\n", 1)
        status, answer = int(code), json.loads(body)
    else:
        status, answer = request_json("POST", server.base_url + "/api/enviar_tiempos/", json.loads(payload),
                                   tokens["access"])
    assert status == 201 and len(answer["created"]) == 1

    status_out = server.cli("race", "status", "1", "--user", "organizador",
                    "--password", creds["organizador"]).stdout
    assert "en_curso" in status_out and "judges connected: 0 of 2" in status_out
    with sqlite3.connect(server.db_path) as conn:
        rows = conn.execute("SELECT tiempo, segundos, milisegundos, estado_carrera "
                            "FROM registro_tiempo").fetchall()
    assert rows == [(12345, 12, 345, "en_curso")]
    assert tokens["access"] not in server.log()


def test_race_cli_reports_wrong_credentials_and_conflicts(demo_server):
    server, creds = demo_server
    wrong = server.cli("race", "start", "1", "--user", "organizador", "--password", "no",
               check=False)
    assert wrong.returncode != 0 and "login as organizador failed (401)" in wrong.stderr
    judge = server.cli("race", "start", "1", "--user", "juez1",
               "--password", creds["juez1"], check=False)
    assert judge.returncode != 0 and "403" in judge.stderr
    ok = ["--user", "organizador", "--password", creds["organizador"]]
    server.cli("race", "start", "1", *ok)
    again = server.cli("race", "start", "1", *ok, check=False)
    assert again.returncode != 0 and "race_already_running" in again.stderr
    assert "programada" in server.cli("race", "reset", "1", *ok).stdout
    answer = json.loads(server.cli("race", "status", "1", "--json", *ok).stdout)
    assert answer["competencia"]["estado"] == "programada"


def test_two_judges_sockets_via_websockets_library(demo_server):
    """Several judges (and two phones of one judge) on the websockets library all hear the start."""
    server, creds = demo_server

    async def scenario():
        sockets = []
        for username, juez_id in (("juez1", 1), ("juez1", 1), ("juez2", 2)):
            _, tokens = request_json("POST", server.base_url + "/api/token/",
                                  {"username": username, "password": creds[username]})
            ws = await websockets.connect("ws://127.0.0.1:%d/ws/juez/%d/?token=%s"
                                          % (server.port, juez_id, tokens["access"]))
            assert json.loads(await ws.recv())["type"] == "conexion.establecida"
            sockets.append(ws)
        result = await asyncio.to_thread(
            server.cli, "race", "start", "1", "--user", "organizador",
            "--password", creds["organizador"])
        assert "judge sockets notified: 3" in result.stdout
        for ws in sockets:
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert message["type"] == "carrera.iniciada"
            await ws.close()

    asyncio.run(scenario())
