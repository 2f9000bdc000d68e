"""The spectators' read-only WebSocket ``/ws/resultados/{id}/`` and its registry, which keeps
every open live results page up to date.

Spectator sockets live in their own registry (:class:`Spectators`), apart from the judges'
RaceHub, so the judges' start broadcast never waits on a spectator, and nothing a spectator
sends is read, let alone forwarded. The standings come from :mod:`handlers.standings`: computed
once per (coalesced) change, the same message text sent to every spectator, a slice of sockets
per turn of the loop and within a budget of bytes a second. A slow spectator has at most one
message in flight; while it drains, newer standings replace older ones (each message is a full
snapshot, so skipping one loses nothing).

What a spectator sends is bounded too (it has nothing to say; a client's own small pings at
most): a message over SPECTATOR_MESSAGE_BYTES closes the socket with 1009 before its body is read
(Tornado reads the frame's header only), and past an inbound budget (INBOUND_PER_S characters a
second after a burst of INBOUND_BURST, each message counting at least MIN_MESSAGE_COST) it is
closed with 4003 and nothing more of it is read: a flood costs the loop a few small messages
per socket, then nothing. An address whose spectators were closed so FLOOD_BURST times (then
more than FLOODS_PER_MINUTE) has its next spectator handshakes refused (429, Retry-After), so
reconnecting to flood again costs the loop a refusal, not a handshake and the standings.
"""

import asyncio
import logging
import time
from collections import defaultdict

import tornado.websocket

import models
from handlers.base import SocketHandler
from handlers.errors import server_busy, too_many
from handlers.limits import RateLimiter
from handlers.registry import SocketRegistry
from handlers.wire import CLOSE_TOO_CHATTY, message

log = logging.getLogger("server5k.spectators")

RETRY_AFTER_S = 10
# Spectators handed a new standings message per turn of the event loop.
PUSH_SLICE = 16
# What pushing the standings may send, all of a competition's spectators together: a large
# event watched by many (500 teams, 150 KB a message, 200 pages) is updated every few seconds
# rather than flooding the venue's Wi-Fi and the event loop; a usual one, as often as the
# standings change (every 0.25 s at most).
PUSH_BYTES_PER_S = 8 * 1024 * 1024
# What one spectator's socket may send (see above).
SPECTATOR_MESSAGE_BYTES = 1024
INBOUND_PER_S, INBOUND_BURST, MIN_MESSAGE_COST = 1024, 8 * 1024, 128
# After a 4003 close nothing more is read from the socket: Tornado drops the connection when the
# client has not answered the close within its 5 s.
CLOSE_WAIT_S = 5
FLOOD_BURST, FLOODS_PER_MINUTE = 3, 6


class Spectators:
    """Every open spectator socket, by competition; pushes standings when they change.

    At most ``max_sockets`` spectators in all and ``max_per_address`` from one client address:
    one more is refused at the handshake (503 / 429 with Retry-After), so spectators can never
    use up the descriptors the judges need.
    """

    def __init__(self, standings, max_sockets=2000, max_per_address=200):
        self.standings = standings
        self.max_sockets = max_sockets
        self.max_per_address = max_per_address
        self.registry = SocketRegistry()
        self._by_address = defaultdict(int)
        self._pushes = {}     # competition -> the message being pushed to its spectators
        self._pushing = set()  # competitions with a push under way
        self._next_push = {}  # competition -> loop time before which it is not pushed again
        self._floods = RateLimiter(FLOODS_PER_MINUTE, burst=FLOOD_BURST)

    def flooded(self, address):
        """A spectator of ``address`` was closed for sending too much."""
        self._floods.hit(address)

    def refusal(self, address):
        """None if one more spectator from ``address`` fits, else the ApiError to answer."""
        wait = self._floods.wait(address)
        if wait:
            return too_many("Los espectadores de esta dirección envían demasiado; reintente "
                            "más tarde.", wait)
        if self.registry.count() >= self.max_sockets:
            return server_busy(RETRY_AFTER_S, code="too_many_spectators",
                               detail="Demasiados espectadores conectados; reintente más tarde.")
        if self._by_address.get(address, 0) >= self.max_per_address:
            return too_many("Demasiadas conexiones de espectador desde esta dirección.",
                            RETRY_AFTER_S)
        return None

    def attach(self):
        self.standings.subscribe(self.publish, self.watching)

    def watching(self, competencia_id):
        """Whether a change is to be computed at once: someone watches and a push could go now
        (within the budget, computing sooner would be wasted: the push at its end catches up)."""
        return self.registry.watched(competencia_id) and (
            asyncio.get_running_loop().time() >= self._next_push.get(competencia_id, 0.0))

    def publish(self, competencia_id, snapshot):
        """Standings listener: new standings go to every spectator of the competition, a slice
        of PUSH_SLICE sockets per turn of the loop (a message can weigh hundreds of KB, and a
        judge's request or the start must not wait for all of them to be written), and no more
        than PUSH_BYTES_PER_S: standings that come sooner wait, the newest replacing older."""
        self._push_later(competencia_id, snapshot.message)

    def _push_later(self, cid, message):
        self._pushes[cid] = message
        if cid in self._pushing:
            return  # the push under way, or scheduled, sends the newest
        self._pushing.add(cid)
        loop = asyncio.get_running_loop()
        wait = self._next_push.get(cid, 0.0) - loop.time()
        if wait > 0:
            loop.call_later(wait, lambda: asyncio.ensure_future(self._push(cid)))
        else:
            asyncio.ensure_future(self._push(cid))

    async def _push(self, cid):
        loop = asyncio.get_running_loop()
        started, size, sent = loop.time(), 0, None
        try:
            for n, sock in enumerate(self.registry.of(cid)):
                if n and not n % PUSH_SLICE:
                    await asyncio.sleep(0)
                sent = self._pushes[cid]  # the newest, should one come meanwhile
                sock.offer(sent)
                size += len(sent)
        finally:
            self._next_push[cid] = started + size / PUSH_BYTES_PER_S
            self._pushing.discard(cid)
            latest = self._pushes.pop(cid)
            if sent is not None and latest is not sent:  # newer standings came meanwhile
                self._push_later(cid, latest)
            elif size:
                loop.call_at(self._next_push[cid], self._catch_up, cid)

    def _catch_up(self, cid):
        """At the end of a push's budget: changes that came meanwhile were not computed (see
        watching); compute them now, and the new standings are pushed."""
        if self.watching(cid) and self.standings.current(cid) is None:
            self.standings.refresh(cid)

    def add(self, sock):
        self.registry.add(sock)
        self._by_address[sock.address] += 1
        current = self.standings.current(sock.competencia_id)
        if current is not None:
            sock.offer(current.message)
        else:
            self.standings.refresh(sock.competencia_id)  # pushed to it by publish()

    def remove(self, sock):
        if not self.registry.remove(sock):
            return
        if not self.registry.watched(sock.competencia_id):
            self._next_push.pop(sock.competencia_id, None)
        self._by_address[sock.address] -= 1
        if not self._by_address[sock.address]:
            del self._by_address[sock.address]

    def count(self, competencia_id=None):
        return self.registry.count(competencia_id)

    def close_all(self, code, reason):
        self.registry.close_all(code, reason)


class ResultadosSocketHandler(SocketHandler):
    """``/ws/resultados/{id}/``: public, read-only. Server -> page only.

    On accept: ``conexion.establecida`` ``{"competencia_id", "server_time"}`` (for the page's
    clock offset), then ``resultados`` with the standings (the same object as the JSON API
    without ``server_time``), and a new ``resultados`` after every change.
    """

    competencia_id = None
    _in_flight = None
    _next = None
    _credit = _credit_at = None  # what it may still send (INBOUND_PER_S), and since when
    pace = "public"
    max_message_size = SPECTATOR_MESSAGE_BYTES  # Tornado's own check: 1009, the body unread

    async def prepare(self):
        await self.take_turn()

    async def admit(self, competencia_id):
        cid = int(competencia_id)
        await self.competition(cid, public=True)
        refusal = self.spectators.refusal(self.client_ip)
        if refusal is not None:
            raise refusal
        # The last check: the room it found is still there when open() registers (no await).
        self.competencia_id = cid
        self.address = self.client_ip

    def check_origin(self, origin):
        return True  # public, read-only data: any page may show it

    def get_compression_options(self):
        return None  # compressing per socket would cost CPU per spectator on the loop

    def open(self, competencia_id):
        if self.client_connection is not None:  # anonymous, never idle: its own caps apply
            self.client_connection.spectator_socket()
        self.offer(message("conexion.establecida", {
            "competencia_id": self.competencia_id, "server_time": models.iso(models.utcnow())}))
        self.spectators.add(self)

    def on_message(self, text):
        """Spectators have nothing to say: every message is ignored, never forwarded; past the
        inbound budget the socket is closed (4003) and no more of it is read."""
        now = time.monotonic()
        if self._credit_at is None:
            self._credit, self._credit_at = INBOUND_BURST, now
        self._credit = min(INBOUND_BURST, self._credit + (now - self._credit_at) * INBOUND_PER_S
                           ) - max(len(text), MIN_MESSAGE_COST)
        self._credit_at = now
        if self._credit >= 0:
            return None
        log.debug("closing a spectator socket from %s that sends too much", self.address)
        self.spectators.flooded(self.address)
        self.close(CLOSE_TOO_CHATTY, "Un espectador no envía mensajes")
        return _hold(CLOSE_WAIT_S)  # Tornado reads its next message only after this

    def get_websocket_protocol(self):
        protocol = super().get_websocket_protocol()
        if type(protocol) is tornado.websocket.WebSocketProtocol13:
            protocol.__class__ = _SpectatorProtocol  # (adds no state: see below)
        return protocol

    def offer(self, text):
        """Send ``text`` (str or UTF-8 bytes) now, or after the message in flight (replacing any
        older one waiting)."""
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


class _SpectatorProtocol(tornado.websocket.WebSocketProtocol13):
    """Tornado's protocol, telling the registry when it closes a spectator's socket with 1009
    (a message over ``max_message_size``, refused from its frame header)."""

    def close(self, code=None, reason=None):
        if code == 1009 and not self.server_terminated:
            handler = self.handler
            if getattr(handler, "address", None) is not None:
                handler.spectators.flooded(handler.address)
        super().close(code, reason)


async def _hold(seconds):
    """Nothing more is read from a closed spectator's socket meanwhile (cut short when the
    server stops: not an error)."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        pass
