"""The HTTP server's accept loop, which keeps working when the process runs out of descriptors.

Tornado's own accept handler lets ``accept()``'s EMFILE escape: the listening socket stays
readable, so the loop calls the handler again at once and logs a traceback each time (hundreds
of thousands in seconds) while no connection is accepted or refused. Here, instead:

* refuse: one descriptor is kept in reserve; it is given up to accept the waiting connection,
  which gets a 503 (plain HTTP) and is closed at once, then taken again;
* log once: a warning when descriptors run out, one line when they are back, with how many
  connections were refused in between;
* recover: as soon as a descriptor is free, connections are accepted as usual. When even the
  reserve cannot help (the whole system is out), accepting pauses for PAUSE_S and retries.

With a registry of connections (``connections``, handlers/connections.py), out of descriptors
it accepts the waiting connection on the reserve and closes the longest idle anonymous
connection instead: a connection is refused only when no anonymous connection is idle. The
registry hears of every connection here: when it opens (``handle_stream``), when it waits for
a request (``start_request``) and when a request's headers arrive.
"""

import errno
import logging
import os

import tornado.httpserver
import tornado.httputil
from tornado.ioloop import IOLoop

from handlers.connections import connection_of

log = logging.getLogger("server5k")

OUT_OF_DESCRIPTORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
ACCEPTS_PER_WAKEUP = 128  # as Tornado: others get their turn between bursts of connections
PAUSE_S = 0.1
_BODY = (b'{"detail":"El servidor no admite m\xc3\xa1s conexiones ahora; reintente.",'
         b'"code":"server_busy"}')
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8"
           b"\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
           % len(_BODY)) + _BODY
_TOO_MANY = ('{"detail":"Demasiadas conexiones desde esta direcci\u00f3n; reintente m\u00e1s '
             'tarde.","code":"too_many_connections"}').encode()
TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8"
            b"\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
            % len(_TOO_MANY)) + _TOO_MANY


class HTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTPServer with the accept loop above."""

    refused = 0  # connections refused in the current shortage of descriptors
    _short = False
    connections = None  # the registry of client connections (handlers/connections.py), if any

    def add_sockets(self, sockets):
        if getattr(self, "_reserve", None) is None:
            self._reserve = _take_reserve()
        if self.connections is not None:
            self.connections.start()
        for sock in sockets:  # what TCPServer.add_sockets does, with our handler
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_on(sock)

    def handle_stream(self, stream, address):
        if self.connections is not None:
            self.connections.opened(stream, address[0] if isinstance(address, tuple) else "")
        return super().handle_stream(stream, address)

    def start_request(self, server_conn, request_conn):
        delegate = super().start_request(server_conn, request_conn)
        conn = connection_of(getattr(request_conn, "stream", None))
        if conn is None:
            return delegate
        conn.registry.waiting(conn)
        return _Watched(delegate, conn)

    def stop(self):
        super().stop()
        if self.connections is not None:
            self.connections.stop()
        if getattr(self, "_reserve", None) is not None:
            os.close(self._reserve)
            self._reserve = None

    def _accept_on(self, sock):
        io_loop = IOLoop.current()
        state = {"removed": False, "paused": False}

        def accept_handler(fd, events):
            for _ in range(ACCEPTS_PER_WAKEUP):
                if state["removed"]:
                    return
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    if exc.errno not in OUT_OF_DESCRIPTORS:
                        raise
                    # (Linux reports EMFILE before looking for a waiting connection.)
                    outcome = self._refuse_one(sock)
                    if outcome == "stuck":
                        pause()
                    if outcome not in ("refused", "accepted"):
                        return
                    continue
                if self._short:
                    self._recovered()
                if self.connections is not None and not self.connections.admit(
                        address[0] if isinstance(address, tuple) else ""):
                    self._refuse(connection, TOO_MANY)
                    continue
                self._handle_connection(connection, address)

        def pause():
            if not state["paused"]:
                state["paused"] = True
                io_loop.remove_handler(sock)
                io_loop.call_later(PAUSE_S, resume)

        def resume():
            state["paused"] = False
            if not state["removed"]:
                if self._reserve is None:
                    self._reserve = _take_reserve()
                io_loop.add_handler(sock, accept_handler, IOLoop.READ)

        def remove_handler():
            if not state["paused"]:
                io_loop.remove_handler(sock)
            state["removed"] = True

        io_loop.add_handler(sock, accept_handler, IOLoop.READ)
        return remove_handler

    def _refuse_one(self, sock):
        """Give up the reserve, accept the waiting connection, and either keep it, closing an
        idle anonymous connection instead (the registry's ``shed_one``): "accepted"; or refuse
        it: "refused". Then take the reserve back. "empty" when no connection was waiting;
        "stuck" when even that is impossible (no reserve, or the whole system is out of
        descriptors)."""
        if self._reserve is None:
            return "stuck"
        os.close(self._reserve)
        self._reserve = None
        try:
            connection, address = sock.accept()
        except (BlockingIOError, ConnectionAbortedError):
            self._reserve = _take_reserve()
            return "empty"
        except OSError:
            self._reserve = _take_reserve()
            return "stuck"
        if self.connections is not None and self.connections.shed_one():
            self._reserve = _take_reserve()  # the descriptor the shed connection gave up
            self._handle_connection(connection, address)
            return "accepted"
        if not self._short:
            self._short = True
            log.warning("out of file descriptors (open-file limit reached): refusing new "
                        "connections until some close")
        self._refuse(connection, REFUSAL)
        self.refused += 1
        self._reserve = _take_reserve()
        return "refused"

    def _refuse(self, connection, answer):
        """Answer (plain HTTP only) and close a connection just accepted."""
        try:
            if self.ssl_options is None:
                connection.setblocking(False)
                connection.send(answer)
        except OSError:
            pass
        finally:
            connection.close()

    def _recovered(self):
        self._short = False
        log.warning("file descriptors available again: accepting connections (%d refused "
                    "meanwhile)", self.refused)
        self.refused = 0


class _Watched(tornado.httputil.HTTPMessageDelegate):
    """The request's own delegate, telling the registry when its headers arrive."""

    def __init__(self, delegate, conn):
        self.delegate, self.conn = delegate, conn

    def headers_received(self, start_line, headers):
        self.conn.registry.busy(self.conn)
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk):
        return self.delegate.data_received(chunk)

    def finish(self):
        return self.delegate.finish()

    def on_connection_close(self):
        return self.delegate.on_connection_close()


def _take_reserve():
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None
