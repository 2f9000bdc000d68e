"""The copy's folder is unusable for OUTAGE seconds (a regular file where its folder should be,
like a USB stick pulled), then usable again: how long until Litestream copies again?"""
import os, sqlite3, subprocess, sys, tempfile, time, signal
L = __import__("os").environ.get("SERVER5K_LITESTREAM", "/work/main/.venv/bin/litestream")
outage = float(sys.argv[1])
d = tempfile.mkdtemp(prefix="outage-"); db = d + "/ev.db"; rep = d + "/replica"
open(d + "/ls.yml", "w").write("dbs:\n  - path: %s\n    replica:\n      url: file://%s\n" % (db, rep))
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA journal_mode=wal"); c.execute("PRAGMA synchronous=2"); c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
open(rep, "w").write("blocked")
log = open(d + "/ls.log", "w")
p = subprocess.Popen([L, "replicate", "-config", d + "/ls.yml"], stdout=log, stderr=log)
t0 = time.time()
while time.time() - t0 < outage:
    c.execute("INSERT INTO t VALUES (NULL)"); time.sleep(0.5)
os.remove(rep); freed = time.time()
c.execute("INSERT INTO t VALUES (NULL)"); last = c.execute("SELECT max(id) FROM t").fetchone()[0]
while True:
    r = subprocess.run([L, "restore", "-o", d + "/r.db", "file://" + rep], capture_output=True)
    if r.returncode == 0:
        n = sqlite3.connect(d + "/r.db").execute("SELECT max(id) FROM t").fetchone()[0]
        os.remove(d + "/r.db")
        if n == last: break
    if time.time() - freed > 400: print("gave up"); break
    time.sleep(0.2)
print("outage %.0f s: copy current again %.1f s after the folder was usable" % (outage, time.time() - freed))
p.send_signal(signal.SIGTERM); p.wait()
for l in open(d + "/ls.log"):
    if "sync error" in l or "recovered" in l or "monitor error" in l:
        print("  ", l.strip()[:260])
