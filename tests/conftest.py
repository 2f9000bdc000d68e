"""Fixtures: the real app on a real SQLite file in a tmp dir, real HTTP and WebSocket clients, and
the real server as a subprocess. Helpers the tests share are in helpers.py, not here."""

import sys
from pathlib import Path

import pytest

from helpers import CHROMIUM, ROOT, SECRET, Client, LiveServer

sys.path.insert(0, str(ROOT))

import models  # noqa: E402
import identity  # noqa: E402
import registration  # noqa: E402
import server5k  # noqa: E402
import config_schema  # noqa: E402


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVER5K_SECRET_KEY", SECRET)
    (tmp_path / "empty.yaml").write_text("")
    return config_schema.load_config(tmp_path / "empty.yaml", {
        "database": {"path": str(tmp_path / "event.db")},
        "server": {"ws_ping_interval_s": 5},
    })


# The event's passwords hashed once per run (an scrypt is ~0.1 s; four per test added up to
# minutes). Each test still verifies them with scrypt: the ``event`` fixture forgets what the
# previous test verified.
_HASHES = {}


def hashed(password):
    if password not in _HASHES:
        _HASHES[password] = identity.hash_password(password)
    return _HASHES[password]


@pytest.fixture
def event(config):
    """A competition with an organizer, two judges (two teams each) and a judge of another race."""
    models.open_database(config["database"]["path"])
    identity._VERIFIED = identity._Verified()  # no login remembered from another test
    with models.db.connection_context():
        comp = registration.create_competition("Carrera de prueba")
        other = registration.create_competition("Otra carrera")
        identity.create_user("org", "org-pass", organizer=True, password_hash=hashed("org-pass"))
        j1 = registration.create_judge("juez1", "pass-juez1", comp.id, "Juez Uno",
                                       password_hash=hashed("pass-juez1"))
        j2 = registration.create_judge("juez2", "pass-juez2", comp.id, "Juez Dos",
                                       password_hash=hashed("pass-juez2"))
        j3 = registration.create_judge("juez3", "pass-juez3", other.id, "Juez Otra",
                                       password_hash=hashed("pass-juez3"))
        teams = {
            "a": registration.create_team("Equipo A", 1, j1.id).id,
            "b": registration.create_team("Equipo B", 2, j1.id).id,
            "c": registration.create_team("Equipo C", 3, j2.id).id,
            "x": registration.create_team("Equipo X", 1, j3.id).id,
        }
    return {"competencia": comp.id, "otra": other.id, "jueces": [j1.id, j2.id, j3.id],
            "equipos": teams}


@pytest.fixture
def app(config, event):
    application = server5k.make_app(config)
    yield application
    server5k.close_app(application)


@pytest.fixture
def client(http_server, base_url):
    return Client(base_url)


@pytest.fixture
def spawn(tmp_path):
    """``spawn(db_path, **config_sections)`` -> a LiveServer (not started); all are killed after."""
    started = []

    def factory(db_path, **kwargs):
        server = LiveServer(tmp_path, db_path, **kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def browser():
    """Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright; the test is skipped,
    saying why, only when it is not installed or cannot be launched here."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed at %s (Debian package 'chromium'; .ci/run "
                    "installs it when apt-get can)" % CHROMIUM)
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        except PlaywrightError as exc:
            pytest.skip("Chromium at %s cannot be launched here: %s"
                        % (CHROMIUM, str(exc).strip().splitlines()[0]))
        yield chromium
        chromium.close()
