"""The organizer's console live channel: ``/ws/organizador/{id}/?ticket=``, the socket that tells
an open console what changed, and its single-use tickets (``POST /api/organizador/ws-ticket/``).

The console reads everything through the REST API; this socket only says *what* changed
(``cambios``: ``{"competencia_id", "que": ["conexiones", "equipos", "estado", "jueces",
"registros"]}``), and the console reads again what it shows. Consoles live in their own
registry (:class:`Consoles`), told by the race hub like the spectators are: the hub's listener
only marks the competition and returns, so a start broadcast never waits on a console, and a
burst of submissions is one message every ``MIN_INTERVAL_S`` at most.

The socket is opened with a ticket, never a token: a URL ends up in logs and browser history,
a 30-second single-use ticket harms nobody there. Its user must be an organizer whose tokens
still hold (handlers/sessions.py closes it once they no longer do).
"""

from collections import defaultdict

import tornado.ioloop
import tornado.websocket

import models
from handlers.base import OrganizerHandler, SocketHandler
from handlers.errors import ApiError
from handlers.registry import SocketRegistry
from handlers.wire import message

# At most one message per competition this often (the console reads again on each).
MIN_INTERVAL_S = 0.25


class Consoles:
    """Every open console socket, by competition; tells them what changed, coalesced."""

    def __init__(self, min_interval=MIN_INTERVAL_S):
        self.min_interval = min_interval
        self.registry = SocketRegistry()
        self._pending = defaultdict(set)  # competition -> kinds of change not yet told
        self._scheduled = set()
        self._last = {}

    def attach(self, hub):
        hub.subscribe(self.changed)

    def changed(self, competencia_id, what, data):
        """RaceHub listener (on the loop). Cheap: marks and, at most once, schedules."""
        if not self.registry.watched(competencia_id):
            return
        self._pending[competencia_id].add(what)
        if competencia_id not in self._scheduled:
            self._scheduled.add(competencia_id)
            loop = tornado.ioloop.IOLoop.current()
            wait = self._last.get(competencia_id, float("-inf")) + self.min_interval - loop.time()
            loop.call_later(max(0.0, wait), self._flush, competencia_id)

    def _flush(self, competencia_id):
        self._scheduled.discard(competencia_id)
        self._last[competencia_id] = tornado.ioloop.IOLoop.current().time()
        kinds = self._pending.pop(competencia_id, set())
        text = message("cambios", {"competencia_id": competencia_id, "que": sorted(kinds)})
        for sock in self.registry.of(competencia_id):
            sock.send_text(text)

    def add(self, sock):
        self.registry.add(sock)

    def remove(self, sock):
        self.registry.remove(sock)

    def sockets(self):
        """Every console socket that is alive."""
        return self.registry.alive()

    def close_all(self, code, reason):
        self.registry.close_all(code, reason)


class ConsoleTicketHandler(OrganizerHandler):
    """POST (organizer) -> {"ticket", "expires_in"}: opens ``/ws/organizador/{id}/?ticket=``
    once, within 30 seconds."""

    async def post(self):
        ticket = self.tickets.issue(self.user_id, None, self.identity["gen"])
        self.write_json({"ticket": ticket, "expires_in": self.tickets.TTL_S})


class ConsoleSocketHandler(SocketHandler):
    """``/ws/organizador/{id}/?ticket=TICKET``: server -> console only. On accept
    ``conexion.establecida`` ``{"competencia_id", "competencia", "server_time"}`` (the console's
    clock offset), then ``cambios`` after every change. Messages from the console are ignored."""

    competencia_id = None
    user_id = token_gen = None  # whose tokens opened it (handlers/sessions.py checks them)

    async def admit(self, competencia_id):
        user_id, _, token_gen = self.tickets.redeem(self.get_query_argument("ticket", ""))
        identity = await self.identity_of_user(user_id, token_gen)
        if not identity["user"]["organizador"]:
            raise ApiError(403, "organizer_only", "Solo un organizador puede hacer esto.")
        self._comp = await self.competition(int(competencia_id))
        self.competencia_id = self._comp["id"]
        self.user_id, self.token_gen = user_id, identity["gen"]

    def check_origin(self, origin):
        # Authenticated by a ticket only an organizer's token can get, not by a cookie.
        return True

    def get_compression_options(self):
        return None

    def open(self, competencia_id):
        self.set_nodelay(True)
        self.consoles.add(self)
        self.send_text(message("conexion.establecida", {
            "competencia_id": self.competencia_id, "competencia": self._comp,
            "server_time": models.iso(models.utcnow())}))

    def on_message(self, text):
        """The console has nothing to say here (it acts through the REST API)."""

    def on_close(self):
        if self.competencia_id is not None:
            self.consoles.remove(self)
