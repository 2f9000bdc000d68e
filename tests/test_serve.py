"""How `serve` listens: a deep accept queue for a venue's phones reconnecting together, and
what happens when the process runs out of file descriptors."""

import resource
import shutil
import signal
import socket
import subprocess

import pytest

import server5k
from helpers import request_json, wait_for


def test_listen_backlog_is_deep(spawn, tmp_path):
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("the ss tool (iproute2) is not installed: cannot read the listen backlog")
    server = spawn(tmp_path / "event.db").start()
    out = subprocess.run([ss, "-ltnH", "sport = :%d" % server.port], capture_output=True,
                         text=True, timeout=10).stdout.split()
    # ss shows a listening socket's backlog as its Send-Q (the third column).
    assert int(out[2]) == server5k.LISTEN_BACKLOG > 128, out


def open_file_limit(n):
    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return lower


def test_out_of_descriptors_is_refused_logged_once_and_recovered(spawn, event, config):
    """The server runs out of file descriptors (a flood of connections past its limit, each a
    judge's, so none can be shed as an idle anonymous one: tests/test_connections.py): new
    connections are answered 503 and closed, one line says so (not a traceback per attempt),
    and once descriptors are free it serves as before."""
    server = spawn(config["database"]["path"]).start(preexec_fn=open_file_limit(64))
    status, tokens = request_json("POST", server.base_url + "/api/token/",
                                  {"username": "juez1", "password": "pass-juez1"})
    assert status == 200, tokens
    held, refused = [], 0
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /api/me/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                         b"\r\n" % tokens["access"].encode())
            answer = sock.recv(200)
            if answer.startswith(b"HTTP/1.1 200"):
                held.append(sock)  # kept alive: the server holds a descriptor for it
                continue
            assert answer.startswith(b"HTTP/1.1 503"), answer
            refused += 1
            sock.close()
        assert refused > 100, "connections past the limit must be refused"
        log = server.log()
        assert log.count("out of file descriptors") == 1
        assert "Traceback" not in log and "Exception in callback" not in log
    finally:
        for sock in held:
            sock.close()
    status, answer = wait_for(lambda: _get(server, "/api/competencias/%d/" % event["competencia"]),
                              timeout=20, what="the server to serve again")
    assert status == 200 and answer["id"] == event["competencia"]
    assert wait_for(lambda: "descriptors available again" in server.log(), timeout=10)
    server.signal(signal.SIGTERM)
    assert server.wait() == 0


def _get(server, path):
    """(200, answer), or None while the server still refuses (or closes) the connection."""
    try:
        status, answer = request_json("GET", server.base_url + path, timeout=2)
    except OSError:
        return None
    return (status, answer) if status == 200 else None


@pytest.mark.parametrize("soft, hard, raised", [
    (1024, 4096, (4096, 4096)),
    (256, resource.RLIM_INFINITY, (server5k.UNLIMITED_NOFILE_TARGET, resource.RLIM_INFINITY)),
    (20000, resource.RLIM_INFINITY, None),  # already above the target: left alone
    (4096, 4096, None),
])
def test_the_open_file_limit_is_raised_even_when_the_hard_limit_is_unlimited(
        monkeypatch, soft, hard, raised):
    calls = []
    monkeypatch.setattr(server5k.resource, "getrlimit", lambda kind: (soft, hard))
    monkeypatch.setattr(server5k.resource, "setrlimit", lambda kind, limits: calls.append(limits))
    server5k.raise_open_file_limit()
    assert calls == ([raised] if raised else [])


def test_a_refused_open_file_limit_is_a_warning_not_a_crash(monkeypatch, caplog):
    monkeypatch.setattr(server5k.resource, "getrlimit", lambda kind: (256, resource.RLIM_INFINITY))

    def refuse(kind, limits):
        raise ValueError("not allowed")

    monkeypatch.setattr(server5k.resource, "setrlimit", refuse)
    assert server5k.raise_open_file_limit() == 256
    assert "could not raise the open-file limit" in caplog.text
