"""Commit ~RATE rows/s into DB with Server5K's pragmas; append 'id t_ack' lines to ACKS."""
import sqlite3, sys, time
db, rate, seconds, acks = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
c = sqlite3.connect(db, isolation_level=None, timeout=10)
for p in ("journal_mode=wal", "synchronous=2", "busy_timeout=10000", "foreign_keys=1"):
    c.execute("PRAGMA " + p)
c.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT, at REAL)")
out = open(acks, "a", buffering=1)
end = time.time() + seconds
n = 0
start = time.time()
while time.time() < end:
    c.execute("BEGIN IMMEDIATE")
    cur = c.execute("INSERT INTO t (v, at) VALUES (?, ?)", ("x" * 200, time.time()))
    c.execute("COMMIT")
    out.write("%d %.6f\n" % (cur.lastrowid, time.time()))
    n += 1
    delay = start + n / rate - time.time()
    if delay > 0:
        time.sleep(delay)
print("committed", n, "in", round(time.time() - start, 1), "s", file=sys.stderr)
