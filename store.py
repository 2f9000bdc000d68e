"""The write path: the one writer thread (group commit), the reader and hashing threads, the
standings' worker process, and consistent copies of the database (backup, checkpoint).

Peewee keeps one connection (and one transaction) per thread. Every coroutine on the Tornado
loop shares the loop thread, so no database work runs there at all:

* all writes go through the one writer thread (``writer.py``): group commits, each durable
  before any of its jobs is answered.
* reads run on reader threads, each with its own connection (WAL lets them read while the writer
  writes), in two pools: one for identity checks and the reads of judges and organizers, and a
  separate one for anonymous public reads (team pages, the list of competitions, QR codes), so
  a crowd of spectators never queues ahead of a judge. Password hashing has threads of its own
  (scrypt runs outside the interpreter lock).
* the standings are computed in a worker process (:class:`ProcessPool`, ``Store.compute``): a
  ranking of thousands of records is tens to hundreds of ms of Python, which on a thread would
  hold the interpreter lock that every wake-up of the event loop needs.
* every queue is bounded (:class:`BoundedPool`, the writer's ``max_queued``): work that does not
  fit is refused at once with :class:`Busy`, never queued without end (the HTTP layer answers 503
  with ``Retry-After``).

Nothing here knows of Tornado: a job is any function of the models, and an answer is a
``concurrent.futures.Future`` or, for a caller on an asyncio loop, an asyncio future.
"""

import concurrent.futures
import contextlib
import ctypes
import logging
import multiprocessing
import os
import queue
import re
import signal
import sqlite3
import sys
import tempfile
import threading
import time

import models
import race_defaults
import replica
from models import db
# The writer's names, as the rest of the house has always found them here.
from writer import (  # noqa: F401
    MAX_QUEUED_WRITES, Busy, TransactionLost, Writer, savepoint)

log = logging.getLogger("server5k.store")

# Bounds of the queues (jobs waiting or running). A full queue refuses at once (Busy).
# (The writer's: writer.MAX_QUEUED_WRITES.)
# Reads of judges and organizers (identity checks, /api/me/, the judges board, corrections).
READERS, MAX_QUEUED_READS = 4, 1024
# Anonymous reads: team pages, the list of competitions, QR codes.
PUBLIC_READERS, MAX_QUEUED_PUBLIC_READS = 2, 32
# Standings computations: Python work of tens to hundreds of ms (a ranking of 7,500 records and
# its JSON and CSV), in a worker process of their own, so that it never holds the interpreter
# lock the event loop needs (a thread's would: every wake-up of the loop would wait for it).
COMPUTERS, MAX_QUEUED_COMPUTATIONS = 1, 32
WORKER_NICENESS = 10
# How long a job that comes before any warm-up waits for its worker to be spawned (~10 ms).
SPAWN_WAIT_S = 10
# Password checks: scrypt takes ~50-100 ms on one core, so 64 queued is a wait of a second or
# two; beyond that a login is refused rather than left waiting.
HASHERS, MAX_QUEUED_HASHES = 2, 64


class BoundedPool:
    """Worker threads behind a queue of at most ``max_pending`` jobs (running ones included).

    ``submit`` never blocks and never queues beyond the bound: when full it raises :class:`Busy`
    at once. ``pending`` is how many jobs are waiting or running.
    """

    def __init__(self, threads, max_pending, name):
        self.name = name
        self.max_pending = max_pending
        self.pending = 0
        self._lock = threading.Lock()
        self._executor = self._new_executor(threads)

    def _new_executor(self, workers):
        return concurrent.futures.ThreadPoolExecutor(workers, self.name)

    def submit(self, fn, *args):
        with self._lock:
            if self.pending >= self.max_pending:
                raise Busy(self.name)
            self.pending += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return future

    def _release(self, _future):
        with self._lock:
            self.pending -= 1

    def shutdown(self):
        self._executor.shutdown(wait=True)


class ProcessPool(BoundedPool):
    """A BoundedPool of worker processes, each with its own connection to ``database_path`` and
    the models configured as in this process. Jobs are module-level functions whose arguments
    and results pickle.

    Starting a worker costs its caller ~10 ms (the spawn), so it is done on a thread of its own
    (``warm_up``), never by a job's submitter on the event loop (a job that comes before any
    warm-up, in a test's app, waits for that thread's spawn). A worker that dies fails its jobs
    with BrokenProcessPool (the HTTP layer answers 503 with Retry-After) and the pool is
    replaced at once, its worker started on that thread.

    That thread is one per pool and lives as long as this process: on Linux a worker asks the
    kernel to kill it when the thread that spawned it ends (``PR_SET_PDEATHSIG`` is tied to the
    spawning thread, not the process), so a short-lived starter would take its worker with it."""

    def __init__(self, processes, max_pending, name, database_path):
        self._processes, self._database_path = processes, database_path
        self._starts = queue.SimpleQueue()  # (executor, spawned event) for the starter thread
        self._starter = None
        self._starting = None  # the latest (executor, spawned event) handed to the starter
        self._closed = False
        super().__init__(processes, max_pending, name)

    def _new_executor(self, workers):
        return concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_starts,
            initargs=(os.getpid(), self._database_path, race_defaults.configuration()))

    def warm_up(self):
        """Start the workers now, on the pool's starter thread: not on the first request's.
        Returns an event set once they are spawned (not yet ready)."""
        with self._lock:
            executor = self._executor
            if self._closed:
                return _SET
            if self._starting is None or self._starting[0] is not executor:
                self._starting = (executor, threading.Event())
                self._starts.put(self._starting)
            if self._starter is None:
                self._starter = threading.Thread(target=self._start_workers, daemon=True,
                                                 name=self.name + "-start")
                self._starter.start()
            return self._starting[1]

    def _start_workers(self):
        while True:
            executor, spawned = self._starts.get()
            try:
                with contextlib.suppress(Exception):
                    ready = executor.submit(_nothing)  # the spawn happens in this call
                    spawned.set()
                    ready.result()
            finally:
                spawned.set()

    def submit(self, fn, *args):
        executor = self._executor
        # Only the starter thread spawns (a job before any warm-up waits for the spawn, as it
        # would have spawned the worker itself).
        self.warm_up().wait(SPAWN_WAIT_S)
        try:
            future = super().submit(fn, *args)
        except concurrent.futures.BrokenExecutor:
            self._replace(executor)
            raise Busy(self.name) from None
        future.add_done_callback(lambda done: self._replaced_if_broken(done, executor))
        return future

    def _replaced_if_broken(self, future, executor):
        if not future.cancelled() and isinstance(future.exception(),
                                                 concurrent.futures.BrokenExecutor):
            self._replace(executor)

    def _replace(self, broken):
        with self._lock:
            if self._executor is not broken or self._closed:
                return  # replaced already, or stopping
            log.error("the %s worker process died; starting another", self.name)
            self._executor = self._new_executor(self._processes)
        broken.shutdown(wait=False)
        self.warm_up()

    def shutdown(self):
        """Stop the workers at once: neither their jobs (a ranking only reads: ending it loses
        nothing) nor a worker still starting are waited for, so a server stopped seconds after
        it started does not wait for its worker's spawn."""
        with self._lock:
            self._closed = True
            executor = self._executor
        processes = list((executor._processes or {}).values())  # (emptied by shutdown)
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(SPAWN_WAIT_S)


_SET = threading.Event()  # what warm_up answers once the pool is shut down
_SET.set()


# prctl(2): deliver a signal to this process when the thread that spawned it ends.
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """Ask the kernel to SIGKILL this process when the thread that spawned it ends (Linux's
    prctl; the caller then checks its parent is still the one it expects). False where it
    cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL,
                                                       0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _leave_with(server_pid):
    """A worker outlives no server, whenever the server dies, even during the worker's own
    start-up. On Linux the kernel kills the worker the moment its parent does (asked first,
    then the parent checked: a server killed before the request was made has already handed
    its worker to another parent, and the worker leaves at once). Elsewhere, and as a second
    guard, a thread watches the parent and the worker leaves within a second of its death."""
    die_with_parent()
    if os.getppid() != server_pid:
        os._exit(0)
    threading.Thread(target=_exit_with, args=(server_pid,), daemon=True,
                     name="server5k-orphan-watch").start()


def _worker_starts(server_pid, database_path, configuration):
    """A worker process starts here: first its tie to the server (``_leave_with``), then the
    database (no schema work: the server did it), the models' configuration, and Ctrl-C left to
    the server, which stops its workers. It runs at a lower priority than the server: on a
    laptop's two cores busy with a ranking, a judge's start notice must get the CPU first; the
    standings can wait a few ms."""
    _leave_with(server_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no os.nice (Windows)
        os.nice(WORKER_NICENESS)
    race_defaults.configure(**configuration)
    db.init(database_path, pragmas=models.PRAGMAS)


def _exit_with(server_pid):
    """When the server is gone (killed, not stopped: a stop shuts the pool down), its worker's
    parent changes, and the worker leaves within a second."""
    while os.getppid() == server_pid:
        time.sleep(1.0)
    os._exit(0)


def _run_connected(fn, args, kwargs):
    """A job in a worker process: its own connection, opened once and kept."""
    db.connect(reuse_if_open=True)
    return fn(*args, **kwargs)


def _nothing():
    return None


class Store:
    """Where handlers send database work: ``write`` to the writer, ``read`` and ``read_public``
    to reader threads, ``hash`` to the password-hashing threads.

    Each returns a concurrent.futures.Future; ``write_from_loop`` returns an asyncio future of the
    running loop, which the writer settles with the rest of its commit in one wake-up. Every
    queue is bounded: a full one raises :class:`Busy` at once, from the call itself.

    * ``read``: identity checks and the reads of judges and organizers;
    * ``read_public``: anonymous reads (standings, public pages), on threads of their own, so a
      crowd of spectators can fill its queue without ever delaying a judge's read;
    * ``hash``: password checks, so logins never queue behind reads.
    """

    def __init__(self, database=db, readers=READERS, public_readers=PUBLIC_READERS,
                 hashers=HASHERS):
        self.database = database
        self.writer = Writer(database)
        self._readers = BoundedPool(readers, MAX_QUEUED_READS, "server5k-reader")
        self._public = BoundedPool(public_readers, MAX_QUEUED_PUBLIC_READS, "server5k-public")
        self._hashers = BoundedPool(hashers, MAX_QUEUED_HASHES, "server5k-hash")
        if database is db and database.database not in (":memory:", "", None):
            self._computers = ProcessPool(COMPUTERS, MAX_QUEUED_COMPUTATIONS, "server5k-compute",
                                          database.database)
        else:  # a database a process cannot open as this one does: threads
            self._computers = BoundedPool(COMPUTERS, MAX_QUEUED_COMPUTATIONS, "server5k-compute")

    def start(self):
        self.writer.start()

    def write(self, fn, *args, **kwargs):
        return self.writer.submit(fn, *args, **kwargs)

    def write_from_loop(self, fn, *args, **kwargs):
        """``write`` for code on the asyncio loop: an asyncio future, settled once per commit."""
        return self.writer.submit_from_loop(fn, *args, **kwargs)

    def read(self, fn, *args, **kwargs):
        return self._readers.submit(self._in_connection, fn, args, kwargs)

    def read_public(self, fn, *args, **kwargs):
        return self._public.submit(self._in_connection, fn, args, kwargs)

    def compute(self, fn, *args):
        """CPU-heavy anonymous work (the standings) in the worker process; ``fn`` must be a
        module-level function whose arguments and result pickle."""
        if isinstance(self._computers, ProcessPool):
            return self._computers.submit(_run_connected, fn, args, {})
        return self._computers.submit(self._in_connection, fn, args, {})

    def warm_up(self):
        """Start the standings' worker now, off the caller's thread (it takes ~150 ms to be
        ready), rather than on the first request."""
        if isinstance(self._computers, ProcessPool):
            self._computers.warm_up()

    def hash(self, fn, *args, **kwargs):
        return self._hashers.submit(self._in_connection, fn, args, kwargs)

    def _in_connection(self, fn, args, kwargs):
        self.database.connect(reuse_if_open=True)
        return fn(*args, **kwargs)

    def close(self, timeout=10):
        for pool in (self._readers, self._public, self._hashers, self._computers):
            pool.shutdown()
        self.writer.stop(timeout)


def backup(source_path, target_path):
    """Copy a live database to ``target_path`` with SQLite's online backup API.

    Safe while the server runs and writes (a plain file copy of a WAL database is not: it can
    miss the WAL or catch a page mid-write). The copy is a consistent snapshot taken in one step:
    one read transaction, which in WAL mode never holds up the writer and, unlike a copy in
    steps, cannot start over for ever while every step sees new commits. It is written to a
    temporary file beside ``target_path``, flushed to disk, checked as a restored live copy is
    (``replica.check_copy``: integrity, a Server5K database, its schema), and only then put in
    place the way a restore is (``replica.put_in_place``): a failed or interrupted backup
    leaves nothing under that name (never a half file that later opens as an empty database),
    and an existing file is never replaced. Returns how many time records it holds.
    """
    source_path, target_path = str(source_path), str(target_path)
    if not os.path.exists(source_path):
        raise models.NotFound("La base de datos %s no existe." % source_path,
                              "database_not_found")
    if os.path.lexists(target_path):
        raise models.Conflict("%s ya existe; elija otro nombre." % target_path, "backup_exists")
    folder = os.path.dirname(os.path.abspath(target_path))
    clean_partials(folder)  # a killed backup's leftovers (they can be the database's size)
    handle, partial = tempfile.mkstemp(dir=folder, prefix=".%s.%d." % (
        os.path.basename(target_path), os.getpid()), suffix=".partial")
    os.close(handle)
    try:
        _copy(source_path, partial)
        _fsync(partial)
        try:
            info = replica.check_copy(partial, models.SCHEMA_VERSION, allow_older=True)
            replica.put_in_place(partial, target_path)
        except replica.ReplicaError as exc:
            raise models.Conflict("La copia no se ha guardado: %s." % exc,
                                  "backup_refused") from None
        _fsync(folder)
        return info["records"]
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


# A backup's or an import's temporary file: .NAME.PID.RANDOM.partial (PID: the process
# writing it).
_PARTIAL = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.partial$")


def clean_partials(folder):
    """Remove the temporary files of backups and roster imports (``roster_import``'s spool
    files) whose process is gone (killed midway: nothing else would ever remove them). Files of
    a process still running are left alone. Returns the names removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _PARTIAL.match(name)
        if match is None or process_alive(int(match.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, name))
            removed.append(name)
    if removed:
        log.warning("removed %d unfinished file(s) left by a stopped backup or roster import "
                    "in %s: %s", len(removed), folder, ", ".join(removed))
    return removed


def process_alive(pid):
    """Whether process ``pid`` exists (another user's counts: it is not ours to signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _copy(source_path, target_path):
    """The one-step online backup into ``target_path``."""
    source = sqlite3.connect(source_path, timeout=10)
    target = sqlite3.connect(target_path)
    try:
        source.backup(target)  # every page in one step (pages=-1)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        target.close()
        source.close()


def _fsync(path):
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    except OSError:  # some file systems cannot fsync a folder; the data file was
        pass
    finally:
        os.close(handle)


def checkpoint(database=db):
    """Copy the WAL into the database file and truncate it: after a clean stop the .db file
    alone holds everything (a plain file copy is then a complete backup)."""
    database.connect(reuse_if_open=True)
    try:
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        database.close()

