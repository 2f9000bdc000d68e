"""Every queue and buffer has a bound and a clear answer when full: the reader pools (public
reads never hold up a judge), hashing, the writer; bodies per endpoint (an early 413 closes the
connection and says so); URLs and headers (414/431); what waits unsent for one socket; a
judge's sockets; spectators in all and per address; anonymous requests per address."""

import asyncio
import json
import socket
import threading
from urllib.parse import urlsplit

import pytest
import tornado.httpclient
import tornado.websocket

import handlers.bodies
import models
import identity
import ledger
import store
from helpers import fetch, next_message, nothing_within, registros, wait_for_async

KIB = 1024


async def raw_exchange(base_url, data, read_timeout=10, closes=True):
    """Send raw bytes on a fresh connection: (status, head text, body bytes, whether the server
    then closed it; only looked for when ``closes``)."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError:
            pass  # the server may stop reading what it refused; its answer is still there
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), read_timeout)).decode(
            "latin-1")
        length = next((int(line.split(":")[1]) for line in head.split("\r\n")
                       if line.lower().startswith("content-length:")), 0)
        body = await asyncio.wait_for(reader.readexactly(length), read_timeout)
        if not closes:
            return int(head.split(" ")[1]), head, body, False
        try:
            rest = await asyncio.wait_for(reader.read(1), read_timeout)
        except ConnectionError:
            rest = b""
        return int(head.split(" ")[1]), head, body, rest == b""
    finally:
        writer.close()


def blocking(monkeypatch, module, name):
    """Make ``module.name`` wait on its thread until the returned event is set."""
    release, original = threading.Event(), getattr(module, name)

    def held(*args):
        assert release.wait(20)
        return original(*args)

    monkeypatch.setattr(module, name, held)
    return release


# -- the pools --------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_a_full_public_pool_is_503_at_once_and_never_slows_a_judge(client, app, event,
                                                                         monkeypatch):
    token = await client.access("juez1", "pass-juez1")
    release = blocking(monkeypatch, ledger, "team_detail")
    pool = app.settings["server5k_store"]._public
    pool.max_pending = 4  # (the test's HTTP client holds 10 requests at a time)
    path = "/api/competencias/%d/equipos/%d/" % (event["competencia"], event["equipos"]["a"])
    waiting = [asyncio.ensure_future(client.get(path)) for _ in range(pool.max_pending)]
    await wait_for_async(lambda: pool.pending == pool.max_pending, what="a full public pool")
    code, answer, response = await client.request("GET", path)
    assert (code, answer["code"]) == (503, "server_busy")
    assert int(response.headers["Retry-After"]) >= 1
    # Meanwhile a judge's identity check and read go through the other pool.
    code, me = await client.get("/api/me/", token=token)
    assert code == 200 and me["juez"]["id"] == event["jueces"][0]
    release.set()
    assert {(await w)[0] for w in waiting} == {200}
    assert (await client.get(path))[0] == 200


@pytest.mark.gen_test(timeout=60)
async def test_a_full_hashing_queue_is_503_at_once(client, app, event, monkeypatch):
    release = blocking(monkeypatch, identity, "authenticate")
    hashers = app.settings["server5k_store"]._hashers
    hashers.max_pending = 3
    url = client.base_url + "/api/token/"
    logins = [asyncio.ensure_future(fetch("POST", url, {"username": u, "password": p},
                                          network_interface="127.0.0.%d" % n))
              for n, (u, p) in enumerate((("juez1", "pass-juez1"), ("juez2", "pass-juez2"),
                                          ("org", "org-pass")), start=2)]
    await wait_for_async(lambda: hashers.pending == 3, what="the hashing queue to fill")
    code, answer, response = await client.request(
        "POST", "/api/token/", {"username": "juez3", "password": "pass-juez3"})
    assert (code, answer["code"]) == (503, "server_busy")
    assert int(response.headers["Retry-After"]) >= 1
    release.set()
    assert [(await login)[0] for login in logins] == [200, 200, 200]
    # The refused attempt was given back: the same login now goes through.
    code, _ = await client.post("/api/token/", {"username": "juez3", "password": "pass-juez3"})
    assert code == 200


@pytest.mark.gen_test(timeout=60)
async def test_one_address_checks_one_password_at_a_time(client, app, event, monkeypatch):
    """A flood of logins from one address holds one hashing thread, never all of them: a judge
    elsewhere is checked alongside it."""
    release = blocking(monkeypatch, identity, "authenticate")
    hashers = app.settings["server5k_store"]._hashers
    url = client.base_url + "/api/token/"
    flood = [asyncio.ensure_future(fetch("POST", url, {"username": "nadie%d" % n,
                                                       "password": "x"}))
             for n in range(5)]
    await wait_for_async(lambda: hashers.pending == 1, what="the flood's first check")
    judge = asyncio.ensure_future(fetch("POST", url, {"username": "juez1", "password": "pass-juez1"},
                                        network_interface="127.0.0.2"))
    await wait_for_async(lambda: hashers.pending == 2, what="the judge's check, alongside")
    assert hashers.pending == 2  # the flood's other four wait their turn, not in the pool
    release.set()
    assert (await judge)[0] == 200
    assert [(await f)[0] for f in flood] == [401] * 5


@pytest.mark.gen_test
async def test_turns_pass_on_in_order_and_refuse_past_the_waiting_bound():
    from handlers.limits import Turns
    turns, order = Turns(per_key=1, max_waiting=2), []

    async def job(name):
        if not await turns.acquire("a"):
            order.append(name + " refused")
            return
        order.append(name)
        await asyncio.sleep(0.01)
        turns.release("a")

    await asyncio.gather(*(job(n) for n in ("one", "two", "three", "four")))
    assert order == ["one", "four refused", "two", "three"]
    assert turns._entries == {}  # nothing kept for an address with nothing running


def test_the_writer_refuses_past_its_bound_at_once(tmp_path):
    models.open_database(str(tmp_path / "w.db"))
    writer = store.Writer(max_queued=2)
    first, second = writer.submit(lambda: 1), writer.submit(lambda: 2)
    with pytest.raises(store.Busy):
        writer.submit(lambda: 3)
    writer.start()
    assert (first.result(10), second.result(10)) == (1, 2)
    writer.stop()


def test_a_bounded_pool_counts_its_jobs_and_refuses_past_its_bound():
    pool = store.BoundedPool(1, 2, "test")
    gate = threading.Event()
    jobs = [pool.submit(gate.wait, 10), pool.submit(lambda: "second")]
    assert pool.pending == 2
    with pytest.raises(store.Busy):
        pool.submit(lambda: "third")
    gate.set()
    assert jobs[1].result(10) == "second"
    assert pool.submit(lambda: "later").result(10) == "later"
    pool.shutdown()
    assert pool.pending == 0


# -- bodies ------------------------------------------------------------------------------------
def post_head(path, extra, token=None):
    auth = "Authorization: Bearer %s\r\n" % token if token else ""
    return ("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n%s\r\n"
            % (path, auth, extra)).encode()


@pytest.mark.gen_test(timeout=30)
async def test_an_early_413_says_connection_close_and_closes(client, base_url, event):
    # A login body over 4 KiB, announced: refused before a byte of it is read.
    status, head, body, closed = await raw_exchange(
        base_url, post_head("/api/token/", "Content-Length: %d\r\n" % (256 * KIB))
        + b"[" + b"{}," * 2000)
    assert status == 413 and json.loads(body)["code"] == "body_too_large"
    assert "\r\nconnection: close\r\n" in head.lower() and closed
    # Chunked over the limit: refused once read, and the connection stays usable.
    chunk = b"x" * (5 * KIB)
    status, head, body, _ = await raw_exchange(
        base_url, post_head("/api/token/", "Transfer-Encoding: chunked\r\n")
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk), closes=False)
    assert status == 413 and "connection: close" not in head.lower()
    # A submission without a token is refused at its headers too, whatever its size.
    status, head, body, closed = await raw_exchange(
        base_url, post_head("/api/enviar_tiempos/", "Content-Length: %d\r\n" % (200 * KIB)))
    assert (status, json.loads(body)["code"]) == (401, "not_authenticated")
    assert "connection: close" in head.lower() and closed
    # Tornado's own client, reusing its connections, goes on working after each of those.
    for _ in range(3):
        code, answer = await client.post("/api/token/", raw="[" + "{}," * 2000 + "{}]")
        assert code == 413
        assert (await client.get("/api/competencias/%d/" % event["competencia"]))[0] == 200


async def keep_alive_exchange(base_url, requests, read_timeout=10):
    """Send each raw request on one connection after the answer to the previous one: [(status,
    head text, body)], then whether the server closed the connection after the last."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    answers = []
    try:
        for data in requests:
            writer.write(data)
            await writer.drain()
            head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), read_timeout)
                    ).decode("latin-1")
            length = next((int(line.split(":")[1]) for line in head.split("\r\n")
                           if line.lower().startswith("content-length:")), 0)
            body = await asyncio.wait_for(reader.readexactly(length), read_timeout)
            answers.append((int(head.split(" ")[1]), head, body))
        try:
            closed = await asyncio.wait_for(reader.read(1), 0.3) == b""
        except asyncio.TimeoutError:
            closed = False
        return answers, closed
    finally:
        writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_refusal_before_the_body_keeps_the_connection_open(client, base_url, event):
    """A 401 (or 403, 405, 429) decided at the headers is answered after a small body has been
    read, so a kept-alive connection stays usable: it was closed without `Connection: close`
    and the client's next request on it met a reset."""
    cid = event["competencia"]
    read = b"GET /api/competencias/%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % cid
    body = json.dumps({"equipo_id": event["equipos"]["a"], "tiempo": 61000,
                       "motivo": "planilla"}).encode()
    judge = await client.access("juez1", "pass-juez1")
    refusals = [
        (b"GET /api/competencias/%d/registros/ HTTP/1.1\r\nHost: x\r\n\r\n" % cid,
         401, "not_authenticated"),
        (post_head("/api/competencias/%d/registros/" % cid, "Content-Length: %d\r\n"
                   % len(body)) + body, 401, "not_authenticated"),
        (post_head("/api/competencias/%d/registros/" % cid, "Content-Length: %d\r\n"
                   % len(body), token="no-es-un-token") + body, 401, "token_not_valid"),
        (post_head("/api/competencias/%d/registros/" % cid, "Content-Length: %d\r\n"
                   % len(body), token=judge) + body, 403, "organizer_only"),
        (post_head("/api/enviar_tiempos/", "Content-Length: %d\r\n" % len(body)) + body,
         401, "not_authenticated"),
    ]
    for request, status, code in refusals:
        answers, closed = await keep_alive_exchange(base_url, [request, read, request, read])
        assert [a[0] for a in answers] == [status, 200, status, 200], answers
        assert json.loads(answers[0][2])["code"] == code
        assert "connection: close" not in answers[0][1].lower() and not closed
    # Nothing of the refused bodies was stored.
    with models.db.connection_context():
        assert models.RegistroTiempo.select().count() == 0
    # A large one is still refused at once, with Connection: close (the test above).


@pytest.mark.gen_test(timeout=30)
async def test_each_endpoint_has_its_own_body_limit(client, event):
    token = await client.access("juez1", "pass-juez1")
    organizer = await client.access("org", "org-pass")
    for path, size, auth in (("/api/token/", 4 * KIB, None),
                             ("/api/token/refresh/", 4 * KIB, None),
                             ("/api/ws-ticket/", 4 * KIB, token),
                             ("/api/competencias/%d/reiniciar/" % event["competencia"],
                              handlers.bodies.DEFAULT_BODY_BYTES, organizer)):
        raw = json.dumps({"pad": "x" * size})
        code, answer = await client.post(path, raw=raw, token=auth)
        assert (code, answer["code"]) == (413, "body_too_large"), path
        assert str(size) in answer["detail"]
    # Submissions keep 256 KiB: 200 KiB of records is fine (only the first 15 count).
    big = {"equipo_id": event["equipos"]["a"], "registros": registros(1400, every_s=0, ids=True)}
    assert 150 * KIB < len(json.dumps(big)) < 256 * KIB
    code, answer = await client.post("/api/enviar_tiempos/", big, token=token)
    assert code == 201 and len(answer["created"]) == 15 and answer["ignored"] == 1385


@pytest.mark.gen_test(timeout=30)
async def test_large_bodies_are_parsed_off_the_event_loop(client, event, monkeypatch):
    threads = []
    original = handlers.bodies.json_object

    def parse(raw):
        threads.append(threading.current_thread().name)
        return original(raw)

    monkeypatch.setattr(handlers.bodies, "json_object", parse)
    token = await client.access("juez1", "pass-juez1")
    for count in (15, 400):
        code, _ = await client.post("/api/enviar_tiempos/", {
            "equipo_id": event["equipos"]["a"], "registros": registros(count, ids=True)},
            token=token)
        assert code == 201
    assert threads[-2] == "MainThread" and threads[-1].startswith("server5k-reader")
    # Hostile JSON that big is refused from the thread just the same.
    code, answer = await client.post("/api/enviar_tiempos/", raw="[" + "{}," * 20000 + "{}]",
                                     token=token)
    assert (code, answer["code"]) == (400, "invalid_body")


# -- URLs and headers ------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=30)
async def test_oversized_urls_and_headers_are_414_and_431_json(client, base_url, event):
    cid = event["competencia"]
    code, answer, response = await client.request(
        "GET", "/api/competencias/%d/?q=%s" % (cid, "x" * (9 * KIB)))
    assert (code, answer["code"]) == (414, "uri_too_long")
    assert response.headers["Content-Type"].startswith("application/json")
    code, answer, _ = await client.request("GET", "/api/competencias/%d/" % cid,
                                           headers={"X-Relleno": "x" * (17 * KIB)})
    assert (code, answer["code"]) == (431, "headers_too_large")
    code, answer, _ = await client.request("POST", "/api/token/?" + "x" * (9 * KIB),
                                           {"username": "juez1", "password": "pass-juez1"})
    assert code == 414
    # A WebSocket handshake is refused the same way, before any upgrade.
    assert await client.handshake_status("/ws/resultados/%d/?%s" % (cid, "x" * (9 * KIB))) == 414
    # Past Tornado's own cap on the header block (64 KiB) the connection is closed unanswered,
    # and the server goes on serving everyone else.
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(b"GET / HTTP/1.1\r\nX-Relleno: " + b"x" * (70 * KIB) + b"\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    assert (await client.get("/api/competencias/%d/" % cid))[0] == 200


@pytest.mark.gen_test
async def test_paths_no_file_or_id_can_have_are_404(client):
    for path in ("/static/x.js%00.png", "/static/" + "a" * 300 + ".js"):
        code, answer, response = await client.request("GET", path)
        assert (code, answer["code"]) == (404, "not_found"), path
        assert response.headers["Content-Type"].startswith("application/json")
    code, answer, _ = await client.request("GET", "/static/%2e%2e/server5k.py")
    assert (code, answer["code"]) == (403, "forbidden")  # outside the folder: Tornado's 403
    assert (await client.request("GET", "/static/resultados.js"))[0] == 200
    assert await client.handshake_status("/ws/resultados/%s/" % ("9" * 5000)) == 404
    assert await client.handshake_status("/ws/juez/%s/" % ("9" * 5000)) == 404


# -- sockets -----------------------------------------------------------------------------------
def silent_judge_socket(base_url, juez_id, token):
    """A judge socket (a raw TCP connection) that will never read: its receive buffer is
    small, so what the server sends it piles up in the server."""
    parts = urlsplit(base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(("GET /ws/juez/%d/?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n" % (juez_id, token)).encode())
    return sock


@pytest.mark.gen_test(timeout=60)
async def test_a_socket_that_does_not_read_is_closed_and_never_holds_up_the_start(
        client, app, base_url, event, caplog):
    hub = app.settings["server5k_hub"]
    juez1, juez2 = event["jueces"][:2]
    silent = silent_judge_socket(base_url, juez1, await client.access("juez1", "pass-juez1"))
    await wait_for_async(lambda: hub.sockets_of(juez1) == 1, what="the silent socket")
    listening, _ = await client.judge_socket(juez2, await client.access("juez2", "pass-juez2"))
    (server_side,) = hub._by_juez[juez1]
    text = "x" * 1000
    for sends in range(1, 100_000):  # far more than any kernel buffer holds
        if not server_side.send_text(text):
            break
        if sends % 200 == 0:
            await asyncio.sleep(0)  # let the loop flush what the kernel still takes
    else:
        pytest.fail("the server kept queueing for a socket that does not read")
    await wait_for_async(lambda: hub.sockets_of(juez1) == 0, what="the socket to leave the hub")
    assert any("does not read" in r.getMessage() for r in caplog.records)
    # The start reaches the judge who reads, and only it is counted.
    organizer = await client.access("org", "org-pass")
    code, body = await client.post("/api/competencias/%d/iniciar/" % event["competencia"],
                                   token=organizer)
    assert code == 200 and body["notificados"] == 1
    assert (await next_message(listening))["type"] == "carrera.iniciada"
    listening.close()
    silent.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_socket_flooding_messages_is_read_slowly_and_still_hears_the_start(
        client, event):
    ws, _ = await client.judge_socket(event["jueces"][0], await client.access("juez1", "pass-juez1"))
    for _ in range(8):  # 480 KiB at once: far past its 128 KiB burst
        ws.write_message(json.dumps({"type": "ping", "data": {"pad": "x" * 60 * KIB}}))
    answer = await next_message(ws)
    assert (answer["type"], answer["data"]["code"]) == ("error", "message_too_large")
    organizer = await client.access("org", "org-pass")
    code, body = await client.post("/api/competencias/%d/iniciar/" % event["competencia"],
                                   token=organizer)
    assert code == 200 and body["notificados"] == 1
    kinds = [answer["type"]]
    while kinds[-1] != "carrera.iniciada":  # the start comes after the answers already sent
        kinds.append((await next_message(ws))["type"])
    assert set(kinds[:-1]) == {"error"} and len(kinds) < 8  # the rest is not even read yet
    ws.close()


def test_the_inbound_budget_pauses_reading_past_its_rate(monkeypatch):
    import handlers.sockets as sockets
    now = [100.0]
    monkeypatch.setattr(sockets.time, "monotonic", lambda: now[0])
    sock = sockets.JuezSocketHandler.__new__(sockets.JuezSocketHandler)
    burst, rate = sockets.INBOUND_BURST, sockets.INBOUND_PER_S
    assert sock._within_budget(burst) is None         # the whole burst at once
    pause = sock._within_budget(rate)                 # then one second's worth too many
    assert pause is not None
    pause.close()
    assert abs(sock._credit + rate) < 1e-6
    now[0] += 2.0                                     # two seconds later: back within it
    assert sock._within_budget(1024) is None


@pytest.mark.gen_test(timeout=30)
async def test_one_socket_too_many_closes_the_judges_oldest(client, app, event):
    hub = app.settings["server5k_hub"]
    juez = event["jueces"][0]
    token = await client.access("juez1", "pass-juez1")
    sockets = [(await client.judge_socket(juez, token))[0]
               for _ in range(hub.max_sockets_per_judge)]
    newest, hello = await client.judge_socket(juez, token)  # one more: it gets in...
    assert hello["type"] == "conexion.establecida"
    assert await asyncio.wait_for(sockets[0].read_message(), 10) is None  # ...the oldest goes
    assert sockets[0].close_code == 4001
    sockets[0].close()
    assert hub.sockets_of(juez) == hub.max_sockets_per_judge
    organizer = await client.access("org", "org-pass")
    code, body = await client.post("/api/competencias/%d/iniciar/" % event["competencia"],
                                   token=organizer)
    assert body["notificados"] == hub.max_sockets_per_judge
    for ws in sockets[1:] + [newest]:
        assert (await next_message(ws))["type"] == "carrera.iniciada"
        ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_spectators_are_capped_in_total_and_per_address(client, app, event):
    spectators = app.settings["server5k_spectators"]
    spectators.max_sockets, spectators.max_per_address = 3, 2
    path = "/ws/resultados/%d/" % event["competencia"]
    here = [(await client.spectator(event["competencia"]))[0] for _ in range(2)]
    assert await client.handshake_status(path) == 429  # a third from the same address
    other, _ = await client.spectator(event["competencia"], network_interface="127.0.0.2")
    request = tornado.httpclient.HTTPRequest(client.ws_url(path), network_interface="127.0.0.3")
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(request)
    assert refused.value.code == 503  # the fourth in all
    assert refused.value.response.headers["Retry-After"]
    assert json.loads(refused.value.response.body)["code"] == "too_many_spectators"
    here[0].close()
    await wait_for_async(lambda: spectators.count() == 2, what="a spectator to leave")
    again, _ = await client.spectator(event["competencia"])  # room again
    for ws in (here[1], other, again):
        ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_pushes_to_spectators_keep_within_their_bytes_a_second(client, app, event,
                                                                     monkeypatch):
    import handlers.spectators
    hub, cid = app.settings["server5k_hub"], event["competencia"]
    ws, first = await client.spectator(cid)
    size = len(json.dumps({"type": "resultados", "data": first}))
    monkeypatch.setattr(handlers.spectators, "PUSH_BYTES_PER_S", size / 30)  # one per 30 s
    hub.records_stored(cid, event["equipos"]["a"], 1)
    assert (await next_message(ws))["type"] == "resultados"  # the first change: at once
    hub.records_stored(cid, event["equipos"]["a"], 1)
    assert await nothing_within(ws, 0.8)  # the next waits for the budget, not pushed now
    ws.close()


# -- anonymous requests take turns per address ------------------------------------------------
@pytest.mark.gen_test(timeout=30)
async def test_an_anonymous_flood_waits_its_turn_and_a_judge_does_not(client, app, event):
    pacer = app.settings["server5k_limits"].pacer
    pacer.interval, pacer.burst, pacer.max_wait = 3600.0, 0.0, 0.3  # one request an hour
    path = "/api/competencias/%d/" % event["competencia"]
    token = await client.access("juez1", "pass-juez1")  # logins take turns of their own
    assert (await client.get(path))[0] == 200
    code, answer, response = await client.request("GET", path)  # no turn within max_wait
    assert (code, answer["code"]) == (429, "rate_limited")
    assert response.headers["Connection"] == "close" and int(response.headers["Retry-After"]) >= 1
    assert (await client.get("/api/me/", token=token))[0] == 200  # a judge is never held back
    code, _, _ = await fetch("GET", client.base_url + path, network_interface="127.0.0.2")
    assert code == 200  # another address has its own turns
    # Within max_wait, a request over the rate waits for its turn and is then answered.
    pacer.interval, pacer.max_wait = 0.2, 5.0
    answers = await asyncio.gather(*(fetch("GET", client.base_url + path,
                                           network_interface="127.0.0.3") for _ in range(4)))
    assert [code for code, _, _ in answers] == [200] * 4
