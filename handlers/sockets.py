"""The judges' WebSocket and the live race hub (socket registry + live race state).

Live race state is kept here, on the event loop, and changed in the same synchronous step that
broadcasts the change. A judge socket registers and reads that state in one synchronous step in
``open()``. So a judge who connects while a start is being committed gets the start exactly once:
either the broadcast finds its socket registered, or ``open()`` finds the race running and replays
it. A socket also remembers which start it was told about, so no path sends it twice.
"""

import asyncio
import gc
import logging
import sys
from collections import defaultdict

import tornado.websocket

import models
from handlers.base import ApiError, BaseHandler, ServiceMixin, dumps, parse_json

log = logging.getLogger("server5k.sockets")

MAX_MESSAGE_BYTES = 64 * 1024


def message(kind, data):
    return dumps({"type": kind, "data": data})


class RaceHub:
    """Every open judge socket, by judge and by competition, and each competition's live state."""

    def __init__(self):
        self._competitions = {}
        self._by_juez = defaultdict(set)
        self._by_competencia = defaultdict(set)
        self._last_connected = {}
        self._locks = defaultdict(asyncio.Lock)
        self._listeners = []

    # -- live state ----------------------------------------------------------------------------
    def load(self, competitions):
        for comp in competitions:
            self._competitions[comp["id"]] = comp

    def competition(self, competencia_id):
        return self._competitions.get(competencia_id)

    def adopt(self, comp):
        """Learn a competition read from the database, unless the hub already knows it better."""
        return self._competitions.setdefault(comp["id"], comp)

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
        sockets = list(self._by_competencia.get(comp["id"], ()))
        if kind == "carrera.iniciada":
            sockets = [s for s in sockets if s.start_seen != comp["started_at"]]
        notified = self._send_all(sockets, kind, self.event_data(kind, comp))
        for sock in sockets:
            sock.start_seen = comp["started_at"]
        self._notify_listeners(comp["id"], "estado", comp)
        log.info("competencia %s: %s -> %s, %d sockets notified", comp["id"],
                 previous and previous["estado"], comp["estado"], notified)
        return notified

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
        self._by_juez[sock.juez_id].add(sock)
        self._by_competencia[sock.competencia_id].add(sock)
        self._last_connected[sock.juez_id] = models.utcnow()

    def remove(self, sock):
        for index, key in ((self._by_juez, sock.juez_id),
                           (self._by_competencia, sock.competencia_id)):
            group = index.get(key)
            if group is not None:
                group.discard(sock)
                if not group:
                    del index[key]

    def sockets_of(self, juez_id):
        return len(self._by_juez.get(juez_id, ()))

    def last_connected(self, juez_id):
        return self._last_connected.get(juez_id)

    def socket_count(self):
        return sum(len(group) for group in self._by_juez.values())

    def close_all(self, code, reason):
        for group in list(self._by_juez.values()):
            for sock in list(group):
                sock.close(code, reason)

    # -- listeners (the results page subscribes here) ---------------------------------------------
    def subscribe(self, listener):
        """``listener(competencia_id, what, data)`` is called on the loop after each change."""
        self._listeners.append(listener)

    def records_stored(self, competencia_id, equipo_id, created):
        if created:
            self._notify_listeners(competencia_id, "registros",
                                   {"equipo_id": equipo_id, "created": created})

    def _notify_listeners(self, competencia_id, what, data):
        for listener in self._listeners:
            try:
                listener(competencia_id, what, data)
            except Exception:
                log.exception("results listener failed")


class JuezSocketHandler(ServiceMixin, tornado.websocket.WebSocketHandler):
    """``/ws/juez/{juez_id}/?ticket=TICKET`` (or ``?token=ACCESS``): the start notice for one
    judge's phone."""

    juez_id = competencia_id = None
    start_seen = None

    async def get(self, juez_id):
        # open() runs after the 101; refusing with 401/403 has to happen here, before upgrade.
        try:
            self.require_websocket_upgrade()
            comp = await self._authenticate(juez_id)
        except ApiError as exc:
            self.send_error(exc.status_code, exc_info=sys.exc_info())
            return
        self._comp_from_db = comp
        await super().get(juez_id)

    async def _authenticate(self, juez_id):
        ticket = self.get_query_argument("ticket", None)
        token = self.get_query_argument("token", None)
        if ticket:
            user_id, _ = self.tickets.redeem(ticket)
            identity = await self.identity_of_user(user_id)
        elif token:
            identity = await self.identity_from_token(token)
        else:
            raise ApiError(401, "not_authenticated", "Falta ?ticket=<ticket> o ?token=<access>.")
        if str(identity["juez_id"]) != juez_id:
            raise ApiError(403, "wrong_judge", "El token no pertenece al juez %s." % juez_id)
        if not identity["juez_active"]:
            raise ApiError(403, "inactive_judge", "El juez está inactivo.")
        self.juez_id = identity["juez_id"]
        self.competencia_id = identity["competencia_id"]
        return await self.competition(self.competencia_id)

    def check_origin(self, origin):
        # Authenticated by token, not cookie: any Origin unless the organizer restricts it.
        allowed = self.config["server"]["allowed_origins"]
        return not allowed or origin in allowed

    def get_compression_options(self):
        return None

    def open(self, juez_id):
        # Small messages go out at once: Nagle's algorithm would hold a pong (or a start
        # notice) until the phone acknowledges the previous one, up to its delayed-ACK timeout.
        self.set_nodelay(True)
        # Register and read the live state in one step (see the module docstring).
        self.hub.add(self)
        comp = self.hub.adopt(self._comp_from_db)
        self.send("conexion.establecida", {"juez_id": self.juez_id, "competencia": comp,
                                           "server_time": models.iso(models.utcnow())})
        if comp["estado"] == models.ESTADO_EN_CURSO:
            self.send("carrera.iniciada", self.hub.event_data("carrera.iniciada", comp))
            self.start_seen = comp["started_at"]
        log.info("juez %s connected (%d sockets)", self.juez_id, self.hub.sockets_of(self.juez_id))

    def on_message(self, text):
        try:
            msg = parse_json(text)
        except (ValueError, RecursionError):
            return self.send("error", {"code": "invalid_json", "detail": "Mensaje no es JSON."})
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            return self.send("error", {"code": "invalid_message",
                                       "detail": 'Se espera {"type": ..., "data": {...}}.'})
        data = msg.get("data", {})
        if msg["type"] == "ping":
            if not isinstance(data, dict):
                return self.send("error", {"code": "invalid_message",
                                           "detail": "data debe ser un objeto."})
            return self.send("pong", dict(data, server_time=models.iso(models.utcnow())))
        return self.send("error", {"code": "unknown_type",
                                   "detail": "Tipo de mensaje desconocido: %s" % msg["type"][:64]})

    def send(self, kind, data):
        self.send_text(message(kind, data))

    def send_text(self, text):
        """Write without waiting; False if the socket is already gone."""
        try:
            self.write_message(text)
            return True
        except tornado.websocket.WebSocketClosedError:
            return False

    def on_close(self):
        if self.juez_id is not None:
            self.hub.remove(self)
            log.info("juez %s disconnected (code %s)", self.juez_id, self.close_code)


class WsTicketHandler(BaseHandler):
    """POST (access token of a judge) -> {"ticket", "expires_in"}: a single-use ticket for
    ``/ws/juez/{juez_id}/?ticket=...``, so the long-lived access token never goes into a URL."""

    async def post(self):
        identity = await self.authenticated()
        if identity["juez_id"] is None:
            raise ApiError(403, "not_a_judge", "El usuario no tiene perfil de juez.")
        if not identity["juez_active"]:
            raise ApiError(403, "inactive_judge", "El juez está inactivo.")
        ticket = self.tickets.issue(identity["user"]["id"], identity["juez_id"])
        self.write_json({"ticket": ticket, "expires_in": self.tickets.TTL_S})


routes = [
    (r"/api/ws-ticket/", WsTicketHandler),
    (r"/ws/juez/([0-9]+)/?", JuezSocketHandler),
]
