"""The judges' WebSocket and the start: who hears it, when, and exactly once."""

import asyncio
import json

import pytest
import tornado.httpclient
import tornado.websocket

import models
import identity
from helpers import next_message, nothing_within, wait_for_async


@pytest.mark.gen_test
async def test_connect_gets_conexion_establecida(client, event):
    token = await client.access("juez1", "pass-juez1")
    ws, hello = await client.judge_socket(event["jueces"][0], token)
    data = hello["data"]
    assert data["juez_id"] == event["jueces"][0]
    assert data["competencia"]["id"] == event["competencia"]
    assert data["competencia"]["estado"] == "programada"
    assert data["server_time"].endswith("Z")
    await nothing_within(ws, 0.3)
    ws.close()


@pytest.mark.gen_test
async def test_handshake_refusals(client, event):
    juez1 = event["jueces"][0]
    tokens = await client.login("juez1", "pass-juez1")
    assert await client.handshake_status("/ws/juez/%d/" % juez1) == 401
    assert await client.handshake_status("/ws/juez/%d/?token=basura" % juez1) == 401
    assert await client.handshake_status(
        "/ws/juez/%d/?token=%s" % (juez1, tokens["refresh"])) == 401
    assert await client.handshake_status(
        "/ws/juez/%d/?token=%s" % (event["jueces"][1], tokens["access"])) == 403
    organizer = await client.access("org", "org-pass")
    assert await client.handshake_status("/ws/juez/%d/?token=%s" % (juez1, organizer)) == 403


@pytest.mark.gen_test
async def test_handshake_refusal_is_json_before_upgrade(client, event):
    code, answer = await client.get("/ws/juez/%d/" % event["jueces"][0],
                                    headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert code == 401 and answer["code"] == "not_authenticated"


@pytest.mark.gen_test
async def test_inactive_judge_cannot_connect(client, event):
    token = await client.access("juez1", "pass-juez1")
    with models.db.connection_context():
        models.Juez.update(is_active=False).where(models.Juez.id == event["jueces"][0]).execute()
    assert await client.handshake_status(
        "/ws/juez/%d/?token=%s" % (event["jueces"][0], token)) == 403


@pytest.mark.gen_test
async def test_foreign_origins_are_accepted_by_default(client, event):
    token = await client.access("juez1", "pass-juez1")
    request = tornado.httpclient.HTTPRequest(
        client.ws_url("/ws/juez/%d/?token=%s" % (event["jueces"][0], token)),
        headers={"Origin": "capacitor://localhost"})
    ws = await tornado.websocket.websocket_connect(request)
    assert json.loads(await ws.read_message())["type"] == "conexion.establecida"
    ws.close()


@pytest.fixture
def restricted_origins(config):
    config["server"]["allowed_origins"] = ["https://app.example"]
    return config


@pytest.mark.gen_test
async def test_allowed_origins_restricts(restricted_origins, client, event):
    token = await client.access("juez1", "pass-juez1")
    path = "/ws/juez/%d/?token=%s" % (event["jueces"][0], token)
    assert await client.handshake_status(path, Origin="https://evil.example") == 403
    request = tornado.httpclient.HTTPRequest(client.ws_url(path),
                                             headers={"Origin": "https://app.example"})
    ws = await tornado.websocket.websocket_connect(request)
    ws.close()


@pytest.mark.gen_test
async def test_start_reaches_every_socket_of_the_competition_and_no_one_else(client, event):
    j1, j2, j3 = event["jueces"]
    t1 = await client.access("juez1", "pass-juez1")
    t2 = await client.access("juez2", "pass-juez2")
    t3 = await client.access("juez3", "pass-juez3")
    phone_a, _ = await client.judge_socket(j1, t1)
    phone_b, _ = await client.judge_socket(j1, t1)  # the same judge on a second device
    other_judge, _ = await client.judge_socket(j2, t2)
    other_race, _ = await client.judge_socket(j3, t3)
    organizer = await client.access("org", "org-pass")
    answer = await client.race_action(event["competencia"], organizer)
    assert answer["notificados"] == 3
    assert answer["competencia"]["estado"] == "en_curso"
    for ws in (phone_a, phone_b, other_judge):
        message = await next_message(ws)
        assert message["type"] == "carrera.iniciada"
        data = message["data"]
        assert data["mensaje"] == "La carrera ha iniciado"
        assert data["competencia_id"] == event["competencia"]
        assert data["started_at"] == answer["competencia"]["started_at"]
        assert data["competencia"]["estado"] == "en_curso"
        assert data["server_time"].endswith("Z")
        await nothing_within(ws, 0.1)
    await nothing_within(other_race, 0.3)
    for ws in (phone_a, phone_b, other_judge, other_race):
        ws.close()


@pytest.mark.gen_test
async def test_late_joiner_gets_the_start_replayed_once(client, event):
    organizer = await client.access("org", "org-pass")
    answer = await client.race_action(event["competencia"], organizer)
    token = await client.access("juez2", "pass-juez2")
    ws, hello = await client.judge_socket(event["jueces"][1], token)
    assert hello["data"]["competencia"]["estado"] == "en_curso"
    replay = await next_message(ws)
    assert replay["type"] == "carrera.iniciada"
    assert replay["data"]["started_at"] == answer["competencia"]["started_at"]
    await nothing_within(ws, 0.3)
    ws.close()


@pytest.mark.gen_test(timeout=20)
async def test_sockets_opening_during_the_start_hear_it_exactly_once(client, app, event):
    """Sockets connecting while the start commits: each gets carrera.iniciada once."""
    app.settings["server5k_hub"].max_sockets_per_judge = 20  # all of them one judge's
    token = await client.access("juez1", "pass-juez1")
    organizer = await client.access("org", "org-pass")
    url = client.ws_url("/ws/juez/%d/?token=%s" % (event["jueces"][0], token))
    connecting = [tornado.websocket.websocket_connect(url) for _ in range(20)]
    starting = client.post("/api/competencias/%d/iniciar/" % event["competencia"],
                           token=organizer)
    sockets = await asyncio.gather(*connecting)
    code, _ = await starting
    assert code == 200

    async def heard(ws):
        kinds = []
        while True:
            try:
                message = await asyncio.wait_for(ws.read_message(), 0.5)
            except asyncio.TimeoutError:
                ws.close()
                return kinds
            kinds.append(json.loads(message)["type"])

    for kinds in await asyncio.gather(*(heard(ws) for ws in sockets)):
        assert kinds == ["conexion.establecida", "carrera.iniciada"], kinds


@pytest.mark.gen_test
async def test_stop_and_false_start_events(client, event):
    token = await client.access("juez1", "pass-juez1")
    organizer = await client.access("org", "org-pass")
    ws, _ = await client.judge_socket(event["jueces"][0], token)
    cid = event["competencia"]
    await client.race_action(cid, organizer)
    assert (await next_message(ws))["type"] == "carrera.iniciada"
    answer = await client.race_action(cid, organizer, "reiniciar")
    assert answer["notificados"] == 1 and answer["competencia"]["estado"] == "programada"
    cancel = await next_message(ws)
    assert cancel["type"] == "carrera.cancelada"
    assert cancel["data"]["competencia"]["started_at"] is None
    second = await client.race_action(cid, organizer)
    restart = await next_message(ws)
    assert restart["type"] == "carrera.iniciada"
    assert restart["data"]["started_at"] == second["competencia"]["started_at"]
    stop = await client.race_action(cid, organizer, "detener")
    finished = await next_message(ws)
    assert finished["type"] == "carrera.finalizada"
    assert finished["data"]["finished_at"] == stop["competencia"]["finished_at"]
    ws.close()


@pytest.mark.gen_test
async def test_ping_pong_and_bad_messages_keep_the_socket_open(client, event):
    token = await client.access("juez1", "pass-juez1")
    ws, _ = await client.judge_socket(event["jueces"][0], token)
    ws.write_message(json.dumps({"type": "ping", "data": {"client_time": 123}}))
    pong = await next_message(ws)
    assert pong["type"] == "pong"
    assert pong["data"]["client_time"] == 123 and pong["data"]["server_time"].endswith("Z")
    for bad, code in [("no json", "invalid_json"), ("[1]", "invalid_message"),
                      ('{"type": "dance"}', "unknown_type"),
                      ('{"type": "ping", "data": 5}', "invalid_message")]:
        ws.write_message(bad)
        error = await next_message(ws)
        assert error == {"type": "error", "data": {"code": code, "detail": error["data"]["detail"]}}
    ws.write_message(json.dumps({"type": "ping"}))
    assert (await next_message(ws))["type"] == "pong"
    ws.close()


@pytest.mark.gen_test
async def test_messages_over_64_kib_close_with_1009(client, event):
    token = await client.access("juez1", "pass-juez1")
    ws, _ = await client.judge_socket(event["jueces"][0], token)
    ws.write_message(json.dumps({"type": "ping", "data": {"x": "y" * 70_000}}))
    assert await next_message(ws) is None
    assert ws.close_code == 1009
    ws.close()


@pytest.mark.gen_test
async def test_closed_sockets_leave_the_registry(client, app, event):
    hub = app.settings["server5k_hub"]
    token = await client.access("juez1", "pass-juez1")
    ws, _ = await client.judge_socket(event["jueces"][0], token)
    assert hub.sockets_of(event["jueces"][0]) == 1
    ws.close()
    await wait_for_async(lambda: hub.sockets_of(event["jueces"][0]) == 0, timeout=1,
                         what="the closed socket to leave the registry")
    assert hub.sockets_of(event["jueces"][0]) == 0
    organizer = await client.access("org", "org-pass")
    answer = await client.race_action(event["competencia"], organizer)
    assert answer["notificados"] == 0


@pytest.mark.gen_test
async def test_a_dead_socket_does_not_break_the_broadcast(client, app, event):
    dying, _ = await client.judge_socket(event["jueces"][0],
                                         await client.access("juez1", "pass-juez1"))
    alive, _ = await client.judge_socket(event["jueces"][1],
                                         await client.access("juez2", "pass-juez2"))
    hub = app.settings["server5k_hub"]
    # Kill one socket's stream under the registry's feet, as a vanished phone would.
    (victim,) = hub._by_juez[event["jueces"][0]]
    victim.ws_connection.stream.close()
    organizer = await client.access("org", "org-pass")
    answer = await client.race_action(event["competencia"], organizer)
    assert answer["notificados"] == 1
    assert (await next_message(alive))["type"] == "carrera.iniciada"
    alive.close()
    dying.close()


@pytest.mark.gen_test
async def test_plain_http_get_on_the_socket_url_is_json_400(client, event):
    token = await client.access("juez1", "pass-juez1")
    code, answer = await client.get("/ws/juez/%d/?token=%s" % (event["jueces"][0], token))
    assert code == 400 and answer["code"] == "websocket_expected"


@pytest.mark.gen_test
async def test_a_crash_during_the_handshake_is_json_500(client, event, monkeypatch):
    token = await client.access("juez1", "pass-juez1")

    def explode(user_id):
        raise RuntimeError("database on fire")
    monkeypatch.setattr(identity, "user_identity", explode)
    code, answer, response = await client.request(
        "GET", "/ws/juez/%d/?token=%s" % (event["jueces"][0], token),
        headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert code == 500 and answer["code"] == "internal_error"
    assert b"fire" not in response.body


def test_a_phone_gone_silent_shows_as_not_connected_within_two_ping_intervals(spawn, event,
                                                                              config):
    """Issue 15: a half-open socket (the phone walked out of range: no FIN, no RST, no pongs)
    is dropped, and the judges board says not connected, within interval + timeout."""
    import asyncio
    import base64
    import os
    import time

    from helpers import fetch, login
    interval = 1.0
    server = spawn(config["database"]["path"], server={"ws_ping_interval_s": interval}).start()

    async def silent_phone():
        token = (await login(server.base_url, "juez1", "pass-juez1"))["access"]
        org = (await login(server.base_url, "org", "org-pass"))["access"]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(("GET /ws/juez/%d/?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n" % (event["jueces"][0], token, key))
                     .encode())
        assert (await reader.readline()).startswith(b"HTTP/1.1 101")
        board_url = "%s/api/competencias/%d/jueces/" % (server.base_url, event["competencia"])

        async def connected():
            _, board, _ = await fetch("GET", board_url, token=org)
            return board["jueces"][0]["conectado"]

        try:
            assert await connected()
            deadline = time.monotonic() + 2 * interval  # the phone never reads nor answers
            while await connected():
                assert time.monotonic() < deadline, "still connected after two ping intervals"
                await asyncio.sleep(0.05)  # (polling the board, as the console does)
        finally:
            writer.close()

    asyncio.run(silent_phone())


def test_the_socket_registry_keeps_sockets_by_competition_oldest_first():
    """handlers/registry.py, the one registry the hub, the consoles and the spectators keep:
    by competition, oldest first, a socket counted once, closing only the ones alive."""
    from handlers.registry import SocketRegistry

    class Sock:
        def __init__(self, cid, alive=True):
            self.competencia_id, self.alive, self.closed = cid, alive, None

        def close(self, code, reason):
            self.closed = (code, reason)

    registry = SocketRegistry()
    a1, a2, b1, gone = Sock(1), Sock(1), Sock(2), Sock(1, alive=False)
    for sock in (a1, a2, b1, gone, a1):  # a socket added twice is there once
        registry.add(sock)
    assert registry.of(1) == [a1, a2, gone] and registry.of(2) == [b1] and registry.of(3) == []
    assert (registry.count(), registry.count(1), registry.count(3)) == (4, 3, 0)
    assert registry.watched(2) and not registry.watched(3)
    assert registry.alive() == [a1, a2, b1]
    assert registry.remove(b1) and not registry.remove(b1)  # True only when it was there
    assert not registry.watched(2) and registry.count() == 3
    for sock in registry.of(1):  # a list: a socket leaving meanwhile is safe
        registry.remove(sock)
    assert registry.count() == 0 and not registry.watched(1)
    registry.add(a1)
    registry.add(gone)
    registry.close_all(1001, "Servidor detenido")
    assert a1.closed == (1001, "Servidor detenido") and gone.closed is None
