#!/usr/bin/env python3
"""Do a thousand spectators slow a judge's start notice?

Starts a real server (``server5k.py serve``) on a free port with a throwaway database, connects
N judge sockets, and fires the start through the organizer endpoint R times (start, then reset,
and again), measuring per judge the delay from sending ``POST .../iniciar/`` to receiving
``carrera.iniciada``. Then it connects S spectator sockets to ``/ws/resultados/{id}/`` (in a
separate process, so their reading does not compete with the judges' client for this process's
loop) and measures again. Every start and reset pushes the new standings to every spectator, so
the spectators are busy exactly when the judges are being told.

    .venv/bin/python bench/spectators.py                      # 20 judges, 1000 spectators, 30 rounds
    .venv/bin/python bench/spectators.py --judges 50 --spectators 2000 --rounds 50

Prints p50/p99/max of the judges' delays with and without spectators, and how long the
spectators took to see each start (their own clock against the server's ``started_at``; same
machine, same clock). Timings on a shared machine are noisy: compare the two runs of one call.
"""

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values):
    return {"n": len(values), "p50_ms": round(percentile(values, 50), 2),
            "p99_ms": round(percentile(values, 99), 2), "max_ms": round(max(values), 2)}


def parse_iso(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- the spectators' process -----------------------------------------------------------------------
async def spectate(url, count, concurrency=50):
    """Connect ``count`` spectator sockets, read everything; report start-visibility delays."""
    delays, messages, gate = [], [0], asyncio.Semaphore(concurrency)
    ready = asyncio.Event()
    connected = [0]

    async def one():
        async with gate:
            ws = await connect(url, max_size=None, open_timeout=60)
        connected[0] += 1
        if connected[0] == count:
            ready.set()
        seen_start = None
        async for text in ws:
            messages[0] += 1
            msg = json.loads(text)
            if msg["type"] != "resultados":
                continue
            comp = msg["data"]["competencia"]
            if comp["estado"] == "en_curso" and comp["started_at"] != seen_start:
                seen_start = comp["started_at"]
                delays.append((time.time() - parse_iso(comp["started_at"])) * 1000)

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    await ready.wait()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    print(json.dumps({"messages": messages[0], "start_seen": summary(delays) if delays else None}),
          flush=True)


# -- the judges' side ---------------------------------------------------------------------------
def http(method, url, body=None, token=None):
    request = urllib.request.Request(url, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def prepare(db_path, judges):
    import models
    import identity
    import registration
    models.open_database(db_path)
    with models.db.connection_context():
        comp = registration.create_competition("Bench 5K")
        identity.create_user("org", "org-pass", organizer=True)
        for n in range(judges):
            juez = registration.create_judge("juez%d" % n, "pass-juez", comp.id)
            registration.create_team("Equipo %d" % n, n + 1, juez.id)
        return comp.id


async def measure(base, ws_base, cid, org_token, judge_sockets, rounds):
    """R start/reset cycles; per-judge delays (ms) from sending the start to its notice."""
    loop = asyncio.get_running_loop()
    delays, slowest = [], []
    for _ in range(rounds):
        got = []
        waiters = [asyncio.create_task(wait_for(ws, "carrera.iniciada")) for ws in judge_sockets]
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        await loop.run_in_executor(None, http, "POST",
                                   base + "/api/competencias/%d/iniciar/" % cid, None, org_token)
        for received in await asyncio.gather(*waiters):
            got.append((received - t0) * 1000)
        delays += got
        slowest.append(max(got))
        # Pauses longer than the page's coalescing window (0.25 s), so each start is its own
        # standings push and the spectators' delay below is the push itself, not the window.
        await asyncio.sleep(0.4)
        waiters = [asyncio.create_task(wait_for(ws, "carrera.cancelada")) for ws in judge_sockets]
        await loop.run_in_executor(None, http, "POST",
                                   base + "/api/competencias/%d/reiniciar/" % cid, None, org_token)
        await asyncio.gather(*waiters)
        await asyncio.sleep(0.4)
    return delays, slowest


async def wait_for(ws, kind):
    while True:
        msg = json.loads(await ws.recv())
        if msg["type"] == kind:
            return time.perf_counter()


async def bench(args):
    tmp = Path(tempfile.mkdtemp(prefix="server5k-bench-"))
    port = free_port()
    base, ws_base = "http://127.0.0.1:%d" % port, "ws://127.0.0.1:%d" % port
    config = tmp / "config.yaml"
    config.write_text("server: {port: %d, ws_ping_interval_s: 30}\n"
                      "database: {path: %s}\n"
                      "limits: {login_per_minute: 0, submissions_per_minute: 0}\n"
                      % (port, tmp / "bench.db"))
    env = dict(os.environ, SERVER5K_SECRET_KEY="bench-" + "k" * 40)
    cid = prepare(tmp / "bench.db", args.judges)
    server = subprocess.Popen([sys.executable, str(ROOT / "server5k.py"), "--config",
                               str(config), "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp / "server.log", "w"))
    spectators = None
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        loop = asyncio.get_running_loop()
        org = (await loop.run_in_executor(None, http, "POST", base + "/api/token/",
                                          {"username": "org", "password": "org-pass"}))["access"]
        judge_sockets = []
        for n in range(args.judges):
            answer = await loop.run_in_executor(None, http, "POST", base + "/api/token/",
                                                {"username": "juez%d" % n, "password": "pass-juez"})
            ws = await connect("%s/ws/juez/%d/?token=%s" % (ws_base, n + 1, answer["access"]))
            assert json.loads(await ws.recv())["type"] == "conexion.establecida"
            judge_sockets.append(ws)

        results = {}
        # Warm-up round (first connections, first queries), not counted.
        await measure(base, ws_base, cid, org, judge_sockets, 2)
        delays, slowest = await measure(base, ws_base, cid, org, judge_sockets, args.rounds)
        results["without_spectators"] = {"judges": summary(delays), "last_judge": summary(slowest)}

        spectators = subprocess.Popen(
            [sys.executable, __file__, "--spectate", "%s/ws/resultados/%d/" % (ws_base, cid),
             "--spectators", str(args.spectators)], stdout=subprocess.PIPE, text=True)
        t = time.perf_counter()
        line = await loop.run_in_executor(None, spectators.stdout.readline)
        assert line.strip() == "ready", line
        connect_s = time.perf_counter() - t
        await asyncio.sleep(1.0)  # the connection burst's snapshots settle
        await measure(base, ws_base, cid, org, judge_sockets, 2)
        delays, slowest = await measure(base, ws_base, cid, org, judge_sockets, args.rounds)
        results["with_spectators"] = {"judges": summary(delays), "last_judge": summary(slowest),
                                      "spectators": args.spectators,
                                      "spectators_connected_in_s": round(connect_s, 2)}
        spectators.send_signal(signal.SIGTERM)
        report = json.loads(await loop.run_in_executor(None, spectators.stdout.readline))
        results["with_spectators"]["spectator_messages"] = report["messages"]
        results["with_spectators"]["spectators_saw_start"] = report["start_seen"]
        for ws in judge_sockets:
            await ws.close()
    finally:
        if spectators is not None and spectators.poll() is None:
            spectators.kill()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    results["setup"] = {"judges": args.judges, "rounds": args.rounds, "cpus": os.cpu_count()}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judges", type=int, default=20)
    parser.add_argument("--spectators", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--spectate", metavar="WS_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    limit = raise_fd_limit()
    if args.spectate:
        asyncio.run(spectate(args.spectate, args.spectators))
        return
    if limit < args.spectators + args.judges + 100:
        sys.exit("open-file limit %d is too low for %d spectators" % (limit, args.spectators))
    results = asyncio.run(bench(args))
    print(json.dumps(results, indent=2))
    without = results["without_spectators"]["judges"]
    with_ = results["with_spectators"]["judges"]
    print("\njudge start notice, %d judges x %d rounds:" % (args.judges, args.rounds))
    print("  without spectators:   p50 %7.2f ms   p99 %7.2f ms" % (without["p50_ms"],
                                                                   without["p99_ms"]))
    print("  with %4d spectators: p50 %7.2f ms   p99 %7.2f ms" % (args.spectators, with_["p50_ms"],
                                                                   with_["p99_ms"]))


if __name__ == "__main__":
    main()
