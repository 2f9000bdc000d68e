"""What our shutdown checkpoint (PRAGMA wal_checkpoint(TRUNCATE), busy_timeout=10000) does
while Litestream runs, and whether the replica keeps every row afterwards."""
import os, signal, sqlite3, subprocess, sys, tempfile, time
L = __import__("os").environ.get("SERVER5K_LITESTREAM", "/work/main/.venv/bin/litestream")
d = tempfile.mkdtemp(prefix="ckpt-"); db = d + "/ev.db"; rep = d + "/replica"
open(d + "/ls.yml", "w").write("dbs:\n  - path: %s\n    replica:\n      url: file://%s\n" % (db, rep))
def conn():
    c = sqlite3.connect(db, isolation_level=None, timeout=10)
    for p in ("journal_mode=wal", "synchronous=2", "busy_timeout=10000"):
        c.execute("PRAGMA " + p)
    return c
c = conn(); c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
log = open(d + "/ls.log", "w")
proc = subprocess.Popen([L, "replicate", "-config", d + "/ls.yml"], stdout=log, stderr=log)
def write(n):
    for _ in range(n):
        c.execute("INSERT INTO t (v) VALUES (?)", ("x" * 200,))
def restored():
    out = d + "/r%f.db" % time.time()
    r = subprocess.run([L, "restore", "-o", out, "file://" + rep], capture_output=True, text=True)
    if r.returncode: return r.stderr.strip()
    return sqlite3.connect(out).execute("SELECT count(*), max(id) FROM t").fetchone()
def wait_count(n, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        r = restored()
        if isinstance(r, tuple) and r[0] == n: return time.time()
        time.sleep(0.1)
    return None
time.sleep(1.5); write(500); print("wrote 500; in replica after", wait_count(500) and "ok")
print("WAL bytes before checkpoint:", os.path.getsize(db + "-wal"))
write(100)  # not yet replicated, then checkpoint immediately
t = time.time(); res = c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
print("A) TRUNCATE while litestream runs: result (busy, log, checkpointed) =", res,
      "took %.2fs" % (time.time() - t), "WAL bytes after:", os.path.getsize(db + "-wal"))
print("   replica reaches 600 rows:", bool(wait_count(600)), restored())
write(100)
t = time.time(); res = c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
print("B) PASSIVE while litestream runs:", res, "took %.2fs" % (time.time() - t))
print("   replica reaches 700 rows:", bool(wait_count(700)), restored())
# autocheckpoint stress: tiny autocheckpoint so the app checkpoints constantly
c.execute("PRAGMA wal_autocheckpoint=10")
for i in range(20):
    write(50); time.sleep(0.05)
print("C) 1000 more rows with wal_autocheckpoint=10: replica reaches 1700:", bool(wait_count(1700)), restored())
# graceful stop, then our shutdown checkpoint, then restart litestream
write(100)
proc.send_signal(signal.SIGTERM); t = time.time(); proc.wait()
print("D) SIGTERM: litestream exited rc=%s in %.2fs; replica has" % (proc.returncode, time.time() - t), restored())
t = time.time(); res = c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
print("   TRUNCATE with litestream stopped:", res, "took %.2fs" % (time.time() - t), "WAL bytes:", os.path.getsize(db + "-wal"))
write(100)
proc = subprocess.Popen([L, "replicate", "-config", d + "/ls.yml"], stdout=log, stderr=log)
print("E) restarted after TRUNCATE + 100 rows: replica reaches 1900:", bool(wait_count(1900)), restored())
proc.send_signal(signal.SIGTERM); proc.wait()
print("dir", d)
