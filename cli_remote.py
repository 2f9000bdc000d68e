"""The command line as a client of the running server: the HTTP client (an organizer's
session) and the commands that change a running race through the server's API.
"""

import fcntl
import json
import os
import ssl
import time
import urllib.request
from pathlib import Path

import cli_output
import models
import ranking
import roster
import store
import venue_time


# -- the run file: which server serves a database ---------------------------------------------
# While `serve` runs, a small file beside the database says so (its pid, when that process
# started, its URL). Every command that works on the database reads it once the database's
# lock (below) says a server holds it: with the server answering there it goes through the
# server's API (its writer orders every change; nothing waits on a lock); with no server it
# writes the database itself, holding the lock. A file left by a killed server names a process
# that is gone (or another process with that pid, started at another time): it is ignored, and
# only the process that wrote a file removes it.
def run_file(config):
    return Path(config["database"]["path"] + ".server.json")


def process_started(pid):
    """When process ``pid`` started (clock ticks since boot, Linux), or None where unknown."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def running_server(config):
    """The URL of the live server that serves this config's database, or None when none does.
    A server whose process lives but that does not answer (starting, stopping, hung) is a
    CliError: the command neither competes with it for the database nor waits for ever."""
    try:
        info = json.loads(run_file(config).read_text())
        pid, url = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not store.process_alive(pid):
        return None  # killed: its file stayed behind
    if info.get("started") is not None and process_started(pid) not in (None, info["started"]):
        return None  # the pid was reused by another process
    try:
        status, _ = http_json("GET", url + "/api/me/", context=client_context(config),
                              timeout=5)
    except cli_output.CliError:
        status = None
    if status != 401:  # a Server5K server answers an anonymous /api/me/ with a JSON 401
        raise cli_output.CliError("a server (pid %d) is running for %s but does not answer at "
                                  "%s; try again once it has started, or stop it" % (
                                      pid, config["database"]["path"], url))
    return url


# -- the database lock: one server, or commands of the command line, never both ---------------
# `serve` holds an exclusive advisory lock (flock) on DATABASE.lock for its whole life; a command
# that works on the database itself holds a shared one until it ends (claim_database). So a
# second `serve` is refused while one runs, `serve` waits for a command writing the database to
# finish, and a command never writes beside a server, not even one that started between the
# command's look at the run file and its write. The kernel drops a lock when its process ends,
# however it ends (SIGKILL, a crash, a reboot): unlike a pid in a file, it never goes stale. The
# lock file is never removed (a process could be holding the removed one while the next takes
# a new one: two "only" holders).
# How long a command waits for a server that holds the lock to answer at its address (it is
# starting: the run file is written once it listens), and `serve` for commands to finish.
SERVER_ANSWER_WAIT_S = 15
COMMANDS_WAIT_S = 30

_claims = {}  # database path -> the descriptor of this process's shared lock on it


def lock_file(config):
    return Path(config["database"]["path"] + ".lock")


def _open_lock(config):
    """The lock file, opened (created if missing; it holds no secret, only the server's pid).
    One another user made (root, say) is locked read-only: flock needs no write access."""
    path = lock_file(config)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            error = exc
    except OSError as exc:
        error = exc
    raise cli_output.CliError("cannot open the lock file %s: %s" % (path, error.strerror or error))


def _try_lock(fd, mode):
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _lockable(config):
    """Whether the database can have a lock file (not ``:memory:``, its folder exists: else
    open_database refuses it with its own words)."""
    path = config["database"]["path"]
    return path != ":memory:" and os.path.isdir(os.path.dirname(os.path.abspath(path)))


def lock_holder(config):
    """The server that holds the database's lock: ({"pid", "started"} as it wrote them in the
    lock file, or {} if unreadable), or None when only commands hold it (or nobody)."""
    fd = _open_lock(config)
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            return None  # shared holders only: commands of the command line
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return info if isinstance(info, dict) else {}
        except ValueError:
            return {}
    finally:
        os.close(fd)  # (and the probe's shared lock with it)


def claim_database(config, wait_s=None):
    """Which server serves this config's database: its URL, or None, and then none does and
    none can start until this command ends (this process holds the shared lock: release_claims,
    or its exit, lets it go). A server that holds the lock but does not answer within
    ``wait_s`` (starting, stopping, hung) is a CliError: the command neither writes beside it
    nor waits for ever."""
    path = config["database"]["path"]
    if path in _claims or not _lockable(config):
        return None
    deadline = time.monotonic() + (SERVER_ANSWER_WAIT_S if wait_s is None else wait_s)
    while True:
        fd = _open_lock(config)
        if _try_lock(fd, fcntl.LOCK_SH):
            _claims[path] = fd
            return None
        os.close(fd)
        try:
            url = running_server(config)
        except cli_output.CliError:
            url = None  # (alive, not answering yet: it may be starting)
        if url is not None:
            return url
        if time.monotonic() >= deadline:
            holder = lock_holder(config)
            if holder is None:
                continue  # it has just stopped: the lock is free (or a command's)
            raise cli_output.CliError(
                "a server (pid %s) holds %s but does not answer at %s; try again once it has "
                "started, or stop it" % (holder.get("pid", "?"), path, base_url(config)))
        time.sleep(0.1)


def release_claims():
    """Let the shared locks of this process go (server5k.main, once a command is done)."""
    while _claims:
        os.close(_claims.popitem()[1])


def check_claimed(path):
    """Raise unless this process holds ``path``'s shared lock (a change written alone)."""
    if str(path) != ":memory:" and str(path) not in _claims:
        raise RuntimeError("%s written without its lock: claim_database first" % path)


def hold_for_server(config, wait_s=None, waiting=None):
    """The exclusive lock for `serve`, held as long as the returned descriptor is open (its
    process's life): a CliError naming the server that holds it, or, after ``wait_s`` seconds,
    the commands that do (``waiting(text)`` is told once that it waits for them)."""
    if not _lockable(config):
        return None
    path = config["database"]["path"]
    wait_s = COMMANDS_WAIT_S if wait_s is None else wait_s
    fd = _open_lock(config)
    deadline = time.monotonic() + wait_s
    told = False
    try:
        while not _try_lock(fd, fcntl.LOCK_EX):
            holder = lock_holder(config)
            if holder is not None:
                raise cli_output.CliError(
                    "another server (pid %s%s) already serves %s: stop it first, or give this "
                    "one another database.path" % (holder.get("pid", "?"), running_address(
                        config, holder.get("pid")), path))
            if time.monotonic() >= deadline:
                raise cli_output.CliError(
                    "a command is still working on %s after %g s (import, judge add ...: see "
                    "your other terminals); try again once it has finished" % (path, wait_s))
            if waiting is not None and not told:
                waiting("a command is working on %s; waiting up to %g s for it to finish"
                        % (path, wait_s))
                told = True
            time.sleep(0.1)
    except BaseException:
        os.close(fd)
        raise
    info = json.dumps({"pid": os.getpid(), "started": process_started(os.getpid())}).encode()
    try:  # (for the words of a second `serve`: the lock is what counts)
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
    except OSError:
        pass  # (read-only: another user's file)
    return fd


def running_address(config, pid):
    """", at URL" from the run file when it names process ``pid``, else ""."""
    try:
        info = json.loads(run_file(config).read_text())
        return ", at %s" % info["url"] if info.get("pid") == pid else ""
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""


def base_url(config):
    host = config["server"]["host"]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = "[%s]" % host
    scheme = "https" if config["server"]["tls_cert"] else "http"
    return "%s://%s:%d" % (scheme, host, config["server"]["port"])


# ------------------------------------------------------------------------------------------------
# Demo data
# ------------------------------------------------------------------------------------------------
def demo_credentials_file(config):
    """The demo event's logins, beside its database: this file marks the demo database."""
    return Path(config["database"]["path"] + ".demo-credentials.json")


def open_event_database(args, config, server_url_=None):
    """Open the config's database for this command, saying which one on stderr; the demo
    database (the one `serve --demo` made) only when asked with --demo: a terminal without
    SERVER5K_CONFIG must not work on the demo event unawares. ``server_url_``: a server
    serves it (its schema is ready: opened without schema work, which would take the write
    lock)."""
    path = config["database"]["path"]
    check_not_demo(args, config)
    cli_output.say(args, "database %s (config %s)%s" % (path, config["_path"], "; served by %s" %
                                                        server_url_ if server_url_ else ""))
    if server_url_:
        models.db.init(path, pragmas=models.PRAGMAS)
    else:
        models.open_database(path)


def check_not_demo(args, config):
    path = config["database"]["path"]
    if demo_credentials_file(config).exists() and not getattr(args, "use_demo", False):
        raise cli_output.CliError("%s is the demo database (`serve --demo` made it; config %s): is "
                                  "SERVER5K_CONFIG set in this terminal? pass --demo to use it "
                                  "anyway" % (path, config["_path"]))


@cli_output.needs(cli_output.SERVER)
def cmd_competition_set(args, config):
    """``competition set ID``: the scoring rule and the scheduled start, on the running server
    (so the live page changes at once, and the change is in the history)."""
    regla = {key: value for key, value in (("tipo", args.scoring), ("contados", args.counted),
                                           ("minimo", args.min_finishers)) if value is not None}
    body = {"regla": regla} if regla else {}
    if args.date:  # sent with its offset: this command line's zone, whichever server it asks
        body["fecha_hora"] = venue_time.local_iso(cli_output.local_date(args.date))
    if args.name is not None:
        body["nombre"] = args.name
    if args.oculta is not None:
        body["oculta"] = args.oculta
    if not body:
        raise cli_output.CliError("nothing to set: give --scoring, --counted, --min-finishers, "
                                  "--date, --name, --hide or --show")
    if args.reason:
        body["motivo"] = args.reason
    session = ServerSession(args, config)
    answer = session.call("PATCH", "/api/competencias/%d/" % args.id, body,
                          what="competition set")
    comp, regla = answer["competencia"], answer["regla"]
    cli_output.emit(args, answer, "competition %d %s%s: %s; scheduled start %s\n  %s" % (
        comp["id"], comp["nombre"], " (hidden from the public index)" if comp["oculta"] else "",
        cli_output.rule_line(regla), cli_output.local(comp["fecha_hora"]) or "none",
        regla["texto"]))


def credentials_file(given, roster_path):
    """Where new judges' passwords go: ``--credentials``, else ROSTER-credenciales.csv beside
    the roster, or -2, -3... when that exists (a file of passwords is never overwritten)."""
    if given:
        if Path(given).exists():
            raise cli_output.CliError("%s already exists; passwords are never written over a "
                                      "file: pass another --credentials" % given)
        return Path(given)
    for n in range(1, 1000):
        candidate = roster_path.with_name("%s-credenciales%s.csv" % (
            roster_path.stem, "" if n == 1 else "-%d" % n))
        if not candidate.exists():
            return candidate
    raise cli_output.CliError("too many credentials files beside %s; pass --credentials"
                              % roster_path)


# -- race: talks to the running server over HTTP as an organizer ---------------------------------
def http_json(method, url, body=None, token=None, context=None, timeout=15, raw=None,
              content_type="application/json"):
    """A JSON API call: (status, answer). ``raw``: bytes sent as they are (a roster CSV)."""
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {"detail": exc.reason}
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise cli_output.CliError("the server at %s is not reachable (%s); is `python server5k.py "
                                  "serve` running?" % (url.split("/api/")[0], reason)) from None


def client_context(config):
    if not config["server"]["tls_cert"]:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(config["server"]["tls_cert"])
    context.check_hostname = False  # our own server on this machine, pinned by its certificate
    return context


class ServerSession:
    """The command line as an organizer of the running server: logs in once, then calls the
    same API the console uses. Errors become one-line CliErrors."""

    def __init__(self, args, config, url=None, why=None):
        """``why``: the session a command that changes data opens because a server runs for
        its database (``provide``): the login comes from the environment only (such a
        command's --password is the new account's), and a missing one is explained by it."""
        self.url = url or server_url(getattr(args, "url", None), config)
        self.context = client_context(config)
        given = (lambda name: None) if why else (lambda name: getattr(args, name, None))
        user = given("user") or os.environ.get("SERVER5K_USER")
        password = given("password") or os.environ.get("SERVER5K_PASSWORD")
        if not user or not password:
            missing = " and ".join(name for name, value in (("SERVER5K_USER", user),
                                                            ("SERVER5K_PASSWORD", password))
                                   if not value)
            if why:
                raise cli_output.CliError("%s; set %s to an organizer's login" % (why, missing))
            raise cli_output.CliError("organizer credentials needed: --user/--password or "
                                      "SERVER5K_USER/SERVER5K_PASSWORD (%s not set)" % missing)
        status, answer = http_json("POST", self.url + "/api/token/",
                                   {"username": user, "password": password},
                                   context=self.context)
        if status != 200:
            raise cli_output.CliError("login as %s failed (%d): %s" % (user, status,
                                                                        answer.get("detail")))
        self.token = answer["access"]

    def call(self, method, path, body=None, what=None, **options):
        """The answer of a 2xx; a CliError naming ``what`` (or the path) otherwise.
        ``options``: http_json's (``raw`` bytes and their ``content_type``, ``timeout``)."""
        status, answer = self.answer(method, path, body, **options)
        if status >= 300:
            raise self.refusal(status, answer, path, what)
        return answer

    def answer(self, method, path, body=None, **options):
        """(status, JSON answer) of any call, a refusal's included (``call``'s options)."""
        return http_json(method, self.url + path, body, token=self.token,
                         context=self.context, **options)

    def refusal(self, status, answer, path, what=None, more=""):
        """The CliError that says a refusal (status and answer) of ``path``, then ``more``."""
        code = answer.get("code")
        words = CLI_WORDS.get(code)
        fields = "".join("; %s: %s" % item for item in (answer.get("errors") or {}).items())
        return cli_output.CliError("%s failed (%d %s): %s%s%s" % (
            what or path, status, code,
            words.format(id=self.id_in(path)) if words else answer.get("detail"), fields, more))

    @staticmethod
    def id_in(path):
        parts = [part for part in path.split("/") if part.isdigit()]
        return parts[0] if parts else "ID"

    def text(self, path, what=None):
        """A non-JSON answer (CSV) as text."""
        request = urllib.request.Request(self.url + path)
        request.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
                return response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            raise cli_output.CliError("%s failed (%d)" % (what or path, exc.code)) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise cli_output.CliError("the server at %s is not reachable (%s)" % (
                self.url, getattr(exc, "reason", exc))) from None


# What the command line says for a server's error code, in its own words (the server's detail
# speaks of the API: "use force" means `--force` here).
CLI_WORDS = {
    "race_already_running": "the race is already running",
    "race_finished": "the race has finished; `race reset {id}` puts it back to scheduled "
                     "before starting it again",
    "race_not_running": "the race is not running",
    "records_since_start": "times have arrived since the start; `race reset {id} --force` "
                           "resets anyway (every record is kept)",
    "results_official": "the results are official; `results reopen {id} --reason R` first",
    "race_not_finished": "stop the race first: `race stop {id}`",
    "race_not_started": "the race has not started: there is no start to shift",
    "organizer_only": "that user is not an organizer (`organizer add USERNAME` makes one)",
    "token_expired": "the login expired; run the command again",
}


def server_url(given, config):
    """The running server's base URL: ``--url`` (``http://`` assumed when it has no scheme),
    else the config's own address."""
    url = (given or base_url(config)).strip().rstrip("/")
    if "://" not in url:
        url = ("https://" if config["server"]["tls_cert"] else "http://") + url
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise cli_output.CliError("--url must start with http:// or https://, not %s://" % scheme)
    return url


@cli_output.needs(cli_output.SERVER)
def cmd_race(args, config):
    session = ServerSession(args, config)
    cid = args.id
    if args.action == "status":
        answer = session.call("GET", "/api/competencias/%d/jueces/" % cid, what="status")
    elif args.action == "shift":
        body = {"delta_ms": cli_output.duration(args.by, signed=True), "motivo": args.reason}
        if args.judge is not None:
            body["juez_id"] = args.judge
        answer = session.call("POST", "/api/competencias/%d/ajustar_tiempos/" % cid, body,
                              what="shift")
    else:
        path = {"start": "iniciar", "stop": "detener", "reset": "reiniciar"}[args.action]
        body = {"force": True} if getattr(args, "force", False) else None
        answer = session.call("POST", "/api/competencias/%d/%s/" % (cid, path), body,
                              what=args.action)
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
        return
    answer = cli_output.shown(answer)
    comp = answer["competencia"]
    print(cli_output.race_line(comp))
    if args.action == "status":
        print(cli_output.format_board(answer))
    elif args.action == "shift":
        print("%s ms added to %d records%s" % (
            "%+d" % body["delta_ms"], answer["registros_afectados"],
            "" if args.judge is not None
            else "; the start is now %s" % cli_output.local(comp["started_at"])))
    else:
        print("judge sockets notified: %d" % answer["notificados"])


@cli_output.needs(cli_output.SERVER)
def cmd_records(args, config):
    """The organizer's records and their corrections, on the running server."""
    session = ServerSession(args, config)
    if args.action == "list":
        query = "?equipo_id=%d" % args.team if args.team else ""
        answer = session.call("GET", "/api/competencias/%d/registros/%s" % (args.id, query),
                              what="records list")
        if args.json:
            print(json.dumps(answer, ensure_ascii=False))
            return
        answer = cli_output.shown(answer)
        print("%d records of competition %d %s" % (len(answer["registros"]), args.id,
                                                  answer["competencia"]["nombre"]))
        for r in answer["registros"]:
            print(cli_output.record_line(r))
        return
    if args.action == "history":
        answer = session.call("GET", "/api/registros/%s/historial/" % args.rid,
                              what="records history")
        if args.json:
            print(json.dumps(answer, ensure_ascii=False))
            return
        answer = cli_output.shown(answer)
        print(cli_output.record_line(answer["registro"]))
        for entry in answer["historial"]:
            print("  %s  %-12s %-12s %s -> %s  %s" % (
                cli_output.local(entry["en"]), entry["accion"], entry["usuario"] or "-",
                cli_output.printable(json.dumps(entry["antes"], ensure_ascii=False)),
                cli_output.printable(json.dumps(entry["despues"], ensure_ascii=False)),
                entry["motivo"] or ""))
        return
    if args.action == "add":
        body = {"equipo_id": args.team, "tiempo": cli_output.duration(args.tiempo),
                "motivo": args.reason}
        if args.timestamp:
            body["timestamp"] = args.timestamp
        record = session.call("POST", "/api/competencias/%d/registros/" % args.id, body,
                              what="records add")
    elif args.action == "edit":
        body = {"motivo": args.reason}
        if args.team is not None:
            body["equipo_id"] = args.team
        if args.tiempo is not None:
            body["tiempo"] = cli_output.duration(args.tiempo)
        record = session.call("PATCH", "/api/registros/%s/" % args.rid, body, what="records edit")
    else:
        path = {"void": "anular", "restore": "restaurar", "accept": "aceptar"}[args.action]
        record = session.call("POST", "/api/registros/%s/%s/" % (args.rid, path),
                              {"motivo": args.reason}, what="records " + args.action)
    if args.json:
        print(json.dumps(record, ensure_ascii=False))
    else:
        print(cli_output.record_line(cli_output.shown(record)))


@cli_output.needs(cli_output.SERVER)
def cmd_team_correction(args, config):
    """``team status`` and ``team penalty`` on the running server."""
    session = ServerSession(args, config)
    if args.action == "status":
        body, path = {"estado": args.estado, "motivo": args.reason}, "estado"
    else:
        body = {"ms": cli_output.duration(args.ms, signed=True), "motivo": args.reason}
        path = "penalizacion"
    team = session.call("POST", "/api/equipos/%d/%s/" % (args.eid, path), body,
                        what="team " + args.action)
    cli_output.emit(args, team, "team %d %s: estado %s, penalty %s ms" % (
        team["id"], team["nombre"], team["estado"], team["penalizacion_ms"]))


def judge_id(session, reference, otherwise=None, competencia_id=None):
    """A judge's id on the running server, by username (case-insensitive) or id."""
    return server_judge(session, reference, otherwise, competencia_id)["id"]


def server_judge(session, reference, otherwise=None, competencia_id=None):
    """A judge on the running server ({"id", "username", "nombre", "competencia_id",
    "activo"}), by username (case-insensitive) or id; by username, of ``competencia_id``
    when given (a username judging several competitions needs it: roster.pick_judge)."""
    judges = session.call("GET", "/api/jueces/", what="judge list")["jueces"]
    key = models.username_key(str(reference))
    by_id = [j for j in judges if str(j["id"]) == str(reference).strip()]
    named = [j for j in judges if models.username_key(j["username"]) == key]
    try:
        juez = roster.pick_judge(reference, named, competencia_id) or (by_id or [None])[0]
    except models.DomainError as exc:
        raise cli_output.CliError(exc.detail) from None
    if juez is not None:
        return juez
    raise cli_output.CliError("no judge %r on the server%s: give a username or an id (judge list)"
                              % (reference, " (%s)" % otherwise if otherwise else ""))


@cli_output.needs(cli_output.SERVER)
def cmd_judge_active(args, config):
    """``judge deactivate|activate USERNAME`` on the running server."""
    session = ServerSession(args, config)
    juez = session.call("PATCH", "/api/jueces/%d/" % judge_id(session, args.username,
                                                              competencia_id=args.competition),
                        {"activo": args.action == "activate"}, what="judge " + args.action)
    cli_output.emit(args, juez, "judge %d %s: %s" % (
        juez["id"], juez["username"], "active" if juez["activo"] else
        "inactive; its tokens are refused and its sockets closed"))


@cli_output.needs(cli_output.SERVER)
def cmd_team_edit(args, config):
    """``team edit EID [--name N] [--dorsal N] [--judge J] [--category C]`` on the running
    server."""
    session = ServerSession(args, config)
    body = {}
    if args.name is not None:
        body["nombre"] = args.name
    if args.dorsal is not None:
        body["dorsal"] = args.dorsal
    if args.judge is not None:
        body["juez_id"] = judge_id(session, args.judge)
    if args.category is not None:
        body["categoria"] = args.category or None
    if not body:
        raise cli_output.CliError("team edit needs --name, --dorsal, --judge or --category")
    team = session.call("PATCH", "/api/equipos/%d/" % args.eid, body, what="team edit")
    cli_output.emit(args, team, "team %d %s: dorsal %d, judge %s, category %s" % (
        team["id"], team["nombre"], team["dorsal"], team["juez_id"], team["categoria"] or "-"))


def excel_needs_csv(args):
    if args.excel and not args.csv:
        raise cli_output.CliError(
            "--excel goes with --csv FILE (the file to write for the spreadsheet)")


@cli_output.needs(cli_output.SERVER)
def cmd_audit(args, config):
    """The competition's history, from the running server."""
    excel_needs_csv(args)
    session = ServerSession(args, config)
    if args.csv:
        text = session.text("/api/competencias/%d/auditoria/?format=csv%s" % (
            args.id, "&excel=1" if args.excel else ""), "audit")
        Path(args.csv).write_text(text, encoding="utf-8", newline="")
        print("history of competition %d written to %s" % (args.id, args.csv))
        return
    answer = session.call("GET", "/api/competencias/%d/auditoria/" % args.id, what="audit")
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
        return
    for a in cli_output.shown(answer["acciones"]):
        print("%5d  %s  %-12s %-11s %-36s %-12s %s" % (
            a["id"], cli_output.local(a["en"]), a["accion"], a["objeto"], a["objeto_id"],
            a["usuario"] or "-", a["motivo"] or ""))


@cli_output.needs(cli_output.NOTHING)
def cmd_results(args, config):
    """The standings from the database (works while the server runs: WAL readers), or
    ``results official|reopen ID`` on the running server."""
    if args.what in ("official", "reopen"):
        return results_official(args, config)
    try:
        args.id = int(args.what)
    except ValueError:
        raise cli_output.CliError(
            "results takes a competition ID (or official ID, reopen ID)") from None
    excel_needs_csv(args)
    open_event_database(args, config, claim_database(config))
    result = ranking.ranking(args.id)
    if args.category is not None:
        if args.category not in result["categorias"]:
            raise cli_output.CliError("competition %d has no category %r (its categories: %s)" % (
                args.id, args.category, ", ".join(result["categorias"]) or "none"))
        result = ranking.only_category(result, args.category)
    if args.csv:
        Path(args.csv).write_text(ranking.ranking_csv(result, excel=args.excel),
                                  encoding="utf-8", newline="")
        print("%d teams written to %s" % (len(result["clasificacion"]), args.csv))
        return
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    print(cli_output.format_results(cli_output.shown(result)))


def results_official(args, config):
    if args.id is None:
        raise cli_output.CliError("results %s needs the competition ID" % args.what)
    if args.what == "reopen" and not args.reason:
        raise cli_output.CliError("results reopen needs --reason")
    session = ServerSession(args, config)
    path = "oficializar" if args.what == "official" else "reabrir"
    body = {"motivo": args.reason} if args.reason else None
    comp = session.call("POST", "/api/competencias/%d/%s/" % (args.id, path), body,
                        what="results " + args.what)
    cli_output.emit(args, comp, "competition %d %s: results %s" % (
        comp["id"], comp["nombre"], "official" if comp["oficial"] else "provisional"))
