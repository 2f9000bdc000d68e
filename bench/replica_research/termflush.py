import os, signal, sqlite3, subprocess, tempfile, time
L = __import__("os").environ.get("SERVER5K_LITESTREAM", "/work/main/.venv/bin/litestream")
ok = 0
for trial in range(10):
    d = tempfile.mkdtemp(prefix="tf-"); db = d + "/ev.db"; rep = d + "/replica"
    open(d + "/ls.yml", "w").write("dbs:\n  - path: %s\n    replica:\n      url: file://%s\n" % (db, rep))
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=wal"); c.execute("PRAGMA synchronous=2")
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    p = subprocess.Popen([L, "replicate", "-config", d + "/ls.yml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5 + trial * 0.1)
    c.execute("INSERT INTO t VALUES (NULL)")
    t = time.time(); p.send_signal(signal.SIGTERM); p.wait(); dt_ = time.time() - t
    subprocess.run([L, "restore", "-o", d + "/r.db", "file://" + rep], check=True)
    n = sqlite3.connect(d + "/r.db").execute("SELECT count(*) FROM t").fetchone()[0]
    ok += n == 1
    print("trial %d: row committed, SIGTERM at once; litestream exited in %.3fs rc=%s; replica rows=%d" % (trial, dt_, p.returncode, n))
print(ok, "of 10 flushed")
