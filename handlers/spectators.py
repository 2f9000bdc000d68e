"""The spectators' read-only WebSocket ``/ws/resultados/{id}/`` and its registry, which keeps
every open live results page up to date.

Spectator sockets live in their own registry (:class:`Spectators`), apart from the judges'
RaceHub: the hub only calls ``Spectators.changed`` (a listener that marks the competition dirty
and returns), so the judges' start broadcast never waits on a spectator, and nothing a spectator
sends is read, let alone forwarded.

Bursts are coalesced: one ranking query per competition at most every ``MIN_INTERVAL_S``, the
JSON built once on a reader thread and the same text sent to every spectator. A slow spectator
has at most one message in flight; while it drains, newer standings replace older ones (each
message is a full snapshot, so skipping one loses nothing).
"""

import asyncio
import logging
import sys
from collections import defaultdict

import tornado.ioloop
import tornado.websocket

import models
from handlers.base import SocketHandler
from handlers.errors import ApiError
from handlers.wire import message

log = logging.getLogger("server5k.spectators")

# At most one ranking query per competition this often, whatever the submission rate. The
# page shows a change at most this long (plus one query) after it is committed.
MIN_INTERVAL_S = 0.25


def standings_message(competencia_id, scored_per_team):
    """The ``resultados`` message of a competition (runs on a reader thread)."""
    return message("resultados", models.ranking(competencia_id, scored_per_team))


class Spectators:
    """Every open spectator socket, by competition; pushes standings when they change."""

    def __init__(self, store, scored_per_team, min_interval=MIN_INTERVAL_S):
        self.store = store
        self.scored_per_team = scored_per_team
        self.min_interval = min_interval
        self._by_competencia = defaultdict(set)
        self._dirty = set()     # competitions whose standings changed since the last query
        self._flushing = set()  # competitions with a flush task running
        self._last = {}         # competition -> loop time of its last query
        self._changes = defaultdict(int)  # competition -> changes seen (to spot stale reads)
        self._latest = {}       # competition -> last standings message, while still current

    def attach(self, hub):
        hub.subscribe(self.changed)

    def changed(self, competencia_id, what, data):
        """RaceHub listener (on the loop): records stored or race state changed. Cheap."""
        if what == "conexiones":
            return  # who is connected is not in the standings
        self._changes[competencia_id] += 1
        self._latest.pop(competencia_id, None)
        if self._by_competencia.get(competencia_id):
            self._schedule(competencia_id)

    def add(self, sock):
        self._by_competencia[sock.competencia_id].add(sock)
        latest = self._latest.get(sock.competencia_id)
        if latest is not None:
            sock.offer(latest)
        else:
            self._schedule(sock.competencia_id)

    def remove(self, sock):
        group = self._by_competencia.get(sock.competencia_id)
        if group is not None:
            group.discard(sock)
            if not group:
                del self._by_competencia[sock.competencia_id]

    def count(self, competencia_id=None):
        if competencia_id is not None:
            return len(self._by_competencia.get(competencia_id, ()))
        return sum(len(group) for group in self._by_competencia.values())

    def close_all(self, code, reason):
        for group in list(self._by_competencia.values()):
            for sock in list(group):
                sock.close(code, reason)

    def _schedule(self, competencia_id):
        self._dirty.add(competencia_id)
        if competencia_id not in self._flushing:
            self._flushing.add(competencia_id)
            tornado.ioloop.IOLoop.current().spawn_callback(self._flush, competencia_id)

    async def _flush(self, cid):
        loop = asyncio.get_running_loop()
        try:
            while cid in self._dirty and self._by_competencia.get(cid):
                wait = self._last.get(cid, float("-inf")) + self.min_interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # changes meanwhile join this one query
                self._dirty.discard(cid)
                self._last[cid] = loop.time()
                changes = self._changes[cid]
                try:
                    text = await asyncio.wrap_future(
                        self.store.read(standings_message, cid, self.scored_per_team))
                except Exception:
                    log.exception("standings of competencia %s could not be read", cid)
                    return
                if self._changes[cid] == changes:  # nothing changed during the read
                    self._latest[cid] = text
                for sock in list(self._by_competencia.get(cid, ())):
                    sock.offer(text)
        finally:
            self._flushing.discard(cid)


class ResultadosSocketHandler(SocketHandler):
    """``/ws/resultados/{id}/``: public, read-only. Server -> page only.

    On accept: ``conexion.establecida`` ``{"competencia_id", "server_time"}`` (for the page's
    clock offset), then ``resultados`` with the standings (the same object as the JSON API
    without ``server_time``), and a new ``resultados`` after every change.
    """

    competencia_id = None
    _in_flight = None
    _next = None

    async def get(self, competencia_id):
        try:
            self.require_websocket_upgrade()
            cid = int(competencia_id)
            await self.competition(cid)
        except ApiError as exc:
            self.send_error(exc.status_code, exc_info=sys.exc_info())
            return
        self.competencia_id = cid
        await super().get(competencia_id)

    def check_origin(self, origin):
        return True  # public, read-only data: any page may show it

    def get_compression_options(self):
        return None  # compressing per socket would cost CPU per spectator on the loop

    def open(self, competencia_id):
        self.offer(message("conexion.establecida", {
            "competencia_id": self.competencia_id, "server_time": models.iso(models.utcnow())}))
        self.spectators.add(self)

    def on_message(self, text):
        """Spectators have nothing to say: every message is ignored, never forwarded."""

    def offer(self, text):
        """Send ``text`` now, or after the message in flight (replacing any older one waiting)."""
        if self._in_flight is not None and not self._in_flight.done():
            self._next = text
            return
        try:
            self._in_flight = self.write_message(text)
        except tornado.websocket.WebSocketClosedError:
            return
        self._in_flight.add_done_callback(self._drained)

    def _drained(self, future):
        if future.cancelled() or future.exception() is not None:
            return  # closed while sending; on_close cleans up
        if self._next is not None:
            text, self._next = self._next, None
            self.offer(text)

    def on_close(self):
        if self.competencia_id is not None:
            self.spectators.remove(self)
