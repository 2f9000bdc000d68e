"""What the tests share, apart from fixtures (those are in conftest.py):

* waits on a condition with a deadline (``wait_for``, ``wait_for_async``), never fixed sleeps;
* ``registros``, the records of a submission, in the wire form or the validated form, and
  ``submission``, a whole ``POST /api/enviar_tiempos/`` body;
* ``stored_rows`` and ``stored_counts``: the records on disk, read from the SQLite file;
* HTTP (``fetch``, ``request_json``, ``login``) and the judge socket (``judge_path``,
  ``judge_socket``, ``handshake_status``, ``next_message``, ``nothing_within``, ``close_code``);
* ``Client``, the same for the in-process app (the ``client`` fixture): requests that must
  answer a status (``call``), the organizer's login (``organizer``), a judge's submission
  (``enviar_tiempos``), the race's start and stop (``race_action``), the standings by team
  (``standings``) and its results-page socket (``spectator``);
* ``run_cli``, the command line in a subprocess or in-process;
* ``LiveServer``, the real server as a subprocess (``python server5k.py --config FILE serve``)
  for tests that kill it, signal it or point outside tools at it (the ``spawn`` fixture); its
  log goes to a file the test can read; ``organize`` registers a competition and ``ORGANIZER``
  before it starts, ``token``, ``api`` and ``enviar_tiempos`` talk to it synchronously;
* ``LoopThread``, an asyncio loop on a thread of its own, so a synchronous test (Playwright's)
  keeps judges' sockets open meanwhile;
* the browser tests' viewports (``PHONE``, ``DESKTOP``), the organizer's console
  (``open_console``, ``sign_in``, ``tab``, ``in_dialog``, ``downloaded``) and
  ``save_screenshot`` (the ``browser`` fixture is in conftest.py).

Every test file imports what it needs from here; none imports conftest.
"""

import asyncio
import contextlib
import datetime as dt
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import tornado.httpclient
import tornado.websocket
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The signing secret of the in-process app (the ``config`` fixture puts it in the environment)...
SECRET = "test-secret-" + "x" * 60
# ...and of the real server started as a subprocess (LiveServer.env()).
LIVE_SECRET = "live-secret-" + "y" * 40


# -- waiting --------------------------------------------------------------------------------------
def wait_for(condition, timeout=10, interval=0.01, what=None):
    """Poll ``condition()`` until it gives a true value, and return that value; fail the test
    (AssertionError naming ``what``) once ``timeout`` seconds pass first.

    For tests that wait for something to have happened: never a fixed sleep, which is too short
    on a busy machine and too long everywhere else.
    """
    deadline = time.monotonic() + timeout
    while not (value := _poll(condition, deadline, timeout, what)):
        time.sleep(interval)
    return value


async def wait_for_async(condition, timeout=10, interval=0.01, what=None):
    """``wait_for`` on an asyncio loop: the loop keeps running between polls."""
    deadline = time.monotonic() + timeout
    while not (value := _poll(condition, deadline, timeout, what)):
        await asyncio.sleep(interval)
    return value


def _poll(condition, deadline, timeout, what):
    value = condition()
    if not value and time.monotonic() >= deadline:
        raise AssertionError("gave up after %s s waiting for %s" % (
            timeout, what or getattr(condition, "__name__", "").strip("<>") or "the condition"))
    return value


# -- records --------------------------------------------------------------------------------------
T0 = "2025-11-11T12:00:00.000Z"  # the integration guide's example timestamp
RACE_DAY = "2026-12-06T09:%02d:00.000Z"  # the tests' race day, at 09:MM (% minute)
# The organizer the ``event`` fixture (conftest.py) registers.
EVENT_ORGANIZER = ("org", "org-pass")
# ...and the one the tests register on a real server (``LiveServer.organize``).
ORGANIZER = ("ana", "clave-de-ana")


def registros(tiempos, start_ms=60_000, step_ms=1000, at=T0, every_s=1, ids=False,
              validated=False, **fields):
    """The records of one submission, one per tiempo.

    ``tiempos``: the ms of each record, or a count n: n tiempos from ``start_ms``, ``step_ms``
    apart.
    ``at``: the first record's timestamp (ISO text or naive UTC datetime); each next one
    ``every_s`` seconds later (0: all the same).
    ``ids``: False (no id_registro), True (a new UUID each) or a list (one per record, None: none).
    ``validated``: the form submissions.validate_submission gives and submissions.store_submission takes
    (naive UTC datetimes, 32-hex ids, id_registro always present) instead of the wire form (ISO
    text with milliseconds and Z, UUID text).
    ``fields``: set on every record as given, e.g. a value the server must refuse.
    """
    if isinstance(tiempos, int):
        tiempos = [start_ms + i * step_ms for i in range(tiempos)]
    tiempos = list(tiempos)
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
        if at.tzinfo is not None:
            at = at.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if ids is True:
        ids = [uuid.uuid4() for _ in tiempos]
    out = []
    for i, tiempo in enumerate(tiempos):
        stamp = at + dt.timedelta(seconds=i * every_s)
        given = ids[i] if ids else None
        if validated:
            record = {"timestamp": stamp, "tiempo": tiempo,
                      "id_registro": given.hex if isinstance(given, uuid.UUID) else given}
        else:
            record = {"timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.")
                      + "%03dZ" % (stamp.microsecond // 1000), "tiempo": tiempo}
            if given is not None:
                record["id_registro"] = str(given)
        record.update(fields)
        out.append(record)
    return out


def submission(equipo_id, tiempos, minute=0, **options):
    """The body of a judge's ``POST /api/enviar_tiempos/``: ``tiempos`` for ``equipo_id``, the
    first record stamped at 09:MM:00 on the race day (MM: ``minute``) unless ``options`` give
    ``at``; ``options`` go to ``registros``."""
    options.setdefault("at", RACE_DAY % minute)
    return {"equipo_id": equipo_id, "registros": registros(tiempos, **options)}


def stored_rows(db_path, columns, where="", args=()):
    """Rows of registro_tiempo (``SELECT COLUMNS ... WHERE``, oldest first) read straight from
    the SQLite file by a read-only connection of their own: what is on disk, not in a cache."""
    conn = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    try:
        return conn.execute("SELECT %s FROM registro_tiempo%s ORDER BY id" % (
            columns, " WHERE " + where if where else ""), args).fetchall()
    finally:
        conn.close()


def stored_counts(db_path, ids):
    """How many rows each id_registro of ``ids`` (UUID text) has on disk, and how many rows
    there are in all: ({id: count}, total)."""
    rows = stored_rows(db_path, "id_registro")
    counts = {}
    for (hex_id,) in rows:
        counts[hex_id] = counts.get(hex_id, 0) + 1
    return {rid: counts.get(uuid.UUID(rid).hex, 0) for rid in ids}, len(rows)


# -- HTTP -----------------------------------------------------------------------------------------
async def fetch(method, url, body=None, token=None, headers=None, raw=None, client=None, **kw):
    """One HTTP request from outside the server: (status, parsed JSON or None, response)."""
    all_headers = {"Content-Type": "application/json"}
    if token:
        all_headers["Authorization"] = "Bearer " + token
    all_headers.update(headers or {})
    if raw is None and body is not None:
        raw = json.dumps(body)
    if raw is None and method == "POST":
        raw = ""
    client = client or tornado.httpclient.AsyncHTTPClient()
    try:
        response = await client.fetch(url, method=method, body=raw, headers=all_headers,
                                      raise_error=False, **kw)
    except tornado.httpclient.HTTPClientError as exc:  # 599: no answer (closed, timed out)
        raise ConnectionError(str(exc)) from None
    text = response.body.decode() if response.body else ""
    try:
        payload = json.loads(text) if text else None
    except ValueError:
        payload = text
    return response.code, payload, response


def request_json(method, url, body=None, token=None, timeout=15):
    """One blocking HTTP request with a JSON body (for sync code such as Playwright tests):
    (status, parsed JSON answer)."""
    request = urllib.request.Request(url, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def login(base_url, username, password, **kw):
    """``POST /api/token/`` that must succeed: {"access", "refresh"}."""
    code, payload, _ = await fetch("POST", base_url + "/api/token/",
                                   {"username": username, "password": password}, **kw)
    assert code == 200, payload
    return payload


# -- WebSockets -----------------------------------------------------------------------------------
def judge_path(juez_id, token=None, ticket=None):
    """The judge socket's path, authenticated by ``?token=`` or ``?ticket=`` (or neither)."""
    path = "/ws/juez/%s/" % juez_id
    if ticket is not None:
        return path + "?ticket=%s" % ticket
    return path if token is None else path + "?token=%s" % token


async def judge_socket(url, **kw):
    """Open a judge socket and read its conexion.establecida: (socket, that message)."""
    ws = await tornado.websocket.websocket_connect(url, **kw)
    hello = json.loads(await asyncio.wait_for(ws.read_message(), 10))
    assert hello["type"] == "conexion.establecida", hello
    return ws, hello


async def handshake_status(url, **headers):
    """The HTTP status of a WebSocket handshake the server refuses (before the upgrade); fails the
    test if the socket opens."""
    request = tornado.httpclient.HTTPRequest(url, headers=headers)
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        ws = await tornado.websocket.websocket_connect(request)
        ws.close()
    return refused.value.code


async def nothing_within(ws, seconds):
    """True when ``ws`` receives no message for ``seconds`` (and is still open); fails the test
    otherwise. Silence can only be checked over some time: ``seconds`` is that time."""
    try:
        message = await asyncio.wait_for(ws.read_message(), seconds)
    except asyncio.TimeoutError:
        return True
    raise AssertionError("unexpected message: %r" % (message,))


async def close_code(ws, timeout=10):
    """The close code once the server closes ``ws`` (messages before it are skipped)."""
    while await asyncio.wait_for(ws.read_message(), timeout) is not None:
        pass
    ws.close()  # (the client's side of it)
    return ws.close_code


async def next_message(ws, timeout=10):
    """The next message as JSON, or None once the server has closed the socket."""
    text = await asyncio.wait_for(ws.read_message(), timeout)
    return None if text is None else json.loads(text)


# -- the in-process app ---------------------------------------------------------------------------
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

    async def call(self, method, path, body=None, token=None, status=200, **kw):
        """A request that must answer ``status``: its JSON answer."""
        code, answer, _ = await self.request(method, path, body, token, **kw)
        assert code == status, (method, path, answer)
        return answer

    async def login(self, username, password):
        return await login(self.base_url, username, password, client=self.http)

    async def access(self, username, password):
        return (await self.login(username, password))["access"]

    async def organizer(self):
        """The access token of the ``event`` fixture's organizer."""
        return await self.access(*EVENT_ORGANIZER)

    async def enviar_tiempos(self, token, equipo_id, *tiempos, minute=0, status=201, **options):
        """A judge's ``POST /api/enviar_tiempos/`` (``submission``) that must answer ``status``:
        its JSON answer."""
        return await self.call("POST", "/api/enviar_tiempos/",
                               submission(equipo_id, tiempos, minute, **options), token, status)

    async def race_action(self, competencia_id, token, action="iniciar", body=None, status=200):
        """``POST /api/competencias/ID/ACTION/`` (start the race, by default) that must answer
        ``status``: its JSON answer."""
        return await self.call("POST", "/api/competencias/%d/%s/" % (competencia_id, action),
                               body, token, status)

    async def standings(self, competencia_id):
        """The public standings (which must answer 200): (their rows by equipo_id, the answer)."""
        answer = await self.call("GET", "/api/competencias/%d/resultados/" % competencia_id)
        return {row["equipo_id"]: row for row in answer["clasificacion"]}, answer

    async def strict_page(self, path):
        """GET a page that must be served (200, HTML) with a strict Content-Security-Policy
        (everything from 'self', no framing, nothing inline nor eval'd) and no inline script,
        event handler, style or outside URL: (its HTML, the response, its scripts as
        (attributes, body) pairs)."""
        code, html, response = await self.request("GET", path)
        assert code == 200 and response.headers["Content-Type"].startswith("text/html")
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
        assert not any(body.strip() for _, body in scripts)  # from files only
        assert not re.search(r"\son[a-z]+\s*=", html, re.I)  # no inline event handlers
        assert "style=" not in html and "http://" not in html and "https://" not in html
        return html, response, scripts

    def ws_url(self, path):
        return "ws" + self.base_url[len("http"):] + path

    async def judge_socket(self, juez_id, token=None, ticket=None, **kw):
        """Connect a judge socket (by token or ticket) and read its conexion.establecida."""
        return await judge_socket(self.ws_url(judge_path(juez_id, token, ticket)), **kw)

    async def handshake_status(self, path, **headers):
        """The HTTP status of a refused WebSocket handshake on ``path``."""
        return await handshake_status(self.ws_url(path), **headers)

    async def spectator(self, competencia_id, **kw):
        """Connect a results-page socket; (socket, its first standings)."""
        ws = await tornado.websocket.websocket_connect(
            tornado.httpclient.HTTPRequest(self.ws_url("/ws/resultados/%s/" % competencia_id),
                                           **kw))
        hello = await next_message(ws)
        assert hello["type"] == "conexion.establecida"
        assert hello["data"]["competencia_id"] == competencia_id
        assert hello["data"]["server_time"].endswith("Z")
        first = await next_message(ws)
        assert first["type"] == "resultados", first
        return ws, first["data"]


# -- the real server as a subprocess --------------------------------------------------------------
def free_port(host="127.0.0.1"):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def accepts_connections(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def run_cli(config_path, *args, env=None, check=True, in_process=False, timeout=60):
    """``python server5k.py --config CONFIG_PATH ARGS...``: a CompletedProcess (returncode,
    stdout, stderr).

    In a subprocess by default: the real command line, with its own environment (``env``, else
    this one) and exit status. ``in_process=True`` calls ``server5k.main`` here instead, capturing
    what it prints (quicker; it opens the database in this process, as the fixtures do).
    ``check=True`` fails the test, showing stderr, when the command exits non-zero.
    """
    argv = ["--config", str(config_path), *args]
    if in_process:
        assert env is None, "an in-process run shares this process's environment"
        import server5k
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = server5k.main(argv)
            except SystemExit as exc:  # argparse refusing the arguments
                code = exc.code if isinstance(exc.code, int) else 1
        result = subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
    else:
        result = subprocess.run([sys.executable, str(ROOT / "server5k.py"), *argv], env=env,
                                capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError("server5k %s failed (%d): %s" % (
            " ".join(args), result.returncode, result.stderr))
    return result


class LiveServer:
    def __init__(self, tmp_path, db_path, port=None, verbose=False, secret=LIVE_SECRET,
                 config_path=None, **sections):
        """A server on ``db_path`` with a config written for it (``sections`` added), or, with
        ``config_path``, the organizer's own config file as it is (its port is read from it).
        ``secret``: SERVER5K_SECRET_KEY in its environment; None leaves it unset (the server
        keeps its secret in a file beside the database)."""
        self.secret = secret
        if config_path is not None:
            config = yaml.safe_load(Path(config_path).read_text()) or {}
            self.port = config.get("server", {}).get("port", 8000)
            self.config_path = Path(config_path)
            self.db_path = str(db_path)
            self.log_path = Path(tmp_path) / ("live-%d.log" % self.port)
            self.tls, self.verbose, self.process, self._log = False, verbose, None, None
            return
        self.port = port or free_port()
        self.db_path = str(db_path)
        self.config_path = Path(tmp_path) / ("live-%d.yaml" % self.port)
        self.log_path = Path(tmp_path) / ("live-%d.log" % self.port)
        config = {"server": {"host": "127.0.0.1", "port": self.port, "ws_ping_interval_s": 5},
                  "database": {"path": self.db_path}}
        for section, values in sections.items():
            config.setdefault(section, {}).update(values)
        self.config_path.write_text(yaml.safe_dump(config))
        self.tls = bool(config["server"].get("tls_cert"))
        self.verbose = verbose
        self.process = None
        self._log = None

    @property
    def base_url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    @property
    def ws_base(self):
        return "%s://127.0.0.1:%d" % ("wss" if self.tls else "ws", self.port)

    def env(self):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("SERVER5K_SECRET_KEY", None)
        if self.secret is not None:
            env["SERVER5K_SECRET_KEY"] = self.secret
        return env

    def cli(self, *args, env=None, check=True):
        """``run_cli`` with this server's config and environment (plus ``env``)."""
        return run_cli(self.config_path, *args, env=dict(self.env(), **(env or {})), check=check)

    def organize(self, competition="5K del Puerto", *options, organizer=ORGANIZER):
        """Register a competition (``competition add COMPETITION OPTIONS...``) and an organizer
        through the command line, before ``start``: this server."""
        self.cli("competition", "add", competition, *options)
        self.cli("organizer", "add", organizer[0], "--password", organizer[1])
        return self

    def token(self, username, password):
        """``POST /api/token/`` that must succeed: the access token."""
        status, body = request_json("POST", self.base_url + "/api/token/",
                                    {"username": username, "password": password})
        assert status == 200, body
        return body["access"]

    def api(self, method, path, body=None, user=ORGANIZER):
        """A request as ``user`` (by default the organizer) that must succeed (2xx): its JSON
        answer."""
        status, answer = request_json(method, self.base_url + path, body,
                                      token=self.token(*user))
        assert status < 300, answer
        return answer

    def enviar_tiempos(self, token, equipo_id, *tiempos, minute=0, status=201, **options):
        """A judge's ``POST /api/enviar_tiempos/`` (``submission``) that must answer ``status``:
        its JSON answer."""
        code, answer = request_json("POST", self.base_url + "/api/enviar_tiempos/",
                                    submission(equipo_id, tiempos, minute, **options), token=token)
        assert code == status, answer
        return answer

    def start(self, *extra, timeout=20, preexec_fn=None):
        """Start ``serve`` (with ``extra`` arguments such as ``--demo``) and wait until it listens.
        ``preexec_fn`` runs in the child first (e.g. to lower its open-file limit)."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = open(self.log_path, "ab")
        argv = [sys.executable, str(ROOT / "server5k.py"), "--config", str(self.config_path)]
        if self.verbose:
            argv.append("--verbose")
        self.process = subprocess.Popen(argv + ["serve", *extra], env=self.env(), cwd=str(ROOT),
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        preexec_fn=preexec_fn)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # until its log says it listens (or it exits)
            if self.process.poll() is not None:
                raise RuntimeError("server exited with %s:\n%s" % (self.process.returncode,
                                                                   self.log()))
            if "listening on" in self.log()[offset:]:
                return self
            time.sleep(0.05)
        raise RuntimeError("server did not start:\n" + self.log())

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig):
        self.process.send_signal(sig)

    def wait(self, timeout=30):
        try:
            return self.process.wait(timeout)
        finally:
            if self._log:
                self._log.close()
                self._log = None

    def stop(self):
        """Make sure the process is gone (test teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        if self._log:
            self._log.close()
            self._log = None


class LoopThread:
    """An asyncio loop running on a thread of its own: ``run(coroutine)`` runs it there and
    returns its result. For synchronous tests (Playwright's) that need clients that stay
    connected meanwhile, such as virtual judges' sockets."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout=30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# -- browser tests --------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"  # Debian's package (never `playwright install`)
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def sign_in(page, user=ORGANIZER):
    """Sign in on the organizer's console (or any page with its login form) as ``user``."""
    page.get_by_label("Usuario", exact=True).fill(user[0])
    page.get_by_label("Contraseña", exact=True).fill(user[1])
    page.get_by_role("button", name="Entrar").click()


def open_console(browser, server, viewport=DESKTOP):
    """The organizer's console of ``server`` in a new page (Spanish, downloads on) that keeps
    its script errors (``page.errors``), native dialogs, sockets and requests."""
    page = browser.new_page(viewport=viewport, locale="es-ES", accept_downloads=True)
    page.errors, page.native_dialogs, page.sockets, page.requests = [], [], [], []
    page.on("request", lambda r: page.requests.append(r))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("dialog", lambda d: (page.native_dialogs.append(d.message), d.dismiss()))
    page.on("websocket", lambda ws: page.sockets.append(ws.url))
    page.goto(server.base_url + "/organizador/")
    return page


def tab(page, name):
    """Open the console's tab ``name``."""
    page.get_by_role("navigation").get_by_role("link", name=name).click()


def in_dialog(page, confirm, **fields):
    """Fill the open dialog's fields (by label) and press its ``confirm`` button."""
    from playwright.sync_api import expect
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    for label, value in fields.items():
        control = dialog.get_by_label(label.replace("_", " "))
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(label=value)
        else:
            control.fill(value)
    dialog.get_by_role("button", name=confirm, exact=True).click()
    return dialog


def downloaded(download):
    """A finished download's text (UTF-8, with or without BOM), as a file to read."""
    with open(download.value.path(), encoding="utf-8-sig", newline="") as handle:
        return io.StringIO(handle.read())


def save_screenshot(page, folder, name):
    """A full-page screenshot ``folder/name``; with SERVER5K_UPDATE_SCREENSHOTS=1 it also
    replaces ``docs/name``, the picture the README shows."""
    target = Path(folder) / name
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    if os.environ.get("SERVER5K_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(target, ROOT / "docs" / name)
    return target


def decode_qr(png):
    """What the QR code in a PNG says, read by zbarimg (Debian's zbar-tools)."""
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        pytest.skip("zbarimg is not installed (Debian package 'zbar-tools'; .ci/run installs "
                    "it when apt-get can)")
    run = subprocess.run([zbarimg, "--quiet", "--raw", str(png)], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()
