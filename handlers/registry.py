"""The one registry of open sockets, by competition: the judges' (in the race hub), the
organizers' consoles' and the spectators' each keep one.

It is bookkeeping only, synchronous and on the event loop: who is told what, every cap and
every close code stay with its owner (:mod:`handlers.hub`, :mod:`handlers.console`,
:mod:`handlers.spectators`), so that an owner changes its state and registers or tells its
sockets in one step. The check a handshake must pass before the upgrade is
``SocketHandler.admit`` (:mod:`handlers.base`).

A socket is any object with ``competencia_id``, ``alive`` and ``close(code, reason)``.
"""


class SocketRegistry:
    """Open sockets grouped by competition, oldest first."""

    def __init__(self):
        self._by_competencia = {}  # competencia_id -> {socket: None}, oldest first
        self._count = 0

    def add(self, sock):
        group = self._by_competencia.setdefault(sock.competencia_id, {})
        if sock not in group:
            group[sock] = None
            self._count += 1

    def remove(self, sock):
        """Forget ``sock``; True if it was registered."""
        group = self._by_competencia.get(sock.competencia_id)
        if group is None or sock not in group:
            return False
        del group[sock]
        self._count -= 1
        if not group:
            del self._by_competencia[sock.competencia_id]
        return True

    def of(self, competencia_id):
        """The competition's sockets, oldest first (a list: closing them while iterating, or a
        socket leaving meanwhile, is safe)."""
        return list(self._by_competencia.get(competencia_id, ()))

    def watched(self, competencia_id):
        """Whether any socket of the competition is registered."""
        return competencia_id in self._by_competencia

    def count(self, competencia_id=None):
        """How many sockets are registered, of one competition or in all."""
        if competencia_id is not None:
            return len(self._by_competencia.get(competencia_id, ()))
        return self._count

    def alive(self):
        """Every registered socket that is alive (see ``SocketHandler.alive``)."""
        return [sock for group in self._by_competencia.values() for sock in group
                if sock.alive]

    def close_all(self, code, reason):
        """Close every socket that is alive (a server that stops)."""
        for sock in self.alive():
            sock.close(code, reason)
