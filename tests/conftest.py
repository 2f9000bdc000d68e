"""Fixtures: the real app on a real SQLite file in a tmp dir, real HTTP and WebSocket clients."""

import json
import sys
from pathlib import Path

import pytest
import tornado.httpclient
import tornado.websocket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
import server5k  # noqa: E402
from live import fetch, spawn  # noqa: E402,F401  (spawn: the subprocess-server fixture)

SECRET = "test-secret-" + "x" * 60


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVER5K_SECRET_KEY", SECRET)
    (tmp_path / "empty.yaml").write_text("")
    return server5k.load_config(tmp_path / "empty.yaml", {
        "database": {"path": str(tmp_path / "event.db")},
        "server": {"ws_ping_interval_s": 5},
    })


@pytest.fixture
def event(config):
    """A competition with an organizer, two judges (two teams each) and a judge of another race."""
    models.open_database(config["database"]["path"])
    with models.db.connection_context():
        comp = models.create_competition("Carrera de prueba")
        other = models.create_competition("Otra carrera")
        models.create_user("org", "org-pass", organizer=True)
        j1 = models.create_judge("juez1", "pass1", comp.id, "Juez Uno")
        j2 = models.create_judge("juez2", "pass2", comp.id, "Juez Dos")
        j3 = models.create_judge("juez3", "pass3", other.id, "Juez Otra")
        teams = {
            "a": models.create_team("Equipo A", 1, j1.id).id,
            "b": models.create_team("Equipo B", 2, j1.id).id,
            "c": models.create_team("Equipo C", 3, j2.id).id,
            "x": models.create_team("Equipo X", 1, j3.id).id,
        }
    return {"competencia": comp.id, "otra": other.id, "jueces": [j1.id, j2.id, j3.id],
            "equipos": teams}


@pytest.fixture
def app(config, event):
    application = server5k.make_app(config)
    yield application
    server5k.close_app(application)


class Client:
    """Small helper around Tornado's HTTP client: JSON in, (status, json) out."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.http = tornado.httpclient.AsyncHTTPClient()

    async def request(self, method, path, body=None, token=None, headers=None, raw=None):
        code, payload, response = await fetch(method, self.base_url + path, body, token,
                                              headers, raw, client=self.http,
                                              allow_nonstandard_methods=True)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            assert not isinstance(payload, str), "not JSON: %r" % payload[:200]
        return code, payload, response

    async def post(self, path, body=None, token=None, **kw):
        code, payload, _ = await self.request("POST", path, body, token, **kw)
        return code, payload

    async def get(self, path, token=None, **kw):
        code, payload, _ = await self.request("GET", path, None, token, **kw)
        return code, payload

    async def login(self, username, password):
        code, payload = await self.post("/api/token/", {"username": username,
                                                         "password": password})
        assert code == 200, payload
        return payload

    async def access(self, username, password):
        return (await self.login(username, password))["access"]

    def ws_url(self, path):
        return "ws" + self.base_url[len("http"):] + path

    async def judge_socket(self, juez_id, token, **kw):
        """Connect a judge socket and read its conexion.establecida."""
        ws = await tornado.websocket.websocket_connect(
            self.ws_url("/ws/juez/%s/?token=%s" % (juez_id, token)), **kw)
        hello = json.loads(await ws.read_message())
        assert hello["type"] == "conexion.establecida", hello
        return ws, hello


@pytest.fixture
def client(http_server, base_url):
    return Client(base_url)


async def next_message(ws, timeout=5):
    import asyncio
    text = await asyncio.wait_for(ws.read_message(), timeout)
    return None if text is None else json.loads(text)
