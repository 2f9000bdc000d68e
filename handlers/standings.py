"""The standings of each competition, computed once per change and kept in memory: the one place
every answer that shows them comes from (``GET .../resultados/`` as JSON and CSV, and the
spectators' ``resultados`` message).

A change (records stored, a correction, a start, stop or reset: the hub's listeners) makes a
competition's standings stale. They are then computed by one job in the standings' worker process
(``ranking.ranking``, then the JSON, the CSV and the socket message from that one result), at most
every ``min_interval`` seconds, and never for more than ``busy_share`` of the time when the
ranking is slow: changes that arrive meanwhile join the next computation. A request that finds
the standings stale waits for the computation that will include every change it could know of
(the one running, or the one due next); it never starts a computation of its own, so a crowd
asking at once costs one ranking.

A change this process is not told of (the command line writing the database directly) is seen
once the standings are ``max_age`` seconds old: the next request then waits for a new
computation.
"""

import asyncio
import gc
import hashlib
import logging
from collections import defaultdict

import models
import ledger
import ranking
import store
from handlers.wire import dumps, message_text

log = logging.getLogger("server5k.standings")

# At most one ranking per competition this often, whatever the submission rate: a change shows
# at most this long (plus one ranking) after it is committed.
MIN_INTERVAL_S = 0.25
# A slow ranking (thousands of records) is computed at most this share of the time: it runs in
# the worker process, which shares the laptop's cores with the server.
BUSY_SHARE = 0.15
# Standings are computed again after this long even without a change notice.
MAX_AGE_S = 5.0


class Snapshot:
    """The texts of one computation, ready to send: ``json(server_time, categoria=None)``
    (bytes), ``csv(categoria=None)`` (bytes) and ``message`` (the spectators' ``resultados``
    message, bytes). Each category's texts are made with the rest, so a filtered answer costs
    the loop no more than the whole one. ``digest`` is a hash of what the standings say (their
    JSON, and the CSV's columns), made with them in the worker: the same standings computed
    again, or after a restart, keep it; any change of them changes it. It never depends on when
    they were computed: the CSV's ``actualizado_en`` and the JSON's ``server_time`` are left out
    (:meth:`Standings._compute` keeps the earlier snapshot, texts and all, when a computation
    gives the same digest). ``etag`` is the validator of every answer made from it: weak
    (``W/"r<digest>"``), because answers with the same meaning differ in bytes (each JSON
    answer has its own ``server_time``; after a restart the CSV has a new ``actualizado_en``).
    ``excel``: the CSVs in
    the flavour a Spanish spreadsheet opens in columns, by category, as
    :meth:`Standings.excel_csv` makes them (few ask for them: making them with the rest would
    cost every computation a third more)."""

    __slots__ = ("_json_head", "_csv", "message", "_categories", "_without_rows", "digest",
                 "etag", "excel")

    def __init__(self, result):
        json_text = dumps(result)
        # The object without its closing brace: each answer appends its own server_time.
        self._json_head = json_text.encode("utf-8")[:-1]
        self._csv = ranking.ranking_csv(result).encode("utf-8")
        self.excel = {}
        self.message = message_text("resultados", json_text).encode("utf-8")
        self._categories = {}
        for name in result["categorias"]:
            part = ranking.only_category(result, name)
            self._categories[name] = (dumps(part).encode("utf-8")[:-1],
                                      ranking.ranking_csv(part).encode("utf-8"))
        # For a category no team has (a few hundred bytes, made when asked for).
        self._without_rows = dict(result, clasificacion=[])
        # What the standings mean, not when they were computed (the CSV's actualizado_en is
        # not in it; its columns are: a server with a new CSV layout gives a new validator).
        digest = hashlib.blake2b(self._json_head, digest_size=12)
        digest.update(repr(ranking.CSV_COLUMNS).encode("utf-8"))
        self.digest = digest.hexdigest()
        self.etag = 'W/"r%s"' % self.digest

    def _texts(self, categoria):
        if categoria is None:
            return self._json_head, self._csv
        texts = self._categories.get(categoria)
        if texts is None:
            empty = ranking.only_category(self._without_rows, categoria)
            texts = dumps(empty).encode("utf-8")[:-1], ranking.ranking_csv(empty).encode("utf-8")
        return texts

    def json(self, server_time, categoria=None):
        return self._texts(categoria)[0] + b',"server_time":"' + server_time.encode() + b'"}'

    def csv(self, categoria=None):
        return self._texts(categoria)[1]

    def known(self, categoria):
        return categoria is None or categoria in self._categories


def excel_csv(data):
    """The Excel flavour of a standings CSV (bytes), in the standings' worker process."""
    return ledger.excel_csv(data.decode("utf-8"), ledger.CSV_TIME_COLUMNS).encode("utf-8")


def compute(competencia_id):
    """The standings and every text made from them (runs in the standings' worker process,
    or on a reader thread for a database a process cannot open).

    The garbage collector is off meanwhile: a ranking makes tens of thousands of short-lived
    objects (freed as it returns, no cycles among them), which would otherwise set off full
    collections for nothing (on a thread, ones that also stop the event loop)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return Snapshot(ranking.ranking(competencia_id))
    finally:
        if gc_was_enabled:
            gc.enable()


class Standings:
    """The standings of every competition that was asked for, and their next computation."""

    def __init__(self, store_, min_interval=MIN_INTERVAL_S, busy_share=BUSY_SHARE,
                 max_age=MAX_AGE_S):
        self.store = store_
        self.min_interval = min_interval
        self.busy_share = busy_share
        self.max_age = max_age
        self._changes = defaultdict(int)  # competition -> changes heard of (only the hub adds)
        self._current = {}   # competition -> (changes included, loop time computed, Snapshot)
        self._running = {}   # competition -> (changes it includes, future)
        self._due = {}       # competition -> future of the computation due next
        self._active = set()  # competitions with a computing task alive
        self._last = {}      # competition -> (loop time the last computation started, seconds)
        self._listeners = []

    def attach(self, hub):
        hub.subscribe(self.changed)

    def subscribe(self, on_snapshot, watching):
        """``on_snapshot(competencia_id, snapshot)`` is called after every computation;
        ``watching(competencia_id)`` says whether a change is to be computed at once (someone
        waits for pushes) rather than when next asked for."""
        self._listeners.append((on_snapshot, watching))

    def changed(self, competencia_id, what, data):
        """RaceHub listener (on the loop): the standings of ``competencia_id`` are stale (who
        is connected is not in them)."""
        if what == "conexiones":
            return
        self._changes[competencia_id] += 1
        if any(watching(competencia_id) for _, watching in self._listeners):
            self.refresh(competencia_id)

    def current(self, competencia_id):
        """The standings if they are up to date, else None (no waiting)."""
        entry = self._current.get(competencia_id)
        if entry is None or entry[0] != self._changes.get(competencia_id, 0):
            return None
        if asyncio.get_running_loop().time() - entry[1] > self.max_age:
            return None
        return entry[2]

    def tag(self, competencia_id):
        """A text that changes whenever what is public about the competition may have: the
        latest standings' hash and how many changes they include (None before the first
        computation). For answers that are not made from the standings themselves (a team's
        records: an edit of a time that does not count changes no standings)."""
        entry = self._current.get(competencia_id)
        return None if entry is None else "%s.%d" % (entry[2].digest, entry[0])

    async def get(self, competencia_id):
        """The up-to-date standings, waiting for one computation if they are stale. Raises
        what the computation raised (``models.NotFound``, ``store.Busy``)."""
        snapshot = self.current(competencia_id)
        if snapshot is not None:
            return snapshot
        return await asyncio.shield(self.refresh(competencia_id))

    def refresh(self, competencia_id):
        """The future of a computation that includes every change heard of so far: the one
        running if it does, else the one due next (scheduled here if there is none)."""
        running = self._running.get(competencia_id)
        if running is not None and running[0] == self._changes.get(competencia_id, 0):
            return running[1]
        future = self._due.get(competencia_id)
        if future is None:
            future = self._due[competencia_id] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieved)
            if competencia_id not in self._active:
                self._active.add(competencia_id)
                asyncio.ensure_future(self._compute(competencia_id))
        return future

    async def _compute(self, cid):
        loop = asyncio.get_running_loop()
        try:
            while cid in self._due:
                started, took = self._last.get(cid, (float("-inf"), 0.0))
                wait = started + max(self.min_interval, took / self.busy_share) - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # changes meanwhile join this computation
                future = self._due.pop(cid)
                changes = self._changes.get(cid, 0)
                self._running[cid] = (changes, future)
                started = loop.time()
                try:
                    snapshot = await asyncio.wrap_future(self.store.compute(compute, cid))
                except Exception as exc:  # noqa: BLE001  (the waiting requests answer it)
                    if not isinstance(exc, (models.DomainError, store.Busy)):
                        log.exception("standings of competencia %s could not be computed", cid)
                    self._forget(cid)
                    future.set_exception(exc)
                    continue
                finally:
                    self._running.pop(cid, None)
                    self._last[cid] = (started, loop.time() - started)
                log.debug("standings of competencia %s computed in %.0f ms", cid,
                          1000 * self._last[cid][1])
                previous = self._current.get(cid)
                same = previous is not None and previous[2].digest == snapshot.digest
                if same:
                    # The same standings (computed again after max_age, or after a change that
                    # moved nothing): the same texts, so the same validator and the same
                    # actualizado_en (when they were first computed so). Still handed to the
                    # listeners: a spectator that connected meanwhile waits for this push.
                    snapshot = previous[2]
                self._current[cid] = (changes, started, snapshot)
                future.set_result(snapshot)
                for on_snapshot, watching in self._listeners:
                    try:
                        on_snapshot(cid, snapshot)
                    except Exception:  # noqa: BLE001
                        log.exception("standings listener failed")
                if self._changes.get(cid, 0) != changes and any(
                        watching(cid) for _, watching in self._listeners):
                    self.refresh(cid)  # changed while computing: due again (this task runs it)
        finally:
            self._active.discard(cid)

    async def excel_csv(self, snapshot, categoria=None):
        """The Excel flavour of ``snapshot``'s CSV (of ``categoria``): made in the worker
        process from the plain one the first time it is asked for, then kept with the snapshot
        (for the competition's categories only: nothing is kept for names a stranger makes up).
        Raises ``store.Busy`` when the worker's queue is full."""
        data = snapshot.excel.get(categoria)
        if data is None:
            data = await asyncio.wrap_future(self.store.compute(excel_csv,
                                                                snapshot.csv(categoria)))
            if snapshot.known(categoria):
                snapshot.excel[categoria] = data
        return data

    def _forget(self, cid):
        """Drop what is known of a competition that could not be computed (it may not exist:
        nothing is kept for ids that were only asked for)."""
        self._current.pop(cid, None)
        if cid not in self._due:
            self._last.pop(cid, None)


def _retrieved(future):
    if not future.cancelled():
        future.exception()  # nobody may be waiting: never "exception was never retrieved"
