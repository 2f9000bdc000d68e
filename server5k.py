#!/usr/bin/env python3
"""Server5K: race timing for team 5K events.

This file is the top floor: configuration, the application factory, and the command line
(``python server5k.py [--config FILE] COMMAND``). It only speaks: every command calls domain
functions below it (``models.py``, ``roster.py``, ``store.py``) or, for what changes a running
race, the server's own API; then prints. Handlers live in ``handlers/``.
"""

import argparse
import asyncio
import csv
import errno
import gc
import getpass
import ipaddress
import json
import logging
import os
import re
import resource
import secrets
import signal
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import tornado.web
import yaml

import addresses
import models
import rehearsal
import replica
import roster
import store
from handlers import listener
from handlers.access import InFlight, is_trusted, log_request, trusted_networks
from handlers.base import NotFoundHandler
from handlers.connections import Connections
from handlers.console import Consoles
from handlers.hub import RaceHub
from handlers.limits import Limits
from handlers.routes import ROUTES
from handlers.sessions import SocketGuard
from handlers.sockets import MAX_MESSAGE_BYTES
from handlers.spectators import Spectators
from handlers.standings import Standings
from handlers.tokens import TokenService, WsTickets

log = logging.getLogger("server5k")

HERE = Path(__file__).resolve().parent
OPENAPI_PATH = HERE / "docs" / "openapi.yaml"
# How long a graceful shutdown waits for requests already received to be answered.
SHUTDOWN_GRACE_S = 10


# ------------------------------------------------------------------------------------------------
# Configuration: one schema, every key typed; unknown keys and wrong types refuse to start.
# ------------------------------------------------------------------------------------------------
class ConfigError(Exception):
    pass


class CliError(Exception):
    """A command could not do what was asked: one line on stderr, exit status 1."""


class Key:
    """One config key: its default, and the rule its value must follow, stated in words so that
    every refusal says exactly what is accepted (ranges included)."""

    def __init__(self, default, words, check):
        self.default, self.words, self.check = default, words, check


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def Int(default, lo, hi, unit="", zero=None):
    words = "an integer %d-%d%s%s" % (lo, hi, unit and " " + unit,
                                      " (0 = %s)" % zero if zero else "")
    return Key(default, words, lambda v: _is_int(v) and lo <= v <= hi)


def Number(default, lo, hi, unit=""):
    words = "a number over %g and up to %g%s" % (lo, hi, unit and " " + unit)
    return Key(default, words,
               lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and lo < v <= hi)


def Text(default, words, optional=False):
    return Key(default, words + (" or null" if optional else ""),
               lambda v: (optional and v is None) or (isinstance(v, str) and v != ""))


def Flag(default):
    return Key(default, "true or false", lambda v: isinstance(v, bool))


def TextList(default, words, item=None):
    """A list of non-empty strings; ``item(text)`` (if given) must not raise ValueError."""
    def check(v):
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            return False
        try:
            for x in v if item else ():
                item(x)
        except ValueError:
            return False
        return True
    return Key(default, words, check)


def _ip_network(text):
    ipaddress.ip_network(text.strip(), strict=False)


def _is_zone(v):
    try:
        models.zone_named(v)
        return True
    except ValueError:
        return False


def _is_public_url(v):
    if not isinstance(v, str) or "://" not in v:
        return False
    scheme, rest = v.split("://", 1)
    host = rest.rstrip("/")
    return (scheme in ("http", "https") and bool(host) and not host.startswith(":")
            and not any(c in host for c in "/?#@ \t\n\"'<>"))


def TimeZone():
    return Key(None, "an IANA time zone name such as Europe/Madrid or America/Bogota "
               "(null = this machine's zone)", lambda v: v is None or _is_zone(v))


def PublicUrl():
    return Key(None, "the address phones open, http:// or https:// and a host[:port] only, "
               "such as http://192.168.1.10:8000 (null = the address the browser used)",
               lambda v: v is None or _is_public_url(v))


# section -> key -> Key. Every key is optional; config.yaml documents each with its default.
CONFIG_SCHEMA = {
    "server": {
        "host": Text("127.0.0.1", "a host name or address"),
        "port": Int(8000, 1, 65535),
        "tls_cert": Text(None, "a PEM file path", optional=True),
        "tls_key": Text(None, "a PEM file path", optional=True),
        "ws_ping_interval_s": Number(20, 0, 3600, "seconds"),
        "ws_ping_timeout_s": Key(None, "a number over 0 and up to 3600 seconds, at most "
                                 "server.ws_ping_interval_s, or null (half the interval)",
                                 lambda v: v is None or (isinstance(v, (int, float))
                                                         and not isinstance(v, bool)
                                                         and 0 < v <= 3600)),
        "allowed_origins": TextList([], "a list of origins ([] = any)"),
        "cors_origins": TextList(["*"], 'a list of origins or ["*"]'),
        "public_url": PublicUrl(),
        "trusted_proxies": TextList([], "a list of IP addresses or networks (10.0.0.0/8) of "
                                        "reverse proxies whose X-Forwarded-For is believed "
                                        "([] = none)", item=_ip_network),
    },
    "database": {
        "path": Text("server5k.db", "a file path"),
    },
    "auth": {
        "access_token_lifetime_s": Int(300, 10, 7 * 86400, "seconds"),
        "refresh_token_lifetime_s": Int(86400, 60, 365 * 86400, "seconds"),
        "rotate_refresh_tokens": Flag(False),
    },
    "race": {
        "max_records_per_submission": Int(15, 1, 1000),
        "records_scored_per_team": Int(15, 1, 1000),
        "impossible_time_tolerance_ms": Int(5000, 0, 3_600_000, "ms"),
        "start_lag_alert_ms": Int(2000, 0, 3_600_000, "ms"),
        "timezone": TimeZone(),
    },
    "replica": {
        "url": Text(None, "a Litestream replica URL (file:///..., sftp://..., s3://...)",
                    optional=True),
        "sync_interval_s": Number(1, 0, 3600, "seconds"),
    },
    "limits": {
        "login_per_minute": Int(20, 0, 100000, zero="off"),
        "login_per_address_per_minute": Int(60, 0, 100000, zero="off"),
        "login_lockout_failures": Int(5, 0, 1000, zero="off"),
        "login_lockout_s": Int(30, 1, 86400, "seconds"),
        "submissions_per_minute": Int(120, 0, 100000, zero="off"),
        "anonymous_per_minute": Int(1200, 0, 1_000_000, zero="off"),
        "spectator_sockets": Int(2000, 0, 1_000_000),
        "spectator_sockets_per_address": Int(200, 0, 1_000_000),
        "judge_sockets_per_judge": Int(4, 1, 1000),
        "connections_per_address": Int(500, 0, 1_000_000, zero="off"),
        "anonymous_idle_s": Number(20, 1, 120, "seconds"),
    },
}


# PyYAML's C loader when libyaml is there: the pure-Python one takes ~70 ms for the OpenAPI
# description, on every start-up.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(text):
    return yaml.load(text, Loader=_YAML_LOADER)


DEFAULT_CONFIG = HERE / "config.yaml"


def config_path(given=None):
    """The config file: ``--config``, else $SERVER5K_CONFIG, else config.yaml here."""
    return Path(given or os.environ.get("SERVER5K_CONFIG") or DEFAULT_CONFIG)


def load_config(path=None, overrides=None):
    """Read and check a config file. Returns a dict of sections with every key filled in.

    A file named by ``--config`` or $SERVER5K_CONFIG must exist (a typo must never serve an
    empty event on defaults); only the shipped config.yaml may be absent. Relative file paths
    in the config are taken relative to the config file's folder.
    """
    where = "--config" if path else "$SERVER5K_CONFIG"
    path = config_path(path)
    if not path.is_file() and path != DEFAULT_CONFIG:
        raise ConfigError("config file %s (from %s) does not exist; check the name, or copy "
                          "config.yaml there" % (path, where))
    try:
        raw = read_yaml(path.read_text(encoding="utf-8")) if path.exists() else {}
    except yaml.YAMLError as exc:
        raise ConfigError("%s is not valid YAML: %s" % (
            path, " ".join(str(exc).split()))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("cannot read config file %s: %s" % (path, exc)) from None
    raw = raw or {}
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    if not isinstance(raw, dict):
        raise ConfigError("%s: the top level must be a mapping of sections" % path)
    config = {}
    for section in raw:
        if section not in CONFIG_SCHEMA:
            raise ConfigError("%s: unknown config key %r (known: %s)"
                              % (path, section, ", ".join(CONFIG_SCHEMA)))
    for section, keys in CONFIG_SCHEMA.items():
        given = raw.get(section) or {}
        if not isinstance(given, dict):
            raise ConfigError("%s: %s must be a mapping" % (path, section))
        for key in given:
            if key not in keys:
                raise ConfigError("%s: unknown config key '%s.%s'" % (path, section, key))
        config[section] = {}
        for key, rule in keys.items():
            value = given.get(key, rule.default)
            if not rule.check(value):
                raise ConfigError("%s: config key '%s.%s' must be %s, not %r"
                                  % (path, section, key, rule.words, value))
            config[section][key] = value
    base = path.resolve().parent
    for section, key in (("database", "path"), ("server", "tls_cert"), ("server", "tls_key")):
        value = config[section][key]
        if value is not None and value != ":memory:":
            config[section][key] = str(base / Path(value).expanduser())
    if bool(config["server"]["tls_cert"]) != bool(config["server"]["tls_key"]):
        raise ConfigError("%s: server.tls_cert and server.tls_key go together" % path)
    timeout = config["server"]["ws_ping_timeout_s"]
    if timeout is not None and timeout > config["server"]["ws_ping_interval_s"]:
        raise ConfigError("%s: config key 'server.ws_ping_timeout_s' must be at most "
                          "server.ws_ping_interval_s (%g), not %g" % (
                              path, config["server"]["ws_ping_interval_s"], timeout))
    if config["replica"]["url"] is not None:
        try:
            replica.check_url(config["replica"]["url"])
        except replica.ReplicaError as exc:
            raise ConfigError("%s: config key 'replica.url': %s" % (path, exc)) from None
    if config["server"]["public_url"]:
        config["server"]["public_url"] = config["server"]["public_url"].rstrip("/")
    config["_path"] = str(path)
    return config


def write_private(path, write, exclusive=False):
    """Create ``path`` readable by its owner only (mode 0600) and fill it with ``write(handle)``.

    Secrets and generated passwords go through here and nowhere else. ``exclusive`` refuses to
    replace an existing file.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    with os.fdopen(os.open(path, flags, 0o600), "w", newline="", encoding="utf-8") as handle:
        write(handle)


def secret_file(config):
    return Path(config["database"]["path"] + ".secret")


def secret_source(config):
    """Where the signing secret comes from, in words (never the secret itself)."""
    if os.environ.get("SERVER5K_SECRET_KEY"):
        return "SERVER5K_SECRET_KEY"
    return "%s (mode 0600)" % secret_file(config)


def signing_secret(config):
    """SERVER5K_SECRET_KEY, or a random secret created once beside the database (mode 0600).

    The same secret must sign and check every token for as long as they live: a new one logs
    every phone out. The file survives restarts and reboots; a second machine needs a copy."""
    secret = os.environ.get("SERVER5K_SECRET_KEY")
    if secret:
        if len(secret) < 32:
            raise ConfigError("SERVER5K_SECRET_KEY must be at least 32 characters")
        return secret
    path = secret_file(config)
    if not path.exists():
        write_private(path, lambda handle: handle.write(secrets.token_urlsafe(48)),
                      exclusive=True)
        log.warning("SERVER5K_SECRET_KEY is not set: created a random signing secret in %s "
                    "(keep it private; tokens stay valid across restarts)", path)
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ConfigError("%s holds a secret shorter than 32 characters" % path)
    return secret


# ------------------------------------------------------------------------------------------------
# The application
# ------------------------------------------------------------------------------------------------
def start_notice_keeper(stores):
    """The hub's ``on_start_heard``: a judge's first notice of a start is written by the writer
    (nobody waits for it; a full queue or a failure costs only the record of it, logged)."""
    def done(future):
        if future.exception() is not None:
            log.warning("first start notice not kept: %s", future.exception())

    def keep(competencia_id, juez_id, when):
        try:
            stores.write(models.record_start_notice, competencia_id, juez_id,
                         when).add_done_callback(done)
        except store.Busy:
            log.warning("first start notice of judge %s not kept: writer busy", juez_id)
    return keep


def make_app(config):
    """Open the database, start the writer, and build the one Tornado application."""
    models.open_database(config["database"]["path"])
    models.configure(contados=config["race"]["records_scored_per_team"],
                     tolerancia_ms=config["race"]["impossible_time_tolerance_ms"],
                     timezone=config["race"]["timezone"])
    stores = store.Store()
    stores.start()
    hub = RaceHub(config["limits"]["judge_sockets_per_judge"])
    with models.db.connection_context():
        hub.load(models.all_competitions())
        revoked = models.revoked_tokens()  # logouts that outlive a restart (POST /api/logout/)
    hub.on_start_heard = start_notice_keeper(stores)
    # The standings, computed once per change (the hub tells), served from memory; the results
    # page's sockets are a registry of their own, pushed each new computation.
    standings = Standings(stores)
    standings.attach(hub)
    spectators = Spectators(standings, spectator_cap(config),
                            config["limits"]["spectator_sockets_per_address"])
    spectators.attach()
    consoles = Consoles()  # the organizers' consoles, told of changes by the hub
    consoles.attach(hub)
    app = tornado.web.Application(
        ROUTES,
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        websocket_ping_interval=config["server"]["ws_ping_interval_s"],
        websocket_ping_timeout=ping_timeout(config),
        websocket_max_message_size=MAX_MESSAGE_BYTES,
        server5k_config=config,
        server5k_store=stores,
        server5k_hub=hub,
        server5k_spectators=spectators,
        server5k_consoles=consoles,
        # Closes sockets whose tokens were revoked, also by another process (judge passwd).
        server5k_guard=SocketGuard(stores, [hub, consoles],
                                   config["server"]["ws_ping_interval_s"]),
        server5k_standings=standings,
        server5k_tokens=TokenService(signing_secret(config),
                                     config["auth"]["access_token_lifetime_s"],
                                     config["auth"]["refresh_token_lifetime_s"]),
        server5k_limits=Limits(config),
        server5k_trusted_proxies=trusted_networks(config["server"]["trusted_proxies"]),
        server5k_tickets=WsTickets(),
        server5k_in_flight=InFlight(),
        server5k_openapi=load_openapi(),
        server5k_replica=make_replicator(config),
    )
    app.settings["server5k_tokens"].revoke(revoked)
    return app


def ping_timeout(config):
    """How long a phone has to answer a protocol ping: server.ws_ping_timeout_s, else half the
    interval. A phone gone silent is dropped within interval + timeout (1.5 intervals by
    default) and counts as not connected from then on."""
    timeout = config["server"]["ws_ping_timeout_s"]
    return config["server"]["ws_ping_interval_s"] / 2 if timeout is None else timeout


def make_replicator(config):
    """The live copy off the laptop (replica.url), or None. ``serve`` starts and stops it."""
    url = config["replica"]["url"]
    if url is None:
        return None
    return replica.Replicator(config["database"]["path"], url, config["replica"]["sync_interval_s"],
                              logger=logging.getLogger("server5k.replica"))


def spectator_cap(config):
    """``limits.spectator_sockets``, but never more than half the open-file limit: the other
    half stays for the judges' sockets and every HTTP connection."""
    configured = config["limits"]["spectator_sockets"]
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if fd_limit != resource.RLIM_INFINITY and configured > fd_limit // 2:
        log.warning("limits.spectator_sockets is %d but the open-file limit is %d: at most %d "
                    "spectator sockets", configured, fd_limit, fd_limit // 2)
        return fd_limit // 2
    return configured


def load_openapi(path=OPENAPI_PATH):
    """The OpenAPI description (kept as YAML in the repo), as the JSON text served."""
    return json.dumps(read_yaml(path.read_text(encoding="utf-8")), ensure_ascii=False)


def event_summary(app):
    """What the server is about to serve, in words: an empty event is visible at once."""
    competitions = app.settings["server5k_hub"].competitions()
    with models.db.connection_context():
        records = models.RegistroTiempo.select().count()
    if not competitions:
        return "no competitions yet (an empty event: is this the right database?)"
    return "%d competition(s) (%s), %d time records" % (
        len(competitions), ", ".join("%d %s" % (c["id"], c["nombre"]) for c in competitions[:5]),
        records)


def close_app(app):
    """Commit what the writer holds, checkpoint the WAL into the database file and close it.
    (``serve`` stops the live copy between the two: Litestream's read lock would make the
    checkpoint wait, and its last upload must carry the last commits.)"""
    app.settings["server5k_store"].close()
    store.checkpoint()


def ssl_context(config):
    cert, key = config["server"]["tls_cert"], config["server"]["tls_key"]
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


LISTEN_BACKLOG = 1024


def make_server(app, config, idle_connection_timeout=120, body_timeout=30):
    """The HTTP(S) server. A connection that sends no request for ``idle_connection_timeout``
    seconds, or whose body takes longer than ``body_timeout`` to arrive, is closed (slow clients
    cannot hold connections forever)."""
    server = listener.HTTPServer(  # Tornado's, with an accept loop that survives EMFILE
        app,
        ssl_options=ssl_context(config),
        # The API refuses large bodies itself with a JSON 413; this is the hard cap behind it.
        max_body_size=4 * 1024 * 1024,
        # The whole header block; the app answers 414/431 well below it (handlers/base.py).
        max_header_size=64 * 1024,
        idle_connection_timeout=idle_connection_timeout,
        body_timeout=body_timeout,
    )
    # Every client connection, by address: capped, idle anonymous ones closed sooner, and shed
    # first when descriptors run low (handlers/connections.py).
    limits = config["limits"]
    proxies = trusted_networks(config["server"]["trusted_proxies"])
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    server.connections = Connections(
        limits["connections_per_address"], min(limits["anonymous_idle_s"],
                                               idle_connection_timeout),
        0 if fd_limit == resource.RLIM_INFINITY else fd_limit,
        exempt=lambda address: is_trusted(address, proxies))
    return server


# What to raise the open-file limit to when the hard limit is "unlimited" (macOS reports
# RLIM_INFINITY, but refuses a soft limit over OPEN_MAX, 10,240).
UNLIMITED_NOFILE_TARGET = 10240


def raise_open_file_limit():
    """Every judge socket is a file descriptor; the usual soft limit of 1,024 would cap an event
    at about a thousand phones. Raise it to the hard limit this process is allowed (10,240 when
    that is unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_NOFILE_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# How long a worker thread may hold the interpreter lock while the event loop waits for it.
# Python's default, 5 ms, would add up to 5 ms to every loop wake-up while a reader computes
# standings; 1 ms keeps the start broadcast and the judges' answers prompt.
SWITCH_INTERVAL_S = 0.001


async def serve(config, demo=False, ready=None):
    if demo:
        print_demo(ensure_demo(config), config)
    fd_limit = raise_open_file_limit()
    store.clean_partials(os.path.dirname(os.path.abspath(config["database"]["path"])))
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    app = make_app(config)
    replicator = app.settings["server5k_replica"]
    if replicator is not None:  # the copy runs before the first record is accepted
        try:
            await replicator.start()
        except replica.ReplicaError as exc:
            close_app(app)
            raise CliError("replica.url is set but the live copy cannot start: %s" % exc)
    server = make_server(app, config)
    # A venue's phones reconnect together after a Wi-Fi drop: a deep accept queue (Tornado's
    # default is 128) keeps their connection attempts from being dropped and retried seconds later.
    try:
        server.listen(config["server"]["port"], config["server"]["host"],
                      backlog=LISTEN_BACKLOG)
    except OSError as exc:
        if replicator is not None:
            await replicator.stop()
        close_app(app)
        busy = exc.errno == errno.EADDRINUSE
        raise CliError("cannot listen on %s:%d: %s%s" % (
            config["server"]["host"], config["server"]["port"],
            "the address is already in use" if busy else exc.strerror or exc,
            " (is another `serve` running? stop it, or set server.port)" if busy else ""))

    # Everything built so far (modules, routes, models) lives as long as the process: move it out
    # of the garbage collector's view, so a full collection (which can come at any allocation,
    # e.g. mid-request on race day) only walks what was created since.
    gc.collect()
    gc.freeze()
    app.settings["server5k_store"].warm_up()  # the standings' worker, before the first page
    app.settings["server5k_guard"].start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    log.info("serving %s (config %s): %s; signing secret from %s", config["database"]["path"],
             config["_path"], event_summary(app), secret_source(config))
    log.info("live copy: %s", "to %s, every %g s (Litestream; race status shows how far "
             "behind)" % (replica.redact_url(replicator.url), replicator.interval_s)
             if replicator is not None else "none (set replica.url to keep one off this laptop)")
    log_addresses(config, fd_limit)
    write_run_file(config)  # the command line's changes go through this server from now on
    try:
        if ready is not None:
            ready()
        await stopping.wait()
        await shutdown(app, server)
    finally:
        remove_run_file(config)


async def shutdown(app, server, grace_s=SHUTDOWN_GRACE_S):
    """Stop accepting, answer what was already received, close judge sockets, close the database.

    Every submission whose headers arrived before the signal is committed and answered (up to
    ``grace_s`` seconds); judges' phones get close code 1001 and reconnect to the restarted server.
    """
    log.info("stopping: no new connections, finishing in-flight requests")
    server.stop()
    app.settings["server5k_hub"].close_all(1001, "El servidor se está deteniendo")
    app.settings["server5k_spectators"].close_all(1001, "El servidor se está deteniendo")
    app.settings["server5k_consoles"].close_all(1001, "El servidor se está deteniendo")
    app.settings["server5k_guard"].stop()
    in_flight = app.settings["server5k_in_flight"]
    if not await in_flight.wait_idle(grace_s):
        log.warning("stopping with %d requests still unanswered after %d s",
                    in_flight.count, grace_s)
    await server.close_all_connections()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, app.settings["server5k_store"].close)
    replicator = app.settings["server5k_replica"]
    if replicator is not None:
        await replicator.stop()  # SIGTERM: Litestream uploads the last commits, then exits
    await loop.run_in_executor(None, store.checkpoint)
    log.info("stopped cleanly")


# -- the run file: which server serves a database ---------------------------------------------
# While `serve` runs, a small file beside the database says so (its pid, when that process
# started, its URL). Every command that changes data reads it: with a live server it goes
# through the server's API (its writer orders every change; nothing waits on a lock), else it
# writes the database itself. A file left by a killed server names a process that is gone (or
# another process with that pid, started at another time): it is ignored.
def run_file(config):
    return Path(config["database"]["path"] + ".server.json")


def process_started(pid):
    """When process ``pid`` started (clock ticks since boot, Linux), or None where unknown."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def write_run_file(config):
    info = {"pid": os.getpid(), "started": process_started(os.getpid()),
            "url": base_url(config), "database": os.path.abspath(config["database"]["path"])}
    path = run_file(config)
    partial = path.with_name(path.name + ".%d.tmp" % os.getpid())
    write_private(partial, lambda handle: json.dump(info, handle))
    os.replace(partial, path)


def remove_run_file(config):
    """Remove the run file if it is this process's (a second `serve` refused with the address
    in use never removes the first one's)."""
    path = run_file(config)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def running_server(config):
    """The URL of the live server that serves this config's database, or None when none does.
    A server whose process lives but that does not answer (starting, stopping, hung) is a
    CliError: the command neither competes with it for the database nor waits for ever."""
    try:
        info = json.loads(run_file(config).read_text())
        pid, url = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # killed: its file stayed behind
    except PermissionError:
        pass  # alive, another user's
    if info.get("started") is not None and process_started(pid) not in (None, info["started"]):
        return None  # the pid was reused by another process
    try:
        status, _ = http_json("GET", url + "/api/me/", context=client_context(config),
                              timeout=5)
    except CliError:
        status = None
    if status != 401:  # a Server5K server answers an anonymous /api/me/ with a JSON 401
        raise CliError("a server (pid %d) is running for %s but does not answer at %s; try "
                       "again once it has started, or stop it" % (
                           pid, config["database"]["path"], url))
    return url


def log_addresses(config, fd_limit):
    """Where the server listens, and the addresses the judges' phones can open: with
    ``host: 0.0.0.0`` the console's "127.0.0.1" is no address for a phone."""
    server = config["server"]
    if server["host"] in addresses.WILDCARD_HOSTS:
        log.info("Server5K listening on every interface, port %d (up to %s open sockets); "
                 "this laptop: %s", server["port"], fd_limit, base_url(config))
    else:
        log.info("Server5K listening on %s (up to %s open sockets)", base_url(config), fd_limit)
    urls = addresses.phone_urls(server)
    if urls:
        log.info("phones can reach it at: %s", ", ".join(urls))
    elif server["host"] in addresses.WILDCARD_HOSTS:
        log.warning("no network address other than loopback: phones cannot reach this laptop "
                    "until it joins the venue's network")
    else:
        log.info("only this machine can reach it (server.host %s): set server.host: 0.0.0.0 "
                 "for the judges' phones", server["host"])


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


def ensure_demo(config):
    """Create the demo event once (idempotent): its credentials, kept beside the database."""
    path = demo_credentials_file(config)
    models.open_database(config["database"]["path"])
    with models.db.connection_context():
        if path.exists() and roster.demo_competition_id() is not None:
            return json.loads(path.read_text())
        creds = roster.create_demo_event()
    write_private(path, lambda handle: json.dump(creds, handle, indent=2))
    return creds


def print_demo(creds, config):
    url = base_url(config)
    lines = ["", "Server5K demo event (competencia %s) at %s" % (creds["competencia_id"], url),
             "  organizer  %-10s password %s" % (creds["organizador"]["username"],
                                                 creds["organizador"]["password"])]
    for juez in creds["jueces"]:
        lines.append("  judge      %-10s password %s  (juez_id %s, equipos %s)" % (
            juez["username"], juez["password"], juez["juez_id"],
            ", ".join(map(str, juez["equipos"]))))
    python = os.path.relpath(sys.executable)
    if python.startswith(".."):
        python = "python3"
    lines.append("  start the race:  SERVER5K_USER=organizador SERVER5K_PASSWORD=%s "
                 "%s server5k.py race start %s" % (creds["organizador"]["password"], python,
                                                  creds["competencia_id"]))
    print("\n".join(lines) + "\n", flush=True)


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
def printable(text):
    """Text for the organizer's terminal: characters it would not print as themselves (control
    characters, whose escape sequences can rewrite the screen or the window title; newlines
    that would forge a line; invisible and bidirectional controls that reorder what follows)
    are shown as \\xNN / \\uNNNN escapes instead. Names come from the roster and the API: never
    trusted raw."""
    if not isinstance(text, str) or text.isprintable():
        return text
    return "".join(c if c.isprintable() else ("\\x%02x" % ord(c) if ord(c) < 0x100 else
                                              "\\u%04x" % ord(c) if ord(c) < 0x10000 else
                                              "\\U%08x" % ord(c)) for c in text)


def shown(data):
    """``data`` (dicts, lists, text) with every string made printable: what the commands'
    tables and lines format (their ``--json`` output stays exact: JSON escapes it itself)."""
    if isinstance(data, str):
        return printable(data)
    if isinstance(data, dict):
        return {key: shown(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [shown(value) for value in data]
    return data


def emit(args, obj, text):
    """``obj`` as one JSON line with --json, else ``text`` (each line made printable)."""
    print(json.dumps(obj, ensure_ascii=False) if getattr(args, "json", False) else
          "\n".join(printable(line) for line in text.split("\n")))


def password_or_generated(args):
    """The given password, or a generated one (returned with a flag to print it once)."""
    if args.password:
        return args.password, False
    return models.generate_password(), True


def write_alone(fn, *args):
    """A change with no server running: the domain function run as the server runs it, as a
    job of the one writer (store.Writer: its thread, BEGIN IMMEDIATE, a savepoint, a durable
    commit). Passwords are hashed before, never inside its transaction."""
    writer = store.Writer()
    writer.start()
    try:
        return writer.submit(fn, *args).result()
    finally:
        writer.stop()


# What each command needs, declared beside it (``@needs``) and provided by main():
NOTHING = "nothing"    # neither the database nor a server of its own (serve, restore, ...)
DATABASE = "database"  # reads the database (WAL: never in a running server's way)
SERVER = "server"      # talks to the running server as an organizer (race, records, ...)
CHANGES = "changes"    # changes data: through the server that serves the database, when one
#                        runs (args.server, a ServerSession); else the same domain functions on
#                        the database itself (args.server is None). Never both at once.


def needs(what):
    def declare(command):
        command.needs = what
        return command
    return declare


def say(args, text):
    """What the command worked on, for the organizer: one line on stderr once it succeeded
    (a refused command's one line is its error)."""
    args.worked_on = text


def said(args):
    if getattr(args, "worked_on", None):
        print("server5k: %s" % printable(args.worked_on), file=sys.stderr, flush=True)


def open_event_database(args, config, server_url_=None):
    """Open the config's database for this command, saying which one on stderr; the demo
    database (the one `serve --demo` made) only when asked with --demo: a terminal without
    SERVER5K_CONFIG must not work on the demo event unawares. ``server_url_``: a server
    serves it (its schema is ready: opened without schema work, which would take the write
    lock)."""
    path = config["database"]["path"]
    check_not_demo(args, config)
    say(args, "database %s (config %s)%s" % (path, config["_path"], "; served by %s" %
                                             server_url_ if server_url_ else ""))
    if server_url_:
        models.db.init(path, pragmas=models.PRAGMAS)
    else:
        models.open_database(path)


def check_not_demo(args, config):
    path = config["database"]["path"]
    if demo_credentials_file(config).exists() and not getattr(args, "use_demo", False):
        raise CliError("%s is the demo database (`serve --demo` made it; config %s): is "
                       "SERVER5K_CONFIG set in this terminal? pass --demo to use it anyway"
                       % (path, config["_path"]))


def provide(args, config):
    """Give the command what it declared it needs (see NOTHING ... CHANGES)."""
    need = getattr(args, "needs", None) or getattr(args.func, "needs", NOTHING)
    args.server = None
    if need == DATABASE:
        open_event_database(args, config, running_server(config))
    elif need == CHANGES:
        url = running_server(config)
        if url is None:
            open_event_database(args, config)
            return
        check_not_demo(args, config)
        path = config["database"]["path"]
        say(args, "database %s (config %s) is served by %s: the change went through it" % (
            path, config["_path"], url))
        args.server = ServerSession(args, config, url, why=(
            "a server is running for %s at %s, so changes go through it as an organizer"
            % (path, url)))


@needs(NOTHING)
def cmd_init_db(args, config):
    url = running_server(config)
    if url is not None:
        print("database ready: %s is served by %s (its schema is version %d)" % (
            config["database"]["path"], url, models.SCHEMA_VERSION))
        return
    say(args, "database %s (config %s)" % (config["database"]["path"], config["_path"]))
    models.open_database(config["database"]["path"])
    signing_secret(config)
    print("database ready: %s (schema version %d)" % (config["database"]["path"],
                                                     models.SCHEMA_VERSION))
    print("signing secret: %s; keep it: the same secret keeps every phone logged in across "
          "restarts, and a second machine needs a copy" % secret_source(config))


@needs(NOTHING)
def cmd_backup(args, config):
    """A consistent copy of the event database, safe while the server is running."""
    say(args, "database %s (config %s)" % (config["database"]["path"], config["_path"]))
    records = store.backup(config["database"]["path"], args.file)
    print("backup written: %s (%d time records)" % (args.file, records))


@needs(NOTHING)
def cmd_demo(args, config):
    if running_server(config) is not None:
        if not demo_credentials_file(config).exists():
            raise CliError("a server is running for %s: the demo event is made by `serve "
                           "--demo` (stop it first)" % config["database"]["path"])
        print_demo(json.loads(demo_credentials_file(config).read_text()), config)
        return
    say(args, "database %s (config %s)" % (config["database"]["path"], config["_path"]))
    print_demo(ensure_demo(config), config)


def local(text):
    """A wire timestamp (UTC, ``Z``) as the venue's local time with its offset, for people."""
    return models.local_iso(models.parse_timestamp(text)) if text else None


def local_date(text, option="--date"):
    """An organizer's date: ISO 8601, in the venue's zone (race.timezone) without an offset."""
    try:
        return models.parse_local_timestamp(text)
    except ValueError:
        raise CliError("%s must be ISO 8601, e.g. 2026-12-06T09:00 (local time, %s) or "
                       "2026-12-06T09:00:00+01:00" % (option, models.zone().key)) from None


@needs(CHANGES)
def cmd_competition(args, config):
    if args.action == "add":
        fecha = local_date(args.date) if args.date else None
        if args.server:
            comp = args.server.call("POST", "/api/competencias/", {
                "nombre": args.name, "fecha_hora": fecha and models.local_iso(fecha)},
                what="competition add")
        else:
            comp = write_alone(roster.add_competition, None, args.name, fecha)
        emit(args, comp, "competition %d created: %s%s" % (
            comp["id"], comp["nombre"], ", start %s" % models.local_iso(fecha) if fecha else ""))
    else:
        rows = models.all_competitions()
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
        for c in [] if args.json else shown(rows):
            print("%4d  %-11s %-25s %s" % (c["id"], c["estado"], local(c["fecha_hora"]) or "-",
                                          c["nombre"]))


@needs(SERVER)
def cmd_competition_set(args, config):
    """``competition set ID``: the scoring rule and the scheduled start, on the running server
    (so the live page changes at once, and the change is in the history)."""
    regla = {key: value for key, value in (("tipo", args.scoring), ("contados", args.counted),
                                           ("minimo", args.min_finishers)) if value is not None}
    body = {"regla": regla} if regla else {}
    if args.date:  # sent with its offset: this command line's zone, whichever server it asks
        body["fecha_hora"] = models.local_iso(local_date(args.date))
    if args.name is not None:
        body["nombre"] = args.name
    if args.oculta is not None:
        body["oculta"] = args.oculta
    if not body:
        raise CliError("nothing to set: give --scoring, --counted, --min-finishers, --date, "
                       "--name, --hide or --show")
    if args.reason:
        body["motivo"] = args.reason
    session = ServerSession(args, config)
    answer = session.call("PATCH", "/api/competencias/%d/" % args.id, body,
                          what="competition set")
    comp, regla = answer["competencia"], answer["regla"]
    emit(args, answer, "competition %d %s%s: %s; scheduled start %s\n  %s" % (
        comp["id"], comp["nombre"], " (hidden from the public index)" if comp["oculta"] else "",
        rule_line(regla), local(comp["fecha_hora"]) or "none", regla["texto"]))


def rule_line(regla):
    """A competition's scoring rule, short: ``puntos, best 5 count, 5 finishers to rank``."""
    return "%s, best %d count%s" % (regla["tipo"], regla["contados"], ", %d finishers to rank"
                                    % regla["minimo"] if regla["minimo"] > 1 else "")


@needs(CHANGES)
def cmd_organizer(args, config):
    password, generated = password_or_generated(args)
    if args.server:
        user = args.server.call("POST", "/api/organizadores/", {
            "username": args.username, "password": password}, what="organizer add")
    else:
        user = write_alone(roster.add_organizer, None, args.username, None,
                           models.new_password_hash(password))
    obj = dict(user, **({"password": password} if generated else {}))
    emit(args, obj, "organizer %d created: %s%s" % (
        user["id"], user["username"],
        ("\npassword (shown once): %s" % password) if generated else ""))


@needs(CHANGES)
def cmd_judge(args, config):
    if args.action == "add":
        password, generated = password_or_generated(args)
        if args.server:
            juez = args.server.call("POST", "/api/competencias/%d/jueces/" % args.competition, {
                "username": args.username, "nombre": args.name, "password": password},
                what="judge add")["juez"]
        else:
            juez = write_alone(roster.add_judge, None, args.competition, args.username,
                               args.name, None, models.new_password_hash(password))
        obj = {"id": juez["id"], "username": juez["username"], "nombre": juez["nombre"],
               "competencia_id": juez["competencia"]["id"]}
        if generated:
            obj["password"] = password
        emit(args, obj, "judge %d created: %s (competition %d)%s" % (
            obj["id"], obj["username"], obj["competencia_id"],
            ("\npassword (shown once): %s" % password) if generated else ""))
    elif args.action == "list":
        rows = roster.list_judges(args.competition)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
        for r in [] if args.json else shown(rows):
            print("%4d  %-20s %-25s competition %d%s" % (
                r["id"], r["username"], r["nombre"], r["competencia_id"],
                "" if r["activo"] else "  (inactive)"))
    else:  # passwd
        if args.password:
            password, generated = args.password, False
        elif sys.stdin.isatty():
            password, generated = getpass.getpass("new password: "), False
            if not password:
                raise CliError("empty password")
        else:
            password, generated = models.generate_password(), True
        if args.server:  # a judge's password, through the server: its sockets close at once
            juez = args.server.call("PATCH", "/api/jueces/%d/" % judge_id(
                args.server, args.username, "only a judge's password can be changed while "
                "the server runs"), {"password": password}, what="judge passwd")
            username = juez["username"]
        else:  # refused at their next use by a server started later (token generations)
            user = models.User.get_or_none(
                models.User.username_key == models.username_key(args.username))
            if user is None:
                raise models.NotFound("El usuario %r no existe." % args.username,
                                      "user_not_found")
            write_alone(models.replace_password, user.id, models.new_password_hash(password))
            username = user.username
        print("password changed for %s; every token issued before is refused%s" % (
            username, ("\nnew password (shown once): %s" % password) if generated else ""))


@needs(CHANGES)
def cmd_team(args, config):
    if args.action == "add":
        if args.server:
            juez = server_judge(args.server, args.judge)
            team = args.server.call("POST", "/api/competencias/%d/equipos/" % (
                juez["competencia_id"]), {"nombre": args.name, "dorsal": args.dorsal,
                                          "juez_id": juez["id"], "categoria": args.category},
                what="team add")
            username = juez["username"]
        else:
            juez = roster.find_judge(args.judge)
            team = write_alone(roster.add_team, None, juez.competencia_id, args.name,
                               args.dorsal, juez.id, args.category)
            username = juez.user.username
        obj = {key: team[key] for key in ("id", "nombre", "dorsal", "juez_id", "competencia_id",
                                          "categoria")}
        emit(args, obj, "team %d created: %s (dorsal %d, judge %s, competition %d%s)" % (
            team["id"], team["nombre"], team["dorsal"], username,
            team["competencia_id"], ", category %s" % team["categoria"] if team["categoria"]
            else ""))
    else:
        rows = roster.list_teams(args.competition)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
        for r in [] if args.json else shown(rows):
            print("%4d  dorsal %-5d %-30s judge %-20s competition %d%s" % (
                r["id"], r["dorsal"], r["nombre"], r["juez_usuario"] or "-", r["competencia_id"],
                "  category %s" % r["categoria"] if r["categoria"] else ""))


CREDENTIAL_COLUMNS = ("usuario", "contrasena", "juez_id", "nombre")


def write_credentials(handle, rows, spreadsheet=False):
    """The credentials CSV that `import` and `simulate --create-demo` write (and read back,
    with or without a byte order mark). A cell a spreadsheet would run as a formula (a judge
    named ``=HYPERLINK(...)``) gets a leading apostrophe, as the console's downloads do
    (models._csv_cell); read_credential takes it off again. ``spreadsheet``: the one `import`
    writes for the organizer to open, with a UTF-8 byte order mark, so a spreadsheet keeps the
    judges' accented names."""
    if spreadsheet:
        handle.write("\ufeff")
    writer = csv.writer(handle)
    writer.writerow(CREDENTIAL_COLUMNS)
    writer.writerows([models._csv_cell(value) for value in row] for row in rows)


def read_credential(value):
    """A cell of a credentials CSV as it was before write_credentials guarded it."""
    if isinstance(value, str) and value[:1] == "'" and models._csv_cell(value[1:]) != value[1:]:
        return value[1:]
    return value


@needs(CHANGES)
def cmd_import(args, config):
    """Judges and teams from a CSV roster, all or nothing; new passwords go to a 0600 file.
    A team already there (its dorsal) is corrected where the roster says otherwise."""
    path = Path(args.roster)
    rows, notes = roster.read_roster(path)  # (read and checked here: errors name the file)
    if args.server:
        answer = args.server.call(
            "POST", "/api/competencias/%d/importar/" % args.competition,
            raw=path.read_bytes(), content_type="text/csv", timeout=600, what="import")
        notes = [note.replace("El CSV", str(path)) for note in answer["notas"]]
        result = dict(answer, credenciales=[[c["username"], c["password"], c["juez_id"],
                                             c["nombre"]] for c in answer["credenciales"]])
    else:  # read and hashed here, then written in one transaction (all or nothing)
        plan = roster.plan_roster(rows, args.competition, source=str(path))
        result = write_alone(roster.apply_roster, plan, None, roster.roster_passwords(plan))
    for note in notes:
        print("note: %s" % printable(note))
    creds_path = None
    if result["credenciales"]:
        creds_path = credentials_file(args.credentials, path)
        write_private(creds_path, lambda handle: write_credentials(
            handle, result["credenciales"], spreadsheet=True), exclusive=True)
    for team in result["detalle"]["equipos"]:
        if team.get("cambios"):
            print("line %s: dorsal %d %s" % (team["linea"], team["dorsal"], printable("; ".join(
                "%s %s -> %s" % (field, before, after)
                for field, (before, after) in team["cambios"].items()))))
    print("imported %d judges (%d new) and %d teams into competition %d%s%s" % (
        result["jueces"], len(result["credenciales"]), result["equipos_nuevos"], args.competition,
        "; %d teams corrected" % result["equipos_cambiados"] if result["equipos_cambiados"]
        else "", ("; new passwords in %s (mode 0600)" % creds_path) if creds_path else ""))


def credentials_file(given, roster_path):
    """Where new judges' passwords go: ``--credentials``, else ROSTER-credenciales.csv beside
    the roster, or -2, -3... when that exists (a file of passwords is never overwritten)."""
    if given:
        if Path(given).exists():
            raise CliError("%s already exists; passwords are never written over a file: pass "
                           "another --credentials" % given)
        return Path(given)
    for n in range(1, 1000):
        candidate = roster_path.with_name("%s-credenciales%s.csv" % (
            roster_path.stem, "" if n == 1 else "-%d" % n))
        if not candidate.exists():
            return candidate
    raise CliError("too many credentials files beside %s; pass --credentials" % roster_path)


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
        raise CliError("the server at %s is not reachable (%s); is `python server5k.py serve` "
                       "running?" % (url.split("/api/")[0], reason)) from None


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
                raise CliError("%s; set %s to an organizer's login" % (why, missing))
            raise CliError("organizer credentials needed: --user/--password or "
                           "SERVER5K_USER/SERVER5K_PASSWORD (%s not set)" % missing)
        status, answer = http_json("POST", self.url + "/api/token/",
                                   {"username": user, "password": password},
                                   context=self.context)
        if status != 200:
            raise CliError("login as %s failed (%d): %s" % (user, status, answer.get("detail")))
        self.token = answer["access"]

    def call(self, method, path, body=None, what=None, **options):
        """The answer of a 2xx; a CliError naming ``what`` (or the path) otherwise.
        ``options``: http_json's (``raw`` bytes and their ``content_type``, ``timeout``)."""
        status, answer = http_json(method, self.url + path, body, token=self.token,
                                   context=self.context, **options)
        if status >= 300:
            code = answer.get("code")
            words = CLI_WORDS.get(code)
            fields = "".join("; %s: %s" % item for item in (answer.get("errors") or {}).items())
            raise CliError("%s failed (%d %s): %s%s" % (
                what or path, status, code,
                words.format(id=self.id_in(path)) if words else answer.get("detail"), fields))
        return answer

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
            raise CliError("%s failed (%d)" % (what or path, exc.code)) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise CliError("the server at %s is not reachable (%s)" % (
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
        raise CliError("--url must start with http:// or https://, not %s://" % scheme)
    return url


def race_line(comp):
    """One line for a competition's race state, with the moments that matter in it (local
    time, with its offset)."""
    if comp["estado"] == models.ESTADO_FINALIZADA:
        when = " at %s (started %s)" % (local(comp["finished_at"]), local(comp["started_at"]))
    elif comp["started_at"]:
        when = " since %s" % local(comp["started_at"])
    elif comp["fecha_hora"]:
        when = ", start scheduled %s" % local(comp["fecha_hora"])
    else:
        when = ""
    return "competition %d %s: %s%s%s" % (comp["id"], comp["nombre"], comp["estado"], when,
                                          "; results official" if comp.get("oficial") else "")


@needs(SERVER)
def cmd_race(args, config):
    session = ServerSession(args, config)
    cid = args.id
    if args.action == "status":
        answer = session.call("GET", "/api/competencias/%d/jueces/" % cid, what="status")
    elif args.action == "shift":
        body = {"delta_ms": duration(args.by, signed=True), "motivo": args.reason}
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
    answer = shown(answer)
    comp = answer["competencia"]
    print(race_line(comp))
    if args.action == "status":
        print(format_board(answer))
    elif args.action == "shift":
        print("%s ms added to %d records%s" % (
            "%+d" % body["delta_ms"], answer["registros_afectados"],
            "" if args.judge is not None
            else "; the start is now %s" % local(comp["started_at"])))
    else:
        print("judge sockets notified: %d" % answer["notificados"])


def format_board(board):
    """``race status``: who is connected and, once started, who heard the start when."""
    started = board["competencia"]["started_at"] is not None
    lines = ["judges connected: %d of %d" % (board["conectados"], len(board["jueces"]))]
    for juez in board["jueces"]:
        line = "  %-3s %4d  %-20s %s" % (
            "OK" if juez["conectado"] else "--", juez["id"], juez["username"],
            ("%d socket(s), last at %s" % (juez["sockets"], local(juez["ultima_conexion"])))
            if juez["conectado"] else "not connected")
        if started:
            heard, implied = juez["retraso_inicio_ms"], juez["inicio_implicito_ms"]
            line += "; heard the start %s; records imply a stopwatch %s" % (
                "%+.1f s after it" % (heard / 1000.0) if heard is not None else "never",
                "%+.1f s off" % (implied / 1000.0) if implied is not None else "(no records)")
            if juez["alerta"]:
                line += "  ALERT: check it (race shift ID --by D --judge %d --reason R)" % (
                    juez["id"])
        lines.append(line)
    copy = board.get("replica")
    if copy is not None:
        lag = copy.get("lag_s")
        lines.append("live copy to %s: %s%s" % (
            copy["url"], "running" if copy["running"] else "NOT RUNNING",
            (", %.1f s behind" % lag) if lag is not None else ", lag unknown"))
        if copy.get("last_error"):
            lines.append("  last Litestream error (%s): %s" % (copy.get("last_error_at"),
                                                              copy["last_error"]))
    if board.get("registros_tras_final"):
        lines.append("%d records arrived after the stop (stored, and counted unless the results "
                     "are official: results official ID freezes them)"
                     % board["registros_tras_final"])
    return "\n".join(lines)


def duration(text, signed=False):
    """A time typed on the command line (milliseconds or clock text), as ms."""
    try:
        return models.parse_duration(text, signed=signed)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def record_line(r):
    flags = [name for name, on in (("void", r["anulado"]), ("absent", r["ausente"]),
                                   ("pending", r["pendiente"]), ("early", r["antes_de_salida"]),
                                   ("impossible", r.get("tiempo_imposible")),
                                   ("manual", r["origen"] == "manual")) if on]
    return "%s  team %-5d judge %-5s %13s %s%s" % (
        r["id"], r["equipo_id"], r["juez_id"] if r["juez_id"] is not None else "-",
        models.format_ms(r["tiempo"]), "counts" if r["cuenta"] else "-",
        ("  [%s]" % ", ".join(flags)) if flags else "")


@needs(SERVER)
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
        answer = shown(answer)
        print("%d records of competition %d %s" % (len(answer["registros"]), args.id,
                                                  answer["competencia"]["nombre"]))
        for r in answer["registros"]:
            print(record_line(r))
        return
    if args.action == "history":
        answer = session.call("GET", "/api/registros/%s/historial/" % args.rid,
                              what="records history")
        if args.json:
            print(json.dumps(answer, ensure_ascii=False))
            return
        answer = shown(answer)
        print(record_line(answer["registro"]))
        for entry in answer["historial"]:
            print("  %s  %-12s %-12s %s -> %s  %s" % (
                local(entry["en"]), entry["accion"], entry["usuario"] or "-",
                printable(json.dumps(entry["antes"], ensure_ascii=False)),
                printable(json.dumps(entry["despues"], ensure_ascii=False)),
                entry["motivo"] or ""))
        return
    if args.action == "add":
        body = {"equipo_id": args.team, "tiempo": duration(args.tiempo), "motivo": args.reason}
        if args.timestamp:
            body["timestamp"] = args.timestamp
        record = session.call("POST", "/api/competencias/%d/registros/" % args.id, body,
                              what="records add")
    elif args.action == "edit":
        body = {"motivo": args.reason}
        if args.team is not None:
            body["equipo_id"] = args.team
        if args.tiempo is not None:
            body["tiempo"] = duration(args.tiempo)
        record = session.call("PATCH", "/api/registros/%s/" % args.rid, body, what="records edit")
    else:
        path = {"void": "anular", "restore": "restaurar", "accept": "aceptar"}[args.action]
        record = session.call("POST", "/api/registros/%s/%s/" % (args.rid, path),
                              {"motivo": args.reason}, what="records " + args.action)
    if args.json:
        print(json.dumps(record, ensure_ascii=False))
    else:
        print(record_line(shown(record)))


@needs(SERVER)
def cmd_team_correction(args, config):
    """``team status`` and ``team penalty`` on the running server."""
    session = ServerSession(args, config)
    if args.action == "status":
        body, path = {"estado": args.estado, "motivo": args.reason}, "estado"
    else:
        body, path = {"ms": duration(args.ms, signed=True), "motivo": args.reason}, "penalizacion"
    team = session.call("POST", "/api/equipos/%d/%s/" % (args.eid, path), body,
                        what="team " + args.action)
    emit(args, team, "team %d %s: estado %s, penalty %s ms" % (
        team["id"], team["nombre"], team["estado"], team["penalizacion_ms"]))


def judge_id(session, reference, otherwise=None):
    """A judge's id on the running server, by username (case-insensitive) or id."""
    return server_judge(session, reference, otherwise)["id"]


def server_judge(session, reference, otherwise=None):
    """A judge on the running server ({"id", "username", "nombre", "competencia_id",
    "activo"}), by username (case-insensitive) or id."""
    judges = session.call("GET", "/api/jueces/", what="judge list")["jueces"]
    key = models.username_key(str(reference))
    for juez in judges:
        if models.username_key(juez["username"]) == key or str(juez["id"]) == str(
                reference).strip():
            return juez
    raise CliError("no judge %r on the server%s: give a username or an id (judge list)"
                   % (reference, " (%s)" % otherwise if otherwise else ""))


@needs(SERVER)
def cmd_judge_active(args, config):
    """``judge deactivate|activate USERNAME`` on the running server."""
    session = ServerSession(args, config)
    juez = session.call("PATCH", "/api/jueces/%d/" % judge_id(session, args.username),
                        {"activo": args.action == "activate"}, what="judge " + args.action)
    emit(args, juez, "judge %d %s: %s" % (
        juez["id"], juez["username"], "active" if juez["activo"] else
        "inactive; its tokens are refused and its sockets closed"))


@needs(SERVER)
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
        raise CliError("team edit needs --name, --dorsal, --judge or --category")
    team = session.call("PATCH", "/api/equipos/%d/" % args.eid, body, what="team edit")
    emit(args, team, "team %d %s: dorsal %d, judge %s, category %s" % (
        team["id"], team["nombre"], team["dorsal"], team["juez_id"], team["categoria"] or "-"))


EXCEL_HELP = ("with --csv: the CSV that Excel opens in columns where the decimal mark is a comma "
              "(Spain, Latin America): ';'-separated, times with a decimal comma, UTF-8 with BOM "
              "(without it: the plain comma-separated CSV, for programs)")


def excel_needs_csv(args):
    if args.excel and not args.csv:
        raise CliError("--excel goes with --csv FILE (the file to write for the spreadsheet)")


@needs(SERVER)
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
    for a in shown(answer["acciones"]):
        print("%5d  %s  %-12s %-11s %-36s %-12s %s" % (
            a["id"], local(a["en"]), a["accion"], a["objeto"], a["objeto_id"], a["usuario"] or "-",
            a["motivo"] or ""))


@needs(NOTHING)
def cmd_results(args, config):
    """The standings from the database (works while the server runs: WAL readers), or
    ``results official|reopen ID`` on the running server."""
    if args.what in ("official", "reopen"):
        return results_official(args, config)
    try:
        args.id = int(args.what)
    except ValueError:
        raise CliError("results takes a competition ID (or official ID, reopen ID)") from None
    excel_needs_csv(args)
    open_event_database(args, config, running_server(config))
    result = models.ranking(args.id)
    if args.category is not None:
        if args.category not in result["categorias"]:
            raise CliError("competition %d has no category %r (its categories: %s)" % (
                args.id, args.category, ", ".join(result["categorias"]) or "none"))
        result = models.only_category(result, args.category)
    if args.csv:
        Path(args.csv).write_text(models.ranking_csv(result, excel=args.excel),
                                  encoding="utf-8", newline="")
        print("%d teams written to %s" % (len(result["clasificacion"]), args.csv))
        return
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    print(format_results(shown(result)))


def results_official(args, config):
    if args.id is None:
        raise CliError("results %s needs the competition ID" % args.what)
    if args.what == "reopen" and not args.reason:
        raise CliError("results reopen needs --reason")
    session = ServerSession(args, config)
    path = "oficializar" if args.what == "official" else "reabrir"
    body = {"motivo": args.reason} if args.reason else None
    comp = session.call("POST", "/api/competencias/%d/%s/" % (args.id, path), body,
                        what="results " + args.what)
    emit(args, comp, "competition %d %s: results %s" % (
        comp["id"], comp["nombre"], "official" if comp["oficial"] else "provisional"))


def format_results(result, now=None):
    """The standings as a plain-text table for a terminal: the race, the rule in words, then
    one line per team (of one category when the result is filtered by one)."""
    comp, regla = result["competencia"], result["regla"]
    category = result.get("categoria")
    lines = ["%s; best %d times count" % (race_line(comp), result["registros_por_equipo"]),
             "rule: %s. %s" % (rule_line(regla), regla["texto"]),
             # official: when they became so; provisional: as of now
             "results %s at %s%s" % ("official" if comp["oficial"] else "provisional",
                                     models.local_iso(
                                         models.parse_timestamp(comp["oficial_en"])
                                         if comp["oficial"] and comp.get("oficial_en")
                                         else now or models.utcnow()),
                                     "; category %s" % category if category else "")]
    rows = result["clasificacion"]
    if not rows:
        return "\n".join(lines + ["no teams"])
    # Columns: (title, width, value of a row); some only where they say something.
    columns = [("pos", 4, lambda r: r["posicion_categoria" if category else "posicion"])]
    if category:
        columns.append(("overall", 7, lambda r: r["posicion"]))
    elif result["categorias"]:
        columns += [("cat.pos", 7, lambda r: r["posicion_categoria"]),
                    ("categoria", max(9, *(len(r["categoria"] or "") for r in rows)),
                     lambda r: r["categoria"])]
    columns += [("dorsal", 6, lambda r: r["dorsal"]),
                ("equipo", -max(6, *(len(r["equipo"]) for r in rows)), lambda r: r["equipo"]),
                ("counted", 8, lambda r: r["registros_contados"]),
                ("total", 13, lambda r: r["tiempo_total"]),
                ("best", 13, lambda r: r["mejor"]),
                ("mean", 13, lambda r: r["promedio"])]
    if regla["tipo"] == "puntos":
        columns += [("points", 6, lambda r: r["puntos"]),
                    ("places", -6, lambda r: " ".join(map(str, r["puestos"])) or None)]
    columns.append(("early", 6, lambda r: r["antes_de_salida"] or ""))

    def line(cells):
        return " ".join("%*s" % (width, cell) for (_, width, _), cell in zip(columns, cells))
    header = line(title for title, _, _ in columns).rstrip()
    lines += [header, "-" * len(header)]
    for r in rows:
        lines.append(line("-" if (value := get(r)) is None else value
                          for _, _, get in columns).rstrip())
    if any(r["antes_de_salida"] for r in rows):
        lines.append("early = records received before the start: counted, check them")
    return "\n".join(lines)


# -- simulate: rehearse an event with virtual judges against the running server -----------------
def simulation_credentials_path(config):
    return Path(config["database"]["path"] + ".simulate-credentials.csv")


def create_simulation_judges(config, judges, competencia_id=None, session=None):
    """Rehearsal judges simjuez1..N (roster.rehearsal_judges) in the competition (the demo one
    by default); passwords of new ones go to the credentials file, mode 0600. ``session``: the
    running server's (a ServerSession), through which they are made while it runs.
    Returns (competencia_id, credentials path)."""
    if competencia_id is None:
        if session is not None:
            if not demo_credentials_file(config).exists():
                raise CliError("no demo event in %s: give --competition ID"
                               % config["database"]["path"])
            competencia_id = json.loads(demo_credentials_file(config).read_text())[
                "competencia_id"]
        else:
            competencia_id = ensure_demo(config)["competencia_id"]
    path = simulation_credentials_path(config)
    known = {}
    if path.exists():
        with path.open(newline="", encoding="utf-8-sig") as handle:
            known = {read_credential(row["usuario"]): {
                key: read_credential(value) for key, value in row.items()}
                for row in csv.DictReader(handle)}
    if session is not None:
        rows = rehearsal_judges_through(session, competencia_id, judges, known)
    else:
        models.open_database(config["database"]["path"])
        with models.db.connection_context():
            rows = roster.rehearsal_judges(competencia_id, judges, known)
    write_private(path, lambda handle: write_credentials(
        handle, [[r["usuario"], r["contrasena"], r["juez_id"], r["nombre"]] for r in rows]))
    return competencia_id, path


@needs(NOTHING)
def rehearsal_judges_through(session, competencia_id, count, known):
    """roster.rehearsal_judges, through the running server's API (as an organizer)."""
    judges = {j["username"]: j for j in session.call("GET", "/api/jueces/",
                                                     what="judge list")["jueces"]}
    board = session.call("GET", "/api/competencias/%d/jueces/" % competencia_id,
                         what="judges board")
    with_teams = {j["id"] for j in board["jueces"] if j["equipos"]}
    dorsal = max([e["dorsal"] for j in board["jueces"] for e in j["equipos"]] or [0])
    rows = []
    for n in range(1, count + 1):
        username = "%s%d" % (roster.REHEARSAL_PREFIX, n)
        juez = judges.get(username)
        if juez is not None and juez["competencia_id"] != competencia_id:
            raise CliError("%s is a judge of competition %d, not %d"
                           % (username, juez["competencia_id"], competencia_id))
        if juez is not None and username in known:
            rows.append(known[username])
            continue
        password = models.generate_password()
        if juez is None:
            juez = session.call("POST", "/api/competencias/%d/jueces/" % competencia_id, {
                "username": username, "nombre": "Juez simulado %d" % n, "password": password},
                what="judge add")["juez"]
        else:
            juez = session.call("PATCH", "/api/jueces/%d/" % juez["id"],
                                {"password": password}, what="judge passwd")
        if juez["id"] not in with_teams:
            dorsal += 1
            session.call("POST", "/api/competencias/%d/equipos/" % competencia_id, {
                "nombre": "Equipo simulado %d" % n, "dorsal": dorsal, "juez_id": juez["id"]},
                what="team add")
        rows.append({"usuario": username, "contrasena": password, "juez_id": juez["id"],
                     "nombre": juez["nombre"]})
    return rows


def cmd_simulate(args, config):
    """Rehearse race day: N virtual judges log in, connect, wait for the start, send times."""
    url = server_url(args.url, config)
    competencia_id = args.competition
    if args.create_demo:
        print("creating or reusing %d rehearsal judges (%s1..%s%d) ..." % (
            args.judges, roster.REHEARSAL_PREFIX, roster.REHEARSAL_PREFIX, args.judges), flush=True)
        url = running_server(config)
        # (a server runs for the database: the rehearsal judges are made through it, as an
        # organizer: --user/--password or SERVER5K_USER/SERVER5K_PASSWORD)
        session = url and ServerSession(args, config, url)
        competencia_id, path = create_simulation_judges(config, args.judges, competencia_id,
                                                        session)
        print("competition %d; their passwords are in %s (mode 0600)" % (competencia_id, path))
    else:
        path = Path(args.credentials) if args.credentials else simulation_credentials_path(config)
        if not path.exists():
            raise CliError("no judge credentials at %s: pass --credentials FILE (the CSV that "
                           "`import` writes) or --create-demo to create rehearsal judges" % path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            credentials = [(read_credential(row["usuario"]), read_credential(row["contrasena"]))
                           for row in csv.DictReader(handle)]
    except (KeyError, csv.Error, UnicodeDecodeError) as exc:
        raise CliError("%s is not a credentials CSV (usuario,contrasena,...): %s"
                       % (path, exc)) from None
    if len(credentials) < args.judges:
        raise CliError("%s holds %d judges, fewer than --judges %d"
                       % (path, len(credentials), args.judges))
    organizer = None
    if args.start:
        user = args.user or os.environ.get("SERVER5K_USER")
        password = args.password or os.environ.get("SERVER5K_PASSWORD")
        if not user or not password:
            raise CliError("--start needs organizer credentials: --user/--password or "
                           "SERVER5K_USER/SERVER5K_PASSWORD")
        organizer = (user, password)
    else:
        print("waiting for the organizer to start the race once the judges are connected, "
              "e.g. python server5k.py race start %s" % (competencia_id or "ID"), flush=True)
    summary, ok = asyncio.run(rehearsal.simulate(
        url, credentials[:args.judges], competencia_id, organizer, wait_start_s=args.wait,
        ssl_context=client_context(config)))
    print(summary)
    if not ok:
        raise CliError("the rehearsal did not complete (see the summary above)")


@needs(NOTHING)
def cmd_restore(args, config):
    """The latest live copy (replica.url, or --from URL) into a new database file, checked."""
    url = args.source or config["replica"]["url"]
    if not url:
        raise CliError("no copy to restore from: pass --from URL or set replica.url")
    info = replica.restore(url, args.to, models.SCHEMA_VERSION,
                           max_age_s=None if args.any_age else replica.DEFAULT_MAX_AGE_S)
    print("restored %s from %s: %d time records, the newest received %s; the copy's newest "
          "change is %s old (%s)" % (
              info["path"], replica.redact_url(url), info["records"],
              info["newest_received_at"] or "-",
              "%.1f s" % info["age_s"] if info["age_s"] is not None else "an unknown time",
              info["copied_at"] or "-"))
    print("next: point database.path at it, use the same signing secret (copy %s) and serve; "
          "set replica.url to a NEW location on this machine" % secret_file(config))


@needs(NOTHING)
def cmd_serve(args, config):
    asyncio.run(serve(config, demo=args.demo))


ENV_HELP = ("Commands marked (server) talk to the running server as an organizer: "
            "--user/--password, or SERVER5K_USER and SERVER5K_PASSWORD in the environment; the "
            "address comes from the config (--url to override). Commands that change data "
            "go through the server that serves the database when one runs (as an organizer, "
            "the same way), else write the database themselves; the others read it. Each says "
            "on stderr which database it works on.")


class Parser(argparse.ArgumentParser):
    """argparse, but a refused command line is one line on stderr (the usage is in --help),
    and a negative time such as ``--by -1.5s`` or ``-0:20`` is a value, not an option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r"^-[0-9]+(\.[0-9]+)?(ms|s)?$|^-[0-9]+(:[0-9]+)+(\.[0-9]+)?$")

    def error(self, message):
        self.exit(2, "%s: error: %s (see %s --help)\n" % (self.prog, message, self.prog))


def build_parser():
    parser = Parser(
        prog="server5k.py", description="Server5K race timing. " + ENV_HELP,
        epilog="python server5k.py COMMAND --help tells more about each command.")
    parser.add_argument("--config", metavar="FILE",
                        help="config file (default: $SERVER5K_CONFIG, else config.yaml beside "
                             "server5k.py); a file named here must exist")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--demo", dest="use_demo", action="store_true",
                        help="work on the demo database (the one `serve --demo` made): "
                             "refused without this, so that a terminal without "
                             "SERVER5K_CONFIG never changes the demo event unawares")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the server (Ctrl-C stops it gracefully)")
    p.add_argument("--demo", action="store_true",
                   help="create the demo event (once) and print its logins")
    p.set_defaults(func=cmd_serve)
    sub.add_parser("init-db", help="create or migrate the database, and its signing secret "
                   "unless SERVER5K_SECRET_KEY is set").set_defaults(func=cmd_init_db)
    sub.add_parser("demo", help="create the demo event (once) and print its logins, without "
                   "serving").set_defaults(func=cmd_demo)
    p = sub.add_parser("restore", help="bring back the live copy (replica.url) into a new file",
                       description="The latest copy from replica.url (or --from URL) restored to "
                       "PATH, checked (integrity, Server5K schema, age) before it is put there.")
    p.add_argument("--to", required=True, metavar="PATH", help="the new database file (must not "
                   "exist)")
    p.add_argument("--from", dest="source", metavar="URL", help="the replica URL (default: "
                   "replica.url of the config)")
    p.add_argument("--any-age", action="store_true", help="accept a copy older than %d h "
                   "(default: refused as stale)" % (replica.DEFAULT_MAX_AGE_S // 3600))
    p.set_defaults(func=cmd_restore)
    p = sub.add_parser("backup", help="a consistent copy of the database in FILE (safe while "
                       "the server runs)")
    p.add_argument("file", metavar="FILE", help="where to write the copy (must not exist)")
    p.set_defaults(func=cmd_backup)

    comp = sub.add_parser("competition", help="create and list competitions").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = comp.add_parser("add", help="a new competition")
    p.add_argument("name", help="its name, as the results page shows it")
    p.add_argument("--date", metavar="ISO",
                   help="the scheduled start, ISO 8601: 2026-12-20T09:00 (local time, "
                        "race.timezone) or 2026-12-20T09:00:00+01:00")
    p.add_argument("--json", action="store_true", help="print it as one JSON line")
    p = comp.add_parser("list", help="every competition")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p = comp.add_parser(
        "set", help="(server) the scoring rule, the scheduled start, the name, the listing",
        description="The competition's scoring rule (before or during the race; every change "
        "is in the history) and its scheduled start, on the running server: the live page "
        "follows at once. suma: best N times, more finishers first, lower total; promedio: the "
        "lowest mean of the best N; puntos: cross-country places, the best N add up, the next "
        "two only displace, lowest sum wins. " + ENV_HELP)
    p.add_argument("id", type=int, metavar="ID", help="the competition's id (competition list)")
    p.add_argument("--scoring", choices=models.REGLAS, help="the rule")
    p.add_argument("--counted", type=int, metavar="N",
                   help="how many of a team's times count (default race.records_scored_per_team)")
    p.add_argument("--min-finishers", type=int, metavar="M",
                   help="finishers a team needs to be ranked (default 1)")
    p.add_argument("--date", metavar="ISO", help="the scheduled start, ISO 8601; without an "
                   "offset it is local time (race.timezone)")
    p.add_argument("--name", metavar="N", help="rename it")
    listing = p.add_mutually_exclusive_group()
    listing.add_argument("--hide", dest="oculta", action="store_const", const=True,
                         help="leave it out of the public index (a test race; its pages still "
                         "open by their address)")
    listing.add_argument("--show", dest="oculta", action="store_const", const=False,
                         help="list it in the public index again")
    p.add_argument("--reason", help="why (kept in the history)")
    add_session_arguments(p)
    for name, p in comp.choices.items():
        p.set_defaults(func=cmd_competition_set if name == "set" else cmd_competition,
                       needs=DATABASE if name == "list" else None)

    p = sub.add_parser("organizer", help="organizer accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = p.add_parser("add", help="a new organizer (may start, stop and correct races)")
    p.add_argument("username", help="what the organizer types to log in (case-insensitive)")
    p.add_argument("--password", help="at least 8 characters (default: generated and printed "
                   "once)")
    p.add_argument("--json", action="store_true", help="print it as one JSON line")
    p.set_defaults(func=cmd_organizer)

    judge = sub.add_parser("judge", help="judge accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = judge.add_parser("add", help="a new judge of a competition")
    p.add_argument("username", help="what the judge types to log in (case-insensitive)")
    p.add_argument("--competition", type=int, required=True, metavar="ID",
                   help="the competition's id (competition list)")
    p.add_argument("--name", help="the judge's name (default: the username)")
    p.add_argument("--password", help="at least 8 characters (default: generated and printed "
                   "once)")
    p.add_argument("--json", action="store_true", help="print it as one JSON line")
    p = judge.add_parser("list", help="judges, with their usernames and competitions")
    p.add_argument("--competition", type=int, metavar="ID", help="only this competition's")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p = judge.add_parser("passwd", help="a new password for any user")
    p.add_argument("username", help="whose password (judge or organizer)")
    p.add_argument("--password", help="default: asked on a terminal, else generated and "
                   "printed once")
    for name, p in judge.choices.items():
        p.set_defaults(func=cmd_judge, needs=DATABASE if name == "list" else None)
    for action, words in (("deactivate", "(server) lock a judge out at once: its tokens are "
                                         "refused and its open sockets closed"),
                          ("activate", "(server) let a deactivated judge log in and work again")):
        p = judge.add_parser(action, help=words)
        p.add_argument("username", metavar="USERNAME", help="the judge's username (or id)")
        add_session_arguments(p)
        p.set_defaults(func=cmd_judge_active)

    team = sub.add_parser("team", help="teams, their status and penalties").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = team.add_parser("add", help="a new team, timed by one judge")
    p.add_argument("name", help="the team's name")
    p.add_argument("--dorsal", type=int, required=True, metavar="N",
                   help="its number, unique in the competition")
    p.add_argument("--judge", required=True, metavar="JUDGE",
                   help="the judge who times it: username or id (judge list)")
    p.add_argument("--category", metavar="C",
                   help="its category: the results rank it within it too (optional)")
    p.add_argument("--json", action="store_true", help="print it as one JSON line")
    p = team.add_parser("list", help="teams with their judges")
    p.add_argument("--competition", type=int, metavar="ID", help="only this competition's")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    for name, p in team.choices.items():
        p.set_defaults(func=cmd_team, needs=DATABASE if name == "list" else None)
    p = team.add_parser("edit", help="(server) rename a team, change its dorsal or category, "
                        "or give it to another judge")
    p.add_argument("eid", type=int, metavar="EID", help="the team's id (team list)")
    p.add_argument("--name", metavar="N", help="its new name")
    p.add_argument("--dorsal", type=int, metavar="N", help="its new dorsal (unique in the "
                   "competition)")
    p.add_argument("--judge", metavar="JID", help="the judge who times it from now on: id or "
                   "username (its records so far keep the judge who sent them)")
    p.add_argument("--category", metavar="C", help='its category ("" clears it)')
    add_session_arguments(p)
    p.set_defaults(func=cmd_team_edit)
    p = team.add_parser("status", help="(server) ok, dns, dnf or dsq")
    p.add_argument("eid", type=int, metavar="EID", help="the team's id (team list)")
    p.add_argument("estado", choices=models.ESTADOS_EQUIPO,
                   help="ok, dns (did not start), dnf (did not finish), dsq (disqualified)")
    p.add_argument("--reason", required=True, help="why (kept in the history)")
    add_session_arguments(p)
    p.set_defaults(func=cmd_team_correction)
    p = team.add_parser("penalty", help="(server) a time penalty added to the team's total")
    p.add_argument("eid", type=int, metavar="EID", help="the team's id (team list)")
    p.add_argument("ms", metavar="D", help="milliseconds or clock text: 20s, -1.5s, 1:00; 0 "
                   "clears it")
    p.add_argument("--reason", required=True, help="why (kept in the history)")
    add_session_arguments(p)
    p.set_defaults(func=cmd_team_correction)

    records = sub.add_parser("records", help="(server) records and their corrections",
                             description="Records and their corrections on the running "
                                         "server. " + ENV_HELP).add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = records.add_parser("list", help="a competition's records, oldest first")
    p.add_argument("id", type=int, metavar="ID", help="the competition's id (competition list)")
    p.add_argument("--team", type=int, metavar="EID", help="the team's id (team list)")
    p = records.add_parser("add", help="a paper time")
    p.add_argument("id", type=int, metavar="ID", help="the competition's id (competition list)")
    p.add_argument("--team", type=int, metavar="EID", required=True,
                   help="the team's id (team list)")
    p.add_argument("--tiempo", required=True, metavar="T",
                   help="milliseconds or clock text: 19:45.2, 0:19:45.200")
    p.add_argument("--timestamp", metavar="ISO", help="when (default: the start plus T); "
                   "without an offset it is local time (race.timezone)")
    p.add_argument("--reason", required=True, help="why (kept in the history)")
    for action, words in (("void", "void a record (it stays stored)"),
                          ("restore", "undo a void"),
                          ("accept", "count a record received while the results were official"),
                          ("history", "a record's history")):
        p = records.add_parser(action, help=words)
        p.add_argument("rid", metavar="RID", help="the record's id (UUID)")
        if action != "history":
            p.add_argument("--reason", required=True, help="why (kept in the history)")
    p = records.add_parser("edit", help="move a record to another team and/or fix its time")
    p.add_argument("rid", metavar="RID", help="the record's id (UUID)")
    p.add_argument("--team", type=int, metavar="EID", help="the team's id (team list)")
    p.add_argument("--tiempo", metavar="T", help="the time that counts: ms or clock text")
    p.add_argument("--reason", required=True, help="why (kept in the history)")
    for p in records.choices.values():
        add_session_arguments(p)
        p.set_defaults(func=cmd_records)

    p = sub.add_parser("audit", help="(server) a competition's history: who, when, why")
    p.add_argument("id", type=int, metavar="ID", help="the competition's id (competition list)")
    p.add_argument("--csv", metavar="FILE", help="write it as CSV to FILE")
    p.add_argument("--excel", action="store_true", help=EXCEL_HELP)
    add_session_arguments(p)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("import", help="judges and teams from a roster CSV (all or nothing)",
                       description="Columns juez_usuario, juez_nombre, equipo, dorsal (and "
                       "optionally categoria), one row per team; separated by , or ; "
                       "(detected); UTF-8 or Windows-1252; headers in any case. Importing the "
                       "same roster again adds nothing.")
    p.add_argument("roster", metavar="ROSTER.csv", help="the roster saved from a spreadsheet")
    p.add_argument("--competition", type=int, required=True, metavar="ID",
                   help="the competition's id (competition list)")
    p.add_argument("--credentials", metavar="FILE",
                   help="where to write new judges' passwords (CSV, mode 0600; default "
                        "ROSTER-credenciales.csv beside the roster, never overwritten)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("simulate", help="(server) rehearse an event: N virtual judges")
    p.add_argument("--judges", type=int, required=True, metavar="N",
                   help="how many virtual judges (phones) to play")
    p.add_argument("--competition", type=int, metavar="ID",
                   help="the competition (default: the demo one with --create-demo)")
    p.add_argument("--url", help="server URL (default from the config)")
    p.add_argument("--create-demo", action="store_true",
                   help="create rehearsal judges simjuez1..N with a team each in the config's "
                        "database (nothing is created without this)")
    p.add_argument("--credentials", metavar="CSV",
                   help="judges to play (usuario,contrasena columns, as `import` writes them; "
                        "default: the file --create-demo writes)")
    p.add_argument("--start", action="store_true",
                   help="start the race as the organizer once every judge is connected "
                        "(SERVER5K_USER/SERVER5K_PASSWORD or --user/--password)")
    p.add_argument("--user", help="organizer username for --start (default $SERVER5K_USER)")
    p.add_argument("--password", help="organizer password for --start (default $SERVER5K_PASSWORD)")
    p.add_argument("--wait", type=float, default=600, metavar="SECONDS",
                   help="how long to wait for the start (default 600)")
    p.set_defaults(func=cmd_simulate)

    race = sub.add_parser("race", help="(server) start, stop, reset, shift, status",
                          description="Race control on the running server. " + ENV_HELP)
    race_sub = race.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, words in (
            ("start", "start the race: every judge's phone hears carrera.iniciada"),
            ("stop", "end the race (carrera.finalizada); later times are still stored"),
            ("status", "who is connected, before you fire the start"),
            ("reset", "a false start: back to scheduled (carrera.cancelada)"),
            ("shift", "a late or early start: add D to the times (and move the start)")):
        p = race_sub.add_parser(action, help=words, description=words + ". " + ENV_HELP)
        p.add_argument("id", type=int, metavar="ID", help="the competition's id (competition list)")
        if action == "reset":
            p.add_argument("--force", action="store_true",
                           help="reset even though records arrived (they are kept)")
        if action == "shift":
            p.add_argument("--by", required=True, metavar="D",
                           help="add D to every counted time (ms or +20s, -1.5s); without "
                                "--judge the start moves back by D too")
            p.add_argument("--judge", type=int, metavar="JID", help="only this judge's records")
            p.add_argument("--reason", required=True, help="why (kept in the history)")
        add_session_arguments(p)
        p.set_defaults(func=cmd_race)

    p = sub.add_parser("results", help="the standings; (server) results official ID, results "
                       "reopen ID --reason R",
                       description="results ID prints the standings (or --csv FILE, --json); "
                       "results official ID freezes them for the awards and results reopen ID "
                       "--reason R reopens them, on the running server. " + ENV_HELP)
    p.add_argument("what", metavar="ID", help="the competition, or official / reopen")
    p.add_argument("id", nargs="?", type=int, help=argparse.SUPPRESS)
    p.add_argument("--csv", metavar="FILE", help="write the standings as CSV to FILE (the same "
                   "file as the page's download)")
    p.add_argument("--excel", action="store_true", help=EXCEL_HELP)
    p.add_argument("--category", metavar="C", help="only the teams of category C, with their "
                   "position in it")
    p.add_argument("--reason", help="why (results official/reopen; kept in the history)")
    add_session_arguments(p)
    p.set_defaults(func=cmd_results)
    return parser


def add_session_arguments(p):
    """How a command reaches the running server as an organizer (and --json output)."""
    p.add_argument("--user", help="organizer username (default $SERVER5K_USER)")
    p.add_argument("--password", help="organizer password (default $SERVER5K_PASSWORD)")
    p.add_argument("--url", help="server URL (default from the config)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        models.configure(contados=config["race"]["records_scored_per_team"],
                         tolerancia_ms=config["race"]["impossible_time_tolerance_ms"],
                         timezone=config["race"]["timezone"])
        provide(args, config)
        args.func(args, config)
        said(args)
    except (ConfigError, CliError, models.DomainError, replica.ReplicaError, OSError,
            ssl.SSLError) as exc:
        # (printable: a roster's header cell or a name can carry terminal escape sequences)
        print("server5k: error: %s" % printable(str(getattr(exc, "detail", None) or exc)),
              file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
