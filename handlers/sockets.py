"""``/ws/juez/{juez_id}/``: the judge's WebSocket, where the phone hears the start.

The socket registers with the live race hub (:mod:`handlers.hub`) in ``open()``, in the same
synchronous step that reads the race state, so a start is never missed nor told twice.

What waits unsent for one socket is bounded (MAX_QUEUED_CHARS): a phone that stops reading
(or a client that sends and never reads) is closed with code 4002 and its connection dropped at
once, its buffer freed, instead of growing the server's memory; writing to it never blocks the
start broadcast to the others. Pongs echo at most MAX_PING_CHARS of ping.
"""

import collections
import logging
import sys

import tornado.websocket

import models
from handlers.base import ServiceMixin
from handlers.errors import ApiError
from handlers.wire import CLOSE_NOT_READING, message, parse_json

log = logging.getLogger("server5k.sockets")

MAX_MESSAGE_BYTES = 64 * 1024
# Unsent characters one socket may have waiting in the server (a start notice is ~500; a pong
# at most ~1,100). More means the other end is not reading.
MAX_QUEUED_CHARS = 64 * 1024
# A ping message longer than this is answered with an error, not echoed.
MAX_PING_CHARS = 1024


class JuezSocketHandler(ServiceMixin, tornado.websocket.WebSocketHandler):
    """``/ws/juez/{juez_id}/?ticket=TICKET`` (or ``?token=ACCESS``): the start notice for one
    judge's phone."""

    juez_id = competencia_id = None
    start_seen = None
    _queued = 0
    _unsent = None  # deque of (write future, characters) not yet handed to the kernel

    async def get(self, juez_id):
        # open() runs after the 101; refusing with 401/403 has to happen here, before upgrade.
        try:
            self.require_websocket_upgrade()
            comp = await self._authenticate(int(juez_id))
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
        if identity["juez_id"] != juez_id:
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
            if len(text) > MAX_PING_CHARS:  # an echo is for a clock offset, not for bulk data
                return self.send("error", {"code": "ping_too_large",
                                           "detail": "Un ping no puede superar %d caracteres."
                                                     % MAX_PING_CHARS})
            return self.send("pong", dict(data, server_time=models.iso(models.utcnow())))
        return self.send("error", {"code": "unknown_type",
                                   "detail": "Tipo de mensaje desconocido: %s" % msg["type"][:64]})

    def send(self, kind, data):
        self.send_text(message(kind, data))

    def send_text(self, text):
        """Write without waiting; False if the socket is already gone, or is closed now because
        what waits unsent for it would pass MAX_QUEUED_CHARS."""
        unsent = self._unsent
        if unsent is None:
            unsent = self._unsent = collections.deque()
        while unsent and unsent[0][0].done():  # written out in order: forget what has gone
            self._queued -= unsent.popleft()[1]
        if self._queued + len(text) > MAX_QUEUED_CHARS:
            self._not_reading()
            return False
        try:
            future = self.write_message(text)
        except tornado.websocket.WebSocketClosedError:
            return False
        future.add_done_callback(_retrieve)
        unsent.append((future, len(text)))
        self._queued += len(text)
        return True

    def _not_reading(self):
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return
        log.warning("juez %s: closing a socket that does not read (%d characters unsent)",
                    self.juez_id, self._queued)
        self.close(CLOSE_NOT_READING, "Demasiados datos sin leer")
        # The close frame waits behind the unread data: drop the connection now, and its buffer.
        connection.stream.close()
        self._unsent = None

    def on_close(self):
        if self.juez_id is not None:
            self.hub.remove(self)
            log.info("juez %s disconnected (code %s)", self.juez_id, self.close_code)


def _retrieve(future):
    """A write to a socket that closed fails; nobody waits for it, so it must not be logged."""
    if not future.cancelled():
        future.exception()
