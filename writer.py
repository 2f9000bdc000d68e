"""The one writer: every write of the process, in durable group commits.

Peewee keeps one connection (and one transaction) per thread; the :class:`Writer` thread owns the
write connection. It takes every job waiting in its queue, runs each in its own savepoint inside
one ``BEGIN IMMEDIATE`` transaction, commits once (``synchronous=FULL`` in WAL mode: the commit is
on disk) and only then answers each job. One failing job rolls back to its savepoint and fails
alone. Consecutive jobs of a function that declares a batched form (its ``batched`` attribute,
set where the function is defined: ``submissions.store_submission``) run together through it,
which judges each job on its own but reads and writes for all of them in a few statements.
Its queue is bounded (``max_queued``): a job that does not fit is refused at once with
:class:`Busy`.

Nothing here knows of Tornado: a job is any function of the models, and an answer is a
``concurrent.futures.Future`` or, for a caller on an asyncio loop, an asyncio future settled
once per commit. ``store.py`` builds on it (the reader, hashing and worker pools).
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import sqlite3
import threading

from models import db

log = logging.getLogger("server5k.store")

# The writer's queue (jobs waiting or running) is bounded: when full, a job is refused (Busy).
# Writes: a commit takes a few ms, so thousands waiting means the disk has stalled.
MAX_QUEUED_WRITES = 10_000


class Busy(Exception):
    """A bounded queue is full: the work was refused before it started. ``retry_after`` is a hint
    (seconds) for the caller's answer."""

    def __init__(self, what, retry_after=1):
        super().__init__("%s: queue full" % what)
        self.what = what
        self.retry_after = retry_after


class Writer:
    """Owns every write. Jobs waiting together are committed in one durable transaction.

    ``submit(fn, *args)`` returns a concurrent.futures.Future (``submit_from_loop`` an asyncio
    one) answered only after the commit that contains ``fn``'s work is on disk. A job's
    exception rolls back that job alone and is delivered to its future; the others still commit.
    """

    def __init__(self, database=db, max_batch=512, batched=None, max_queued=MAX_QUEUED_WRITES):
        self.database = database
        self.max_batch = max_batch
        self.max_queued = max_queued
        self.batched = batched  # {fn: its batched form}, else each fn's own ``batched``
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._stopping = False
        self._lock = threading.Lock()  # no job is queued behind the stop marker

    def start(self):
        self._thread = threading.Thread(target=self._run, name="server5k-writer", daemon=True)
        self._thread.start()

    def submit(self, fn, *args, **kwargs):
        return self._enqueue(concurrent.futures.Future(), fn, args, kwargs)

    def submit_from_loop(self, fn, *args, **kwargs):
        """Like submit, called on a running asyncio loop: returns an asyncio future of that loop.

        The writer settles every such future of a batch in one call_soon_threadsafe, so the loop
        wakes once per commit rather than once per job.
        """
        return self._enqueue(LoopReply(asyncio.get_running_loop()), fn, args, kwargs).future

    def _enqueue(self, reply, fn, args, kwargs):
        with self._lock:
            if not self._stopping:
                if self._queue.qsize() >= self.max_queued:  # the disk is far behind: say so
                    raise Busy("writer")
                self._queue.put((reply, fn, args, kwargs))
                return reply
        reply.set_exception(RuntimeError("writer stopped"))
        return reply

    def stop(self, timeout=10):
        """Commit everything already submitted, then close the write connection."""
        with self._lock:
            self._stopping = True
            self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        self.database.connect(reuse_if_open=True)
        try:
            stop = False
            while not stop:
                item = self._queue.get()
                batch = []
                while True:
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                    if len(batch) >= self.max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._commit(batch)
        finally:
            with self._lock:  # also when the thread dies: later jobs are refused at once
                self._stopping = True
            self.database.close()
            # Anything still queued is refused, never left hanging.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None and item[0].set_running_or_notify_cancel():
                    _answer([(item[0], (False, RuntimeError("writer stopped")))])

    def _commit(self, batch):
        live = [job for job in batch if job[0].set_running_or_notify_cancel()]
        outcomes = []
        try:
            with self.database.atomic():
                for run in _runs(live):
                    outcomes.extend(self._run_jobs(run))
                self._check_transaction()
        except BaseException as exc:  # the commit itself failed: nothing of the batch is stored
            log.exception("commit of %d writes failed", len(live))
            lost = exc  # (Peewee's rollback of a lost transaction fails too: say what happened)
            while lost is not None and not isinstance(lost, TransactionLost):
                lost = lost.__context__
            outcomes = [(False, lost or exc)] * len(live)
            if not isinstance(exc, Exception):  # SystemExit and the like end the writer...
                _answer([(job[0], outcome) for job, outcome in zip(live, outcomes)])
                raise  # ...but only after every job of the batch has its answer
        _answer([(job[0], outcome) for job, outcome in zip(live, outcomes)])

    def _run_jobs(self, run):
        """[(ok, result or exception)] for consecutive jobs of one function.

        A function with a batched form (``self.batched``) runs all of them in one call and one
        savepoint; should that call raise, its writes are rolled back and the jobs run one by
        one. Otherwise each job runs in its own savepoint, so a failure undoes that job alone.
        """
        fn = run[0][1]
        many = (getattr(fn, "batched", None) if self.batched is None
                else self.batched.get(fn))
        if many is not None and len(run) > 1 and not any(kwargs for *_, kwargs in run):
            try:
                with savepoint(self.database, "batch"):
                    return many([args for _, _, args, _ in run])
            except Exception:  # noqa: BLE001  (each job's own run below reports it)
                self._check_transaction()
                log.warning("batch of %d %s jobs failed; running them one by one",
                            len(run), fn.__name__, exc_info=True)
        outcomes = []
        for _, fn, args, kwargs in run:
            try:
                with savepoint(self.database, "job"):
                    outcomes.append((True, fn(*args, **kwargs)))
            except Exception as exc:  # one job's failure is that job's answer
                self._check_transaction()
                outcomes.append((False, exc))
        return outcomes

    def _check_transaction(self):
        """Raise if SQLite has rolled the batch's transaction back by itself.

        It does so on some errors (a full disk, an I/O error). Every job run so far is then lost,
        and going on would run the later jobs outside any transaction, each statement committed
        on its own, half-writing jobs that are then told the batch failed. Raising stops there
        and fails them all with this error, which says what happened.
        """
        if not self.database.connection().in_transaction:
            raise TransactionLost("SQLite rolled back the transaction; nothing was stored")


class TransactionLost(sqlite3.OperationalError):
    """SQLite rolled back the writer's transaction by itself: the whole batch failed."""


class LoopReply:
    """Where the writer answers a job submitted from an asyncio loop: ``future``, of that loop."""

    def __init__(self, loop):
        self.loop = loop
        self.future = loop.create_future()

    def set_running_or_notify_cancel(self):
        return not self.future.cancelled()  # a late cancel is handled when settling

    def set_exception(self, exc):  # only before the job is queued, on the loop itself
        self.future.set_exception(exc)


def _answer(answers):
    """Deliver [(future or LoopReply, (ok, value))]: each loop's replies in one callback."""
    to_loops = {}
    for future, outcome in answers:
        if isinstance(future, LoopReply):
            to_loops.setdefault(future.loop, []).append((future.future, outcome))
        elif outcome[0]:
            future.set_result(outcome[1])
        else:
            future.set_exception(outcome[1])
    for loop, replies in to_loops.items():
        try:
            loop.call_soon_threadsafe(_settle, replies)
        except RuntimeError:  # that loop is closed: nobody is waiting for these any more
            pass


def _settle(replies):
    for future, (ok, value) in replies:
        if future.done():  # cancelled while the writer worked
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


@contextlib.contextmanager
def savepoint(database, name):
    """A named savepoint: released on success, rolled back and released on an exception.

    (Peewee's names each savepoint afresh, so SQLite prepares its SQL anew every time.)
    """
    database.execute_sql('SAVEPOINT "%s"' % name)
    try:
        yield
    except BaseException:
        if database.connection().in_transaction:  # else SQLite already rolled everything back
            database.execute_sql('ROLLBACK TO SAVEPOINT "%s"' % name)
            database.execute_sql('RELEASE SAVEPOINT "%s"' % name)
        raise
    database.execute_sql('RELEASE SAVEPOINT "%s"' % name)


def _runs(jobs):
    """Split jobs into runs of consecutive jobs with the same function (order is kept)."""
    run = []
    for job in jobs:
        if run and job[1] is not run[0][1]:
            yield run
            run = []
        run.append(job)
    if run:
        yield run
