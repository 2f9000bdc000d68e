"""restore -timestamp; a restored copy replicating to the primary's URL; recovery after an outage."""
import os, shutil, signal, sqlite3, subprocess, tempfile, time, json
L = __import__("os").environ.get("SERVER5K_LITESTREAM", "/work/main/.venv/bin/litestream")
d = tempfile.mkdtemp(prefix="misc-"); db = d + "/ev.db"; rep = d + "/replica"
def conf(path, dbp, url):
    open(path, "w").write("dbs:\n  - path: %s\n    replica:\n      url: %s\n" % (dbp, url))
    return path
conf(d + "/ls.yml", db, "file://" + rep)
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA journal_mode=wal"); c.execute("PRAGMA synchronous=2")
c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at TEXT)")
log = open(d + "/ls.log", "w")
p = subprocess.Popen([L, "replicate", "-config", d + "/ls.yml"], stdout=log, stderr=log)
time.sleep(1.5)
for i in range(5):
    c.execute("INSERT INTO t (at) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ','now'))"); time.sleep(1.2)
time.sleep(1.5)
print(subprocess.run([L, "ltx", file_url := "file://" + rep], capture_output=True, text=True).stdout)
rows = c.execute("SELECT id, at FROM t").fetchall(); print("rows", rows)
# -timestamp: between row 2 and row 3
ts = rows[2][1][:19] + "Z"
r = subprocess.run([L, "restore", "-timestamp", ts, "-o", d + "/pit.db", "file://" + rep], capture_output=True, text=True)
print("restore -timestamp", ts, "rc", r.returncode, r.stderr.strip())
if r.returncode == 0:
    print("  rows in point-in-time copy:", sqlite3.connect(d + "/pit.db").execute("SELECT id, at FROM t").fetchall())
r = subprocess.run([L, "restore", "-json", "-o", d + "/second.db", "file://" + rep], capture_output=True, text=True)
print("restore latest:", r.stdout.strip().replace("\n", " "))
# second machine replicates its restored copy to the SAME url while the primary still does
conf(d + "/ls2.yml", d + "/second.db", "file://" + rep)
log2 = open(d + "/ls2.log", "w")
p2 = subprocess.Popen([L, "replicate", "-config", d + "/ls2.yml"], stdout=log2, stderr=log2)
c2 = sqlite3.connect(d + "/second.db", isolation_level=None); c2.execute("PRAGMA synchronous=2")
time.sleep(1.5)
c2.execute("INSERT INTO t (at) VALUES ('second-machine')"); c.execute("INSERT INTO t (at) VALUES ('primary-after')")
time.sleep(3)
p.send_signal(signal.SIGTERM); p.wait(); p2.send_signal(signal.SIGTERM); p2.wait()
r = subprocess.run([L, "restore", "-o", d + "/after.db", "file://" + rep], capture_output=True, text=True)
print("restore after both wrote to one URL: rc", r.returncode, r.stderr.strip())
if r.returncode == 0:
    x = sqlite3.connect(d + "/after.db")
    print("  rows:", x.execute("SELECT id, at FROM t").fetchall(), x.execute("PRAGMA integrity_check").fetchone())
print("second.db litestream log:"); print("".join(l for l in open(d + "/ls2.log") if "monitor\"" not in l)[:3000])
print("dir", d)
