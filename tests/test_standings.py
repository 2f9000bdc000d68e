"""The standings are computed once per change and served from memory: a crowd asking at once
costs one ranking, a request after a change waits for the computation that includes it, and
nothing is kept for competitions that do not exist."""

import asyncio
import csv
import io
import json
import os
import threading

import pytest

import handlers.standings
import models
import registration
import store
from helpers import T0, wait_for_async


@pytest.fixture
def computations(monkeypatch):
    """Every standings computation the app runs, counted; ``gate`` (a threading.Event) can hold
    them on their reader thread."""
    seen = {"count": 0, "running": 0, "most_at_once": 0, "gate": None}
    compute = handlers.standings.compute
    lock = threading.Lock()

    def counted(competencia_id):
        with lock:
            seen["count"] += 1
            seen["running"] += 1
            seen["most_at_once"] = max(seen["most_at_once"], seen["running"])
        try:
            if seen["gate"] is not None:
                assert seen["gate"].wait(10), "the test never released the computation"
            return compute(competencia_id)
        finally:
            with lock:
                seen["running"] -= 1

    monkeypatch.setattr(handlers.standings, "compute", counted)
    # On a public reader thread rather than the worker process, where this test cannot see it.
    monkeypatch.setattr(store.Store, "compute", store.Store.read_public)
    return seen


def results_path(event, csv_format=False):
    return "/api/competencias/%d/resultados/%s" % (event["competencia"],
                                                    "?format=csv" if csv_format else "")


@pytest.mark.gen_test(timeout=30)
async def test_a_crowd_of_requests_costs_one_computation(client, event, computations):
    answers = await asyncio.gather(*(
        client.request("GET", results_path(event, csv_format=n % 2)) for n in range(30)))
    assert {code for code, _, _ in answers} == {200}
    assert computations["count"] == 1
    # Served from memory afterwards: no new computation, the same standings, a fresh clock.
    code, first = await client.get(results_path(event))
    code, again = await client.get(results_path(event))
    assert computations["count"] == 1
    assert first["clasificacion"] == again["clasificacion"]
    assert first["server_time"] <= again["server_time"]
    # The CSV and the JSON come from that one computation.
    _, _, response = await client.request("GET", results_path(event, csv_format=True))
    table = list(csv.DictReader(io.StringIO(response.body.decode("utf-8")[1:])))
    assert [row["equipo"] for row in table] == [r["equipo"] for r in first["clasificacion"]]


@pytest.mark.gen_test(timeout=30)
async def test_a_request_after_a_change_sees_it(client, event, computations):
    token = await client.access("juez1", "pass-juez1")
    code, before = await client.get(results_path(event))
    await client.enviar_tiempos(token, event["equipos"]["a"], 1_234_000, at=T0, ids=True)
    code, after = await client.get(results_path(event))
    assert computations["count"] == 2
    row = next(r for r in after["clasificacion"] if r["equipo_id"] == event["equipos"]["a"])
    assert row["mejor_ms"] == 1_234_000 and row["posicion"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_requests_during_a_computation_never_start_another(client, app, event,
                                                                 computations):
    """One computation at a time: requests arriving while it runs wait for it, or, after a
    change it cannot include, for the one after it."""
    hub = app.settings["server5k_hub"]
    computations["gate"] = gate = threading.Event()
    first = asyncio.ensure_future(client.get(results_path(event)))
    await wait_for_async(lambda: computations["running"] == 1, what="the computation to start")
    joining = [asyncio.ensure_future(client.get(results_path(event))) for _ in range(5)]
    hub.records_stored(event["competencia"], event["equipos"]["a"], 1)  # a change meanwhile
    after_change = [asyncio.ensure_future(client.get(results_path(event))) for _ in range(5)]
    await asyncio.sleep(0.3)  # time enough for a wrongly started second computation
    assert computations["count"] == 1
    gate.set()
    for request in [first, *joining, *after_change]:
        code, _ = await request
        assert code == 200
    assert computations["count"] == 2  # the one running, then one for the change
    assert computations["most_at_once"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_standings_are_computed_again_after_max_age(client, app, event, computations):
    """A change made by another process (the CLI writing the database) is not announced: it
    shows once the standings are ``max_age`` old."""
    await client.get(results_path(event))
    with models.db.connection_context():
        registration.create_team("Equipo Tardío", 77, event["jueces"][0])
    code, stale = await client.get(results_path(event))
    assert 77 not in [r["dorsal"] for r in stale["clasificacion"]]
    app.settings["server5k_standings"].max_age = 0
    code, fresh = await client.get(results_path(event))
    assert 77 in [r["dorsal"] for r in fresh["clasificacion"]]
    assert computations["count"] == 2


@pytest.mark.gen_test
async def test_unknown_competitions_are_404_and_leave_nothing_behind(client, app, event,
                                                                    computations):
    for cid in (999, 12345, 10**17):
        code, answer = await client.get("/api/competencias/%d/resultados/" % cid)
        assert (code, answer["code"]) == (404, "competition_not_found")
    standings = app.settings["server5k_standings"]
    assert computations["count"] == 0
    assert not (set(standings._current) | set(standings._last) | set(standings._changes)) - {
        event["competencia"]}


@pytest.mark.gen_test(timeout=30)
async def test_spectators_get_each_computation_as_the_api_does(client, app, event):
    ws, _ = await client.spectator(event["competencia"])
    token = await client.access("juez2", "pass-juez2")
    await client.enviar_tiempos(token, event["equipos"]["c"], 999_000, at=T0, ids=True)
    pushed = json.loads(await asyncio.wait_for(ws.read_message(), 10))
    code, served = await client.get(results_path(event))
    served.pop("server_time")
    assert pushed == {"type": "resultados", "data": served}
    ws.close()


@pytest.mark.gen_test(timeout=60)
async def test_standings_are_computed_in_a_worker_process_that_comes_back_if_it_dies(
        client, app, event):
    """The ranking's Python runs in a process of its own (never on the loop's interpreter
    lock), with the server's own settings; a worker killed mid-race costs at most one 503 with
    Retry-After, and the next request is answered by a new one."""
    import os
    import signal
    computers = app.settings["server5k_store"]._computers
    assert isinstance(computers, store.ProcessPool)
    code, before = await client.get(results_path(event))
    assert code == 200
    workers = list(computers._executor._processes)
    assert workers and os.getpid() not in workers
    for pid in workers:  # below the server's priority: the start notice gets the CPU first
        assert os.getpriority(os.PRIO_PROCESS, pid) > os.getpriority(os.PRIO_PROCESS, 0)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    token = await client.access("juez1", "pass-juez1")
    # the standings are stale:
    await client.enviar_tiempos(token, event["equipos"]["a"], 1_234_567, at=T0, ids=True)
    code, answer, response = await client.request("GET", results_path(event))
    if code == 503:  # the computation that met the dead worker
        assert answer["code"] == "server_busy" and response.headers["Retry-After"]
        code, answer, _ = await client.request("GET", results_path(event))
    assert code == 200, answer
    assert answer["regla"] == before["regla"]
    assert any(row["mejor_ms"] == 1_234_567 for row in answer["clasificacion"])
    assert set(computers._executor._processes).isdisjoint(workers)


def test_the_worker_outlives_the_thread_that_first_needed_it(tmp_path):
    """The worker dies with the server (PR_SET_PDEATHSIG), which on Linux means with the thread
    that spawned it: a job first submitted from a short-lived thread must not spawn the worker
    there, or the worker dies when that thread ends."""
    import peewee
    path = str(tmp_path / "pool.db")
    peewee.SqliteDatabase(path).connect()
    pool = store.ProcessPool(1, 4, "server5k-test-compute", path)
    try:
        first = []
        thread = threading.Thread(target=lambda: first.append(
            pool.submit(store._run_connected, os.getpid, (), {}).result(30)))
        thread.start()
        thread.join(30)
        worker = first[0]
        assert worker != os.getpid()
        # The thread is gone; the worker still answers, and is the same one.
        assert pool.submit(store._run_connected, os.getpid, (), {}).result(30) == worker
    finally:
        pool.shutdown()
