"""Sockets whose tokens no longer hold are closed, whichever process revoked them.

A judge deactivated or given a new password through the API has its sockets closed at once by
that handler (``RaceHub.close_juez``). ``python server5k.py judge passwd`` runs in another
process and writes the database directly, so its change reaches the running server through the
database: every token check reads the user's generation there (the old tokens are refused at
their next use), and every ``interval_s`` seconds :class:`SocketGuard` reads the generations of
the users with open sockets, in one query on a reader thread, and closes the sockets opened
with an older one, or whose user (or judge) is gone or inactive. Between sweeps, every
WATCH_S it reads one cheap mark of the accounts (:func:`identity.revocation_mark`, which every
revocation, deactivation or new user moves), and sweeps at once when it moved: a password
changed by another process closes the judge's sockets within about a second.

A socket is known here as an object with ``user_id``, ``token_gen`` (its user's generation
when it opened) and ``close(code, reason)``; registries as objects with ``sockets()``.
"""

import asyncio
import logging

import tornado.ioloop

import identity
import messages

log = logging.getLogger("server5k.sessions")

# How a revoked session's sockets are closed: 1008 (policy violation), and why.
REVOKED = (1008, messages.SOCKET_REVOKED)
# How often the accounts' mark is read while sockets are open (one aggregate on a reader thread).
WATCH_S = 0.5


class SocketGuard:
    """Closes open sockets of revoked sessions every ``interval_s`` seconds (see above)."""

    def __init__(self, store, registries, interval_s):
        self.store = store
        self.registries = registries
        self.interval_s = interval_s
        self._timer = self._watch_timer = None
        self._mark = None

    def start(self):
        """Start sweeping (on the running loop)."""
        self._timer = tornado.ioloop.PeriodicCallback(self.sweep, self.interval_s * 1000,
                                                      jitter=0.1)
        self._timer.start()
        self._watch_timer = tornado.ioloop.PeriodicCallback(self.watch, WATCH_S * 1000)
        self._watch_timer.start()

    def stop(self):
        for timer in (self._timer, self._watch_timer):
            if timer is not None:
                timer.stop()

    async def watch(self):
        """Sweep now if the accounts' mark moved since the last look. Returns how many sockets
        were closed."""
        try:
            mark = await asyncio.wrap_future(self.store.read(identity.revocation_mark))
        except Exception:
            log.exception("could not read the accounts' revocation mark")
            return 0
        moved, self._mark = self._mark is not None and mark != self._mark, mark
        return await self.sweep() if moved else 0

    async def sweep(self):
        """Close every open socket whose tokens no longer hold. Returns how many."""
        sockets = [sock for registry in self.registries for sock in registry.sockets()
                   if sock.user_id is not None]
        if not sockets:
            return 0
        try:
            refused = await asyncio.wrap_future(self.store.read(
                identity.refused_sessions, {(sock.user_id, sock.token_gen) for sock in sockets}))
        except Exception:
            log.exception("could not read the sessions of open sockets")
            return 0
        stale = [sock for sock in sockets if (sock.user_id, sock.token_gen) in refused]
        for sock in stale:
            sock.close(*REVOKED)
        if stale:
            log.info("closed %d sockets of revoked sessions", len(stale))
        return len(stale)
