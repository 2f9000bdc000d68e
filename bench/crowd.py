#!/usr/bin/env python3
"""A spectator crowd through nginx's micro-cache, and straight at the server.

Starts a real server (``server5k.py serve``) with a throwaway event and Debian's nginx in front of
it with the repository's site (deploy/nginx-server5k.conf, rendered by bench/proxy.py for free
ports, a self-signed certificate and a temporary prefix; 127.0.0.1 listed in its geo block, as an
operator lists a venue's NAT, since every client here is 127.0.0.1). Then, phase by phase:

* ``quiet``: judges' start notice (POST .../iniciar/ to ``carrera.iniciada`` on each judge's
  socket), straight to the server (ws://) and through nginx (wss://);
* ``cache``: wrk with C connections polling the results over HTTPS through nginx for S seconds,
  the judges' start notice through nginx meanwhile;
* ``direct``: the same crowd straight at the server (HTTP), the judges' start notice straight
  to it meanwhile.

For each crowd: requests per second served (wrk), how many reached the server (its access log),
the CPU the server (its process and the standings worker) and nginx used per second, and the
judges' start notice (p50, p99 over every judge and round).

    .venv/bin/python bench/crowd.py                              # 20 judges, 2000 clients, 20 s
    .venv/bin/python bench/crowd.py --connections 500 --seconds 5 --rounds 5   # a quick look
    .venv/bin/python bench/crowd.py --judges 2 --connections 20 --seconds 3 --rounds 2 \
        --pause 0.05                                 # it runs (tests/test_bench_smoke.py)

The server's per-address pacing of anonymous requests (limits.anonymous_per_minute) is off here:
wrk is one address, and the direct figure is meant to be the server's capacity, not its pacing.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from http.client import HTTPConnection, HTTPSConnection
from pathlib import Path

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import proxy as proxy_module  # noqa: E402
from bench.spectators import free_port, prepare, raise_fd_limit, summary  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def http(method, url, body=None, token=None, context=None):
    request = urllib.request.Request(url, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return json.loads(response.read())


def cpu_seconds(pid):
    """CPU time (user + system) of ``pid`` and its live children, in seconds."""
    pids, total = [pid], 0
    for task in Path("/proc/%d/task" % pid).glob("*/children"):
        pids += [int(child) for child in task.read_text().split()]
    for each in pids:
        try:
            fields = Path("/proc/%d/stat" % each).read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


class Judges:
    """N judges' sockets on one server address (straight or through nginx), judges ``first`` to
    ``first + count - 1``. Every socket is read all the time (every start reaches every judge
    of the race, whichever set asked for it): what arrives is queued with the time it arrived."""

    def __init__(self, base, ws_base, cid, first, count, context):
        self.base, self.ws_base, self.cid = base, ws_base, cid
        self.first, self.count = first, count
        self.context = context
        self.sockets, self.queues, self.readers = [], [], []
        self.connection = None  # the organizer's, kept alive (a console keeps its own)

    def post(self, path):
        """The organizer's POST on a kept-alive connection (no TLS handshake in the figure)."""
        if self.connection is None:
            host = self.base.split("://")[1]
            self.connection = (HTTPSConnection(host, context=self.context, timeout=30)
                               if self.base.startswith("https") else
                               HTTPConnection(host, timeout=30))
        self.connection.request("POST", path, headers={"Authorization": "Bearer " + self.org})
        response = self.connection.getresponse()
        body = response.read()
        assert response.status == 200, body

    async def open(self):
        loop = asyncio.get_running_loop()
        self.org = (await loop.run_in_executor(None, lambda: http(
            "POST", self.base + "/api/token/", {"username": "org", "password": "org-pass"},
            context=self.context)))["access"]
        for n in range(self.first, self.first + self.count):
            answer = await loop.run_in_executor(None, lambda n=n: http(
                "POST", self.base + "/api/token/",
                {"username": "juez%d" % n, "password": "pass-juez"}, context=self.context))
            ws = await connect("%s/ws/juez/%d/?token=%s" % (self.ws_base, n + 1, answer["access"]),
                               ssl=self.context if self.ws_base.startswith("wss") else None)
            assert json.loads(await ws.recv())["type"] == "conexion.establecida"
            self.sockets.append(ws)
            queue = asyncio.Queue()
            self.queues.append(queue)
            self.readers.append(asyncio.create_task(read(ws, queue)))
        return self

    async def rounds(self, count, pause=0.4):
        """``count`` start/reset cycles; every judge's delay (ms) from the start to its notice."""
        loop = asyncio.get_running_loop()
        delays = []
        for _ in range(count):
            for queue in self.queues:  # what the other set's starts brought
                while not queue.empty():
                    queue.get_nowait()
            waiters = [asyncio.create_task(wait_for(queue, "carrera.iniciada"))
                       for queue in self.queues]
            t0 = time.perf_counter()
            await loop.run_in_executor(None, self.post, "/api/competencias/%d/iniciar/" % self.cid)
            delays += [(t - t0) * 1000 for t in await asyncio.gather(*waiters)]
            await asyncio.sleep(pause)
            waiters = [asyncio.create_task(wait_for(queue, "carrera.cancelada"))
                       for queue in self.queues]
            await loop.run_in_executor(None, self.post,
                                       "/api/competencias/%d/reiniciar/" % self.cid)
            await asyncio.gather(*waiters)
            await asyncio.sleep(pause)
        return delays

    async def close(self):
        for task in self.readers:
            task.cancel()
        for ws in self.sockets:
            await ws.close()
        if self.connection is not None:
            self.connection.close()


async def read(ws, queue):
    async for text in ws:
        queue.put_nowait((json.loads(text)["type"], time.perf_counter()))


async def wait_for(queue, kind):
    while True:
        got, at = await queue.get()
        if got == kind:
            return at


def wrk_args(url, connections, seconds, script=None):
    threads = max(1, min(4, os.cpu_count() or 1))
    return ["wrk", "-t%d" % threads, "-c%d" % max(connections, threads), "-d%ds" % seconds,
            "--latency", "--timeout", "10s"] + (["-s", str(script)] if script else []) + [url]


# wrk's clients each wait this long between two requests (a page polling every second).
PACED = "function delay()\n  return 1000\nend\n"


def parse_wrk(text):
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    p50 = re.search(r"^\s+50%\s+([0-9.]+)(us|ms|s)\b", text, re.M)
    errors = re.search(r"Socket errors:(.*)", text)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    return {"requests_per_s": float(rps.group(1)) if rps else None,
            "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
            "latency_p50_ms": round(float(p50.group(1)) * scale[p50.group(2)], 2) if p50 else None,
            "socket_errors": errors.group(1).strip() if errors else ""}


async def crowd(url, args, judges, server_pid, nginx_pid, server_log, path, script=None):
    """wrk against ``url`` for args.seconds while ``judges`` measure their start notice: as
    fast as it can, or (``script``) each client once a second."""
    heard_before = server_log.read_text().count(" GET %s " % path)
    cpu0 = cpu_seconds(server_pid), cpu_seconds(nginx_pid) if nginx_pid else 0.0
    t0 = time.monotonic()
    wrk = await asyncio.create_subprocess_exec(*wrk_args(url, args.connections, args.seconds,
                                                         script),
                                               stdout=asyncio.subprocess.PIPE,
                                               stderr=asyncio.subprocess.STDOUT)
    # The crowd is up (2,000 connections, TLS handshakes included) after 3 s; a short run
    # (the smoke test's) waits a quarter of it. At least one round, however short.
    await asyncio.sleep(min(3.0, args.seconds / 4))
    delays = []
    while not delays or time.monotonic() - t0 < args.seconds - 2:
        delays += await judges.rounds(1, args.pause)
    output = (await wrk.communicate())[0].decode()
    elapsed = time.monotonic() - t0
    cpu1 = cpu_seconds(server_pid), cpu_seconds(nginx_pid) if nginx_pid else 0.0
    await asyncio.sleep(0.5)  # the server's log is written
    heard = server_log.read_text().count(" GET %s " % path) - heard_before
    result = parse_wrk(output)
    result.update({
        "connections": args.connections, "seconds": round(elapsed, 1),
        "each_client": "once a second" if script else "as fast as it can",
        "server_requests_per_s": round(heard / elapsed, 2),
        "server_cpu_percent": round(100 * (cpu1[0] - cpu0[0]) / elapsed, 1),
        "nginx_cpu_percent": round(100 * (cpu1[1] - cpu0[1]) / elapsed, 1),
        "judges_start_notice": summary(delays) if delays else None})
    return result


async def bench(args):
    tmp = Path(tempfile.mkdtemp(prefix="server5k-crowd-"))
    port = free_port()
    base, ws_base = "http://127.0.0.1:%d" % port, "ws://127.0.0.1:%d" % port
    config = tmp / "config.yaml"
    config.write_text("server: {port: %d, ws_ping_interval_s: 20, trusted_proxies: [127.0.0.1]}\n"
                      "database: {path: %s}\n"
                      "limits: {login_per_minute: 0, login_per_address_per_minute: 0,\n"
                      "         submissions_per_minute: 0, anonymous_per_minute: 0}\n"
                      % (port, tmp / "bench.db"))
    env = dict(os.environ, SERVER5K_SECRET_KEY="bench-" + "k" * 40)
    cid = prepare(tmp / "bench.db", 2 * args.judges)  # half straight, half through nginx
    server_log = tmp / "server.log"
    server = subprocess.Popen([sys.executable, str(ROOT / "server5k.py"), "--config",
                               str(config), "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(server_log, "w"))
    nginx = None
    results = {}
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        nginx = proxy_module.Nginx(tmp / "nginx", port, connections=args.connections + 1024,
                                   unlimited=["127.0.0.1"]).start()
        context = ssl.create_default_context(cafile=nginx.cert)
        path = "/api/competencias/%d/resultados/" % cid
        direct = await Judges(base, ws_base, cid, 0, args.judges, None).open()
        proxied = await Judges(nginx.base_url, nginx.ws_base, cid, args.judges, args.judges,
                               context).open()
        await direct.rounds(2, args.pause)  # warm-up: first queries, first connections
        await proxied.rounds(2, args.pause)
        results["quiet"] = {"direct": summary(await direct.rounds(args.rounds, args.pause)),
                            "through_nginx": summary(await proxied.rounds(args.rounds,
                                                                          args.pause))}
        paced = tmp / "paced.lua"
        paced.write_text(PACED)
        for name, url, judges, nginx_pid in (
                ("cache", nginx.base_url + path, proxied, nginx.process.pid),
                ("direct", base + path, direct, None)):
            results[name + "_polling"] = await crowd(url, args, judges, server.pid, nginx_pid,
                                                     server_log, path, paced)
            results[name + "_flat_out"] = await crowd(url, args, judges, server.pid, nginx_pid,
                                                      server_log, path)
        await direct.close()
        await proxied.close()
    finally:
        if nginx is not None:
            nginx.stop()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    results["setup"] = {"judges": args.judges, "rounds": args.rounds, "cpus": os.cpu_count(),
                        "nginx": subprocess.run([proxy_module.NGINX, "-v"], capture_output=True,
                                                text=True).stderr.strip()}
    shutil.rmtree(tmp, ignore_errors=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judges", type=int, default=20)
    parser.add_argument("--connections", type=int, default=2000, help="wrk's clients")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15, help="start notices when quiet")
    parser.add_argument("--pause", type=float, default=0.4,
                        help="seconds after each start and each reset")
    args = parser.parse_args()
    if proxy_module.available():
        sys.exit(proxy_module.available())
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian package 'wrk')")
    limit = raise_fd_limit()
    if limit < args.connections * 2 + 200:
        sys.exit("open-file limit %d is too low for %d connections" % (limit, args.connections))
    results = asyncio.run(bench(args))
    print(json.dumps(results, indent=2))
    quiet = results["quiet"]
    print("\nstart notice, %d judges, quiet: direct p50 %.2f ms, through nginx p50 %.2f ms"
          % (args.judges, quiet["direct"]["p50_ms"], quiet["through_nginx"]["p50_ms"]))
    for name in ("cache_polling", "cache_flat_out", "direct_polling", "direct_flat_out"):
        r = results[name]
        print("%-15s %5d clients: %8.0f req/s served, server heard %6.1f req/s, server CPU %5.1f %%,"
              " nginx CPU %5.1f %%, start notice p50 %.2f ms p99 %.2f ms"
              % (name, r["connections"], r["requests_per_s"] or 0, r["server_requests_per_s"],
                 r["server_cpu_percent"], r["nginx_cpu_percent"],
                 r["judges_start_notice"]["p50_ms"], r["judges_start_notice"]["p99_ms"]))


if __name__ == "__main__":
    main()
