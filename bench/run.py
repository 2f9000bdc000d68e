#!/usr/bin/env python3
"""Server5K against a bare reference server, measured in one run on this machine.

    .venv/bin/python bench/run.py            # the full benchmark; writes docs/benchmarks.md

It starts and stops everything itself: each server runs as a subprocess on a free loopback port,
on a fresh SQLite database in a temporary folder, and is measured the same way:

* start-up: from spawning the process to the first answered request, on an event database with
  1,000 judges and 20,000 records;
* fan-out: N judge sockets connected (virtual judges in client processes), the race started
  through the organizer endpoint; delivered fraction and delay from the start request to each
  receipt; the server's RSS growth per idle socket;
* login burst: a probe pings an open judge socket every 10 ms; worst round trip before and while
  20 logins (scrypt) arrive at once;
* ingest: wrk POSTs enviar_tiempos (15 records, unique ids) from 16 connections; then the rows in
  the database are counted against the acknowledged 201s.
"""

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
import identity  # noqa: E402
import venue_time  # noqa: E402
import rehearsal as vj  # noqa: E402
from bench import reference_server  # noqa: E402
from handlers.tokens import TokenService  # noqa: E402

SECRET = "bench-secret-" + "s" * 40
PASSWORD = "bench-pass"
SERVERS = ("server5k", "reference")


# ------------------------------------------------------------------------------------------------
# Event databases. Both servers get the same ids: user 1 is the organizer, user k+1 is judge k,
# team k belongs to judge k, so one set of tokens works against both.
# ------------------------------------------------------------------------------------------------
def seed_server5k(path, judges, records):
    models.open_database(path)
    password_hash = identity.hash_password(PASSWORD)  # one hash for all: seeding 5,000 stays fast
    now = models.utcnow()
    with models.db.connection_context(), models.db.atomic():
        models.Competencia.create(id=1, nombre="Bench 5K")
        users = [{"id": 1, "username": "org", "username_key": "org",
                  "password_hash": password_hash, "is_organizer": True, "created_at": now}]
        users += [{"id": k + 1, "username": "juez%d" % k, "username_key": "juez%d" % k,
                   "password_hash": password_hash, "is_organizer": False, "created_at": now}
                  for k in range(1, judges + 1)]
        for rows, model in (
                (users, models.User),
                ([{"id": k, "user": k + 1, "competencia": 1, "nombre": "Juez %d" % k}
                  for k in range(1, judges + 1)], models.Juez),
                ([{"id": k, "competencia": 1, "nombre": "Equipo %d" % k, "dorsal": k, "juez": k}
                  for k in range(1, judges + 1)], models.Equipo),
                (list(_server5k_records(judges, records, now)), models.RegistroTiempo)):
            for start in range(0, len(rows), 2000):
                model.insert_many(rows[start:start + 2000]).execute()
    models.db.close()


def _server5k_records(judges, records, now):
    for n in range(records):
        k = n % judges + 1
        tiempo = 1_200_000 + n
        hours, minutes, seconds, ms = venue_time.split_tiempo(tiempo)
        yield {"id_registro": "00000000-0000-4000-8000-%012x" % n, "equipo": k, "juez": k,
               "tiempo": tiempo, "horas": hours, "minutos": minutes, "segundos": seconds,
               "milisegundos": ms, "timestamp": now, "received_at": now,
               "estado_carrera": models.ESTADO_EN_CURSO}


def seed_reference(path, judges, records):
    password_hash = identity.hash_password(PASSWORD)
    db = sqlite3.connect(path)
    db.executescript("PRAGMA journal_mode=WAL;" + reference_server.SCHEMA)
    with db:
        db.execute("INSERT INTO competencia VALUES (1, NULL)")
        db.execute("INSERT INTO users VALUES (1, 'org', ?, 1, NULL)", (password_hash,))
        db.executemany("INSERT INTO users VALUES (?, ?, ?, 0, ?)",
                       [(k + 1, "juez%d" % k, password_hash, k) for k in range(1, judges + 1)])
        db.executemany("INSERT INTO equipo VALUES (?, ?)", [(k, k) for k in range(1, judges + 1)])
        db.executemany("INSERT INTO registro VALUES (?, ?, ?, ?, ?, ?)", [
            ("00000000-0000-4000-8000-%012x" % n, n % judges + 1, n % judges + 1, 1_200_000 + n,
             "2026-05-01T09:00:00Z", "2026-05-01T09:30:00Z") for n in range(records)])
    db.close()


def stored_rows(kind, path):
    db = sqlite3.connect(path)
    table = "registro_tiempo" if kind == "server5k" else "registro"
    count = db.execute("SELECT COUNT(*) FROM %s" % table).fetchone()[0]
    db.close()
    return count


def tokens(judges):
    """Access tokens signed with the servers' secret: 5,000 scrypt logins would take minutes."""
    service = TokenService(SECRET, 3600, 86400)
    organizer = service.issue("access", {"user": {"id": 1}})
    return organizer, {k: service.issue("access", {"user": {"id": k + 1}, "juez_id": k})
                       for k in range(1, judges + 1)}


# ------------------------------------------------------------------------------------------------
# Server processes
# ------------------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server subprocess on a free loopback port; ``start()`` returns seconds to first answer."""

    def __init__(self, kind, workdir, db_path):
        self.kind, self.workdir, self.db_path = kind, Path(workdir), str(db_path)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.process = None

    def command(self):
        if self.kind == "reference":
            return [sys.executable, str(ROOT / "bench" / "reference_server.py"), self.db_path,
                    str(self.port)]
        config = self.workdir / ("config-%d.yaml" % self.port)
        config.write_text(json.dumps({  # JSON is YAML
            "server": {"host": "127.0.0.1", "port": self.port},
            "database": {"path": self.db_path},
            # The benchmark measures throughput, not the per-judge limiter (which still runs).
            "limits": {"submissions_per_minute": 100000},
        }))
        return [sys.executable, str(ROOT / "server5k.py"), "--config", str(config), "serve"]

    def start(self, timeout=30):
        env = dict(os.environ, SERVER5K_SECRET_KEY=SECRET, PYTHONUNBUFFERED="1")
        log = open(self.workdir / ("%s-%d.log" % (self.kind, self.port)), "w")
        started = time.monotonic()
        self.process = subprocess.Popen(self.command(), env=env, stdout=log, stderr=log,
                                        cwd=str(ROOT), preexec_fn=self.preexec)
        log.close()
        while time.monotonic() - started < timeout:
            try:
                with urllib.request.urlopen(self.url + "/api/competencias/1/", timeout=1) as r:
                    r.read()
                    return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.process.poll() is not None:
                    break
                time.sleep(0.002)
        self.stop()
        raise RuntimeError("%s did not start; see %s" % (self.kind, self.workdir))

    preexec = None  # run in the child before the server starts (e.g. to set rlimits)

    def rss_kib(self):
        for line in Path("/proc/%d/status" % self.process.pid).read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def post(self, path, token, body=None):
        request = urllib.request.Request(self.url + path, data=json.dumps(body or {}).encode(),
                                         method="POST")
        request.add_header("Authorization", "Bearer " + token)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ------------------------------------------------------------------------------------------------
# Fan-out: judge sockets in client processes, the start through the organizer endpoint
# ------------------------------------------------------------------------------------------------
def _fanout_client(conn, base_url, assignments, wait_s):
    asyncio.run(_fanout_client_async(conn, base_url, assignments, wait_s))


async def _fanout_client_async(conn, base_url, assignments, wait_s):
    stats = vj.Stats()
    judges = [vj.VirtualJudge(base_url, token=token, juez_id=juez_id, stats=stats, attempts=3)
              for juez_id, token in assignments]
    gate = asyncio.Semaphore(50)  # the server's listen backlog is 128: do not flood it

    async def connect(judge):
        async with gate:
            try:
                await judge.connect_with_retry()
            except Exception:  # noqa: BLE001  (counted as not connected)
                pass

    await asyncio.gather(*map(connect, judges))
    conn.send(stats.connected)
    # Wait for the start (sent by the parent once every client process is connected).
    waits = [asyncio.wait_for(j.started.wait(), wait_s) for j in judges if j.socket]
    await asyncio.gather(*waits, return_exceptions=True)
    conn.send([j.start_mono for j in judges])
    for judge in judges:
        judge.close()
    await asyncio.sleep(0.2)


def fanout(server, count, organizer, judge_tokens, procs):
    """Connect ``count`` sockets, start the race, measure delivery, delay and memory."""
    asyncio.run(_warm_up(server.url, judge_tokens[1]))
    time.sleep(0.5)
    rss_before = server.rss_kib()
    context = multiprocessing.get_context("spawn")
    ids = list(range(1, count + 1))
    pipes, workers = [], []
    for index in range(procs):
        parent, child = context.Pipe()
        chunk = [(k, judge_tokens[k]) for k in ids[index::procs]]
        worker = context.Process(target=_fanout_client, args=(child, server.url, chunk, 30))
        worker.start()
        pipes.append(parent)
        workers.append(worker)
    connected = sum(_receive(pipe, worker, 120) for pipe, worker in zip(pipes, workers))
    time.sleep(1.0)  # idle sockets
    rss_after = server.rss_kib()
    started = time.monotonic()
    answer = server.post("/api/competencias/1/iniciar/", organizer)
    receipts = []
    for pipe, worker in zip(pipes, workers):
        receipts += _receive(pipe, worker, 60)
    for worker in workers:
        worker.join(10)
    delays = [(t - started) * 1000 for t in receipts if t is not None]
    return {
        "connected": connected, "notified": answer["notificados"],
        "delivered": len(delays) / count,
        "p50_ms": vj.percentile(delays, 50), "p99_ms": vj.percentile(delays, 99),
        "max_ms": max(delays) if delays else None,
        "kib_per_socket": (rss_after - rss_before) / max(1, connected),
    }


def _receive(pipe, worker, timeout):
    """The next message of a client process; fails loudly if it died or hangs."""
    deadline = time.monotonic() + timeout
    while not pipe.poll(0.2):
        if not worker.is_alive() or time.monotonic() > deadline:
            worker.kill()
            raise RuntimeError("a fan-out client process died or hung (exit code %s)"
                               % worker.exitcode)
    return pipe.recv()


async def _warm_up(url, token):
    """One socket opened and closed, so lazily created threads and caches exist before RSS."""
    sock = await vj.open_socket("%s/ws/juez/1/?token=%s" % (url.replace("http", "ws", 1), token),
                                lambda text: None)
    await asyncio.sleep(0.1)
    sock.transport.close()
    await asyncio.sleep(0.1)


# ------------------------------------------------------------------------------------------------
# Event-loop stall during a login burst
# ------------------------------------------------------------------------------------------------
async def stall_probe(url, probe_token, logins, quiet_s=1.0):
    """Worst ping round trip on a judge socket, before and while ``logins`` log in at once."""
    sent, rtts = {}, []

    def on_message(text):
        msg = json.loads(text)
        if msg["type"] == "pong":
            rtts.append(time.monotonic() - sent.pop(msg["data"]["seq"]))

    sock = await vj.open_socket("%s/ws/juez/1/?token=%s" % (url.replace("http", "ws", 1),
                                                             probe_token), on_message)
    seq = 0

    async def probe_until(done):
        nonlocal seq
        while not done():
            seq += 1
            sent[seq] = time.monotonic()
            sock.send(json.dumps({"type": "ping", "data": {"seq": seq}}))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)

    deadline = time.monotonic() + quiet_s
    await probe_until(lambda: time.monotonic() > deadline)
    before = max(rtts) * 1000
    rtts.clear()
    http = vj.make_http(max_clients=len(logins))
    judges = [vj.VirtualJudge(url, u, p, http=http) for u, p in logins]
    burst = asyncio.gather(*(j.login() for j in judges), return_exceptions=True)
    await probe_until(burst.done)
    results = burst.result()
    unanswered = [time.monotonic() - t for t in sent.values()]
    during = max(rtts + unanswered) * 1000
    sock.transport.close()
    http.close()
    return {"before_ms": before, "during_ms": during,
            "logins_ok": sum(1 for r in results if r is None)}


# ------------------------------------------------------------------------------------------------
# Ingest with wrk
# ------------------------------------------------------------------------------------------------
WRK_SCRIPT = """
local creds = {%(creds)s}
local threads = {}
tid, counter, acked = 0, 0, 0  -- globals: thread:get() reads them
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function request()
  counter = counter + 1
  local c = creds[(counter * 7 + tid) %% #creds + 1]
  local recs = {}
  for i = 0, 14 do
    recs[#recs + 1] = string.format(
      '{"timestamp":"2026-05-01T%%02d:00:00.000Z","tiempo":%%d,"id_registro":"%(run)s-%%04x-4000-8%%03x-%%012x"}',
      tid %% 24, (counter * 15 + i) %% 86400000, tid, i, counter)
  end
  local body = '{"equipo_id":' .. c[2] .. ',"registros":[' .. table.concat(recs, ",") .. ']}'
  return wrk.format("POST", "/api/enviar_tiempos/",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. c[1]}, body)
end
function response(status, headers, body)
  if status == 201 then acked = acked + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("acked") end
  io.write(string.format(
    'BENCH_JSON {"requests":%%d,"duration_us":%%d,"non2xx":%%d,"socket_errors":%%d,' ..
    '"acked":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    total, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def ensure_wrk():
    """wrk's path, installing Debian's package if missing; None (with the reason) if impossible."""
    found = shutil.which("wrk")
    if found:
        return found, None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "wrk is not installed and apt-get cannot install it here (not root)"
    for command in (["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", "wrk"],
                    ["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=120"],
                    ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", "wrk"]):
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if shutil.which("wrk"):
            return shutil.which("wrk"), None
    return None, "wrk could not be installed with apt-get"


def ingest(wrk, server, judge_tokens, workdir, seconds, connections, judges=200):
    script = Path(workdir) / ("ingest-%d.lua" % server.port)
    creds = ",".join('{"%s",%d}' % (judge_tokens[k], k) for k in range(1, judges + 1))
    script.write_text(WRK_SCRIPT % {"creds": creds, "run": "%08x" % (os.getpid() & 0xFFFFFFFF)})
    out = subprocess.run([wrk, "-t2", "-c%d" % connections, "-d%ds" % seconds, "--timeout", "10s",
                          "-s", str(script), server.url + "/api/enviar_tiempos/"],
                         capture_output=True, text=True)
    if "BENCH_JSON " not in out.stdout:
        raise RuntimeError("wrk failed: %s %s" % (out.stdout[-500:], out.stderr[-500:]))
    out = out.stdout
    result = json.loads(out.split("BENCH_JSON ", 1)[1].splitlines()[0])
    server.stop()  # Server5K commits what its writer holds before it exits
    stored = stored_rows(server.kind, server.db_path)
    expected = result["acked"] * 15
    seconds_run = result["duration_us"] / 1e6
    return {
        "rps": result["requests"] / seconds_run,
        "records_s": result["acked"] * 15 / seconds_run,
        "p50_ms": result["p50_us"] / 1000, "p99_ms": result["p99_us"] / 1000,
        "non2xx": result["non2xx"] + result["socket_errors"],
        "lost": max(0, expected - stored), "acked": result["acked"], "stored": stored,
    }


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------
def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run(args):
    fd_limit = raise_fd_limit()
    needed = 2 * max(args.sockets) + 200
    if fd_limit < needed:
        sys.exit("bench: the open-file limit is %d; %d sockets need about %d" % (
            fd_limit, max(args.sockets), needed))
    wrk, wrk_missing = (None, "skipped (--ingest-seconds 0)") if not args.ingest_seconds \
        else ensure_wrk()
    judges = max(max(args.sockets), 1000, 200)
    organizer, judge_tokens = tokens(judges)
    results = {kind: {} for kind in SERVERS}
    seed = {"server5k": seed_server5k, "reference": seed_reference}
    with tempfile.TemporaryDirectory(prefix="server5k-bench-") as tmp:
        def fresh(kind, name, judges=judges, records=0):
            path = Path(tmp) / ("%s-%s.db" % (kind, name))
            seed[kind](str(path), judges, records)
            return Server(kind, tmp, path)

        if "startup" in args.phases:
            say("start-up on an event database with 1,000 judges and %d records" % args.records)
            for kind in SERVERS:
                server = fresh(kind, "startup", 1000, args.records)
                results[kind]["startup_s"] = server.start()
                server.stop()
        for count in args.sockets if "fanout" in args.phases else ():
            rounds = {kind: [] for kind in SERVERS}
            for round_number in range(1, args.rounds + 1):
                say("fan-out to %d judge sockets, round %d of %d" % (count, round_number,
                                                                     args.rounds))
                for kind in SERVERS:  # interleaved, so both see the same machine
                    server = fresh(kind, "fanout%d-%d" % (count, round_number))
                    server.start()
                    try:
                        rounds[kind].append(fanout(server, count, organizer, judge_tokens,
                                                   args.client_procs))
                    finally:
                        server.stop()
            for kind in SERVERS:
                results[kind]["fanout%d" % count] = median_round(rounds[kind])
        for kind in SERVERS if "stall" in args.phases else ():
            say("login burst on %s: 20 logins at once, probe every 10 ms" % kind)
            server = fresh(kind, "stall")
            server.start()
            try:
                logins = [("juez%d" % k, PASSWORD) for k in range(2, 22)]
                results[kind]["stall"] = asyncio.run(
                    stall_probe(server.url, judge_tokens[1], logins))
            finally:
                server.stop()
        if wrk and "ingest" in args.phases:
            rounds = {kind: [] for kind in SERVERS}
            for round_number in range(1, args.rounds + 1):
                say("ingest: wrk, %d connections, %d s, round %d of %d" % (
                    args.connections, args.ingest_seconds, round_number, args.rounds))
                for kind in SERVERS:
                    server = fresh(kind, "ingest-%d" % round_number)
                    server.start()
                    try:
                        rounds[kind].append(ingest(wrk, server, judge_tokens, tmp,
                                                   args.ingest_seconds, args.connections))
                    finally:
                        server.stop()
            for kind in SERVERS:
                results[kind]["ingest"] = median_ingest(rounds[kind])
        else:
            say("ingest skipped: %s" % wrk_missing)
    return results, wrk_missing


def median_round(rounds):
    """One fan-out result from several rounds: the median of each figure, the worst delivery."""
    def median(key):
        values = sorted(r[key] for r in rounds if r[key] is not None)
        return values[len(values) // 2] if values else None
    merged = {key: median(key) for key in rounds[0]}
    merged["delivered"] = min(r["delivered"] for r in rounds)
    merged["connected"] = min(r["connected"] for r in rounds)
    merged["rounds_p99_ms"] = [r["p99_ms"] for r in rounds]
    return merged


def median_ingest(rounds):
    """Medians of the rates and latencies; errors and losses summed over every round."""
    merged = {key: sorted(r[key] for r in rounds)[len(rounds) // 2]
              for key in ("rps", "records_s", "p50_ms", "p99_ms")}
    for key in ("non2xx", "lost", "acked", "stored"):
        merged[key] = sum(r[key] for r in rounds)
    merged["rounds_rps"] = [r["rps"] for r in rounds]
    merged["rounds_p99_ms"] = [r["p99_ms"] for r in rounds]
    return merged


def say(text):
    print("bench: %s" % text, file=sys.stderr, flush=True)


# Other benchmarks (bench/hostile.py, bench/crowd.py) and the notes on their figures keep their
# text in docs/benchmarks.md between these markers (every word of the file outside this run's
# report must be in a section, or the next run drops it); this one's report is the rest.
SECTION_BEGIN, SECTION_END = "<!-- section: %s -->", "<!-- end section: %s -->"


def sections(text):
    """The marked sections of ``text``, as they are written there."""
    found, rest = [], text
    while "<!-- section: " in rest:
        start = rest.index("<!-- section: ")
        name = rest[start + len("<!-- section: "):].split(" -->", 1)[0]
        end = rest.find(SECTION_END % name, start)
        if end < 0:
            break
        end += len(SECTION_END % name)
        found.append(rest[start:end])
        rest = rest[end:]
    return found


def write_section(path, name, text):
    """Put section ``name`` (``text``, markers included) into ``path``, in place of its previous
    version; the rest of the file is kept."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    begin, end = SECTION_BEGIN % name, SECTION_END % name
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + text.rstrip("\n") + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text
    path.write_text(new)


# ------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------
def rows(results, sockets):
    """(measure, server5k, reference, ratio, target, met) for the table."""
    s, r = results["server5k"], results["reference"]
    out = []

    def add(name, fmt, a, b, target="", met=None, ratio=True):
        cells = [name, fmt % a if a is not None else "-", fmt % b if b is not None else "-"]
        cells.append("%.2f" % (a / b) if ratio and a is not None and b else "")
        cells.append(target)
        cells.append("" if met is None else ("yes" if met else "**no**"))
        out.append(cells)

    for count in sockets:
        if "fanout%d" % count not in s:
            continue
        a, b = s["fanout%d" % count], r["fanout%d" % count]
        big = count >= 5000
        add("fan-out %d: delivered" % count, "%.1f %%", 100 * a["delivered"],
            100 * b["delivered"], "100 %", a["delivered"] == 1.0, ratio=False)
        add("fan-out %d: delay p50 (ms)" % count, "%.1f", a["p50_ms"], b["p50_ms"])
        p99_ok = (a["p99_ms"] is not None and (a["p99_ms"] < 500 if big else
                  b["p99_ms"] and a["p99_ms"] <= 1.3 * b["p99_ms"]))
        add("fan-out %d: delay p99 (ms)" % count, "%.1f", a["p99_ms"], b["p99_ms"],
            "< 500 ms" if big else "<= 1.3x reference", p99_ok if count in (1000, 5000) else None)
        add("fan-out %d: delay max (ms)" % count, "%.1f", a["max_ms"], b["max_ms"])
        add("fan-out %d: memory per idle socket (KiB)" % count, "%.1f", a["kib_per_socket"],
            b["kib_per_socket"], "<= 40 KiB", a["kib_per_socket"] <= 40)
    if "ingest" in s and "ingest" in r:
        a, b = s["ingest"], r["ingest"]
        add("ingest: requests/s", "%.0f", a["rps"], b["rps"], ">= 1.0x reference",
            a["rps"] >= b["rps"])  # (issue 21; issue 4 asked 0.7x)
        add("ingest: records/s", "%.0f", a["records_s"], b["records_s"])
        add("ingest: latency p50 (ms)", "%.1f", a["p50_ms"], b["p50_ms"])
        add("ingest: latency p99 (ms)", "%.1f", a["p99_ms"], b["p99_ms"], "< 25 ms",
            a["p99_ms"] < 25)
        add("ingest: non-2xx", "%d", a["non2xx"], b["non2xx"], "0", a["non2xx"] == 0, ratio=False)
        add("ingest: lost rows (acknowledged, not stored)", "%d", a["lost"], b["lost"], "0",
            a["lost"] == 0, ratio=False)
    if "stall" in s:
        a, b = s["stall"], r["stall"]
        add("login burst: worst stall before (ms)", "%.1f", a["before_ms"], b["before_ms"])
        add("login burst: worst stall during 20 logins (ms)", "%.1f", a["during_ms"],
            b["during_ms"], "< 25 ms", a["during_ms"] < 25)
    if "startup_s" in s:
        add("start-up to first answer (s)", "%.3f", s["startup_s"], r["startup_s"], "< 1 s",
            s["startup_s"] < 1)
    return out


def table(cells):
    header = ["measure", "Server5K", "reference", "ratio", "target", "met"]
    widths = [max(len(str(row[i])) for row in [header] + cells) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |"
              for row in cells]
    return "\n".join(lines)


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tornado
    return ("%d cores (%s), Linux %s, Python %s, SQLite %s, Tornado %s" % (
        os.cpu_count(), cpu, platform.release(), platform.python_version(),
        sqlite3.sqlite_version, tornado.version))


def report(results, args, command, wrk_missing):
    cells = rows(results, args.sockets)
    text = table(cells)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    s, r = results["server5k"], results["reference"]
    details = []
    if "ingest" in s:
        details.append("Loss check, all ingest rounds together: Server5K acknowledged %d "
                       "requests (%d records) and stored %d rows; the reference acknowledged %d "
                       "(%d records) and stored %d." % (
                           s["ingest"]["acked"], 15 * s["ingest"]["acked"], s["ingest"]["stored"],
                           r["ingest"]["acked"], 15 * r["ingest"]["acked"],
                           r["ingest"]["stored"]))
        details.append("Ingest requests/s of each round: Server5K %s; reference %s." % (
            ", ".join("%.0f" % v for v in s["ingest"]["rounds_rps"]),
            ", ".join("%.0f" % v for v in r["ingest"]["rounds_rps"])))
        details.append("Ingest latency p99 of each round (ms): Server5K %s; reference %s." % (
            ", ".join("%.1f" % v for v in s["ingest"]["rounds_p99_ms"]),
            ", ".join("%.1f" % v for v in r["ingest"]["rounds_p99_ms"])))
    elif wrk_missing:
        details.append("Ingest not measured: %s." % wrk_missing)
    for count in args.sockets:
        key = "fanout%d" % count
        if key in s:
            details.append("Fan-out %d, p99 of each round (ms): Server5K %s; reference %s." % (
                count, ", ".join("%.1f" % v for v in s[key]["rounds_p99_ms"] if v is not None),
                ", ".join("%.1f" % v for v in r[key]["rounds_p99_ms"] if v is not None)))
    doc = "\n".join([
        "# Benchmarks",
        "",
        "Server5K against a bare reference server (`bench/reference_server.py`: Tornado + PyJWT +",
        "stdlib sqlite3 with the same durability, WAL + `synchronous=FULL`, one in-memory set of",
        "sockets, the same endpoints and payloads), measured in one run on the same machine.",
        "Ratios are Server5K / reference; the targets are those of issue 4.",
        "",
        "- Date: %s" % stamp,
        "- Machine: %s" % machine(),
        "- Command: `%s`" % command,
        "",
        text,
        "",
    ] + details + [
        "",
        "How each figure is measured (see `bench/run.py`):",
        "",
        "- **Start-up**: from spawning the server process to its first answered request",
        "  (`GET /api/competencias/1/`), on an event database with 1,000 judges and %d records."
        % args.records,
        "- **Fan-out**: virtual judges (`rehearsal.py`) in %d client processes open N"
        % args.client_procs,
        "  judge sockets; the race is started with `POST /api/competencias/1/iniciar/` as the",
        "  organizer; delay is from just before that request to each socket's receipt of",
        "  `carrera.iniciada` (one system-wide monotonic clock). Memory is the server's RSS growth",
        "  from before the sockets connect to one second after, divided by the sockets. Each size",
        "  runs %d rounds, Server5K and reference interleaved, each on a freshly started server;"
        % args.rounds,
        "  the table shows the median of the rounds (delivered: the worst round).",
        "- **Login burst**: one judge socket sends `ping` every 10 ms; the worst round trip is",
        "  taken over one quiet second, then while 20 judges log in at once (scrypt off the loop).",
        "- **Ingest**: `wrk -t2 -c%d -d%ds` POSTs `/api/enviar_tiempos/` with 15 records and"
        % (args.connections, args.ingest_seconds),
        "  fresh `id_registro`s per request, rotating over 200 judges' tokens and teams. Both",
        "  servers commit durably before answering 201. After wrk the server is stopped and the",
        "  stored rows are counted against 15 x the acknowledged 201s (lost = missing rows).",
        "  %d rounds, interleaved, each on a fresh database; the table shows the medians of rates"
        % args.rounds,
        "  and latencies, and non-2xx and lost rows summed over all rounds.",
        "- The machine is shared with other work, so absolute figures are noisy; each pair of",
        "  figures was measured back to back, which is why the ratios are what count.",
        "",
    ])
    return text, doc


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", default="1000,5000",
                        help="fan-out sizes, comma-separated (default 1000,5000)")
    parser.add_argument("--ingest-seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--records", type=int, default=20000,
                        help="records in the start-up database (default 20000)")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of fan-out (per size) and of ingest, each on a fresh "
                             "server, the two servers interleaved (default 3; the table shows "
                             "medians)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                        help="where to write the report (default docs/benchmarks.md)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--phases", default="startup,fanout,stall,ingest",
                        help="what to measure (default: all of startup,fanout,stall,ingest)")
    args = parser.parse_args(argv)
    args.sockets = [int(n) for n in args.sockets.split(",") if n]
    args.phases = set(args.phases.split(","))
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = " ".join([".venv/bin/python bench/run.py"] + argv)
    results, wrk_missing = run(args)
    text, doc = report(results, args, command, wrk_missing)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = sections(out.read_text()) if out.exists() else []
    out.write_text("\n".join([doc] + kept) + ("\n" if kept else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    say("report written to %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
