"""Every client connection the server holds, so no one address, and no anonymous crowd, can take
the descriptors the judges need.

Each connection is one of:

* **trusted**: it has carried credentials the server checked (a judge's or an organizer's token,
  a successful login or refresh) or is a judge's or a console's socket. Never capped, never
  shed; an idle one is kept as long as any (the server's idle timeout, 120 s).
* **anonymous**: anything else (results, pages, a login not yet made, a spectator's socket).
  Counted against its client address, and *idle* while it waits for a request (before its
  first one, or between two).

The rules (``limits.connections_per_address``, ``limits.anonymous_idle_s``):

* An anonymous connection idle for ``anonymous_idle_s`` is closed (a kept-alive browser simply
  opens another; a client that connects and says nothing, or trickles its headers, is gone).
* An address holds at most ``connections_per_address`` anonymous connections (a trusted
  proxy's address excepted: the proxy limits its clients). One more closes that address's
  longest idle anonymous connection; if none of them is idle (all are mid-request or
  spectators' sockets), the new one is *on probation*: a request on it that carries credentials
  is served as usual (the judges behind a venue NAT share the address), an anonymous one is
  answered 503 ``too_many_connections`` with ``Connection: close``. And while an address holds
  its cap, it gets at most OVER_CAP_ACCEPTS_PER_S new connections a second (after a burst of
  OVER_CAP_BURST): more are answered that 503 and closed as they are accepted (``admit``), so a
  client reconnecting as fast as it can costs a refusal each, not a connection's set-up.
* Running low on descriptors (past the open-file limit less a margin), every new connection
  closes the longest idle anonymous connection of any address; out of them (EMFILE), the
  listener does the same before accepting (handlers/listener.py), and refuses (503) only when
  no anonymous connection is idle.
"""

import collections
import logging
import time

import tornado.ioloop

from handlers.limits import RateLimiter

log = logging.getLogger("server5k")

# Below the open-file limit, descriptors kept for everything but client connections (the
# database's files for the writer and every reader, the log, the listening sockets, the
# replica's pipes): past ``limit - margin`` connections, idle anonymous ones are shed.
MIN_MARGIN = 64
# How often idle anonymous connections are looked for (they close within this of their time),
# and the most closed in one look: connections opened together expire together, and closing
# hundreds in one step would hold the event loop (the rest go at the next looks).
SWEEP_S, SWEEP_MAX = 0.25, 32
# New connections a second one address at its cap gets (see above).
OVER_CAP_ACCEPTS_PER_S, OVER_CAP_BURST = 20, 100


def margin(fd_limit):
    return max(MIN_MARGIN, fd_limit // 8)


class Connection:
    """One client connection (``registry`` keeps it up to date; handlers only ``trust`` it or
    mark it a spectator's ``socket``)."""

    __slots__ = ("registry", "stream", "address", "trusted", "probation", "socket",
                 "idle_since", "__weakref__")

    def __init__(self, registry, stream, address):
        self.registry, self.stream, self.address = registry, stream, address
        self.trusted = self.probation = self.socket = False
        self.idle_since = None

    def trust(self):
        self.registry.trust(self)

    def spectator_socket(self):
        self.registry.spectator_socket(self)


class Connections:
    """The registry of client connections and its rules (see above)."""

    def __init__(self, per_address, idle_s, fd_limit, exempt=lambda address: False,
                 clock=time.monotonic):
        self.per_address = per_address
        self.idle_s = idle_s
        self.fd_limit = fd_limit
        self.low_water = fd_limit - margin(fd_limit) if fd_limit else 0
        self.exempt = exempt
        self._clock = clock
        self.total = 0
        self._anonymous = collections.Counter()  # address -> anonymous connections
        self._idle = {}  # anonymous connection -> None, longest idle first (dicts keep order)
        self._idle_of = collections.defaultdict(dict)  # address -> the same, of that address
        self.shed = collections.Counter()  # why connections were closed: idle, address, low
        self._timer = None
        self._short = False
        self._over_cap = RateLimiter(OVER_CAP_ACCEPTS_PER_S * 60, clock, burst=OVER_CAP_BURST)
        self.refused = 0  # connections refused at accept (an address at its cap, too fast)

    def admit(self, address):
        """Whether a connection just accepted from ``address`` is to be served (False: refuse
        it at once, see above)."""
        if (not self.per_address or self._anonymous.get(address, 0) < self.per_address
                or self.exempt(address)):
            return True
        if self._over_cap.hit(address):
            self.refused += 1
            return False
        return True

    # -- the connection's life ---------------------------------------------------------------
    def opened(self, stream, address):
        """Register a new connection (closing others as the rules say); returns its record."""
        conn = Connection(self, stream, address)
        stream.server5k_connection = conn
        close_fd = stream.close_fd

        def closing():
            try:
                close_fd()
            finally:
                self.closed(conn)
        stream.close_fd = closing  # every way a stream closes goes through close_fd()
        self.total += 1
        self._anonymous[address] += 1
        self.waiting(conn)
        if self.low_water and self.total > self.low_water:
            self._low("low")
        if (self.per_address and self._anonymous[address] > self.per_address
                and not self.exempt(address)):
            if not self._close_idle(self._idle_of.get(address), "address", conn):
                conn.probation = True
                log.debug("%s holds %d connections: a new one is on probation", address,
                          self._anonymous[address])
        return conn

    def waiting(self, conn):
        """The connection waits for a request (its first, or the next)."""
        if conn.trusted or conn.socket or conn.stream is None:
            return
        self._not_idle(conn)
        conn.idle_since = self._clock()
        self._idle[conn] = None
        self._idle_of[conn.address][conn] = None

    def busy(self, conn):
        """A request's headers arrived on the connection."""
        self._not_idle(conn)

    def trust(self, conn):
        """Credentials were checked on it (or it is a judge's or console's socket)."""
        if conn.trusted or conn.stream is None:
            return
        self._not_idle(conn)
        conn.trusted, conn.probation = True, False
        self._forget_anonymous(conn.address)

    def spectator_socket(self, conn):
        """It became a spectator's socket: still anonymous, never idle (its own caps apply,
        handlers/spectators.py)."""
        self._not_idle(conn)
        conn.socket = True

    def closed(self, conn):
        if conn.stream is None:
            return
        conn.stream = None
        self._not_idle(conn)
        self.total -= 1
        if not conn.trusted:
            self._forget_anonymous(conn.address)

    # -- the rules -----------------------------------------------------------------------------
    def shed_one(self):
        """Close the longest idle anonymous connection (descriptors ran out): True if one was."""
        return self._close_idle(self._idle, "low")

    def sweep(self):
        """Close the anonymous connections idle for ``idle_s`` or more (SWEEP_MAX at most).
        Returns how many."""
        deadline = self._clock() - self.idle_s
        closed = 0
        while self._idle and closed < SWEEP_MAX:
            conn = next(iter(self._idle))
            if conn.idle_since > deadline:
                break
            self._close(conn, "idle")
            closed += 1
        if self._short and self.total < self.low_water:
            self._short = False
            log.warning("connections back under %d: %d idle anonymous connections were shed "
                        "to keep descriptors for the judges", self.low_water, self.shed["low"])
        return closed

    def start(self):
        if self._timer is None:
            self._timer = tornado.ioloop.PeriodicCallback(self.sweep, SWEEP_S * 1000)
            self._timer.start()

    def stop(self):
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def anonymous(self, address):
        return self._anonymous.get(address, 0)

    # -- inside --------------------------------------------------------------------------------
    def _low(self, why):
        if not self._short:
            self._short = True
            log.warning("%d client connections (open-file limit %d): shedding idle anonymous "
                        "connections first", self.total, self.fd_limit)
        self._close_idle(self._idle, why)

    def _close_idle(self, idle, why, spare=None):
        """Close the longest idle connection of ``idle`` (not ``spare``): True if one was."""
        for conn in idle or ():
            if conn is not spare:
                self._close(conn, why)
                return True
        return False

    def _close(self, conn, why):
        self.shed[why] += 1
        stream = conn.stream
        self._not_idle(conn)
        stream.close()  # closed() runs from close_fd

    def _not_idle(self, conn):
        if conn in self._idle:
            del self._idle[conn]
            mine = self._idle_of[conn.address]
            del mine[conn]
            if not mine:
                del self._idle_of[conn.address]
        conn.idle_since = None

    def _forget_anonymous(self, address):
        self._anonymous[address] -= 1
        if self._anonymous[address] <= 0:
            del self._anonymous[address]


def connection_of(stream):
    """The registry's record of the connection on ``stream``, or None (a server that keeps no
    registry, such as the tests' own)."""
    return getattr(stream, "server5k_connection", None)
