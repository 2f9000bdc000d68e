#!/usr/bin/env python3
"""Nobody can slow the start: a judge's paths, side by side, without and with one hostile client.

    .venv/bin/python bench/hostile.py            # every load; writes its section of docs/benchmarks.md
    .venv/bin/python bench/hostile.py --loads csv128,junk64 --seconds 6 --out /tmp/h.md

One real server (``server5k.py serve``, race-day defaults) on a fresh event of 500 teams x 15
records, started with the open-file limit of a stock Linux session (1,024, as in issue 10). For
each hostile load, the probes run twice back to back on that server: once quiet, then while the
load runs. The hostile client is 127.0.0.1; the judges' phones and the organizer are 127.0.0.2
(another device on the venue network). The probes, one after another:

* start notice: ``POST .../iniciar/`` as the organizer, to ``carrera.iniciada`` on each of 10 open
  judge sockets (then ``reiniciar`` with force, and again);
* a judge's login (``POST /api/token/``, scrypt included), ``GET /api/me/``, a judge socket's
  handshake (to its ``conexion.establecida``) and a submission of 15 records (a 201 is on disk).

The loads: wrk on the results (16 connections) and on their CSV (128), wrk posting 256 KiB
bodies of 87,000 empty objects to ``/api/token/`` (8 and 64 connections), logins with random
usernames at 100 a second, one judge socket that sends 64 KiB pings and never reads, and 1,100
spectator sockets. The server's RSS is sampled every 100 ms. At the end the server is stopped
and every record it acknowledged is looked for in the database.

Timings on a shared machine are noisy: what counts is each pair measured back to back.
"""

import argparse
import asyncio
import datetime as dt
import itertools
import json
import random
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tornado.httpclient  # noqa: E402
import tornado.websocket  # noqa: E402

import rehearsal  # noqa: E402
from bench import run as bench  # noqa: E402

TEAMS = 500
PROBE_SOCKETS = 10             # judges 11..20 hold the sockets that hear the start
LOGIN_JUDGES = range(21, 321)  # a fresh username for every login sample (per-pair limits)
HANDSHAKE_JUDGES = range(321, 421)
HOSTILE_JUDGE = 499            # whose token the non-reading socket uses
SUBMITTING_JUDGE = 2           # team 2
PROBE_ADDRESS = "127.0.0.2"
LOADS = ("resultados16", "csv128", "junk8", "junk64", "loginflood", "pingflood",
         "spectators1100", "descriptors", "spectator-flood", "preview2000", "preview5000",
         "preview80000", "import2000", "import5000", "import80000", "cli-import2000",
         "cli-import5000", "cli-judges250")
# descriptors: one address holds this many idle connections (each one the server closes is
# opened again DESCRIPTOR_REOPEN_S later), a tenth of them trickling half a request header.
DESCRIPTOR_CONNECTIONS, DESCRIPTOR_REOPEN_S = 3000, 5.0
# spectator-flood: this many spectator sockets from these addresses, each sending 60 KiB frames
# (reconnecting when closed).
FLOOD_SPECTATORS = 100
FLOOD_ADDRESSES = ["127.0.0.%d" % n for n in range(11, 16)]
# The organizer's own actions (issue 22): a roster preview or import of N rows, one after
# another for as long as the load runs, each into a competition of its own (2, 3, ...), the
# probes' race being competition 1. Every import has new judges (a password hashed each).
# cli-judges250: the issue's own probe, the command line's import of a roster of 250 new judges
# (a team each: 250 passwords hashed) while the server runs.
ROSTER_LOADS = {name: int("".join(c for c in name if c.isdigit()))
                for name in LOADS if name.startswith(("preview", "import", "cli-"))}
ROSTER_JUDGES = {"cli-judges250": 250}  # new judges per roster (else rows/100, at most 50)
DESCRIBED = {
    "resultados16": "wrk, 16 connections on `/api/competencias/1/resultados/`",
    "csv128": "wrk, 128 connections on `?format=csv`",
    "junk8": "wrk, 8 connections posting 256 KiB junk to `/api/token/`",
    "junk64": "wrk, 64 connections posting 256 KiB junk to `/api/token/`",
    "loginflood": "100 logins a second with random usernames",
    "pingflood": "a judge socket sending 64 KiB pings, never reading",
    "spectators1100": "1,100 spectator sockets from one address",
    "descriptors": "one address holding 3,000 idle connections (reopened when closed)",
    "spectator-flood": "100 spectator sockets from 5 addresses sending 60 KiB frames",
    "preview2000": "roster previews (`?dry_run=1`) of 2,000 rows, one after another",
    "preview5000": "roster previews of 5,000 rows, one after another",
    "preview80000": "roster previews of 80,000 rows (1 MiB), one after another",
    "import2000": "roster imports of 2,000 rows (20 new judges), one after another",
    "import5000": "roster imports of 5,000 rows (50 new judges), one after another",
    "import80000": "roster imports of 80,000 rows (50 new judges, 1 MiB), one after another",
    "cli-import2000": "`server5k.py import` of 2,000 rows while the server runs",
    "cli-import5000": "`server5k.py import` of 5,000 rows while the server runs",
    "cli-judges250": "`server5k.py import` of 250 new judges (a team each) while the server runs",
}
PROBES = ("start", "login", "me", "handshake", "submission")
PROBE_NAMES = {"start": "start notice", "login": "judge login", "me": "`/api/me/`",
               "handshake": "socket handshake", "submission": "submission"}
SECTION = "bench/hostile.py"


# ------------------------------------------------------------------------------------------------
# The server
# ------------------------------------------------------------------------------------------------
class Server(bench.Server):
    """bench.run's server subprocess with race-day limits and a 1,024 open-file limit."""

    def __init__(self, workdir, db_path, nofile):
        super().__init__("server5k", workdir, db_path)
        self.nofile = nofile

    def command(self):
        config = self.workdir / ("config-%d.yaml" % self.port)
        config.write_text(json.dumps({
            "server": {"host": "127.0.0.1", "port": self.port},
            "database": {"path": self.db_path},
            # The probe's own submissions come faster than a phone's: only that limit is raised.
            "limits": {"submissions_per_minute": 100000},
        }))
        return [sys.executable, str(ROOT / "server5k.py"), "--config", str(config), "serve"]

    def preexec(self):
        if self.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))


class RssSampler(threading.Thread):
    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.peak, self._done = server, 0, threading.Event()

    def run(self):
        while not self._done.wait(0.1):
            try:
                self.peak = max(self.peak, self.server.rss_kib())
            except (OSError, ValueError):
                return

    def stop(self):
        self._done.set()
        self.join(2)
        return self.peak


# ------------------------------------------------------------------------------------------------
# The probes: a judge's phone and the organizer, on 127.0.0.2
# ------------------------------------------------------------------------------------------------
class Probes:
    def __init__(self, url, organizer, judge_tokens):
        self.url, self.ws = url, "ws" + url[len("http"):]
        self.organizer, self.tokens = organizer, judge_tokens
        self.http = None
        self.logins = itertools.cycle(LOGIN_JUDGES)  # each username again only minutes later
        self.handshakes = itertools.cycle(HANDSHAKE_JUDGES)
        self.acknowledged = 0  # records answered 201 as created

    async def request(self, method, path, body=None, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        response = await self.http.fetch(
            self.url + path, method=method, headers=headers, raise_error=False,
            body=json.dumps(body) if body is not None else (b"" if method == "POST" else None),
            network_interface=PROBE_ADDRESS, request_timeout=60, connect_timeout=60)
        return response.code, response.body

    async def socket(self, juez_id):
        request = tornado.httpclient.HTTPRequest(
            "%s/ws/juez/%d/?token=%s" % (self.ws, juez_id, self.tokens[juez_id]),
            network_interface=PROBE_ADDRESS, request_timeout=60, connect_timeout=60)
        ws = await tornado.websocket.websocket_connect(request)
        hello = json.loads(await ws.read_message())
        assert hello["type"] == "conexion.establecida", hello
        return ws

    async def window(self, samples):
        """Every probe ``samples`` times: {probe: [ms, ...]}, {probe: {status: count}}."""
        times = {probe: [] for probe in PROBES}
        errors = {probe: {} for probe in PROBES}
        self.http = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=8)
        listeners = []
        for k in range(11, 11 + PROBE_SOCKETS):
            listeners.append(await self.socket(k))
        try:
            for _ in range(samples):
                for probe in PROBES:
                    started = time.monotonic()
                    try:
                        ok = await getattr(self, "probe_" + probe)(listeners, started, times)
                    except Exception as exc:  # noqa: BLE001  (counted, and the run goes on)
                        ok = type(exc).__name__
                    if ok is not True:
                        errors[probe][str(ok)] = errors[probe].get(str(ok), 0) + 1
                    if probe != "start":
                        times[probe].append((time.monotonic() - started) * 1000)
                await asyncio.sleep(0.05)
        finally:
            for ws in listeners:
                ws.close()
            self.http.close()
        return times, errors

    async def probe_start(self, listeners, started, times):
        heard = [asyncio.ensure_future(_next_of_type(ws, "carrera.iniciada"))
                 for ws in listeners]
        code, _ = await self.request("POST", "/api/competencias/1/iniciar/", token=self.organizer)
        if code != 200:
            for task in heard:
                task.cancel()
            return code
        for task in heard:
            times["start"].append((await asyncio.wait_for(task, 60) - started) * 1000)
        cancelled = [asyncio.ensure_future(_next_of_type(ws, "carrera.cancelada"))
                     for ws in listeners]
        code, _ = await self.request("POST", "/api/competencias/1/reiniciar/", {"force": True},
                                     token=self.organizer)
        await asyncio.wait_for(asyncio.gather(*cancelled), 60)
        return True if code == 200 else code

    async def probe_login(self, listeners, started, times):
        code, _ = await self.request("POST", "/api/token/", {
            "username": "juez%d" % next(self.logins), "password": bench.PASSWORD})
        return True if code == 200 else code

    async def probe_me(self, listeners, started, times):
        code, _ = await self.request("GET", "/api/me/", token=self.tokens[1])
        return True if code == 200 else code

    async def probe_handshake(self, listeners, started, times):
        ws = await self.socket(next(self.handshakes))
        ws.close()
        return True

    async def probe_submission(self, listeners, started, times):
        now = dt.datetime.now(dt.timezone.utc)
        registros = [{"timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % i,
                      "tiempo": 1_500_000 + i, "id_registro": str(uuid.uuid4())}
                     for i in range(15)]
        code, body = await self.request("POST", "/api/enviar_tiempos/", {
            "equipo_id": SUBMITTING_JUDGE, "registros": registros},
            token=self.tokens[SUBMITTING_JUDGE])
        if code != 201:
            return code
        self.acknowledged += len(json.loads(body)["created"])
        return True


async def _next_of_type(ws, kind):
    while True:
        text = await ws.read_message()
        if text is None:
            raise ConnectionError("socket closed waiting for %s" % kind)
        if json.loads(text)["type"] == kind:
            return time.monotonic()


# ------------------------------------------------------------------------------------------------
# The loads: wrk, or this script in a child process (--child LOAD)
# ------------------------------------------------------------------------------------------------
JUNK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = "[" .. string.rep("{},", 86999) .. "{}]"
"""


def start_load(name, server, tokens, workdir, wrk, organizer=None):
    """The load's process, running until it gets SIGINT, and how to read what it printed."""
    if name in ROSTER_LOADS:  # the organizer's own actions, with its token (or its login)
        argv = [sys.executable, __file__, "--child", name, "--url", server.url,
                "--token", organizer, "--config", str(server.workdir / (
                    "config-%d.yaml" % server.port))]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True), _child_summary
    if name in ("resultados16", "csv128", "junk8", "junk64"):
        connections = int("".join(c for c in name if c.isdigit()))
        path = "/api/competencias/1/resultados/" + ("?format=csv" if name == "csv128" else "")
        argv = [wrk, "-t1", "-c%d" % connections, "-d3600s", "--timeout", "10s"]
        if name.startswith("junk"):
            script = Path(workdir) / "junk.lua"
            script.write_text(JUNK_LUA)
            argv += ["-s", str(script)]
            path = "/api/token/"
        return subprocess.Popen(argv + [server.url + path], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True), _wrk_summary
    argv = [sys.executable, __file__, "--child", name, "--url", server.url,
            "--token", tokens[HOSTILE_JUDGE]]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True), _child_summary


def _wrk_summary(out):
    rate = next((line.split()[-1] for line in out.splitlines()
                 if line.startswith("Requests/sec:")), "?")
    non2xx = next((line.split()[-1] for line in out.splitlines()
                   if "Non-2xx" in line), "0")
    errors = next((line.strip() for line in out.splitlines() if "Socket errors" in line), "")
    return "%s req/s, %s non-2xx%s" % (rate, non2xx, (", " + errors) if errors else "")


def _child_summary(out):
    line = next((line for line in out.splitlines() if line.startswith("LOAD ")), None)
    return line[5:] if line else "no summary: " + out[-300:]


async def child_loginflood(url, stop, token):
    http = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=200)
    statuses, pending = {}, set()

    async def one():
        body = json.dumps({"username": "intruso-%s" % uuid.uuid4().hex[:12],
                           "password": uuid.uuid4().hex})
        try:
            response = await http.fetch(url + "/api/token/", method="POST", body=body,
                                        headers={"Content-Type": "application/json"},
                                        raise_error=False, request_timeout=30)
            statuses[response.code] = statuses.get(response.code, 0) + 1
        except Exception as exc:  # noqa: BLE001
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1

    sent = 0
    while not stop.is_set():
        if len(pending) < 500:
            task = asyncio.ensure_future(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(0.01)
    await asyncio.gather(*pending, return_exceptions=True)
    return "sent %d logins; answers %s" % (sent, json.dumps(statuses, sort_keys=True))


def _frame(payload):
    """One masked text frame (the same mask every time: the server only unmasks it)."""
    mask = b"\x01\x02\x03\x04"
    header = bytes((0x81, 0x80 | 127)) + len(payload).to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def child_pingflood(url, stop, token):
    host, port = url.split("//")[1].split(":")
    frame = _frame(json.dumps({"type": "ping", "data": {"pad": "x" * (64 * 1024 - 40)}}).encode())
    connections, sent = 0, 0
    while not stop.is_set():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
        sock.settimeout(2)
        try:
            sock.connect((host, int(port)))
            sock.sendall(("GET /ws/juez/%d/?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n" % (HOSTILE_JUDGE, token)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(1)  # only the 101: nothing after it is ever read
            connections += 1
            while not stop.is_set():
                sock.sendall(frame)
                sent += 1
        except OSError:
            pass
        finally:
            sock.close()
    return "%d connections, %d pings of 64 KiB sent" % (connections, sent)


async def child_spectators1100(url, stop, token):
    ws_url = "ws" + url[len("http"):] + "/ws/resultados/1/"
    opened, refused, gate, sockets = [0], {}, asyncio.Semaphore(100), []

    async def one():
        async with gate:
            try:
                sockets.append(await rehearsal.open_socket(ws_url, lambda text: None,
                                                           timeout=30))
                opened[0] += 1
            except rehearsal.HandshakeError as exc:
                refused[exc.status] = refused.get(exc.status, 0) + 1
            except Exception as exc:  # noqa: BLE001
                refused[type(exc).__name__] = refused.get(type(exc).__name__, 0) + 1

    await asyncio.gather(*(one() for _ in range(1100)))
    await stop.wait()
    for sock in sockets:
        sock.transport.close()
    return "%d opened, refused %s" % (opened[0], json.dumps(refused, sort_keys=True))


async def child_descriptors(url, stop, token):
    """One address (127.0.0.1) holding DESCRIPTOR_CONNECTIONS idle connections: each one the
    server closes is opened again DESCRIPTOR_REOPEN_S later."""
    host, port = url.split("//")[1].split(":")
    counts = {"opened": 0, "closed by the server": 0, "refused": 0}
    gate = asyncio.Semaphore(200)  # connections being opened at once

    async def hold(n):
        while not stop.is_set():
            try:
                async with gate:
                    reader, writer = await asyncio.open_connection(host, int(port))
                counts["opened"] += 1
                if n % 10 == 0:
                    writer.write(b"GET /api/competencias/1/ HTTP/1.1\r\nHost: x\r\n")
                stopped = asyncio.ensure_future(stop.wait())
                read = asyncio.ensure_future(reader.read(65536))
                await asyncio.wait([stopped, read], return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                writer.close()
                if read.done() and not read.cancelled():
                    counts["refused" if read.exception() is None and read.result().startswith(
                        b"HTTP/1.1 503") else "closed by the server"] += 1
                else:
                    read.cancel()
            except OSError:
                counts["refused"] += 1
            try:
                await asyncio.wait_for(stop.wait(), DESCRIPTOR_REOPEN_S)
            except asyncio.TimeoutError:
                pass

    await asyncio.gather(*(hold(n) for n in range(DESCRIPTOR_CONNECTIONS)))
    return "%d connections held at a time; %s" % (DESCRIPTOR_CONNECTIONS,
                                                  json.dumps(counts, sort_keys=True))


async def child_spectator_flood(url, stop, token):
    """FLOOD_SPECTATORS spectator sockets from FLOOD_ADDRESSES, each sending 60 KiB frames and
    reading nothing; a socket the server closes is opened again."""
    host, port = url.split("//")[1].split(":")
    frame = _frame(b"x" * (60 * 1024))
    counts = {"opened": 0, "refused": 0, "frames": 0, "closed by the server": 0}

    async def flood(n):
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(
                    host, int(port), local_addr=(FLOOD_ADDRESSES[n % len(FLOOD_ADDRESSES)], 0))
            except OSError:
                counts["refused"] += 1
                await asyncio.sleep(1)
                continue
            try:
                writer.write(b"GET /ws/resultados/1/ HTTP/1.1\r\nHost: x\r\n"
                             b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             b"Sec-WebSocket-Version: 13\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                if not head.startswith(b"HTTP/1.1 101"):
                    counts["refused"] += 1
                    await asyncio.sleep(1)
                    continue
                counts["opened"] += 1
                while not stop.is_set():
                    writer.write(frame)
                    await writer.drain()
                    counts["frames"] += 1
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                counts["closed by the server"] += 1
            finally:
                writer.close()

    await asyncio.gather(*(flood(n) for n in range(FLOOD_SPECTATORS)))
    return "%d sockets from %d addresses; %s" % (FLOOD_SPECTATORS, len(FLOOD_ADDRESSES),
                                                 json.dumps(counts, sort_keys=True))


def _b36(n, width):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    for _ in range(width):
        n, r = divmod(n, 36)
        text = digits[r] + text
    return text


def roster_csv(rows, iteration, judges=None):
    """A roster of ``rows`` teams (dorsals 1..rows, one-letter names: 80,000 rows fit in the
    1 MiB the server takes) and ``judges`` new judges (default rows/100, at most 50) named for
    this iteration."""
    if judges is None:  # ("org", the organizer's username, would be refused: never that one)
        names = [_b36(iteration * 50 + j, 3).replace("org", "0rg")
                 for j in range(max(1, min(50, rows // 100)))]
    else:  # (longer names: a few hundred judges an iteration never meet another's)
        names = ["j" + _b36(iteration * judges + j, 5) for j in range(judges)]
    judges = len(names)
    return ("juez_usuario,juez_nombre,equipo,dorsal\n" + "".join(
        "%s,,x,%d\n" % (names[n % judges], n + 1) for n in range(rows))).encode()


async def _roster_load(name, url, stop, token, config):
    rows = ROSTER_LOADS[name]
    http = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=2)
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    async def post(path, body, content_type="application/json"):
        response = await http.fetch(url + path, method="POST", body=body, raise_error=False,
                                    headers=dict(headers, **{"Content-Type": content_type}),
                                    request_timeout=900)
        return response.code, response.body

    durations, answers, iteration = [], {}, 0
    competition = None
    while not stop.is_set():
        iteration += 1
        if competition is None or not name.startswith("preview"):
            code, body = await post("/api/competencias/", json.dumps(
                {"nombre": "Roster %s %d" % (name, iteration)}))
            competition = json.loads(body)["id"]
        text = roster_csv(rows, int(time.time() * 10) % 20000 + iteration,
                          ROSTER_JUDGES.get(name))
        started = time.monotonic()
        if name.startswith("cli-"):
            path = Path(tempfile.mkdtemp(prefix="roster-")) / "roster.csv"
            path.write_bytes(text)
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "server5k.py"), "--config", config, "import",
                str(path), "--competition", str(competition), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=dict(__import__("os").environ, SERVER5K_USER="org",
                                                 SERVER5K_PASSWORD=bench.PASSWORD))
            out, err = await process.communicate()
            code = "exit %d%s" % (process.returncode, "" if process.returncode == 0 else
                                  ": " + err.decode(errors="replace").strip()[-200:])
        else:
            code, _ = await post("/api/competencias/%d/importar/%s" % (
                competition, "?dry_run=1" if name.startswith("preview") else ""), text,
                "text/csv")
        durations.append(time.monotonic() - started)
        answers[str(code)] = answers.get(str(code), 0) + 1
    durations.sort()
    return "%d %s of %d rows: median %.2f s, max %.2f s; answers %s" % (
        len(durations), "cli-imports" if name.startswith("cli-") else
        name.rstrip("0123456789") + "s", rows,
        durations[len(durations) // 2] if durations else 0, durations[-1] if durations else 0,
        json.dumps(answers, sort_keys=True))


def roster_steps(sizes):
    """The holds of an import, measured on the functions the server runs (a fresh database):
    the worker's preparation (parse, plan, answer, steps: its own process), what it hands the
    server process (unpickled there holding the interpreter lock: its size and time), the
    largest piece the server then reads at once, and each writer step's duration (read,
    unpickled and written in one transaction)."""
    import pickle
    import models
    import registration
    import roster_import
    lines = ["| rows | prepared in the worker | handed to the server | its unpickling | largest "
             "piece read | writer steps | longest step | median step | steps in all |",
             "|---|---|---|---|---|---|---|---|---|"]
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="server5k-steps-") as tmp:
            models.open_database(str(Path(tmp) / "steps.db"))
            with models.db.connection_context():
                comp = registration.create_competition("Pasos")
                started = time.perf_counter()
                pieces = roster_import.prepare_import(roster_csv(rows, 1), comp.id)
                prepared_s = time.perf_counter() - started
                handed = pickle.dumps(pieces)
                started = time.perf_counter()
                pickle.loads(handed)
                unpickle_ms = (time.perf_counter() - started) * 1000
                largest = max([n for _, n, _ in pieces["steps"]] + [
                    n for _, n in filter(None, roster_import.answer_pieces(pieces))])
                prepared = {models.username_key(u): ("x" * 12, "!")
                            for u in pieces["new_judges"]}
                steps, ids = [], {}
                for offset, length, _ in pieces["steps"]:
                    step = time.perf_counter()
                    with models.db.atomic():  # as the writer runs it: one transaction a job
                        roster_import.apply_spooled_step(pieces["path"], offset, length, None,
                                                         prepared, ids)
                    steps.append((time.perf_counter() - step) * 1000)
                roster_import.discard_spool(pieces["path"])
            models.db.close()
        steps.sort()
        lines.append("| %d | %.0f ms | %.0f KiB | %.2f ms | %.0f KiB | %d | %.1f ms | %.1f ms "
                     "| %.0f ms |" % (rows, prepared_s * 1000, len(handed) / 1024, unpickle_ms,
                                      largest / 1024, len(steps), steps[-1],
                                      steps[len(steps) // 2], sum(steps)))
    return lines


def child(name, url, token, config=None):
    """Run one load until SIGINT, then print what it saw on a LOAD line."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if name == "pingflood":
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        summary = child_pingflood(url, stop, token)
    else:
        async def main():
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
            if name in ROSTER_LOADS:
                return await _roster_load(name, url, stop, token, config)
            return await globals()["child_" + name.replace("-", "_")](url, stop, token)
        summary = asyncio.run(main())
    print("LOAD " + summary, flush=True)


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------
def run(args):
    wrk, missing = bench.ensure_wrk()
    if wrk is None and any(name in ("resultados16", "csv128", "junk8", "junk64")
                           for name in args.loads):
        sys.exit("bench: %s" % missing)
    bench.raise_fd_limit()
    organizer, tokens = bench.tokens(TEAMS)
    results = {"loads": {}}
    with tempfile.TemporaryDirectory(prefix="server5k-hostile-") as tmp:
        db_path = Path(tmp) / "hostile.db"
        say("seeding %d teams x %d records" % (TEAMS, args.records))
        bench.seed_server5k(str(db_path), TEAMS, TEAMS * args.records)
        server = Server(tmp, db_path, args.nofile)
        server.start()
        before = bench.stored_rows("server5k", str(db_path))
        probes = Probes(server.url, organizer, tokens)
        try:
            for name in args.loads:
                results["loads"][name] = entry = {
                    "quiet": {p: [] for p in PROBES}, "loaded": {p: [] for p in PROBES},
                    "quiet_errors": {p: {} for p in PROBES},
                    "loaded_errors": {p: {} for p in PROBES},
                    "quiet_rss_kib": 0, "peak_rss_kib": 0, "load": []}
                for round_number in range(1, args.rounds + 1):
                    say("%s, round %d of %d: probes without the load, then with it" % (
                        name, round_number, args.rounds))
                    sampler = RssSampler(server)
                    sampler.start()
                    _merge(entry, "quiet", asyncio.run(probes.window(args.samples)))
                    entry["quiet_rss_kib"] = max(entry["quiet_rss_kib"], sampler.stop())
                    sampler = RssSampler(server)
                    sampler.start()
                    process, summary = start_load(name, server, tokens, tmp, wrk, organizer)
                    time.sleep(args.warmup)
                    _merge(entry, "loaded", asyncio.run(probes.window(args.samples)))
                    process.send_signal(signal.SIGINT)
                    out, _ = process.communicate(timeout=120)
                    entry["peak_rss_kib"] = max(entry["peak_rss_kib"], sampler.stop())
                    entry["load"].append(summary(out))
                    time.sleep(1.0)  # the load's connections close before the next quiet run
                entry["after_rss_kib"] = server.rss_kib()
                say("%s: %s" % (name, "; ".join(entry["load"])))
        finally:
            server.stop()
        stored = bench.stored_rows("server5k", str(db_path))
        results["acknowledged"] = probes.acknowledged
        results["lost"] = max(0, before + probes.acknowledged - stored)
        results["log_lines"] = sum(1 for _ in open(Path(tmp) / (
            "server5k-%d.log" % server.port), errors="replace"))
    return results


def _merge(entry, side, window):
    times, errors = window
    for probe in PROBES:
        entry[side][probe] += times[probe]
        for code, count in errors[probe].items():
            entry[side + "_errors"][probe][code] = entry[side + "_errors"][probe].get(code, 0) + count


def summarize(results):
    for entry in results["loads"].values():
        for side in ("quiet", "loaded"):
            entry[side + "_stats"] = {
                probe: {"p50": rehearsal.percentile(values, 50),
                        "p90": rehearsal.percentile(values, 90),
                        "p99": rehearsal.percentile(values, 99), "n": len(values)}
                for probe, values in entry[side].items()}
        entry["ratio"] = {probe: (entry["loaded_stats"][probe]["p99"] or 0) /
                          max(0.001, entry["quiet_stats"][probe]["p99"] or 0)
                          for probe in PROBES}
        entry["ratio_p90"] = {probe: (entry["loaded_stats"][probe]["p90"] or 0) /
                              max(0.001, entry["quiet_stats"][probe]["p90"] or 0)
                              for probe in PROBES}
        entry["met"] = all(ratio <= 2.0 for ratio in entry["ratio"].values()) and not any(
            entry["loaded_errors"].values())
    return results


def report(results, args, command):
    lines = ["| load | " + " | ".join(PROBE_NAMES[p] + " p99" for p in PROBES)
             + " | RSS peak | within 2x |",
             "|---|" + "---|" * len(PROBES) + "---|---|"]
    for name, entry in results["loads"].items():
        cells = []
        for probe in PROBES:
            quiet, loaded = entry["quiet_stats"][probe], entry["loaded_stats"][probe]
            cells.append("%.1f (%.1f) ms, %.2fx" % (loaded["p99"] or 0, quiet["p99"] or 0,
                                                   entry["ratio"][probe]))
        lines.append("| %s | %s | %.0f MiB (%.0f) | %s |" % (
            DESCRIBED[name], " | ".join(cells), entry["peak_rss_kib"] / 1024,
            entry["quiet_rss_kib"] / 1024, "yes" if entry["met"] else "**no**"))
    p90 = ["| load | " + " | ".join(PROBE_NAMES[p] + " p90" for p in PROBES) + " |",
           "|---|" + "---|" * len(PROBES)]
    for name, entry in results["loads"].items():
        p90.append("| %s | %s |" % (DESCRIBED[name], " | ".join(
            "%.1f (%.1f) ms, %.2fx" % (entry["loaded_stats"][probe]["p90"] or 0,
                                       entry["quiet_stats"][probe]["p90"] or 0,
                                       entry["ratio_p90"][probe]) for probe in PROBES)))
    detail = ["| load | probe | quiet p50 | quiet p90 | quiet p99 | loaded p50 | loaded p90 | "
              "loaded p99 | errors |", "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in results["loads"].items():
        for probe in PROBES:
            q, l = entry["quiet_stats"][probe], entry["loaded_stats"][probe]
            errors = dict(entry["loaded_errors"][probe])
            detail.append("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s |" % (
                name, PROBE_NAMES[probe], q["p50"] or 0, q["p90"] or 0, q["p99"] or 0,
                l["p50"] or 0, l["p90"] or 0, l["p99"] or 0,
                json.dumps(errors) if errors else "none"))
    loads = ["- `%s` (%s), each round: %s" % (name, DESCRIBED[name], "; ".join(entry["load"]))
             for name, entry in results["loads"].items()]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = args.section or section_of(args.loads)
    heading = args.heading or {
        SECTION: "Hostile loads: a judge's paths within twice their quiet time (issue 10)",
        SECTION + " roster": "The organizer's own actions: previews and imports of big rosters "
                             "(issue 22)"}.get(section, section)
    steps = []
    if results.get("steps"):
        steps = [
            "The holds of one import (the functions the server runs, timed one by one on a fresh",
            "database): the worker process parses and plans the roster, makes the answer (the",
            "preview's whole answer is this) and cuts the plan into writer steps, all in a spool",
            "file; the server process unpickles only where each piece is, then reads one piece",
            "at a time (a writer step, or a piece of the answer it sends); each writer step is",
            "one transaction of at most %d judges or teams:" % results["step_size"],
            ""] + results["steps"] + [""]
    text = "\n".join([
        "<!-- section: %s -->" % section,
        "## %s" % heading,
        "",
    ] + steps + [
        "One server, race-day defaults, event of %d teams x %d records, open-file limit %s."
        % (TEAMS, args.records, args.nofile or "as inherited"),
        "Each cell: p99 under the load (p99 without it), and their ratio; the target is every",
        "ratio at most 2 with no failed probe. Each load runs %d rounds of a quiet window then a"
        % args.rounds,
        "loaded one, %d samples of each probe per window (the start notice: x %d sockets); the"
        % (args.samples, PROBE_SOCKETS),
        "hostile client is 127.0.0.1, the judges and the organizer 127.0.0.2. RSS: the server's",
        "peak during the loaded windows (during the quiet ones).",
        "",
        "- Date: %s" % stamp,
        "- Machine: %s" % bench.machine(),
        "- Command: `%s`" % command,
        "",
    ] + lines + [
        "",
        "With %d samples a p99 is the worst one or two of a window, and on this shared machine "
        % args.samples,
        "the quiet windows' own p99 vary several-fold between rounds of one run; the p90 of the",
        "same samples, under the load (without it) and their ratio:",
        "",
    ] + p90 + [
        "",
        "Every acknowledged record was stored: %d acknowledged during the run, %d lost."
        % (results["acknowledged"], results["lost"]),
        "The server's whole log for the run: %d lines." % results["log_lines"],
        "",
        "What each load itself saw:",
        "",
    ] + loads + ["", "Every figure (ms):", ""] + detail + [
        "", "<!-- end section: %s -->" % section, ""])
    return text


def section_of(loads):
    """The roster loads have a section of their own: running them keeps the other figures."""
    return SECTION + " roster" if all(name in ROSTER_LOADS for name in loads) else SECTION


def say(text):
    print("bench: %s" % text, file=sys.stderr, flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", default=",".join(LOADS),
                        help="which hostile loads, comma-separated (default: all of %s)"
                             % ",".join(LOADS))
    parser.add_argument("--samples", type=int, default=30,
                        help="samples of each probe per window (default 30)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="quiet/loaded window pairs per load (default 3)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of load before the probes start (default 2)")
    parser.add_argument("--records", type=int, default=15, help="records per team (default 15)")
    parser.add_argument("--nofile", type=int, default=1024,
                        help="the server's open-file limit (default 1024; 0: inherit)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                        help="where to write the report section (default docs/benchmarks.md)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--section",
                        help="the report's section of --out (default %s, or %s roster for "
                             "the roster loads alone; another name keeps those and writes "
                             "beside them)" % (SECTION, SECTION))
    parser.add_argument("--heading", help="the section's heading (default: the section's own)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.loads = [name for name in args.loads.split(",") if name]
    unknown = set(args.loads) - set(LOADS)
    if unknown:
        parser.error("unknown loads: %s" % ", ".join(sorted(unknown)))
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        child(args.child, args.url, args.token, args.config)
        return 0
    command = " ".join([".venv/bin/python bench/hostile.py", shlex.join(argv)])
    results = summarize(run(args))
    sizes = sorted({ROSTER_LOADS[name] for name in args.loads if name in ROSTER_LOADS})
    if sizes:
        import roster_import
        results["steps"], results["step_size"] = roster_steps(sizes), roster_import.IMPORT_STEP
    text = report(results, args, command)
    print(text)
    bench.write_section(args.out, args.section or section_of(args.loads), text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    say("report written to %s" % args.out)
    return 0 if all(entry["met"] for entry in results["loads"].values()) else 1


if __name__ == "__main__":
    random.seed(5)
    sys.exit(main())
