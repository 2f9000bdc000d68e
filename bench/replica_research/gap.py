"""Litestream SIGKILLed; the app keeps committing long enough for its own autocheckpoint to
restart the WAL several times; Litestream restarted: does the replica catch up with every row?"""
import os, signal, sqlite3, subprocess, tempfile, time
L = __import__("os").environ.get("SERVER5K_LITESTREAM", "/work/main/.venv/bin/litestream")
d = tempfile.mkdtemp(prefix="gap-"); db = d + "/ev.db"; rep = d + "/replica"
open(d + "/ls.yml", "w").write("dbs:\n  - path: %s\n    replica:\n      url: file://%s\n" % (db, rep))
c = sqlite3.connect(db, isolation_level=None, timeout=10)
for p in ("journal_mode=wal", "synchronous=2", "busy_timeout=10000"):
    c.execute("PRAGMA " + p)
c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
log = open(d + "/ls.log", "w")
start = lambda: subprocess.Popen([L, "replicate", "-config", d + "/ls.yml"], stdout=log, stderr=log)
def restored():
    out = d + "/r%f.db" % time.time()
    r = subprocess.run([L, "restore", "-o", out, "file://" + rep], capture_output=True, text=True)
    if r.returncode: return r.stderr.strip()
    x = sqlite3.connect(out)
    return x.execute("SELECT count(*), max(id) FROM t").fetchone(), x.execute("PRAGMA integrity_check").fetchone()[0]
def wait(n, timeout=15):
    t = time.time()
    while time.time() - t < timeout:
        r = restored()
        if r[0][0] == n: return round(time.time() - t, 2)
        time.sleep(0.1)
    return None
proc = start(); time.sleep(1.5)
for _ in range(300): c.execute("INSERT INTO t (v) VALUES (?)", ("x" * 200,))
print("300 rows replicated after", wait(300), "s")
proc.send_signal(signal.SIGKILL); proc.wait(); print("SIGKILL: rc", proc.returncode)
resets = 0; last = os.path.getsize(db + "-wal")
for i in range(4000):
    c.execute("INSERT INTO t (v) VALUES (?)", ("x" * 200,))
    s = os.path.getsize(db + "-wal")
    # (the file does not shrink on a restart; detect via the wal header salt instead)
hdr = open(db + "-wal", "rb").read(32)
print("4000 rows committed while litestream was dead; WAL size", os.path.getsize(db + "-wal"), "checkpoint seq in WAL header", int.from_bytes(hdr[12:16], "big"))
print("replica meanwhile:", restored())
proc = start()
print("after restart, replica has all 4300 rows after", wait(4300), "s:", restored())
proc.send_signal(signal.SIGTERM); proc.wait()
print("dir", d)
