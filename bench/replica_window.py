"""How long a committed record takes to reach a Litestream copy, and whether lag() tells the
truth: ``python bench/replica_window.py [--interval S|default] [--kill-at S] [--seconds S]``.

A thread commits ~``--rate`` time records per second into a WAL database with Server5K's pragmas
(synchronous=FULL), noting when each commit returned (what a 201 promises). replica.Replicator
runs Litestream to a file:// copy. Another thread restores the copy in a loop (``litestream
restore``, ~40 ms each) and reads which records it holds: the ground truth. For every commit,
the window is the time from its commit to the end of the first restore that held it (an upper
bound, by one restore's duration). ``--kill-at`` SIGKILLs Litestream that many seconds in; the
supervisor restarts it (1 s backoff).

At each probe the two lag methods of replica.py are read first; a lag is *unsafe* if it is
smaller than the age of the oldest commit the following restore did not hold.
"""

import argparse
import asyncio
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import models  # noqa: E402
import replica  # noqa: E402


def q(values, f):
    values = sorted(values)
    return values[min(len(values) - 1, int(f * len(values)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--interval", default="default",
                    help="sync (and monitor) interval in seconds, or 'default' (Litestream's)")
    ap.add_argument("--rate", type=float, default=100, help="commits per second")
    ap.add_argument("--seconds", type=float, default=32)
    ap.add_argument("--kill-at", type=float, default=None, help="SIGKILL litestream at +S")
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args()
    interval = None if args.interval == "default" else float(args.interval)

    work = Path(tempfile.mkdtemp(prefix="replica-window-"))
    db, copy = work / "event.db", work / "copy"
    url = "file://%s" % copy
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False, timeout=10)
    for name, value in models.PRAGMAS.items():
        conn.execute("PRAGMA %s = %s" % (name, value))
    conn.execute("CREATE TABLE registro_tiempo (id INTEGER PRIMARY KEY, id_registro TEXT,"
                 " tiempo INTEGER, received_at TEXT)")
    binary = replica.find_litestream()
    acks, probes, lag_checks = {}, [], []
    stop = threading.Event()

    def commit_loop():
        n, t0 = 0, time.monotonic()
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute("INSERT INTO registro_tiempo (id_registro, tiempo, received_at)"
                               " VALUES (hex(randomblob(16)), ?, datetime('now'))", (n,))
            conn.execute("COMMIT")
            acks[cur.lastrowid] = time.time()
            n += 1
            delay = t0 + n / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def probe_loop(rep):
        i = 0
        while not stop.is_set():
            t0 = time.time()
            est = {}
            for method in ("replica-files", "daemon"):
                t = time.perf_counter()
                lag, _, _ = rep.measure(method, t0)
                est[method] = (lag, time.perf_counter() - t)
            out = work / ("probe-%d.db" % i)
            i += 1
            r = subprocess.run([binary, "restore", "-o", str(out), url], capture_output=True)
            t1 = time.time()
            top = 0
            if r.returncode == 0:
                c = sqlite3.connect(out)
                top = c.execute("SELECT COALESCE(MAX(id), 0) FROM registro_tiempo").fetchone()[0]
                c.close()
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(str(out) + suffix):
                    os.remove(str(out) + suffix)
            probes.append((t0, t1, top))
            lag_checks.append((t0, top, est))

    async def run():
        rep = replica.Replicator(db, url, sync_interval_s=interval, binary=binary)
        await rep.start()
        await asyncio.sleep(1.5)  # first snapshot
        writer = threading.Thread(target=commit_loop)
        prober = threading.Thread(target=probe_loop, args=(rep,))
        start = time.time()
        writer.start()
        prober.start()
        killed = None
        while time.time() - start < args.seconds:
            if args.kill_at is not None and killed is None and time.time() - start >= args.kill_at:
                os.kill(rep.pid, signal.SIGKILL)
                killed = time.time()
            await asyncio.sleep(0.02)
        await asyncio.sleep(3)  # let the copy take the last commits while probes go on
        stop.set()
        writer.join()
        prober.join()
        await rep.stop()
        return start, killed, rep.restarts

    start, killed, restarts = asyncio.run(run())
    last = max(acks)
    final = work / "final.db"
    subprocess.run([binary, "restore", "-o", str(final), url], check=True, capture_output=True)
    c = sqlite3.connect(final)
    count, top = c.execute("SELECT COUNT(*), MAX(id) FROM registro_tiempo").fetchone()
    c.close()

    ids = sorted(acks)
    windows = []
    pi = 0
    for rid in ids:  # probes are in time order, and the copy only grows
        while pi < len(probes) and (probes[pi][2] < rid or probes[pi][0] < acks[rid]):
            pi += 1
        if pi == len(probes):
            break
        windows.append((rid, acks[rid] - start, probes[pi][1] - acks[rid]))
    rnd = random.Random(16)
    sample = [windows[k] for k in sorted(rnd.sample(range(len(windows)),
                                                    min(args.samples, len(windows))))]
    sw, aw = [w for _, _, w in sample], [w for _, _, w in windows]
    durations = [t1 - t0 for t0, t1, _ in probes]

    print("interval=%s rate=%.0f/s seconds=%.0f kill_at=%s -> %d commits; final copy %d rows,"
          " max id %d (last acked %d); litestream restarts=%d" % (
              args.interval, args.rate, args.seconds, args.kill_at, len(acks), count, top, last,
              restarts))
    print("restore probes: %d, each %.0f ms median, %.0f ms max" % (
        len(probes), 1000 * statistics.median(durations), 1000 * max(durations)))
    print("window, %d random commits: median %.2f s, max %.2f s" % (
        len(sw), statistics.median(sw), max(sw)))
    print("window, all %d commits:    median %.2f s, p90 %.2f s, p99 %.2f s, max %.2f s" % (
        len(aw), statistics.median(aw), q(aw, .9), q(aw, .99), max(aw)))
    if killed is not None:
        k = killed - start
        before = [w for _, t, w in windows if t <= k]
        print("SIGKILL at +%.1f s: last commit before it reached the copy after %.2f s;"
              " worst window %.2f s (commit at +%.1f s)" % (
                  k, before[-1] if before else float("nan"), max(aw),
                  max(windows, key=lambda x: x[2])[1]))
    for method in ("replica-files", "daemon"):
        unsafe, over, costs, short = 0, [], [], [0.0]
        for t0, top_seen, est in lag_checks:
            lag, cost = est[method]
            costs.append(cost)
            missing = [acks[r] for r in range(top_seen + 1, top_seen + 2) if r in acks]
            floor = t0 - missing[0] if missing and missing[0] < t0 else 0.0
            if lag is None:
                continue
            if lag + 1e-3 < floor:
                unsafe += 1
                short.append(floor - lag)
            over.append(lag - floor)
        print("lag by %-13s: %d checks, unsafe %d (by at most %.3f s), over-estimate median"
              " %.2f s max %.2f s; cost %.0f us median, %.0f us max" % (
                  method, len(lag_checks), unsafe, max(short), statistics.median(over), max(over),
                  1e6 * statistics.median(costs), 1e6 * max(costs)))
    print("work dir", work)


if __name__ == "__main__":
    main()
