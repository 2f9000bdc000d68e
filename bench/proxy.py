"""Debian's nginx in front of a Server5K, for tests and benchmarks: the repository's own site file
(deploy/nginx-server5k.conf) rendered for test ports, a self-signed certificate and a temporary
prefix, run as a non-daemon child that dies with whoever started it.

    proxy = Nginx(folder, upstream_port=8000).start()   # HTTPS on proxy.https_port
    ...
    proxy.stop()

Only the strings listed in ``substitutions()`` are replaced (each must be in the file, or the
rendering fails): the upstream port, the listen ports, the certificate, the cache folder, the
logs and the ACME folder. Everything else is the file the operator copies. The main
configuration around it (``nginx.conf`` in the prefix) stands in for Debian's
/etc/nginx/nginx.conf: one process (``master_process off``) so that PR_SET_PDEATHSIG kills all of
nginx when its parent goes, its temporary folders in the prefix, nothing under /var or /run.
"""

import asyncio
import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import store  # (its callers put the repository on sys.path: tests, bench/crowd.py)

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy" / "nginx-server5k.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"



def available():
    """None when Debian's nginx can be run here, else why not (for a test's skip)."""
    if not Path(NGINX).exists():
        return ("nginx is not installed (Debian package 'nginx'; .ci/run installs it when "
                "apt-get can)")
    return None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed(folder):
    """A self-signed certificate for localhost and 127.0.0.1: (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "server5k.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = Path(folder)
    cert_path, key_path = folder / "proxy-cert.pem", folder / "proxy-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


def substitutions(folder, upstream_port, https_port, http_port, cert, key):
    """(text in the site file, what it becomes), in order."""
    folder = Path(folder)
    return [
        ("server 127.0.0.1:8000;", "server 127.0.0.1:%d;" % upstream_port),
        ("    listen 80;\n    listen [::]:80;\n", "    listen 127.0.0.1:%d;\n" % http_port),
        ("    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n",
         "    listen 127.0.0.1:%d ssl http2;\n" % https_port),
        ("/etc/letsencrypt/live/resultados.example.org/fullchain.pem", cert),
        ("/etc/letsencrypt/live/resultados.example.org/privkey.pem", key),
        ("/var/cache/nginx/server5k", str(folder / "cache")),
        ("/var/log/nginx/", str(folder / "log") + "/"),
        ("/var/www/letsencrypt", str(folder / "acme")),
    ]


# The example line of the site's geo block (the venue's NAT, not limited).
UNLIMITED_EXAMPLE = "    # 203.0.113.7 1;\n"


def render_site(text, replacements):
    for old, new in replacements:
        if old not in text:
            raise ValueError("deploy/nginx-server5k.conf no longer contains %r: update "
                             "bench/proxy.py with it" % old)
        text = text.replace(old, new)
    return text


MAIN_CONF = """\
# Stands in for Debian's /etc/nginx/nginx.conf (written by bench/proxy.py).
daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/log/main-error.log warn;
worker_rlimit_nofile {nofile};
events {{
    worker_connections {connections};
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {folder}/tmp/body;
    proxy_temp_path {folder}/tmp/proxy;
    fastcgi_temp_path {folder}/tmp/fastcgi;
    uwsgi_temp_path {folder}/tmp/uwsgi;
    scgi_temp_path {folder}/tmp/scgi;
    access_log off;
    include {folder}/server5k.conf;
}}
"""


def _die_with_parent(parent):
    """In the child before exec: SIGKILL when the parent (thread) dies; gone already if it died
    before this ran."""
    if not store.die_with_parent() or os.getppid() != parent:
        os._exit(1)


class Nginx:
    """nginx with the repository's site in ``folder``, in front of 127.0.0.1:``upstream_port``.

    Start it from the thread that will outlive it (PR_SET_PDEATHSIG follows the thread that
    forked): the main thread of a test or a benchmark."""

    def __init__(self, folder, upstream_port, connections=4096, unlimited=()):
        """``unlimited``: addresses listed in the site's geo block, as an operator lists the
        venue's NAT (the anonymous limits do not count them)."""
        self.unlimited = tuple(unlimited)
        self.folder = Path(folder)
        self.upstream_port = upstream_port
        self.https_port = free_port()
        self.http_port = free_port()
        self.connections = connections
        self.process = None
        self.cert = self.key = None

    @property
    def base_url(self):
        return "https://127.0.0.1:%d" % self.https_port

    @property
    def ws_base(self):
        return "wss://127.0.0.1:%d" % self.https_port

    @property
    def access_log(self):
        return self.folder / "log" / "server5k.access.log"

    @property
    def error_log(self):
        return self.folder / "log" / "server5k.error.log"

    def write(self):
        for sub in ("log", "cache", "acme", "tmp"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.cert, self.key = self_signed(self.folder)
        replacements = substitutions(self.folder, self.upstream_port, self.https_port,
                                     self.http_port, self.cert, self.key)
        if self.unlimited:
            replacements.append((UNLIMITED_EXAMPLE, "".join(
                "    %s 1;\n" % address for address in self.unlimited)))
        site = render_site(SITE.read_text(), replacements)
        (self.folder / "server5k.conf").write_text(site)
        (self.folder / "nginx.conf").write_text(MAIN_CONF.format(
            folder=self.folder, connections=self.connections,
            nofile=max(1024, 2 * self.connections + 64)))

    def argv(self, *extra):
        return [NGINX, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),
                "-e", str(self.folder / "log" / "startup-error.log"), *extra]

    def check(self):
        """``nginx -t`` on the rendered files: (returncode, its output)."""
        run = subprocess.run(self.argv("-t"), capture_output=True, text=True, timeout=30)
        return run.returncode, run.stdout + run.stderr

    def start(self, timeout=15):
        self.write()
        code, output = self.check()
        if code != 0:
            raise RuntimeError("nginx -t refused the site file:\n" + output)
        self._out = open(self.folder / "log" / "stderr.log", "ab")
        parent = os.getpid()
        self.process = subprocess.Popen(self.argv(), stdout=self._out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL,
                                        preexec_fn=lambda: _die_with_parent(parent))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("nginx exited with %s:\n%s" % (
                    self.process.returncode, self.log()))
            try:
                with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("nginx did not listen within %s s:\n%s" % (timeout, self.log()))

    def log(self):
        parts = []
        for name in ("stderr.log", "startup-error.log", "main-error.log", "server5k.error.log"):
            path = self.folder / "log" / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish what it is sending
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if getattr(self, "_out", None):
            self._out.close()
            self._out = None


class KeepAlive:
    """One spectator's HTTP/1.1 connection, kept open as a browser keeps it (Tornado's own client
    opens a connection, and a TLS handshake, per request): ``await get(path, headers)`` ->
    (status, headers dict with lower-case names, body bytes). From ``source`` (an address of
    127.0.0.0/8) so that each spectator is an address of its own."""

    def __init__(self, port, ssl_context=None, source=None, host="127.0.0.1"):
        self.port, self.ssl, self.source, self.host = port, ssl_context, source, host
        self.reader = self.writer = None

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.ssl,
            local_addr=(self.source, 0) if self.source else None)

    async def get(self, path, headers=None):
        return await self.request("GET", path, headers)

    async def request(self, method, path, headers=None, body=b""):
        """One request on the connection (opened, or opened again, when needed); ``body``
        (bytes) is sent with its Content-Length."""
        if self.writer is None:
            await self.connect()
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (self.host, self.port)]
        lines += ["%s: %s" % item for item in (headers or {}).items()]
        if body or method not in ("GET", "HEAD"):
            lines.append("Content-Length: %d" % len(body))
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        answer = {}
        for line in header_lines:
            if ":" in line:
                name, _, value = line.partition(":")
                answer[name.strip().lower()] = value.strip()
        if "content-length" in answer:
            body = await self.reader.readexactly(int(answer["content-length"]))
        elif answer.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                body += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body = body[:-2]
        else:
            body = b""
        if answer.get("connection", "").lower() == "close":
            await self.aclose()
        return status, answer, body

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None

    async def aclose(self):
        """``close()``, then wait until the connection (its TLS closing included) is gone, so
        that nothing of it is left when the event loop ends."""
        writer = self.writer
        self.close()
        if writer is not None:
            try:
                await asyncio.wait_for(writer.wait_closed(), 5)
            except (OSError, asyncio.TimeoutError):
                pass
