#!/usr/bin/env python3
"""How long the server process's event loop stalls during roster previews and imports (issue 22).

    .venv/bin/python bench/import_stalls.py                 # 80,000-row previews and imports
    .venv/bin/python bench/import_stalls.py --rows 5000 --imports 3

The server's application runs in this process (``server5k.make_app`` on a fresh database, its
worker process as in ``serve``), with a 1 ms ticker on its event loop; a client in another
process posts the rosters (bench/hostile.py's, 1 MiB for 80,000 rows) one after another. Each
tick records how late it woke (its stall) and how much CPU this process used meanwhile: a stall
during which this process kept running is another of its threads holding the interpreter lock
(what a big unpickle or ``json.dumps`` did, ~80 ms at a time); a stall during which it did not
is the machine's other work. Both are reported; the second, "held", is what the code controls.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "org-pass-123"


def client(port, rows, kind, competitions):
    """The organizer's client (its own process): login, then one roster per competition."""
    from bench.hostile import roster_csv

    def call(path, body, content_type, token=None):
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                         method="POST")
        request.add_header("Content-Type", content_type)
        if token:
            request.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(request, timeout=900) as response:
            return json.loads(response.read())
    token = call("/api/token/", json.dumps({"username": "org", "password": PASSWORD}).encode(),
                 "application/json")["access"]
    took = []
    for n, cid in enumerate(competitions):
        started = time.perf_counter()
        answer = call("/api/competencias/%d/importar/%s" % (
            cid, "?dry_run=1" if kind == "preview" else ""), roster_csv(rows, 7 + n),
            "text/csv", token)
        assert answer["equipos_nuevos"] == rows, answer.get("detail")
        took.append(time.perf_counter() - started)
    print(json.dumps(took))


async def measure(config, rows, kind, competitions):
    import server5k
    app = server5k.make_app(config)
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    stalls, held, stop = [], [], False

    async def ticker():
        while not stop:
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.sleep(0.001)
            stall = (time.perf_counter() - wall) * 1000 - 1
            stalls.append(stall)
            held.append(min(stall, (time.process_time() - cpu) * 1000))
    try:
        await asyncio.sleep(1.0)  # the worker process is up
        tick = asyncio.ensure_future(ticker())
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", str(port), "--rows", str(rows), "--kind", kind,
            "--competitions", ",".join(map(str, competitions)), stdout=asyncio.subprocess.PIPE)
        out, _ = await process.communicate()
        stop = True
        await tick
    finally:
        server.stop()
        server5k.close_app(app)
    if process.returncode:
        sys.exit("bench: the client failed")
    return json.loads(out), sorted(stalls), sorted(held)


def run(args):
    import config_schema
    import identity
    import models
    import registration
    os.environ.setdefault("SERVER5K_SECRET_KEY", "import-stalls-" + "x" * 32)
    lines = []
    with tempfile.TemporaryDirectory(prefix="server5k-stalls-") as tmp:
        (Path(tmp) / "empty.yaml").write_text("")
        config = config_schema.load_config(Path(tmp) / "empty.yaml", {
            "database": {"path": str(Path(tmp) / "stalls.db")}})
        models.open_database(config["database"]["path"])
        with models.db.connection_context():
            identity.create_user("org", PASSWORD, organizer=True)
            competitions = [registration.create_competition("Lista %d" % n).id
                            for n in range(2 * args.imports)]
        models.db.close()
        sys.setswitchinterval(0.001)  # as ``serve`` sets it
        for kind, cids in (("preview", competitions[:args.imports]),
                           ("import", competitions[args.imports:])):
            took, stalls, held = asyncio.run(measure(config, args.rows, kind, cids))
            n = len(stalls)
            lines.append("| %s | %d | %s | %d | %.1f / %.1f / %.1f ms | %.1f / %.1f / %.1f ms "
                         "| %d | %d |" % (
                             kind, args.rows, ", ".join("%.1f s" % t for t in took), n,
                             stalls[int(n * .99)], stalls[int(n * .999)], stalls[-1],
                             held[int(n * .99)], held[int(n * .999)], held[-1],
                             sum(s > 10 for s in held), sum(s > 5 for s in held)))
    return ["| what | rows | each took | ticks | stall p99 / p99.9 / max | held p99 / p99.9 / "
            "max | held over 10 ms | held over 5 ms |", "|---|---|---|---|---|---|---|---|"] + lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=80000, help="rows per roster (default 80000)")
    parser.add_argument("--imports", type=int, default=2,
                        help="previews, then imports, one after another (default 2 of each)")
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--competitions", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        client(args.client, args.rows, args.kind,
               [int(c) for c in args.competitions.split(",")])
        return 0
    print("\n".join(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
