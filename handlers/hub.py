"""The live race hub: each competition's live state and the registry of open judge sockets.

Live race state is kept here, on the event loop, and changed in the same synchronous step that
broadcasts the change. A judge socket registers and reads that state in one synchronous step in
its ``open()``. So a judge who connects while a start is being committed gets the start exactly
once: either the broadcast finds its socket registered, or ``open()`` finds the race running and
replays it. A socket also remembers which start it was told about, so no path sends it twice.

The hub knows sockets only as objects with ``juez_id``, ``competencia_id``, ``start_seen``,
``send_text(text)`` and ``close(code, reason)``; listeners (the standings, the organizers'
consoles) hear of every change through :meth:`RaceHub.subscribe`.

A judge keeps at most ``max_sockets_per_judge`` sockets: one more closes its oldest (code
4001), never refuses the new one, so a phone that reconnects after a half-open drop (its old
socket not yet known to be dead) always gets in.
"""

import asyncio
import gc
import logging
from collections import defaultdict
from types import SimpleNamespace

import models
from handlers.registry import SocketRegistry
from handlers.wire import CLOSE_REPLACED, message

log = logging.getLogger("server5k.hub")


class RaceHub:
    """Every open judge socket, by judge and by competition, and each competition's live state."""

    def __init__(self, max_sockets_per_judge=4):
        self.max_sockets_per_judge = max_sockets_per_judge
        self._competitions = {}
        self._by_juez = defaultdict(dict)  # juez_id -> {socket: None}, oldest first
        self.registry = SocketRegistry()  # by competition: whom a start is told
        self._last_connected = {}
        # competition -> {juez_id: when the server first handed one of the judge's sockets
        # carrera.iniciada for the current start (broadcast or replay on connect)}
        self._heard_start = defaultdict(dict)
        self.on_start_heard = None  # set by the application: keeps first notices on disk
        self._locks = defaultdict(asyncio.Lock)
        self._listeners = []

    # -- live state ----------------------------------------------------------------------------
    def load(self, competitions):
        for comp in competitions:
            self._competitions[comp["id"]] = comp

    def competition(self, competencia_id):
        return self._competitions.get(competencia_id)

    def competitions(self):
        return [self._competitions[cid] for cid in sorted(self._competitions)]

    def adopt(self, comp):
        """Learn a competition read from the database, unless the hub already knows it better."""
        return self._competitions.setdefault(comp["id"], comp)

    def update(self, comp):
        """Apply a committed change that is not a start, stop or reset (official results, a
        start adjustment): the live state changes, judges' phones are not told (their stopwatch
        must not restart); a judge who connects later is replayed the new ``started_at``."""
        self._competitions[comp["id"]] = comp
        self._notify_listeners(comp["id"], "estado", comp)

    def lock(self, competencia_id):
        """Serialises an organizer's state changes of one competition (commit, then broadcast)."""
        return self._locks[competencia_id]

    def change_state(self, comp):
        """Apply a committed state change and tell every judge socket of the competition.

        Returns how many sockets were sent the event. Synchronous on purpose: no socket can
        register between the state change and the broadcast.
        """
        previous = self._competitions.get(comp["id"])
        self._competitions[comp["id"]] = comp
        if comp["estado"] == models.ESTADO_EN_CURSO:
            kind = "carrera.iniciada"
        elif comp["estado"] == models.ESTADO_FINALIZADA:
            kind = "carrera.finalizada"
        else:
            kind = "carrera.cancelada"
        sockets = self.registry.of(comp["id"])
        if kind == "carrera.iniciada":
            sockets = [s for s in sockets if s.start_seen != comp["started_at"]]
        if kind != "carrera.finalizada":  # a new start, or none: nobody has heard it yet
            self._heard_start.pop(comp["id"], None)
        notified = self._send_all(sockets, kind, self.event_data(kind, comp))
        for sock in sockets:
            sock.start_seen = comp["started_at"]
            if kind == "carrera.iniciada":
                self.heard_start(sock)
        self._notify_listeners(comp["id"], "estado", comp)
        log.info("competencia %s: %s -> %s, %d sockets notified", comp["id"],
                 previous and previous["estado"], comp["estado"], notified)
        return notified

    def heard_start(self, sock):
        """Note that ``sock`` was handed the current start (the first time counts); the first
        is also handed to ``on_start_heard`` (competencia_id, juez_id, when), which keeps it
        in the database so that a restart does not forget it."""
        heard = self._heard_start[sock.competencia_id]
        if sock.juez_id not in heard:
            heard[sock.juez_id] = models.utcnow()
            if self.on_start_heard is not None:
                self.on_start_heard(sock.competencia_id, sock.juez_id, heard[sock.juez_id])

    def heard_start_by_poll(self, competencia_id, juez_id):
        """Note that a judge's app read the running race by polling (Movil5K's production
        build has no socket): for the judges board it heard the start then, as a socket that
        was handed it would have."""
        self.heard_start(SimpleNamespace(competencia_id=competencia_id, juez_id=juez_id))

    def start_heard_at(self, competencia_id, juez_id):
        """When a judge's app was first handed the current start by this process, or None (a
        restart replays the start to whoever reconnects; the first notice is in the database)."""
        return self._heard_start.get(competencia_id, {}).get(juez_id)

    @staticmethod
    def event_data(kind, comp):
        data = {"competencia_id": comp["id"], "competencia": comp,
                "server_time": models.iso(models.utcnow())}
        if kind == "carrera.iniciada":
            data.update(mensaje="La carrera ha iniciado", started_at=comp["started_at"])
        elif kind == "carrera.finalizada":
            data.update(mensaje="La carrera ha finalizado", finished_at=comp["finished_at"])
        else:
            data.update(mensaje="Salida en falso: la carrera vuelve a estar programada")
        return data

    def _send_all(self, sockets, kind, data):
        """Send one serialised message to many sockets; a dead one never stops the rest."""
        text = message(kind, data)
        sent = 0
        gc_was_enabled = gc.isenabled()
        gc.disable()  # a full collection mid-broadcast would stall every later socket
        try:
            for sock in sockets:
                if sock.send_text(text):
                    sent += 1
        finally:
            if gc_was_enabled:
                gc.enable()
        return sent

    # -- registry --------------------------------------------------------------------------------
    def add(self, sock):
        mine = self._by_juez[sock.juez_id]
        while len(mine) >= self.max_sockets_per_judge:
            oldest = next(iter(mine))
            self.remove(oldest)
            log.info("juez %s: a new socket replaces the oldest of %d", sock.juez_id, len(mine) + 1)
            oldest.close(CLOSE_REPLACED, "Reemplazado por una conexión más reciente del juez")
        mine[sock] = None
        self.registry.add(sock)
        self._last_connected[sock.juez_id] = models.utcnow()
        self._notify_listeners(sock.competencia_id, "conexiones", {"juez_id": sock.juez_id})

    def remove(self, sock):
        mine = self._by_juez.get(sock.juez_id)
        if mine is not None:
            mine.pop(sock, None)
            if not mine:
                del self._by_juez[sock.juez_id]
        self.registry.remove(sock)
        self._notify_listeners(sock.competencia_id, "conexiones", {"juez_id": sock.juez_id})

    def sockets(self):
        """Every judge socket that is alive (a list: closing them while iterating is safe)."""
        return self.registry.alive()

    def close_juez(self, juez_id, code, reason):
        """Close every open socket of one judge (deactivated, or its tokens revoked)."""
        for sock in list(self._by_juez.get(juez_id, ())):
            sock.close(code, reason)

    def sockets_of(self, juez_id):
        """The judge's sockets that are alive: one whose phone stopped answering pings is
        closing (Tornado waits up to 5 s more for its close handshake) and no longer counts."""
        return sum(1 for sock in self._by_juez.get(juez_id, ()) if sock.alive)

    def last_connected(self, juez_id):
        return self._last_connected.get(juez_id)

    def socket_count(self):
        return self.registry.count()

    def close_all(self, code, reason):
        self.registry.close_all(code, reason)

    # -- listeners (the results page and the organizer's console subscribe here) -----------------
    def subscribe(self, listener):
        """``listener(competencia_id, what, data)`` is called on the loop after each change.
        ``what``: ``estado`` (race state, official results, start adjustment), ``registros``
        (records stored or corrected), ``equipos`` and ``jueces`` (the roster, team status and
        penalty), ``conexiones`` (a judge socket opened or closed: not a change of data)."""
        self._listeners.append(listener)

    def records_stored(self, competencia_id, equipo_id, created):
        if created:
            self._notify_listeners(competencia_id, "registros",
                                   {"equipo_id": equipo_id, "created": created})

    def corrected(self, competencia_id, what, data):
        """A committed correction or roster change (records, teams, judges): the listeners
        recompute."""
        self._notify_listeners(competencia_id, what, data)

    def _notify_listeners(self, competencia_id, what, data):
        for listener in self._listeners:
            try:
                listener(competencia_id, what, data)
            except Exception:
                log.exception("results listener failed")
