"""outage.py again, with replica.Replicator (retry_after_errors_s=30 default)."""
import asyncio, os, sqlite3, subprocess, sys, tempfile, time
sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__import__("os").path.abspath(__file__)), "..", ".."))
import replica
outage = float(sys.argv[1])
L = replica.find_litestream()
d = tempfile.mkdtemp(prefix="outage2-"); db = d + "/ev.db"; rep = d + "/replica"
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA journal_mode=wal"); c.execute("PRAGMA synchronous=2"); c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
open(rep, "w").write("blocked")
async def main():
    r = replica.Replicator(db, "file://" + rep)
    await r.start()
    t0 = time.time()
    while time.time() - t0 < outage:
        c.execute("INSERT INTO t VALUES (NULL)"); await asyncio.sleep(0.5)
    os.remove(rep); freed = time.time()
    c.execute("INSERT INTO t VALUES (NULL)"); last = c.execute("SELECT max(id) FROM t").fetchone()[0]
    while time.time() - freed < 400:
        res = subprocess.run([L, "restore", "-o", d + "/r.db", "file://" + rep], capture_output=True)
        if res.returncode == 0:
            n = sqlite3.connect(d + "/r.db").execute("SELECT max(id) FROM t").fetchone()[0]
            os.remove(d + "/r.db")
            if n == last: break
        await asyncio.sleep(0.2)
    print("with the supervisor: outage %.0f s: copy current again %.1f s after the folder was usable (restarts=%d)" % (outage, time.time() - freed, r.restarts))
    await r.stop()
asyncio.run(main())
