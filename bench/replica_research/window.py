"""Commit-to-replica window under continuous commits, by restoring the replica in a loop."""
import json, os, shutil, signal, sqlite3, statistics, subprocess, sys, tempfile, threading, time
L = __import__("os").environ.get("SERVER5K_LITESTREAM", "/work/main/.venv/bin/litestream")
rate = float(os.environ.get("RATE", 100)); seconds = float(os.environ.get("SECONDS_", 32))
sync = os.environ.get("SYNC")  # None = default
kill_at = os.environ.get("KILL_AT")  # seconds after start: SIGKILL litestream
restart_after = float(os.environ.get("RESTART_AFTER", 3))
d = tempfile.mkdtemp(prefix="win-")
db = os.path.join(d, "ev.db"); rep = os.path.join(d, "replica")
conf = os.path.join(d, "ls.yml")
with open(conf, "w") as f:
    f.write("dbs:\n  - path: %s\n    replica:\n      url: file://%s\n" % (db, rep))
    if sync: f.write("      sync-interval: %s\n" % sync)
    if os.environ.get("MON"): f.write("    monitor-interval: %s\n" % os.environ["MON"])
c = sqlite3.connect(db, isolation_level=None, timeout=10, check_same_thread=False)
for p in ("journal_mode=wal", "synchronous=2", "busy_timeout=10000"):
    c.execute("PRAGMA " + p)
c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
log = open(os.path.join(d, "ls.log"), "w")
def launch():
    return subprocess.Popen([L, "replicate", "-config", conf], stdout=log, stderr=log)
proc = launch()
acks = {}; stop = threading.Event()
def write():
    n = 0; t0 = time.time()
    while not stop.is_set():
        c.execute("BEGIN IMMEDIATE"); cur = c.execute("INSERT INTO t (v) VALUES (?)", ("x" * 200,)); c.execute("COMMIT")
        acks[cur.lastrowid] = time.time(); n += 1
        dl = t0 + n / rate - time.time()
        if dl > 0: time.sleep(dl)
probes = []
def probe():
    i = 0
    while not stop.is_set():
        out = os.path.join(d, "p%d.db" % i); i += 1
        ts = time.time()
        r = subprocess.run([L, "restore", "-o", out, "file://" + rep], capture_output=True, text=True)
        te = time.time()
        mx = None
        if r.returncode == 0:
            mx = sqlite3.connect(out).execute("SELECT max(id) FROM t").fetchone()[0]
        probes.append((ts, te, mx or 0))
        for s in ("", "-wal", "-shm"):
            try: os.remove(out + s)
            except FileNotFoundError: pass
time.sleep(1.5)
w = threading.Thread(target=write); p = threading.Thread(target=probe)
T0 = time.time(); w.start(); p.start()
killed = None
while time.time() - T0 < seconds:
    if kill_at and killed is None and time.time() - T0 >= float(kill_at):
        proc.send_signal(signal.SIGKILL); proc.wait(); killed = time.time()
        print("SIGKILL litestream at +%.1fs" % (killed - T0))
    if killed and proc.poll() is not None and time.time() - killed >= restart_after:
        proc = launch(); print("restarted litestream at +%.1fs" % (time.time() - T0))
    time.sleep(0.05)
# let the replica catch up, then stop
time.sleep(0.2); stop.set(); w.join(); p.join()
last_id = max(acks)
deadline = time.time() + 15
while time.time() < deadline:
    out = os.path.join(d, "final.db")
    subprocess.run([L, "restore", "-o", out, "file://" + rep], capture_output=True)
    fm = sqlite3.connect(out).execute("SELECT max(id), count(*) FROM t").fetchone(); os.remove(out)
    if fm[0] == last_id: break
    time.sleep(0.2)
proc.send_signal(signal.SIGTERM); proc.wait()
# windows: every commit, and ~30 samples at random phases (a fixed 1 s step would phase-lock
# with Litestream's own 1 s tickers and always hit the same point of its cycle)
import bisect, random
random.seed(int(os.environ.get("SEED", 1)))
ids = sorted(acks)
probe_ends = [pr[1] for pr in probes]
def window(i):
    first = next((pr for pr in probes if pr[2] >= i and pr[0] >= acks[i] - 0.0), None)
    return None if first is None else first[1] - acks[i]
allw = [(i, acks[i] - T0, window(i)) for i in ids]
allw = [x for x in allw if x[2] is not None]
samples = sorted(random.sample(range(len(allw)), 30))
wins = [allw[k] for k in samples]
dur = [pr[1] - pr[0] for pr in probes]
ws = [w_[2] for w_ in wins]
print("monitor-interval=%s " % os.environ.get("MON", "default") + "sync-interval=%s rate=%.0f/s committed=%d in %.1fs; final restore max(id)=%s count=%s (expected %d)" % (
    sync or "default", rate, len(acks), seconds, fm[0], fm[1], last_id))
print("probes=%d restore duration median %.0f ms max %.0f ms" % (len(probes), 1000 * statistics.median(dur), 1000 * max(dur)))
def q(v, f): v = sorted(v); return v[min(len(v) - 1, int(f * len(v)))]
print("window over 30 random samples: median %.2fs max %.2fs min %.2fs" % (statistics.median(ws), max(ws), min(ws)))
aw = [x[2] for x in allw]
print("window over all %d commits: median %.2fs p90 %.2fs p99 %.2fs max %.2fs" % (len(aw), statistics.median(aw), q(aw, .9), q(aw, .99), max(aw)))
if kill_at:
    print("per-sample (t since start, window):", " ".join("%.1f:%.1f" % (t, w_) for _, t, w_ in wins))
    k = killed - T0
    near = [x[2] for x in allw if k - 0.01 <= x[1] <= k]
    print("commit acked just before the kill: window %.2fs; largest window of any commit %.2fs (acked at +%.1fs)" % (
        near[-1] if near else float('nan'), max(aw), max(allw, key=lambda x: x[2])[1]))
print("dir", d)
