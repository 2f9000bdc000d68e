"""Virtual judges: the judges' phone app, played for real over HTTP and WebSocket.

Each :class:`VirtualJudge` does what the app in the integration guide does: log in at
``/api/token/``, learn its juez_id and teams at ``/api/me/``, open ``/ws/juez/{id}/?token=``,
wait for ``carrera.iniciada``, then POST 15 records per team to ``/api/enviar_tiempos/`` with
``id_registro`` UUIDs, so a retry after a timeout or a 5xx can never store a record twice.
Expired access tokens are refreshed; 429 answers wait for ``Retry-After``.

Two users:

* organizers: ``python server5k.py simulate --judges N`` (see :func:`simulate`) rehearses an event
  against a running server and prints a plain summary;
* the benchmark (``bench/run.py``) opens thousands of judge sockets with the same client.

The WebSocket client is a small RFC 6455 implementation on asyncio (text frames, ping/pong, close)
rather than a general-purpose library: thousands of sockets in one process must cost the client
very little, or the benchmark would measure the client instead of the server.
"""

import asyncio
import base64
import hashlib
import json
import os
import random
import ssl as ssl_module
import sys
import time
import uuid
from collections import Counter
from urllib.parse import urlsplit

import tornado.httpclient

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ------------------------------------------------------------------------------------------------
# A lean WebSocket client
# ------------------------------------------------------------------------------------------------
class HandshakeError(Exception):
    """The server refused the upgrade (401/403/...). ``code`` is the JSON error code if any."""

    def __init__(self, status, code, detail=""):
        super().__init__("%s %s %s" % (status, code, detail))
        self.status = status
        self.code = code


class _SocketProtocol(asyncio.Protocol):
    def __init__(self, key, on_message, on_close):
        self._key = key
        self._on_message = on_message
        self._on_close = on_close
        self._buf = bytearray()
        self._fragments = []
        self.handshake = asyncio.get_running_loop().create_future()
        self.transport = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("connection closed during handshake"))
        elif self._on_close:
            self._on_close()

    def data_received(self, data):
        self._buf += data
        if not self.handshake.done() and not self._read_handshake():
            return
        self._read_frames()

    def _read_handshake(self):
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(head[0].split()[1])
        if status != 101:
            length = int(headers.get("content-length", "0") or 0)
            if len(self._buf) < end + 4 + length:
                return False  # wait for the JSON error body
            body = bytes(self._buf[end + 4:end + 4 + length])
            try:
                error = json.loads(body)
            except ValueError:
                error = {}
            code = error.get("code", "http_%d" % status)
            self.handshake.set_exception(HandshakeError(status, code, error.get("detail", "")))
            self.transport.close()
            return False
        expected = base64.b64encode(hashlib.sha1(self._key + WS_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            self.handshake.set_exception(HandshakeError(status, "bad_accept"))
            self.transport.close()
            return False
        del self._buf[:end + 4]
        self.handshake.set_result(None)
        return True

    def _read_frames(self):
        buf = self._buf
        while len(buf) >= 2:
            opcode, length, start = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, start = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + length:
                return
            payload = bytes(buf[start:start + length])
            fin = buf[0] & 0x80
            del buf[:start + length]
            if opcode == 9:  # ping: answer as the protocol requires, or the server drops us
                self.send(payload, opcode=10)
            elif opcode == 8:  # close: echo it and let the transport go
                self.send(payload[:2], opcode=8)
                self.transport.close()
                return
            elif opcode in (0, 1, 2):
                self._fragments.append(payload)
                if fin:
                    text = b"".join(self._fragments).decode("utf-8")
                    self._fragments = []
                    self._on_message(text)

    def send(self, payload, opcode=1):
        if self.closed:
            return
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        length = len(payload)
        if length < 126:
            header = bytes((0x80 | opcode, 0x80 | length))
        elif length < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big")
                  ^ int.from_bytes((mask * (length // 4 + 1))[:length], "big")
                  ).to_bytes(length, "big") if length else b""
        self.transport.write(header + mask + masked)


async def open_socket(url, on_message, on_close=None, ssl_context=None, timeout=10.0,
                      local_addr=None):
    """Connect a WebSocket at ``ws://`` or ``wss://`` URL. Returns the protocol (``.send``).

    ``local_addr``: the source address to connect from (None: the kernel's choice).
    Raises HandshakeError when the server refuses, OSError/TimeoutError when unreachable.
    """
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    port = parts.port or (443 if secure else 80)
    if secure and ssl_context is None:
        ssl_context = ssl_module.create_default_context()
    key = base64.b64encode(os.urandom(16))
    protocol = _SocketProtocol(key, on_message, on_close)
    loop = asyncio.get_running_loop()
    transport, _ = await asyncio.wait_for(loop.create_connection(
        lambda: protocol, parts.hostname, port, ssl=ssl_context if secure else None,
        local_addr=(local_addr, 0) if local_addr else None), timeout)
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    transport.write((
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (path, parts.hostname, port, key.decode())).encode("latin-1"))
    try:
        await asyncio.wait_for(protocol.handshake, timeout)
    except BaseException:
        transport.close()
        raise
    return protocol


# ------------------------------------------------------------------------------------------------
# One judge
# ------------------------------------------------------------------------------------------------
class Stats:
    """What a simulation saw, shared by all its judges."""

    def __init__(self):
        self.errors = Counter()      # every non-success answer, by code (retried ones too)
        self.connected = 0           # judges whose socket is (or was) open
        self.start_received = 0
        self.submissions_ok = 0
        self.submissions_failed = 0
        self.records_created = 0
        self.records_duplicate = 0


def backoff(attempt):
    """Seconds to wait before retry ``attempt``: doubling from 0.25 s up to 5 s, jittered."""
    return min(5.0, 0.25 * 2 ** min(attempt, 5)) * random.uniform(0.5, 1.0)


class VirtualJudge:
    """A judge's phone. Give it credentials (it logs in) or a token and juez_id (the bench).

    ``local_addr``: the source address of all its connections (one per judge, so a network
    test can cut off one phone). ``persistent``: keep the socket open for the whole race, as an
    app does: reconnect after the start too, and never give up reconnecting until ``close()``.
    """

    def __init__(self, base_url, username=None, password=None, token=None, juez_id=None,
                 equipos=None, stats=None, http=None, ssl_context=None, attempts=6,
                 request_timeout=15.0, local_addr=None, persistent=False):
        self.base_url = base_url.rstrip("/")
        self.username, self.password = username, password
        self.access, self.refresh_token = token, None
        self.juez_id, self.equipos = juez_id, list(equipos or [])
        self.competencia_id = None
        self.stats = stats or Stats()
        self.http = http
        self.ssl_context = ssl_context
        self.attempts = attempts
        self.request_timeout = request_timeout
        self.local_addr = local_addr
        self.persistent = persistent
        self.socket = None
        self.started = asyncio.Event()
        self.start_info = None       # the carrera.iniciada data
        self.start_mono = None       # time.monotonic() at receipt (system-wide clock on Linux)
        self.start_wall = None       # time.time() at receipt
        self.messages = Counter()
        self._closing = False

    # -- HTTP ------------------------------------------------------------------------------------
    async def _request(self, method, path, body=None, auth=True):
        """(status, json). Retries timeouts, refused connections, 5xx and 429 with backoff."""
        for attempt in range(self.attempts):
            headers = {"Content-Type": "application/json"}
            if auth:
                headers["Authorization"] = "Bearer " + self.access
            try:
                response = await self.http.fetch(
                    self.base_url + path, method=method, headers=headers,
                    body=json.dumps(body) if body is not None else (
                        "" if method == "POST" else None),
                    raise_error=False, request_timeout=self.request_timeout,
                    connect_timeout=self.request_timeout, ssl_options=self.ssl_context,
                    network_interface=self.local_addr)
                status = response.code
                try:
                    answer = json.loads(response.body) if response.body else {}
                except ValueError:
                    answer = {}
            except (OSError, asyncio.TimeoutError, tornado.httpclient.HTTPClientError) as exc:
                # Timeouts and refused connections: a phone on bad Wi-Fi just tries again.
                status, answer = 599, {"code": "timeout" if "imeout" in str(exc)
                                       else "connection_error"}
            if status < 400:
                return status, answer
            code = answer.get("code") or ("timeout" if status == 599 else "http_%d" % status)
            self.stats.errors[code] += 1
            if status == 401 and auth and code in ("token_expired", "token_not_valid"):
                await self.renew()
                continue
            if status == 429:
                delay = float(response.headers.get("Retry-After", 1))
            elif status >= 500:
                delay = backoff(attempt)
            else:
                return status, answer  # a client error: retrying would not help
            await asyncio.sleep(delay)
        return status, answer

    async def login(self):
        status, answer = await self._request(
            "POST", "/api/token/", {"username": self.username, "password": self.password},
            auth=False)
        if status != 200:
            raise RuntimeError("login %s: %s" % (self.username, answer.get("code")))
        self.access, self.refresh_token = answer["access"], answer["refresh"]

    async def renew(self):
        """A fresh access token: refresh, or log in again if the refresh token is gone too."""
        if self.refresh_token:
            status, answer = await self._request(
                "POST", "/api/token/refresh/", {"refresh": self.refresh_token}, auth=False)
            if status == 200:
                self.access = answer["access"]
                self.refresh_token = answer.get("refresh", self.refresh_token)
                return
        if self.username:
            await self.login()

    async def learn(self, competencia_id=None):
        """``/api/me/``: the juez_id and the teams this judge times (in ``competencia_id``,
        when given: a judge of several competitions has a judge id in each, ``jueces``)."""
        status, answer = await self._request("GET", "/api/me/")
        if status != 200 or not answer.get("juez"):
            raise RuntimeError("/api/me/ for %s: %s" % (self.username, answer.get("code")))
        juez = answer["juez"]
        if competencia_id is not None:
            juez = next((j for j in answer.get("jueces") or [juez]
                         if j["competencia"]["id"] == competencia_id), juez)
        self.juez_id = juez["id"]
        self.competencia_id = juez["competencia"]["id"]
        self.equipos = [e["id"] for e in juez["equipos"]]
        return answer

    # -- WebSocket -------------------------------------------------------------------------------
    def ws_url(self):
        return "%s/ws/juez/%s/?token=%s" % (self.base_url.replace("http", "ws", 1),
                                            self.juez_id, self.access)

    async def connect(self, timeout=10.0):
        """Open the judge socket (the server answers conexion.establecida first)."""
        self.socket = await open_socket(self.ws_url(), self._on_message, self._on_close,
                                        self.ssl_context, timeout, self.local_addr)
        self.stats.connected += 1

    async def connect_with_retry(self):
        attempt = 0
        while attempt < self.attempts or (self.persistent and not self._closing):
            try:
                return await self.connect()
            except HandshakeError as exc:
                self.stats.errors["ws_" + exc.code] += 1
                if exc.status == 401 and self.username:
                    await self.renew()
                elif exc.status < 500:
                    raise
            except (OSError, asyncio.TimeoutError):
                self.stats.errors["ws_connection_error"] += 1
            await asyncio.sleep(backoff(attempt))
            attempt += 1
        raise RuntimeError("juez %s could not connect its socket" % self.juez_id)

    def _on_message(self, text):
        msg = json.loads(text)
        kind = msg.get("type")
        self.messages[kind] += 1
        if kind == "carrera.iniciada" and not self.started.is_set():
            self.start_mono, self.start_wall = time.monotonic(), time.time()
            self.start_info = msg["data"]
            self.stats.start_received += 1
            self.started.set()

    def _on_close(self):
        self.stats.connected -= 1
        if not self._closing and (self.persistent or not self.started.is_set()):
            # A phone on bad Wi-Fi reconnects; the server replays a start it missed.
            asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self):
        try:
            await asyncio.sleep(backoff(0))
            await self.connect_with_retry()
        except Exception:
            self.stats.errors["ws_reconnect_failed"] += 1

    def close(self):
        self._closing = True
        if self.socket is not None and not self.socket.closed:
            self.socket.send(b"\x03\xe8", opcode=8)  # 1000 normal closure
            self.socket.transport.close()

    # -- times -----------------------------------------------------------------------------------
    def records_for(self, equipo_id, count=15):
        """``count`` plausible finish times after the start, each with its own id_registro."""
        started = self.start_info["started_at"] if self.start_info else None
        base = time.time() if started is None else parse_iso(started)
        tiempos = sorted(random.randint(18 * 60_000, 45 * 60_000) for _ in range(count))
        return [{"timestamp": _iso(base + t / 1000.0), "tiempo": t,
                 "id_registro": str(uuid.uuid4())} for t in tiempos]

    async def submit(self, equipo_id, records):
        """POST one team's records (retried safely: the UUIDs make retries idempotent)."""
        status, answer = await self._request("POST", "/api/enviar_tiempos/",
                                             {"equipo_id": equipo_id, "registros": records})
        if status == 201:
            self.stats.submissions_ok += 1
            self.stats.records_created += len(answer["created"])
            self.stats.records_duplicate += len(answer["duplicates"])
            return True
        self.stats.submissions_failed += 1
        return False


def _iso(epoch):
    stamp = time.gmtime(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", stamp) + ".%03dZ" % (int(epoch * 1000) % 1000)


def parse_iso(text):
    """A wire timestamp (ISO 8601, ``Z`` for UTC) as seconds since the epoch."""
    import datetime as dt
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.timestamp()


def percentile(values, p):
    """Nearest-rank percentile of a list (None for an empty list)."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def make_http(max_clients=64):
    return tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=max_clients)


# ------------------------------------------------------------------------------------------------
# The organizer's rehearsal: ``python server5k.py simulate``
# ------------------------------------------------------------------------------------------------
class Progress:
    """One status line, rewritten in place on a terminal, every few seconds otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0

    def show(self, text, force=False):
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\033[K" + text)
        elif force or now - self._last >= 5:
            self.stream.write(text + "\n")
        else:
            return
        self._last = now
        self.stream.flush()

    def done(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


async def simulate(base_url, credentials, competencia_id=None, organizer=None, wait_start_s=600,
                   finish_within_s=5.0, ssl_context=None, out=sys.stdout):
    """Rehearse an event: every judge logs in, connects, waits for the start, sends its times.

    ``credentials``: [(username, password)]. ``organizer``: (username, password) to start the
    race through ``/api/competencias/{id}/iniciar/`` once every judge is connected; None waits
    for the organizer to start it by hand. Returns (summary text, ok).
    """
    stats = Stats()
    http = make_http()
    progress = Progress()
    judges = [VirtualJudge(base_url, u, p, stats=stats, http=http, ssl_context=ssl_context)
              for u, p in credentials]
    failures = Counter()
    phase = ["logging in"]

    async def ticker():
        while True:
            progress.show("%-22s connected %d/%d · start received %d · submissions %d ok, %d "
                          "failed · errors %d" % (
                              phase[0], stats.connected, len(judges), stats.start_received,
                              stats.submissions_ok, stats.submissions_failed,
                              sum(stats.errors.values())))
            await asyncio.sleep(0.5)

    async def arrive(judge):
        # Phones do not all arrive at the same instant: spread the logins over a second or two.
        await asyncio.sleep(random.uniform(0, min(2.0, len(judges) / 100.0)))
        try:
            await judge.login()
            await judge.learn(competencia_id)
            if competencia_id is not None and judge.competencia_id != competencia_id:
                raise RuntimeError("not a judge of competition %s" % competencia_id)
            await judge.connect_with_retry()
            return True
        except Exception as exc:  # noqa: BLE001  (each failure is reported, not raised)
            failures[str(exc).split(":")[0]] += 1
            return False

    tick = asyncio.get_running_loop().create_task(ticker())
    try:
        arrived = [j for j, ok in zip(judges, await asyncio.gather(*map(arrive, judges))) if ok]
        connected_at_start = stats.connected
        start_sent = started_cid = None
        if organizer is not None and arrived:
            phase[0] = "starting the race"
            boss = VirtualJudge(base_url, *organizer, stats=stats, http=http,
                                ssl_context=ssl_context)
            await boss.login()
            cid = competencia_id or arrived[0].competencia_id
            start_sent = time.monotonic()
            status, answer = await boss._request("POST", "/api/competencias/%s/iniciar/" % cid)
            if status != 200:
                failures["start refused: %s" % answer.get("code")] += 1
            else:
                started_cid = cid
        else:
            phase[0] = "waiting for the start"
        waiters = [asyncio.wait_for(j.started.wait(), wait_start_s) for j in arrived]
        await asyncio.gather(*waiters, return_exceptions=True)
        phase[0] = "sending times"

        async def finish(judge):
            if not judge.started.is_set():
                return
            await asyncio.sleep(random.uniform(0, finish_within_s))
            for equipo_id in judge.equipos:
                await judge.submit(equipo_id, judge.records_for(equipo_id))

        await asyncio.gather(*map(finish, arrived))
    finally:
        tick.cancel()
        progress.show("done", force=True)
        progress.done()
        for judge in judges:
            judge.close()
        http.close()

    delays = []
    for judge in arrived:
        if judge.start_mono is None:
            continue
        if start_sent is not None:
            delays.append((judge.start_mono - start_sent) * 1000)
        else:  # started by hand: measure from the server's own start time (same clock here)
            delays.append((judge.start_wall - parse_iso(judge.start_info["started_at"])) * 1000)
    teams = sum(len(j.equipos) for j in arrived)
    lines = ["Simulation against %s: %d virtual judges" % (base_url, len(judges)),
             "  judges connected:       %d / %d" % (connected_at_start, len(judges)),
             "  start notice received:  %d / %d" % (stats.start_received, len(arrived))]
    if delays:
        lines.append("  start notice delay:     p50 %.1f ms, p99 %.1f ms, max %.1f ms (from %s)" % (
            percentile(delays, 50), percentile(delays, 99), max(delays),
            "the start request" if start_sent is not None else "the server's started_at"))
    lines.append("  submissions accepted:   %d / %d (%d records created, %d duplicates)" % (
        stats.submissions_ok, teams, stats.records_created, stats.records_duplicate))
    errors = Counter(stats.errors)
    errors.update(failures)
    lines.append("  errors by code:         %s" % (", ".join(
        "%s %d" % item for item in sorted(errors.items())) or "none"))
    if started_cid is not None:
        lines.append("The race of competition %s is now running; after the rehearsal put it back "
                     "with: python server5k.py race reset %s --force" % (started_cid, started_cid))
    ok = (len(arrived) == len(judges) and stats.start_received == len(arrived)
          and stats.submissions_ok == teams)
    return "\n".join(lines), ok
