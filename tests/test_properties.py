"""Property-based tests (hypothesis) against the real server process: whatever a phone or an
attacker sends as a submission or a login, the answer is never a 500, and a refused submission
never leaves any of its records behind."""

import http.client
import json
import sqlite3
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st


SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# Any code point, lone surrogates included (json.dumps sends them as "\ud800" escapes).
any_text = st.text(st.characters(exclude_categories=[]), max_size=20)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False,
                                                                         allow_infinity=False),
                      any_text)
any_json = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=12)
timestamps = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["2025-11-11T12:00:00.000Z", "2025-11-11T12:00:00+02:00", "2025-13-01",
                     "", "9999-12-31T23:59:59.999999-23:59"]),
    any_json)
tiempos = st.one_of(st.integers(0, 86_400_000), st.integers(), st.floats(), any_json)
ids = st.one_of(st.uuids().map(str), st.none(), any_json)


def records(draw_extra=True):
    base = st.fixed_dictionaries({"timestamp": timestamps, "tiempo": tiempos},
                                 optional={"id_registro": ids, "extra": any_json})
    return st.one_of(base, base.map(lambda r: {k: v for k, v in r.items() if k != "tiempo"}),
                     any_json)


def submissions(team_ids):
    return st.one_of(
        st.fixed_dictionaries({"equipo_id": st.one_of(st.sampled_from(team_ids), st.integers(),
                                                      any_json),
                               "registros": st.lists(records(), max_size=20)}),
        st.fixed_dictionaries({"equipo_id": st.sampled_from(team_ids),
                               "registros": st.lists(records(), min_size=1, max_size=20)}),
        any_json)


class Http:
    """A tiny synchronous client (hypothesis drives plain functions)."""

    def __init__(self, port):
        self.port = port

    def request(self, method, path, body=b"", headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            payload = response.read()
            return response.status, response.getheader("Content-Type"), payload
        finally:
            conn.close()

    def json(self, method, path, obj=None, token=None, raw=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        body = raw if raw is not None else json.dumps(obj).encode()
        status, content_type, payload = self.request(method, path, body, headers)
        assert content_type.startswith("application/json"), (status, payload[:200])
        return status, json.loads(payload)


def row_count(db_path):
    conn = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM registro_tiempo").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def live(spawn, event, config):
    server = spawn(config["database"]["path"],
                   # Thousands of failed logins from one address: every login limit off, the
                   # properties are about answers, not limits (tests/test_limits.py has those).
                   limits={"login_per_minute": 0, "login_per_address_per_minute": 0,
                           "login_lockout_failures": 0, "anonymous_per_minute": 0,
                           "submissions_per_minute": 0}).start()
    http = Http(server.port)
    status, tokens = http.json("POST", "/api/token/", {"username": "juez1", "password": "pass-juez1"})
    assert status == 200
    yield server, http, tokens["access"]
    assert "Traceback" not in server.log() and "Uncaught" not in server.log(), server.log()


def test_submissions_never_500_and_refusals_store_nothing(live, event, config):
    server, http, token = live
    db_path = config["database"]["path"]
    teams = list(event["equipos"].values()) + [999_999]

    @SETTINGS
    @given(body=submissions(teams), as_text=st.booleans())
    def check(body, as_text):
        raw = json.dumps(body).encode()
        before = row_count(db_path)
        status, answer = http.json("POST", "/api/enviar_tiempos/", raw=raw, token=token)
        after = row_count(db_path)
        assert status in (201, 400, 403, 404, 409), (status, answer)
        if status == 201:
            assert after - before == len(answer["created"])
            assert len(answer["created"]) + len(answer["duplicates"]) <= 15
        else:
            assert set(answer) <= {"detail", "code", "errors"} and answer["code"], answer
            assert after == before, (status, answer)  # nothing of a refused submission

    check()


def test_raw_bytes_never_500(live):
    server, http, token = live

    @SETTINGS
    @given(raw=st.binary(max_size=300), path=st.sampled_from(
        ["/api/enviar_tiempos/", "/api/token/", "/api/token/refresh/", "/api/ws-ticket/"]))
    def check(raw, path):
        status, answer = http.json("POST", path, raw=raw, token=token)
        assert status in (200, 201, 400, 401, 403, 404), (status, answer)
        assert answer["code"] if status >= 400 else True

    check()


def test_token_payloads_never_500(live):
    server, http, _ = live
    usernames = st.one_of(any_text, st.sampled_from(["juez1", "JUEZ1", "org", "ｊｕｅｚ１"]),
                          any_json)

    @SETTINGS
    @example(username="juez1\ud800", password="pass-juez1", extra={})  # found by hand: it was a 500
    @example(username="juez1", password="\udfff", extra={"\ud800": None})
    @given(username=usernames, password=st.one_of(any_text, st.just("pass-juez1"),
                                                   any_json),
           extra=st.dictionaries(st.text(max_size=8), any_json, max_size=2))
    def check(username, password, extra):
        body = dict(extra, username=username, password=password)
        status, answer = http.json("POST", "/api/token/", body)
        assert status in (200, 400, 401), (status, answer)
        if status == 200:
            assert set(answer) == {"access", "refresh"}

    check()

    @SETTINGS
    @given(refresh=st.one_of(any_text, any_json),
           authorization=st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                 max_size=300))
    def check_tokens(refresh, authorization):
        status, answer = http.json("POST", "/api/token/refresh/", {"refresh": refresh})
        assert status in (400, 401), (status, answer)
        status, _, payload = http.request("GET", "/api/me/",
                                          headers={"Authorization": authorization})
        assert status == 401, payload
        json.loads(payload)
        status, _, payload = http.request(
            "GET", "/ws/juez/1/?token=%s" % uuid.uuid4().hex + authorization.replace(" ", "+")
            .replace("#", "").replace("?", "").replace("&", ""),
            headers={"Upgrade": "websocket", "Connection": "Upgrade",
                     "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert status == 401, payload

    check_tokens()
