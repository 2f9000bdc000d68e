"""Crash durability: the laptop dies (SIGKILL) mid-load and the server restarts on the same file.

Every request answered 201 must be on disk, every submission is all-or-nothing, phones that got
no answer retry and end up with every record stored exactly once, and the running race is still
running: judges who reconnect get ``carrera.iniciada`` with the original ``started_at``.
"""

import asyncio
import itertools
import json
import random
import signal
import time
import uuid
from pathlib import Path

import tornado.httpclient

from helpers import fetch, judge_socket, login, next_message, stored_counts, wait_for_async

WORKERS = 6
ANSWERED_BEFORE_KILL = 150


def test_sigkill_mid_load_loses_nothing_answered_and_retries_complete(spawn, event, config):
    db_path = config["database"]["path"]
    server = spawn(db_path, limits={"submissions_per_minute": 0}).start()
    rng = random.Random(5)
    tiempos = itertools.count(600_000)
    assignments = [("juez1", "pass-juez1", event["equipos"]["a"]), ("juez1", "pass-juez1", event["equipos"]["b"]),
                   ("juez2", "pass-juez2", event["equipos"]["c"])]
    submissions = []  # each: {"body", "ids", "answered": bool}

    def new_submission(equipo):
        n = rng.randint(1, 15)
        registros = [{"timestamp": "2025-11-11T12:%02d:%02d.%03dZ" % (
            rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999)),
            "tiempo": next(tiempos), "id_registro": str(uuid.uuid4())} for _ in range(n)]
        sub = {"body": {"equipo_id": equipo, "registros": registros},
               "ids": [r["id_registro"] for r in registros], "answered": False}
        submissions.append(sub)
        return sub

    async def before_crash():
        org = await login(server.base_url, "org", "org-pass")
        tokens = {u: (await login(server.base_url, u, p))["access"] for u, p, _ in assignments}
        sockets = []
        for juez_id, user in ((event["jueces"][0], "juez1"), (event["jueces"][1], "juez2")):
            sockets.append((await judge_socket("%s/ws/juez/%d/?token=%s" % (
                server.ws_base, juez_id, tokens[user])))[0])
        code, started, _ = await fetch("POST", "%s/api/competencias/%d/iniciar/" % (
            server.base_url, event["competencia"]), token=org["access"])
        assert code == 200 and started["notificados"] == 2, started
        for ws in sockets:
            assert (await next_message(ws))["type"] == "carrera.iniciada"

        answered = 0
        killed = asyncio.Event()

        async def worker(n):
            nonlocal answered
            user, _, equipo = assignments[n % len(assignments)]
            http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
            try:
                while not killed.is_set():
                    sub = new_submission(equipo)
                    try:
                        code, payload, _ = await fetch(
                            "POST", server.base_url + "/api/enviar_tiempos/", sub["body"],
                            token=tokens[user], client=http, request_timeout=30)
                    except (ConnectionError, OSError):
                        continue  # no answer: this phone will retry after the restart
                    assert code == 201, payload
                    assert sorted(payload["created"]) == sorted(sub["ids"])
                    sub["answered"] = True
                    answered += 1
            finally:
                http.close()

        # One phone on bad Wi-Fi whose request is certainly mid-air when the power goes.
        slow = new_submission(event["equipos"]["a"])
        raw = json.dumps(slow["body"]).encode()
        _, slow_writer = await asyncio.open_connection("127.0.0.1", server.port)
        slow_writer.write(("POST /api/enviar_tiempos/ HTTP/1.1\r\nHost: x\r\nAuthorization: "
                           "Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d"
                           "\r\n\r\n" % (tokens["juez1"], len(raw))).encode() + raw[:-5])
        await slow_writer.drain()

        tasks = [asyncio.ensure_future(worker(n)) for n in range(WORKERS)]

        def enough_answered():
            assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
            return answered >= ANSWERED_BEFORE_KILL
        await wait_for_async(enough_answered, timeout=60,
                             what="%d submissions answered" % ANSWERED_BEFORE_KILL)
        server.signal(signal.SIGKILL)  # the laptop's battery dies
        killed.set()
        await asyncio.gather(*tasks)
        slow_writer.close()
        for ws in sockets:
            assert await asyncio.wait_for(ws.read_message(), 10) is None
            ws.close()
        return tokens, started["competencia"]["started_at"]

    tokens, started_at = asyncio.run(before_crash())
    server.wait(10)
    answered = [s for s in submissions if s["answered"]]
    unanswered = [s for s in submissions if not s["answered"]]
    assert len(answered) >= ANSWERED_BEFORE_KILL and unanswered

    # On disk, before anyone retries: every 201 complete and once; nothing half-written.
    all_ids = [rid for s in submissions for rid in s["ids"]]
    counts, total = stored_counts(db_path, all_ids)
    for sub in answered:
        assert [counts[rid] for rid in sub["ids"]] == [1] * len(sub["ids"])
    for sub in submissions:
        assert {counts[rid] for rid in sub["ids"]} in ({0}, {1}), sub["ids"]
    assert total == sum(counts.values())  # no stray rows

    server.start()  # same database, same port

    async def after_restart():
        # The race is still running; reconnecting judges get the original start at once.
        for juez_id, user in ((event["jueces"][0], "juez1"), (event["jueces"][1], "juez2")):
            ws, hello = await judge_socket("%s/ws/juez/%d/?token=%s" % (
                server.ws_base, juez_id, tokens[user]))
            assert hello["data"]["competencia"]["estado"] == "en_curso"
            start = await next_message(ws)
            assert start["type"] == "carrera.iniciada"
            assert start["data"]["started_at"] == started_at
            ws.close()
        # Phones retry what got no answer: 201, each record created or reported duplicate.
        for sub in unanswered:
            user = "juez2" if sub["body"]["equipo_id"] == event["equipos"]["c"] else "juez1"
            code, payload, _ = await fetch("POST", server.base_url + "/api/enviar_tiempos/",
                                           sub["body"], token=tokens[user])
            assert code == 201, payload
            assert sorted(payload["created"] + payload["duplicates"]) == sorted(sub["ids"])
        # And a second retry of everything changes nothing.
        for sub in answered[:5]:
            user = "juez2" if sub["body"]["equipo_id"] == event["equipos"]["c"] else "juez1"
            code, payload, _ = await fetch("POST", server.base_url + "/api/enviar_tiempos/",
                                           sub["body"], token=tokens[user])
            assert code == 201 and payload["created"] == [], payload

    asyncio.run(after_restart())
    counts, total = stored_counts(db_path, all_ids)
    assert set(counts.values()) == {1}
    assert total == len(all_ids)


def test_the_standings_worker_does_not_outlive_a_killed_server(spawn, event, config):
    """The standings' worker process leaves when the server dies without stopping (SIGKILL):
    no orphan keeps the event database open on the laptop."""
    import os
    import subprocess
    from helpers import wait_for
    server = spawn(config["database"]["path"]).start()

    async def standings():
        code, _, _ = await fetch("GET", server.base_url + "/api/competencias/%d/resultados/"
                                 % event["competencia"])
        assert code == 200
    asyncio.run(standings())
    children = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True,
                              text=True).stdout.split()
    workers = [pid for pid in children
               if b"multiprocessing" in Path("/proc/%s/cmdline" % pid).read_bytes()]
    assert workers, children  # the worker is running
    server.signal(signal.SIGKILL)
    server.wait()
    wait_for(lambda: not any(os.path.exists("/proc/%s" % pid) for pid in workers),
             timeout=15, what="the worker processes to leave")


def _processes_marked(mark):
    """Pids of the live processes (not zombies) whose environment carries ``mark``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if mark in environ and state != "Z":
            found.append(int(entry.name))
    return found


def test_no_worker_outlives_a_server_killed_at_any_moment_of_its_start(spawn, event, config):
    """SIGKILL at several moments of start-up, from before the standings' worker exists to
    after it is ready, and in the window where it is still importing the server's modules (its
    parent gone before it could know it had one): no process of that server survives."""
    import subprocess
    import sys
    from helpers import ROOT, wait_for
    server = spawn(config["database"]["path"])
    moments = [("after launch", 0.3)] + [("after the worker appeared", s)
                                          for s in (0.0, 0.05, 0.2, 0.5)]
    for what, delay in moments:
        mark = "SERVER5K_TEST_RUN=%s" % uuid.uuid4().hex
        env = dict(server.env(), SERVER5K_TEST_RUN=mark.split("=", 1)[1])
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "server5k.py"), "--config", str(server.config_path),
             "serve"], env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            if what == "after the worker appeared":
                wait_for(lambda: [pid for pid in _processes_marked(mark.encode())
                                  if pid != process.pid], timeout=30,
                         what="the standings worker to be spawned")
            time.sleep(delay)  # the moment itself is what this test varies
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        wait_for(lambda: not _processes_marked(mark.encode()), timeout=10,
                 what="every process of the server killed %g s %s to leave" % (delay, what))
