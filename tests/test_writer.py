"""The group-commit writer keeps submissions isolated.

Every job waiting in the writer's queue is committed in one transaction. Submissions that wait
together are stored by one store_submissions call that judges each on its own; other jobs run in
their own savepoints. These tests hold the writer busy so that many submissions really do share
one batch, make one of them fail inside the writer, and check that the others are committed, that
the failed one left nothing behind, and that no stored row belongs to a submission other than its
own.
"""

import asyncio
import datetime as dt
import sqlite3
import threading
import uuid

import pytest

import models
import ledger
import race_control
import registration
import submissions
import store as store_module
import writer as writer_module
from helpers import registros, stored_rows, wait_for

TEAMS_PER_JUDGE = 2
JUDGES = 6


@pytest.fixture
def crowd(config, event):
    """Six more judges of the race, two teams each: {user_id: (juez_id, [equipo ids])}."""
    crowd = {}
    with models.db.connection_context():
        for n in range(JUDGES):
            juez = registration.create_judge("crowd%d" % n, "crowd-pass", event["competencia"])
            teams = [registration.create_team("Equipo %d-%d" % (n, t), 100 + n * 10 + t, juez.id).id
                     for t in range(TEAMS_PER_JUDGE)]
            crowd[juez.user_id] = (juez.id, teams)
    return crowd


def records(equipo_id, count=15, base_ms=1_500_000):
    """Distinct records for a team (the team id is folded into tiempo so payloads differ)."""
    return registros(count, start_ms=base_ms + equipo_id * 100, step_ms=1,
                     at=dt.datetime(2026, 5, 1, 9, 0, 0), ids=True, validated=True)


def stored(config):
    """Every stored record as {id_registro hex: (equipo_id, juez_id, tiempo)}, read afresh."""
    return {row[0]: row[1:] for row in stored_rows(config["database"]["path"],
                                                   "id_registro, equipo_id, juez_id, tiempo")}


class Gate:
    """A writer job that blocks the writer until opened, so later jobs queue into one batch."""

    def __init__(self, writer):
        self.writer = writer
        self.entered = threading.Event()
        self.release = threading.Event()
        self.future = writer.submit(self._hold)
        assert self.entered.wait(5), "the writer never ran the gate job"

    def _hold(self):
        self.entered.set()
        assert self.release.wait(10)
        return "gate"

    def wait_for_queue(self, jobs, timeout=10):
        wait_for(lambda: self.writer._queue.qsize() >= jobs, timeout, interval=0.005,
                 what="%d submissions to reach the writer" % jobs)

    def open(self):
        self.release.set()


@pytest.fixture
def store(config, event):
    models.open_database(config["database"]["path"])
    store = store_module.Store()
    store.start()
    yield store
    store.close()


def test_one_conflicting_submission_fails_alone_in_a_shared_batch(config, crowd, store):
    # A record already stored for the first team: reusing its id with other data is a conflict.
    (first_user, (first_juez, first_teams)) = next(iter(crowd.items()))
    earlier = records(first_teams[0], count=1)
    store.write(submissions.store_submission, first_user, first_teams[0], earlier).result(5)

    gate = Gate(store.writer)
    jobs = []
    for user_id, (juez_id, teams) in crowd.items():
        for equipo_id in teams:
            payload = records(equipo_id, base_ms=2_000_000)
            jobs.append((user_id, juez_id, equipo_id, payload,
                         store.write(submissions.store_submission, user_id, equipo_id, payload)))
    # The bad one sits in the middle of the batch: 14 fine records and one conflicting id.
    bad_payload = records(first_teams[1], base_ms=3_000_000)
    bad_payload[7] = dict(bad_payload[7], id_registro=earlier[0]["id_registro"])
    bad = store.write(submissions.store_submission, first_user, first_teams[1], bad_payload)
    gate.wait_for_queue(len(jobs) + 1)
    gate.open()

    with pytest.raises(models.Conflict) as caught:
        bad.result(10)
    assert caught.value.code == "id_registro_conflict"
    results = [(user, juez, team, payload, future.result(10))
               for user, juez, team, payload, future in jobs]

    rows = stored(config)
    # Nothing of the failed submission was kept, not even its 14 valid records.
    for record in bad_payload:
        if record["id_registro"] != earlier[0]["id_registro"]:
            assert record["id_registro"] not in rows
    # Every other submission was committed, entirely, and only under its own team and judge.
    for user_id, juez_id, equipo_id, payload, result in results:
        assert result["created"] == [str(uuid.UUID(r["id_registro"])) for r in payload]
        assert result["duplicates"] == []
        for record in payload:
            assert rows[record["id_registro"]] == (equipo_id, juez_id, record["tiempo"])
    assert len(rows) == 1 + sum(len(payload) for *_, payload, _ in results)


def test_an_exception_inside_a_job_rolls_back_only_that_job(config, crowd, store):
    users = list(crowd.items())

    def store_then_fail(user_id, equipo_id, payload):
        submissions.store_submission(user_id, equipo_id, payload)  # rows written, then...
        raise RuntimeError("disk on fire (simulated)")

    gate = Gate(store.writer)
    good = []
    for index, (user_id, (juez_id, teams)) in enumerate(users):
        payload = records(teams[0])
        fn = store_then_fail if index == 2 else submissions.store_submission
        good.append((index, juez_id, teams[0], payload,
                     store.write(fn, user_id, teams[0], payload)))
    gate.wait_for_queue(len(good))
    gate.open()

    rows = None
    for index, juez_id, equipo_id, payload, future in good:
        if index == 2:
            with pytest.raises(RuntimeError):
                future.result(10)
            continue
        future.result(10)
        # Answered after the commit: another connection sees the rows at once.
        rows = stored(config) if rows is None else rows
        assert {r["id_registro"] for r in payload} <= set(rows)
    failed_ids = {r["id_registro"] for r in good[2][3]}
    assert not failed_ids & set(stored(config))
    assert all(rows[h][0] == equipo_id for _, _, equipo_id, payload, _ in good
               for h in (r["id_registro"] for r in payload) if h in rows)


def test_concurrent_identical_retries_store_each_record_once(config, crowd, store):
    """A phone that retries while its first attempt is still queued: one copy, both answered."""
    user_id, (juez_id, teams) = next(iter(crowd.items()))
    payload = records(teams[0])
    gate = Gate(store.writer)
    first = store.write(submissions.store_submission, user_id, teams[0], payload)
    retry = store.write(submissions.store_submission, user_id, teams[0], payload)
    gate.wait_for_queue(2)
    gate.open()
    assert len(first.result(10)["created"]) == 15
    assert retry.result(10)["duplicates"] == [str(uuid.UUID(r["id_registro"])) for r in payload]
    assert len(stored(config)) == 15


def test_same_id_twice_in_one_payload_with_other_data_is_a_conflict(config, crowd, store):
    user_id, (juez_id, teams) = next(iter(crowd.items()))
    payload = records(teams[0], count=3)
    payload[2] = dict(payload[2], id_registro=payload[0]["id_registro"])
    with pytest.raises(models.Conflict):
        store.write(submissions.store_submission, user_id, teams[0], payload).result(5)
    assert stored(config) == {}


def test_a_refused_submission_does_not_shadow_later_ones_in_its_batch(config, crowd, store):
    """Submissions in one batch are judged in order, and a refused one leaves no trace."""
    (user_id, (juez_id, teams)), (other_user, _) = list(crowd.items())[:2]
    earlier = records(teams[1], count=1)
    store.write(submissions.store_submission, user_id, teams[1], earlier).result(5)
    original = records(teams[0], count=3)
    refused = [dict(original[0], id_registro=uuid.uuid4().hex),
               dict(original[1], id_registro=earlier[0]["id_registro"])]  # reused id: conflict
    same_content = [dict(r) for r in original]  # the phone's retry of what it sent

    gate = Gate(store.writer)
    first = store.write(submissions.store_submission, user_id, teams[0], refused)
    wrong_team = store.write(submissions.store_submission, other_user, teams[0], original)
    second = store.write(submissions.store_submission, user_id, teams[0], original)
    retry = store.write(submissions.store_submission, user_id, teams[0], same_content)
    gate.wait_for_queue(4)
    gate.open()

    with pytest.raises(models.Conflict):
        first.result(10)
    with pytest.raises(models.Forbidden):
        wrong_team.result(10)
    # The refused job's first record was never stored, so the next job creates it.
    assert second.result(10)["created"] == [str(uuid.UUID(r["id_registro"])) for r in original]
    # The same ids as records stored earlier in the batch: duplicates of them.
    assert retry.result(10) == {"created": [], "competencia_id": retry.result()["competencia_id"],
                                "duplicates": second.result()["created"]}
    rows = stored(config)
    assert set(rows) == {earlier[0]["id_registro"]} | {r["id_registro"] for r in original}


def test_a_failing_batch_is_rolled_back_and_its_jobs_run_one_by_one(config, crowd, store,
                                                                     monkeypatch):
    batch = submissions.store_submission.batched
    calls = []

    def write_then_fail(jobs):
        calls.append(len(jobs))
        batch(jobs)  # rows of every job written, then SQLite (say) fails
        raise sqlite3.OperationalError("simulated failure after the insert")

    monkeypatch.setattr(submissions.store_submission, "batched", write_then_fail)
    gate = Gate(store.writer)
    jobs = []
    for user_id, (juez_id, teams) in crowd.items():
        payload = records(teams[0])
        jobs.append((payload, store.write(submissions.store_submission, user_id, teams[0], payload)))
    gate.wait_for_queue(len(jobs))
    gate.open()
    for payload, future in jobs:
        assert future.result(10)["created"] == [str(uuid.UUID(r["id_registro"])) for r in payload]
    assert calls == [len(jobs)]  # they did share one batch, and it was abandoned
    assert len(stored(config)) == 15 * len(jobs)  # stored once each, by the one-by-one runs


def test_loop_jobs_of_one_commit_are_answered_in_one_wake_up(config, crowd, store):
    """Jobs submitted from the event loop get asyncio futures, all settled by one callback."""
    users = list(crowd.items())

    async def main():
        loop = asyncio.get_running_loop()
        wakeups = []
        real = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a, **k: (wakeups.append(a[0]), real(*a, **k))[1]
        gate = await loop.run_in_executor(None, Gate, store.writer)
        futures = [store.write_from_loop(submissions.store_submission, user_id, teams[0],
                                         records(teams[0])) for user_id, (_, teams) in users]
        other_team = users[1][1][1][0]  # assigned to another judge
        refused = store.write_from_loop(submissions.store_submission, users[0][0], other_team,
                                        records(other_team))
        cancelled = store.write_from_loop(submissions.store_submission, users[0][0],
                                          users[0][1][1][1], records(users[0][1][1][1]))
        cancelled.cancel()  # e.g. its request went away: the others must not care
        await loop.run_in_executor(None, gate.wait_for_queue, len(futures) + 2)
        gate.open()
        answers = await asyncio.gather(*futures)
        with pytest.raises(models.Forbidden):
            await refused
        # The writer has posted every reply of that commit once a job queued after it has run.
        await loop.run_in_executor(None, lambda: store.write(lambda: None).result(10))
        return wakeups, answers

    wakeups, answers = asyncio.run(main())
    assert [len(answer["created"]) for answer in answers] == [15] * len(crowd)
    # The gate's own future is a concurrent one; every loop job came back in a single callback.
    assert wakeups.count(writer_module._settle) == 1
    assert len(stored(config)) == 15 * len(crowd)


@pytest.mark.parametrize("failing", ["first", "middle", "last"])
def test_when_sqlite_rolls_back_the_whole_batch_no_job_is_told_stored(config, crowd, store,
                                                                      failing):
    """A full disk or an I/O error makes SQLite roll back the transaction by itself."""
    users = list(crowd.items())

    def store_then_lose_transaction(user_id, equipo_id, payload):
        submissions.store_submission(user_id, equipo_id, payload)
        models.db.execute_sql("ROLLBACK")  # what SQLite does on SQLITE_FULL or SQLITE_IOERR
        raise sqlite3.OperationalError("database or disk is full (simulated)")

    position = {"first": 0, "middle": len(users) // 2, "last": len(users) - 1}[failing]
    gate = Gate(store.writer)
    futures = []
    for index, (user_id, (juez_id, teams)) in enumerate(users):
        fn = store_then_lose_transaction if index == position else submissions.store_submission
        # A create_team between submissions splits them into separate runs of jobs.
        if index % 2:
            futures.append(store.write(registration.create_team, "Extra %d" % index, 900 + index,
                                       juez_id))
        futures.append(store.write(fn, user_id, teams[0], records(teams[0])))
    gate.wait_for_queue(len(futures))
    gate.open()
    for future in futures:
        with pytest.raises(store_module.TransactionLost):
            future.result(10)
    assert stored(config) == {}
    # The writer goes on: the next submission is stored.
    user_id, (juez_id, teams) = users[0]
    assert len(store.write(submissions.store_submission, user_id, teams[1],
                           records(teams[1])).result(10)["created"]) == 15


class Fatal(BaseException):
    """Not an Exception: what a SystemExit raised inside a job would be."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_job_that_ends_the_writer_leaves_no_caller_waiting(config, crowd, store):
    def fatal():
        raise Fatal("the writer thread ends here")

    user_id, (juez_id, teams) = next(iter(crowd.items()))
    gate = Gate(store.writer)
    before = store.write(submissions.store_submission, user_id, teams[0], records(teams[0]))
    dying = store.write(fatal)
    gate.wait_for_queue(2)
    gate.open()
    with pytest.raises(Fatal):
        dying.result(10)
    with pytest.raises(Fatal):  # its batch was rolled back with it, and says so
        before.result(10)
    store.writer._thread.join(10)
    later = store.write(submissions.store_submission, user_id, teams[1], records(teams[1]))
    with pytest.raises(RuntimeError, match="writer stopped"):
        later.result(0)  # refused at once, not queued for a writer that is gone
    assert stored(config) == {}


# ------------------------------------------------------------------------------------------------
# The same through the HTTP API: concurrent judges, one bad submission in the shared batch.
# ------------------------------------------------------------------------------------------------
def wire(payload):
    return [{"timestamp": r["timestamp"].isoformat() + "Z", "tiempo": r["tiempo"],
             "id_registro": str(uuid.UUID(r["id_registro"]))} for r in payload]


@pytest.mark.gen_test(timeout=30)
async def test_api_submissions_sharing_a_commit_stay_isolated(app, client, config, crowd):
    tokens = {}
    for n, user_id in enumerate(crowd):
        tokens[user_id] = await client.access("crowd%d" % n, "crowd-pass")
    store = app.settings["server5k_store"]
    first_user = next(iter(crowd))
    first_team = crowd[first_user][1][0]
    earlier = records(first_team, count=1)
    code, _ = await client.post("/api/enviar_tiempos/", {"equipo_id": first_team,
                                                         "registros": wire(earlier)},
                                token=tokens[first_user])
    assert code == 201

    gate = await asyncio.get_running_loop().run_in_executor(None, Gate, store.writer)
    sent = []
    # One team per judge: seven requests in flight stay under the HTTP client's 10 connections.
    for user_id, (juez_id, teams) in crowd.items():
        payload = records(teams[0], base_ms=2_000_000)
        sent.append((juez_id, teams[0], payload, client.post(
            "/api/enviar_tiempos/", {"equipo_id": teams[0], "registros": wire(payload)},
            token=tokens[user_id])))
    bad_payload = records(crowd[first_user][1][1], base_ms=4_000_000)
    bad_payload[3] = dict(bad_payload[3], id_registro=earlier[0]["id_registro"])
    bad = client.post("/api/enviar_tiempos/", {"equipo_id": crowd[first_user][1][1],
                                               "registros": wire(bad_payload)},
                      token=tokens[first_user])
    tasks = [asyncio.ensure_future(c) for *_, c in sent] + [asyncio.ensure_future(bad)]
    # Wait (off the loop) until every request is queued behind the gate, then let them commit.
    await asyncio.get_running_loop().run_in_executor(None, gate.wait_for_queue, len(tasks))
    gate.open()
    answers = await asyncio.gather(*tasks)

    bad_code, bad_body = answers[-1]
    assert bad_code == 409 and bad_body["code"] == "id_registro_conflict"
    rows = stored(config)
    for record in bad_payload[:3] + bad_payload[4:]:
        assert record["id_registro"] not in rows
    for (juez_id, equipo_id, payload, _), (code, body) in zip(sent, answers):
        assert code == 201, body
        assert body["created"] == [str(uuid.UUID(r["id_registro"])) for r in payload]
        for record in payload:
            assert rows[record["id_registro"]] == (equipo_id, juez_id, record["tiempo"])
    assert len(rows) == 1 + 15 * len(sent)


def config_competition(equipo_id):
    with models.db.connection_context():
        return models.Equipo.get_by_id(equipo_id).competencia_id


def test_corrections_and_submissions_sharing_a_batch_stay_consistent(config, crowd, store):
    """Issue 12: corrections queue between submissions in one writer batch; each sees exactly
    what the jobs before it committed, and the history has one entry per correction."""
    (user_a, (_, (team_a, team_b))), (user_c, (_, (team_c, _))) = list(crowd.items())[:2]
    first = records(team_a, count=3)
    store.write(submissions.store_submission, user_a, team_a, first).result(5)
    cid = store.write(race_control.start_competition, config_competition(team_a)).result(5)["id"]
    ids = [str(uuid.UUID(r["id_registro"])) for r in first]
    later = records(team_c, count=2, base_ms=2_000_000)

    gate = Gate(store.writer)
    jobs = [
        store.write(race_control.void_record, None, ids[0], "toque por error"),
        # The phone retries its first submission: all duplicates, the voided one stays voided.
        store.write(submissions.store_submission, user_a, team_a, first),
        store.write(race_control.edit_record, None, ids[1], "equipo equivocado", team_b),
        store.write(submissions.store_submission, user_c, team_c, later),
        store.write(race_control.shift_times, None, cid, 1_000, "salida tarde"),
        # Queued after the adjustment: a submission whose records the adjustment covers too.
        store.write(submissions.store_submission, user_a, team_b, records(team_b, count=1,
                                                                          base_ms=3_000_000)),
    ]
    gate.wait_for_queue(len(jobs))
    gate.open()
    voided = jobs[0].result(10)[1]
    assert voided["anulado"] is True
    assert jobs[1].result(10)["duplicates"] == ids and jobs[1].result()["created"] == []
    assert jobs[2].result(10)[1]["equipo_id"] == team_b
    assert len(jobs[3].result(10)["created"]) == 2
    comp, affected = jobs[4].result(10)
    assert affected == 3 + 2  # every record stored by then, voided one included
    assert len(jobs[5].result(10)["created"]) == 1

    with models.db.connection_context():
        state = ledger.competition_state(cid)
        by_id = {models.uuid_text(r.hex_id): r for r in state["records"]}
        assert by_id[ids[0]].anulado and not by_id[ids[0]].cuenta
        assert by_id[ids[1]].equipo_id == team_b
        assert all(r.tiempo == r.tiempo_recibido + 1_000 for r in state["records"])
        kinds = [a.accion for a in models.Accion.select().where(models.Accion.competencia == cid)
                 .order_by(models.Accion.id)]
    assert kinds == ["iniciar", "anular", "mover", "ajustar"]
    assert len(stored(config)) == 3 + 2 + 1  # the retry stored nothing
