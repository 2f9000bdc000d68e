"""Hostile input: oversized and malformed bodies, deep JSON, huge numbers, NaN, floats, duplicated
keys, wrong content types, any Unicode, oversized WebSocket messages, idle and slow clients.
Every refusal is a clear JSON error and stores nothing."""

import asyncio
import json
import time
from urllib.parse import urlsplit

import pytest

import models
import registration
import server5k
from helpers import free_port, next_message, registros

KIB = 1024


def stored():
    with models.db.connection_context():
        return models.RegistroTiempo.select().count()


async def raw_request(base_url, data, read_timeout=10):
    """Send raw bytes on a fresh connection; return (status, headers text, parsed JSON body)."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), read_timeout)
        status = int(head.split(b" ")[1])
        length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")]
        body = await asyncio.wait_for(reader.readexactly(length[0]), read_timeout)
        return status, head.decode("latin-1"), json.loads(body)
    finally:
        writer.close()


def post_head(path, token, extra):
    return ("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\n%s\r\n" % (path, token, extra)).encode()


@pytest.mark.gen_test(timeout=30)
async def test_bodies_over_256_kib_get_413_json_by_length_and_chunked(client, event, base_url):
    token = await client.access("juez1", "pass-juez1")
    big = json.dumps({"equipo_id": event["equipos"]["a"],
                      "registros": registros(range(8000), every_s=0)}).encode()
    assert len(big) > 256 * KIB
    code, answer, response = await client.request("POST", "/api/enviar_tiempos/", raw=big,
                                                  token=token)
    assert (code, answer["code"]) == (413, "body_too_large")
    assert response.headers["Content-Type"].startswith("application/json")
    # Announced too large: refused before the body is read.
    status, head, answer = await raw_request(
        base_url, post_head("/api/enviar_tiempos/", token, "Content-Length: %d\r\n" % (10**9)))
    assert (status, answer["code"]) == (413, "body_too_large")
    # Chunked, so no length is announced: refused once the streamed body passes the limit.
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 16 * KIB]), big[i:i + 16 * KIB])
                      for i in range(0, len(big), 16 * KIB)) + b"0\r\n\r\n"
    status, head, answer = await raw_request(
        base_url, post_head("/api/enviar_tiempos/", token, "Transfer-Encoding: chunked\r\n")
        + chunks)
    assert (status, answer["code"]) == (413, "body_too_large")
    # A chunked body under the limit is fine.
    small = json.dumps({"equipo_id": event["equipos"]["a"],
                        "registros": registros([61_000])}).encode()
    status, head, answer = await raw_request(
        base_url, post_head("/api/enviar_tiempos/", token, "Transfer-Encoding: chunked\r\n")
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
    assert status == 201, answer
    assert stored() == 1
    # The login endpoint has the same limit.
    code, answer = await client.post("/api/token/", raw="{" + '"a":"' + "x" * 300 * KIB + '"}')
    assert (code, answer["code"]) == (413, "body_too_large")


BAD_BODIES = {
    "nested 33 deep": '{"equipo_id": 1, "registros": %s}' % ("[" * 33 + "]" * 33),
    "nested 100000 deep": "[" * 100000 + "]" * 100000,
    "NaN": '{"equipo_id": 1, "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": NaN}]}',
    "Infinity": '{"equipo_id": 1, "registros": [{"timestamp": "2025-11-11T12:00:00Z", '
                '"tiempo": -Infinity}]}',
    "1e400": '{"equipo_id": 1, "registros": [{"timestamp": "2025-11-11T12:00:00Z", '
             '"tiempo": 1e400}]}',
    "5000-digit integer": '{"equipo_id": %s, "registros": []}' % ("9" * 5000),
    "duplicated key": '{"equipo_id": 1, "equipo_id": 2, "registros": []}',
    "duplicated key in a record": '{"equipo_id": 1, "registros": [{"tiempo": 1, "tiempo": 2, '
                                  '"timestamp": "2025-11-11T12:00:00Z"}]}',
    "unpaired surrogate": '{"equipo_id": 1, "registros": [{"timestamp": "\\ud800", "tiempo": 1}]}',
    "not UTF-8": b'{"equipo_id": 1, "registros": [{"timestamp": "\xff\xfe", "tiempo": 1}]}',
    "truncated": '{"equipo_id": 1, "registros": [',
    "a list": "[]",
    "a string": '"hola"',
    "empty": "",
    "whitespace": "   \n",
}


@pytest.mark.gen_test(timeout=30)
async def test_malformed_json_is_400_json_and_stores_nothing(client, event):
    token = await client.access("juez1", "pass-juez1")
    for what, raw in BAD_BODIES.items():
        code, answer, response = await client.request("POST", "/api/enviar_tiempos/", raw=raw,
                                                      token=token)
        assert code == 400, (what, answer)
        assert answer["code"] in ("invalid_json", "invalid_body", "empty_body"), (what, answer)
        assert response.headers["Content-Type"].startswith("application/json")
        code, answer = await client.post("/api/token/", raw=raw)
        # (logins take bodies of at most 4 KiB: a bigger one is refused unread)
        assert code == (400 if len(raw) <= 4 * KIB else 413), (what, answer)
    # Text that cannot be UTF-8 (an escaped lone surrogate) never reaches SQLite.
    code, answer = await client.post("/api/token/", raw='{"username": "juez\\ud800", '
                                                         '"password": "pass-juez1"}')
    assert (code, answer["code"]) == (400, "invalid_json")
    assert stored() == 0


@pytest.mark.gen_test(timeout=30)
async def test_invalid_values_are_400_with_field_errors_and_store_nothing(client, event):
    token = await client.access("juez1", "pass-juez1")
    a = event["equipos"]["a"]
    one = registros([61_000])
    cases = {
        "equipo_id huge": ({"equipo_id": 10**30, "registros": one}, "equipo_id"),
        "equipo_id float": ({"equipo_id": float(a), "registros": one}, "equipo_id"),
        "equipo_id text": ({"equipo_id": str(a), "registros": one}, "equipo_id"),
        "equipo_id bool": ({"equipo_id": True, "registros": one}, "equipo_id"),
        "equipo_id missing": ({"registros": one}, "equipo_id"),
        "registros missing": ({"equipo_id": a}, "registros"),
        "registros empty": ({"equipo_id": a, "registros": []}, "registros"),
        "registros object": ({"equipo_id": a, "registros": {"0": one[0]}}, "registros"),
        "tiempo float": ({"equipo_id": a, "registros": registros([1000.0])}, "registros.0.tiempo"),
        "tiempo fraction": ({"equipo_id": a, "registros": registros([1000.5])},
                            "registros.0.tiempo"),
        "tiempo huge": ({"equipo_id": a, "registros": registros([10**30])}, "registros.0.tiempo"),
        "tiempo negative": ({"equipo_id": a, "registros": registros([-1])}, "registros.0.tiempo"),
        "tiempo over 24 h": ({"equipo_id": a, "registros": registros([86_400_001])},
                             "registros.0.tiempo"),
        "tiempo text": ({"equipo_id": a, "registros": registros(["61000"])}, "registros.0.tiempo"),
        "tiempo bool": ({"equipo_id": a, "registros": registros([True])}, "registros.0.tiempo"),
        "tiempo missing": ({"equipo_id": a, "registros": [{"timestamp": "2025-11-11T12:00:00Z"}]},
                           "registros.0.tiempo"),
        "timestamp garbage": ({"equipo_id": a, "registros": registros([61_000], timestamp="ayer")},
                              "registros.0.timestamp"),
        "timestamp number": ({"equipo_id": a,
                              "registros": registros([61_000], timestamp=1731326400)},
                             "registros.0.timestamp"),
        "timestamp missing": ({"equipo_id": a, "registros": [{"tiempo": 1}]},
                              "registros.0.timestamp"),
        "id_registro not uuid": ({"equipo_id": a,
                                  "registros": registros([61_000], id_registro="x")},
                                 "registros.0.id_registro"),
        "id_registro number": ({"equipo_id": a,
                                "registros": registros([61_000], id_registro=10**40)},
                               "registros.0.id_registro"),
        # One bad record among good ones: all-or-nothing.
        "third of three bad": ({"equipo_id": a, "registros": registros([1, 2, 3.5], every_s=0)},
                               "registros.2.tiempo"),
    }
    for what, (body, field) in cases.items():
        code, answer = await client.post("/api/enviar_tiempos/", body, token=token)
        assert code == 400, (what, answer)
        assert answer["code"] == "validation_error" and field in answer["errors"], (what, answer)
    assert stored() == 0
    # Records past the 15th are ignored, even when they are invalid.
    code, answer = await client.post("/api/enviar_tiempos/", {
        "equipo_id": a, "registros": registros(range(15), every_s=0) + ["junk"] * 2000},
        token=token)
    assert code == 201 and answer["ignored"] == 2000 and len(answer["created"]) == 15, answer


@pytest.mark.gen_test
async def test_wrong_content_type_is_400(client, event):
    token = await client.access("juez1", "pass-juez1")
    body = json.dumps({"equipo_id": event["equipos"]["a"], "registros": registros([61_000])})
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/xml"):
        code, answer, _ = await client.request("POST", "/api/enviar_tiempos/", raw=body,
                                               token=token,
                                               headers={"Content-Type": content_type})
        assert (code, answer["code"]) == (400, "unsupported_content_type"), content_type
    code, answer, _ = await client.request("POST", "/api/enviar_tiempos/", raw=body, token=token,
                                           headers={"Content-Type": "application/json; "
                                                                    "charset=utf-8"})
    assert code == 201, answer
    assert stored() == 1


UNICODE_USERS = ["José Ñandú", "裁判員", "حكم_السباق", "Ǆemal", "juez🏃‍♀️", "Straße", "ΣΊΣΥΦΟΣ",
                 "x" * 150]


@pytest.mark.gen_test(timeout=60)
async def test_usernames_and_names_in_any_unicode(client, event):
    with models.db.connection_context():
        for n, username in enumerate(UNICODE_USERS):
            juez = registration.create_judge(username, "clave-" + username, event["competencia"],
                                             "Nombre " + username[::-1])
            registration.create_team("Equipo «%s» 🏁" % username, 100 + n, juez.id)
    for username in UNICODE_USERS:
        for variant in (username, username.upper(), username.lower()):
            tokens = await client.login(variant, "clave-" + username)
            code, me = await client.get("/api/me/", token=tokens["access"])
            assert code == 200
            assert me["user"]["username"] == username
            assert me["juez"]["nombre"] == "Nombre " + username[::-1]
            assert me["juez"]["equipos"][0]["nombre"] == "Equipo «%s» 🏁" % username
        code, answer = await client.post("/api/token/", {"username": username,
                                                         "password": "clave-" + username[:-1]})
        assert code == 401, answer


@pytest.mark.gen_test
async def test_websocket_message_over_64_kib_closes_1009(client, event):
    token = await client.access("juez1", "pass-juez1")
    ws, _ = await client.judge_socket(event["jueces"][0], token)
    ws.write_message(json.dumps({"type": "ping", "data": {"pad": "x" * 60 * KIB}}))
    answer = await next_message(ws)  # under the limit: answered, but not echoed
    assert (answer["type"], answer["data"]["code"]) == ("error", "message_too_large")
    ws.write_message(json.dumps({"type": "ping", "data": {"pad": "x" * 900}}))
    assert (await next_message(ws))["data"]["pad"] == "x" * 900  # a small ping is echoed
    ws.write_message(json.dumps({"type": "ping", "data": {"pad": "x" * 65 * KIB}}))
    assert await asyncio.wait_for(ws.read_message(), 5) is None
    assert ws.close_code == 1009
    ws.close()
    # Hostile but small messages get an error and the socket stays open.
    ws, _ = await client.judge_socket(event["jueces"][0], token)
    for text in ("[" * 5000 + "]" * 5000, '{"type": "ping", "data": {"x": "\\udc00"}}',
                 '{"type": "ping", "data": {"x": 1e999}}', "{}", '"ping"',
                 '{"type": "ping", "type": "ping"}', '{"type": "ping", "data": []}'):
        ws.write_message(text)
        answer = await next_message(ws)
        assert answer["type"] == "error", (text[:40], answer)
    ws.write_message('{"type": "ping", "data": {"n": "ñ🏁"}}')
    assert (await next_message(ws))["data"]["n"] == "ñ🏁"
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_idle_and_slow_clients_are_disconnected(app, config, event, io_loop):
    """make_server's idle and body timeouts, shortened so the test is quick."""
    port = free_port()
    server = server5k.make_server(app, config, idle_connection_timeout=0.5, body_timeout=0.5)
    server.listen(port, "127.0.0.1")
    try:
        async def closed_after(data):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            await writer.drain()
            start = time.monotonic()
            rest = await asyncio.wait_for(reader.read(), 10)  # until the server closes
            writer.close()
            return time.monotonic() - start, rest

        # Connects and says nothing (or sends half a header line, slowloris-style).
        elapsed, rest = await closed_after(b"")
        assert rest == b"" and elapsed < 5
        elapsed, rest = await closed_after(b"POST /api/token/ HTTP/1.1\r\nHost: x\r\n")
        assert rest == b"" and elapsed < 5
        # Announces a body and sends only part of it.
        elapsed, rest = await closed_after(b"POST /api/token/ HTTP/1.1\r\nHost: x\r\n"
                                           b"Content-Type: application/json\r\n"
                                           b"Content-Length: 100\r\n\r\n{\"user")
        assert b"200 OK" not in rest and elapsed < 5
        # A keep-alive connection left open after a request is closed too.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/competencias/%d/ HTTP/1.1\r\nHost: x\r\n\r\n"
                     % event["competencia"])
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        await asyncio.wait_for(reader.read(), 10)
        assert time.monotonic() - start < 5
        writer.close()
    finally:
        server.stop()
        await server.close_all_connections()


# ------------------------------------------------------------------------------------------------
# parse_json skips its walks when the text cannot need them; the answers must not change.
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, ok", [
    ("[" * 32 + "]" * 32, True),  # 32 levels: the limit
    ("[" * 33 + "]" * 33, False),
    ('{"a": ' * 20 + "1" + "}" * 20, True),
    ('{"a": ' * 40 + "1" + "}" * 40, False),
    ('{"brackets in text": "' + "[{" * 50 + '"}', True),  # many brackets, depth 1
    ('{"t": "\\ud800"}', False), ('{"t": "\\uDFFF"}', False), ('{"\\ud83d": 1}', False),
    ('{"t": "\\ud83d\\ude00"}', True),  # a proper pair is an emoji
    ('{"t": "\\\\ud800"}', True),  # an escaped backslash, then plain text "ud800"
    ('{"t": "\\u00e9"}', True),
])
def test_parse_json_limits_hold_with_and_without_the_walks(text, ok):
    from handlers.wire import parse_json
    for raw in (text, text.encode("utf-8")):
        if ok:
            assert parse_json(raw) == json.loads(text)
        else:
            with pytest.raises(ValueError):
                parse_json(raw)


def test_parse_json_refuses_a_lone_surrogate_already_in_a_str():
    from handlers.wire import parse_json
    with pytest.raises(ValueError):
        parse_json('{"t": "\ud800"}')  # no escape: only a str (never decoded bytes) holds this
    with pytest.raises(ValueError):
        parse_json(b"\xef\xbb\xbf{}")  # a UTF-8 BOM, as json.loads refuses it
