"""``/ws/juez/{juez_id}/``: the judge's WebSocket, where the phone hears the start.

The socket registers with the live race hub (:mod:`handlers.hub`) in ``open()``, in the same
synchronous step that reads the race state, so a start is never missed nor told twice.

What waits unsent for one socket is bounded (SocketHandler.send_text): a phone that stops reading
(or a client that sends and never reads) is closed with code 4002 and its connection dropped at
once, its buffer freed, instead of growing the server's memory; writing to it never blocks the
start broadcast to the others. What one socket sends is bounded too: messages over
MAX_PING_CHARS are not parsed (nor echoed), and past INBOUND_PER_S the socket is not read until
it is back within budget.
"""

import asyncio
import logging
import socket
import time


import identity as identity_room
import models
from handlers.base import SocketHandler
from handlers.errors import ApiError
from handlers.wire import message, parse_json

log = logging.getLogger("server5k.sockets")

MAX_MESSAGE_BYTES = 64 * 1024
# A message longer than this (no message of the protocol needs more: a ping's echo is for a
# clock offset) is answered with an error, neither parsed nor echoed.
MAX_PING_CHARS = 1024
# What one socket may send: characters a second after a burst, each message counting at least
# MIN_MESSAGE_COST. Past it nothing more is read from the socket until it is back within budget
# (TCP holds the rest on the sender's side): a flood costs the loop this much and no more (at
# most 128 small messages a second, each parsed and answered in tens of microseconds), and an
# app's pings never come near it, even a clock-sync ping every 10 ms (the venue harness's probe).
INBOUND_PER_S, INBOUND_BURST, MIN_MESSAGE_COST = 16 * 1024, 128 * 1024, 128


def keep_alive(sock, idle_s):
    """TCP keepalive on a judge's connection: a phone that walked out of range (no FIN, no RST)
    is dropped by the kernel after ``idle_s`` of silence plus three probes 5 s apart, even where
    protocol pings cannot be sent (a send queue stuck behind a dead link)."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", max(1, int(idle_s))), ("TCP_KEEPINTVL", 5),
                            ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):  # Linux; macOS has TCP_KEEPALIVE for the idle time
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError:  # not a TCP socket (a test's socketpair): pings still detect it
        pass


class JuezSocketHandler(SocketHandler):
    """``/ws/juez/{juez_id}/?ticket=TICKET`` (or ``?token=ACCESS``): the start notice for one
    judge's phone."""

    juez_id = competencia_id = None
    user_id = token_gen = None  # whose tokens opened it (handlers/sessions.py checks them)
    start_seen = None
    _credit = _credit_at = None  # what it may still send (see INBOUND_PER_S), and since when

    async def admit(self, juez_id):
        self._comp_from_db = await self._authenticate(int(juez_id))

    async def _authenticate(self, juez_id):
        ticket = self.get_query_argument("ticket", None)
        token = self.get_query_argument("token", None)
        if ticket:
            user_id, _, token_gen = self.tickets.redeem(ticket)
            identity = await self.identity_of_user(user_id, token_gen)
        elif token:
            identity = await self.identity_from_token(token)
        else:
            raise ApiError(401, "not_authenticated", "Falta ?ticket=<ticket> o ?token=<access>.")
        # Any of the user's judges (one per competition it times), if active.
        judge = identity_room.judge_of_identity(identity, juez_id)
        if isinstance(judge, models.DomainError):
            raise ApiError.from_domain(judge)
        self.juez_id, self.competencia_id = judge
        self.user_id, self.token_gen = identity["user"]["id"], identity["gen"]
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
        keep_alive(self.ws_connection.stream.socket, self.ping_interval or 20)
        # Register and read the live state in one step (see handlers/hub.py).
        self.hub.add(self)
        comp = self.hub.adopt(self._comp_from_db)
        self.send("conexion.establecida", {"juez_id": self.juez_id, "competencia": comp,
                                           "server_time": models.iso(models.utcnow())})
        if comp["estado"] == models.ESTADO_EN_CURSO:
            self.send("carrera.iniciada", self.hub.event_data("carrera.iniciada", comp))
            self.start_seen = comp["started_at"]
            self.hub.heard_start(self)
        log.info("juez %s connected (%d sockets)", self.juez_id, self.hub.sockets_of(self.juez_id))

    def on_message(self, text):
        self._answer(text)
        return self._within_budget(max(len(text), MIN_MESSAGE_COST))

    def _within_budget(self, cost):
        """Spend ``cost`` of what the socket may send; over budget, a pause (awaited by Tornado
        before it reads the next message) that brings it back."""
        now = time.monotonic()
        if self._credit_at is None:
            self._credit, self._credit_at = INBOUND_BURST, now
        credit = min(INBOUND_BURST, self._credit + (now - self._credit_at) * INBOUND_PER_S) - cost
        self._credit, self._credit_at = credit, now
        if credit < 0:
            return _pause(-credit / INBOUND_PER_S)
        return None

    def _answer(self, text):
        if len(text) > MAX_PING_CHARS:  # no message of the protocol is this long: not parsed
            return self.send("error", {"code": "message_too_large",
                                       "detail": "Un mensaje (un ping) no puede superar %d "
                                                 "caracteres." % MAX_PING_CHARS})
        try:
            msg = parse_json(text)
        except (ValueError, RecursionError):
            return self.send("error", {"code": "invalid_json", "detail": "Mensaje no es JSON."})
        # Movil5K names the type ``tipo``: its heartbeat is {"tipo": "ping"} (docs/movil5k.md).
        kind = msg.get("type", msg.get("tipo")) if isinstance(msg, dict) else None
        if not isinstance(kind, str):
            return self.send("error", {"code": "invalid_message",
                                       "detail": 'Se espera {"type": ..., "data": {...}}.'})
        data = msg.get("data", {})
        if kind == "ping":
            if not isinstance(data, dict):
                return self.send("error", {"code": "invalid_message",
                                           "detail": "data debe ser un objeto."})
            return self.send("pong", dict(data, server_time=models.iso(models.utcnow())))
        return self.send("error", {"code": "unknown_type",
                                   "detail": "Tipo de mensaje desconocido: %s" % kind[:64]})

    def send(self, kind, data):
        self.send_text(message(kind, data))

    def on_close(self):
        if self.juez_id is not None:
            self.hub.remove(self)
            log.info("juez %s disconnected (code %s)", self.juez_id, self.close_code)


async def _pause(seconds):
    """The inbound budget's pause; cut short when the server stops (not an error)."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        pass
