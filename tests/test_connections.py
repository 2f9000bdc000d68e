"""Connections bounded per client address, idle anonymous ones closed sooner, and anonymous ones
shed first when descriptors run low (handlers/connections.py): one address holding thousands of
idle connections never keeps a judge or the organizer out, behind the same venue NAT or not."""

import asyncio
import json
import resource
import time

import pytest
import tornado.httpclient
import tornado.websocket

import server5k
from handlers import connections
from helpers import fetch, free_port, registros, wait_for_async

OTHER = "127.0.0.2"  # another device on the venue network


async def connect(port, source=None):
    return await asyncio.open_connection("127.0.0.1", port,
                                         local_addr=(source, 0) if source else None)


async def ask(reader, writer, head):
    """One request on a kept-alive connection: (status, head text, JSON body)."""
    writer.write(head)
    await writer.drain()
    text = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
    length = next((int(line.split(":")[1]) for line in text.split("\r\n")
                   if line.lower().startswith("content-length:")), 0)
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    return int(text.split(" ")[1]), text, json.loads(body) if body else None


async def closed_by_server(reader, timeout):
    try:
        return await asyncio.wait_for(reader.read(1), timeout) == b""
    except asyncio.TimeoutError:
        return False
    except ConnectionError:
        return True


def get(path, token=None):
    auth = "Authorization: Bearer %s\r\n" % token if token else ""
    return ("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, auth)).encode()


@pytest.fixture
def served(app, config, io_loop):
    """``make_server`` (the registry of connections included) on a free port; its limits are
    what the test sets in config["limits"] before asking for the port."""
    servers = []

    def start():
        port = free_port()
        server = server5k.make_server(app, config)
        server.listen(port, "127.0.0.1")
        servers.append(server)
        return port, server.connections
    yield start
    for server in servers:
        server.stop()
        io_loop.run_sync(server.close_all_connections)


@pytest.mark.gen_test(timeout=60)
async def test_one_address_over_its_cap_loses_its_longest_idle_connection(
        served, config, event, client):
    config["limits"].update(connections_per_address=4, anonymous_idle_s=60)
    port, registry = served()
    comp = "/api/competencias/%d/" % event["competencia"]
    held = [await connect(port) for _ in range(4)]
    await wait_for_async(lambda: registry.anonymous("127.0.0.1") == 4)
    reader, writer = await connect(port)  # one more: the first one goes
    assert await closed_by_server(held[0][0], 5)
    assert (await ask(reader, writer, get(comp)))[0] == 200
    assert not await closed_by_server(held[1][0], 0.2)
    # Another address is counted apart.
    other = [await connect(port, OTHER) for _ in range(4)]
    assert (await ask(*other[-1], get(comp)))[0] == 200
    assert registry.anonymous(OTHER) == 4 and registry.anonymous("127.0.0.1") == 4
    # Reconnecting as fast as it can, an address at its cap gets a few connections a second:
    # the others are answered 503 and closed as they are accepted.
    answers = {}
    more = [await connect(port) for _ in range(connections.OVER_CAP_BURST + 50)]
    await asyncio.sleep(0.5)
    for r, _ in more:
        try:
            first = await asyncio.wait_for(r.read(300), 0.01)
        except asyncio.TimeoutError:
            first = b"(held)"
        key = "503" if b"too_many_connections" in first else first[:6].decode() or "closed"
        answers[key] = answers.get(key, 0) + 1
    assert answers.get("503", 0) >= 40 and registry.refused == answers["503"], answers
    for _, w in held + other + more + [(reader, writer)]:
        w.close()


@pytest.mark.gen_test(timeout=60)
async def test_behind_a_full_nat_requests_with_credentials_are_served_and_others_503(
        served, config, event, client):
    """All of an address's anonymous connections busy (spectators' sockets here, never idle):
    a new connection from it serves a judge's requests (the judges behind the venue NAT) and
    answers anything anonymous 503 too_many_connections, Connection: close."""
    config["limits"].update(connections_per_address=3, anonymous_idle_s=60)
    port, registry = served()
    cid = event["competencia"]
    spectators = [await tornado.websocket.websocket_connect(
        "ws://127.0.0.1:%d/ws/resultados/%d/" % (port, cid)) for _ in range(3)]
    token = await client.access("juez1", "pass-juez1")  # (the test app's own port)
    # An anonymous request on a new connection: refused, and the connection closed.
    reader, writer = await connect(port)
    status, head, answer = await ask(reader, writer, get("/api/competencias/%d/" % cid))
    assert (status, answer["code"]) == (503, "too_many_connections")
    assert "connection: close" in head.lower() and "retry-after: 5" in head.lower()
    assert await closed_by_server(reader, 5)
    writer.close()
    # A judge's: served, and the connection is the judge's from then on (never counted).
    reader, writer = await connect(port)
    status, _, me = await ask(reader, writer, get("/api/me/", token))
    assert status == 200 and me["juez"]["id"] == event["jueces"][0]
    assert (await ask(reader, writer, get("/api/competencias/%d/" % cid)))[0] == 200
    assert registry.anonymous("127.0.0.1") == 3
    # A judge's socket too, and a submission.
    ws = await tornado.websocket.websocket_connect(
        "ws://127.0.0.1:%d/ws/juez/%d/?token=%s" % (port, event["jueces"][0], token))
    assert json.loads(await ws.read_message())["type"] == "conexion.establecida"
    code, answer, _ = await fetch("POST", "http://127.0.0.1:%d/api/enviar_tiempos/" % port,
                                  {"equipo_id": event["equipos"]["a"],
                                   "registros": registros(1)}, token=token)
    assert code == 201, answer
    for sock in spectators + [ws]:
        sock.close()
    writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_idle_anonymous_connections_close_sooner_than_the_judges(
        served, config, event, client):
    config["limits"].update(anonymous_idle_s=1)
    port, registry = served()
    comp = get("/api/competencias/%d/" % event["competencia"])
    token = await client.access("juez1", "pass-juez1")
    anonymous, judge, silent = await connect(port), await connect(port), await connect(port)
    assert (await ask(*anonymous, comp))[0] == 200
    assert (await ask(*judge, get("/api/me/", token)))[0] == 200
    started = time.monotonic()
    assert await closed_by_server(anonymous[0], 10)  # after a request, and
    assert await closed_by_server(silent[0], 10)  # one that never sent one
    assert time.monotonic() - started < 5
    assert registry.shed["idle"] == 2
    # The judge's kept-alive connection is still there, and still serves.
    assert (await ask(*judge, comp))[0] == 200
    for _, writer in (anonymous, judge, silent):
        writer.close()


def test_one_address_holding_thousands_of_idle_connections_never_keeps_the_judges_out(
        spawn, event, config):
    """The real server with an open-file limit of 256 and no cap per address (so only the
    descriptors rule holds): one address opens 1,500 idle connections, some trickling a header.
    From another address, the judges' login, socket and submission and the organizer's start
    all work, and the start reaches the socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip("this test needs an open-file limit of 2,048 (hard limit %d)" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    server = spawn(config["database"]["path"], limits={
        "connections_per_address": 0, "anonymous_idle_s": 120}).start(preexec_fn=lower)
    cid, j1 = event["competencia"], event["jueces"][0]
    url = server.base_url

    async def story():
        flood = []
        for n in range(1500):
            try:
                reader, writer = await connect(server.port)
            except OSError:
                continue
            if n % 10 == 0:
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            flood.append(writer)
        await asyncio.sleep(0.5)
        http = tornado.httpclient.AsyncHTTPClient(force_instance=True)

        async def call(method, path, body=None, token=None):
            code, answer, _ = await fetch(method, url + path, body, token=token, client=http,
                                          network_interface=OTHER, request_timeout=10)
            return code, answer

        try:
            code, tokens = await call("POST", "/api/token/", {"username": "juez1",
                                                               "password": "pass-juez1"})
            assert code == 200, tokens
            code, org = await call("POST", "/api/token/", {"username": "org",
                                                            "password": "org-pass"})
            assert code == 200, org
            ws = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(
                "%s/ws/juez/%d/?token=%s" % (server.ws_base, j1, tokens["access"]),
                network_interface=OTHER, request_timeout=10))
            assert json.loads(await ws.read_message())["type"] == "conexion.establecida"
            code, answer = await call("POST", "/api/enviar_tiempos/", {
                "equipo_id": event["equipos"]["a"], "registros": registros(1)},
                token=tokens["access"])
            assert code == 201, answer
            code, answer = await call("POST", "/api/competencias/%d/iniciar/" % cid,
                                      token=org["access"])
            assert code == 200, answer
            heard = json.loads(await asyncio.wait_for(ws.read_message(), 10))
            assert heard["type"] == "carrera.iniciada"
            ws.close()
        finally:
            http.close()
            for writer in flood:
                writer.close()
        return len(flood)

    assert asyncio.run(story()) > 1000
    log = server.log()
    assert "shedding idle anonymous connections first" in log
    assert "Traceback" not in log
