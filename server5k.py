#!/usr/bin/env python3
"""Server5K: race timing for team 5K events.

This file is the top floor: ``main`` (``python server5k.py [--config FILE] COMMAND``), the
application factory and ``serve``. The configuration schema is in config_schema.py; the command
line in cli.py (its parser), cli_local.py, cli_remote.py and cli_output.py; the domain below them
(models.py and its rooms, roster.py, store.py). Handlers live in ``handlers/``.
"""

import asyncio
import errno
import gc
import json
import logging
import os
import resource
import signal
import ssl
import sys

import tornado.web

import addresses
import cli
import cli_local
import cli_output
import cli_remote
import config_schema
import identity
import models
import race_control
import race_defaults
import replica
import store
from handlers import listener
from handlers.access import InFlight, is_trusted, log_request, trusted_networks
from handlers.fallback import NotFoundHandler
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
# Every line of the server's log (no caller, thread or process fields: see cmd_serve).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OPENAPI_PATH = config_schema.HERE / "docs" / "openapi.yaml"
# How long a graceful shutdown waits for requests already received to be answered.
SHUTDOWN_GRACE_S = 10


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
            stores.write(race_control.record_start_notice, competencia_id, juez_id,
                         when).add_done_callback(done)
        except store.Busy:
            log.warning("first start notice of judge %s not kept: writer busy", juez_id)
    return keep


def make_app(config):
    """Open the database, start the writer, and build the one Tornado application."""
    models.open_database(config["database"]["path"])
    race_defaults.configure(contados=config["race"]["records_scored_per_team"],
                            tolerancia_ms=config["race"]["impossible_time_tolerance_ms"],
                            timezone=config["race"]["timezone"])
    stores = store.Store()
    stores.start()
    hub = RaceHub(config["limits"]["judge_sockets_per_judge"])
    with models.db.connection_context():
        hub.load(race_control.all_competitions())
        # Logouts that outlive a restart (POST /api/logout/), as long as a token can be used.
        revoked = identity.revoked_tokens(config["auth"]["refresh_token_lifetime_s"])
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
        server5k_tokens=TokenService(config_schema.signing_secret(config),
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
    return json.dumps(config_schema.read_yaml(path.read_text(encoding="utf-8")), ensure_ascii=False)


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
        # The whole header block; the app answers 414/431 well below it (handlers/fallback.py).
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
    # One server per database, and none beside a command writing it: the lock is held until
    # this returns (a second `serve` is refused, naming this one; the kernel lets it go however
    # this process ends, so a restart after a crash is never refused).
    lock = cli_remote.hold_for_server(config, waiting=log.info)
    try:
        await serve_locked(config, demo, ready)
    finally:
        if lock is not None:
            os.close(lock)


async def serve_locked(config, demo, ready):
    if demo:
        cli_local.print_demo(cli_local.ensure_demo(config), config)
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
            raise cli_output.CliError("replica.url is set but the live copy cannot start: %s" % exc)
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
        raise cli_output.CliError("cannot listen on %s:%d: %s%s" % (
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
             config["_path"], event_summary(app), config_schema.secret_source(config))
    log.info("live copy: %s", "to %s, every %g s (Litestream; race status shows how far "
             "behind)" % (replica.redact_url(replicator.url), replicator.interval_s)
             if replicator is not None else "none (set replica.url to keep one off this laptop)")
    # The command line's changes go through this server from now on. Written before the
    # "listening on" line, so whoever waits for that line (a script, a test) finds the file.
    write_run_file(config)
    try:
        log_addresses(config, fd_limit)
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


def write_run_file(config):
    info = {"pid": os.getpid(), "started": cli_remote.process_started(os.getpid()),
            "url": cli_remote.base_url(config),
            "database": os.path.abspath(config["database"]["path"])}
    path = cli_remote.run_file(config)
    partial = path.with_name(path.name + ".%d.tmp" % os.getpid())
    config_schema.write_private(partial, lambda handle: json.dump(info, handle))
    os.replace(partial, path)


def remove_run_file(config):
    """Remove the run file if it is this process's (a second `serve` refused with the address
    in use never removes the first one's)."""
    path = cli_remote.run_file(config)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def log_addresses(config, fd_limit):
    """Where the server listens, and the addresses the judges' phones can open: with
    ``host: 0.0.0.0`` the console's "127.0.0.1" is no address for a phone."""
    server = config["server"]
    if server["host"] in addresses.WILDCARD_HOSTS:
        log.info("Server5K listening on every interface, port %d (up to %s open sockets); "
                 "this laptop: %s", server["port"], fd_limit, cli_remote.base_url(config))
    else:
        log.info("Server5K listening on %s (up to %s open sockets)", cli_remote.base_url(config),
                 fd_limit)
    urls = addresses.phone_urls(server)
    if urls:
        log.info("phones can reach it at: %s", ", ".join(urls))
    elif server["host"] in addresses.WILDCARD_HOSTS:
        log.warning("no network address other than loopback: phones cannot reach this laptop "
                    "until it joins the venue's network")
    else:
        log.info("only this machine can reach it (server.host %s): set server.host: 0.0.0.0 "
                 "for the judges' phones", server["host"])


@cli_output.needs(cli_output.NOTHING)
def cmd_serve(args, config):
    # Fields LOG_FORMAT never prints are not gathered for every line (logging's documented
    # optimizations; process-wide, so only in the server's own process): the access log writes
    # a line per request on the event loop, and finding the caller's file and line walked the
    # stack each time (2 % of the loop under the ingest benchmark).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    asyncio.run(serve(config, demo=args.demo))


def main(argv=None):
    args = cli.build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=LOG_FORMAT)
    try:
        config = config_schema.load_config(args.config)
        race_defaults.configure(contados=config["race"]["records_scored_per_team"],
                                tolerancia_ms=config["race"]["impossible_time_tolerance_ms"],
                                timezone=config["race"]["timezone"])
        cli.provide(args, config)
        args.func(args, config)
        cli_output.said(args)
    except (config_schema.ConfigError, cli_output.CliError, models.DomainError,
            replica.ReplicaError, OSError, ssl.SSLError) as exc:
        # (printable: a roster's header cell or a name can carry terminal escape sequences)
        text = str(getattr(exc, "detail", None) or exc)
        print("server5k: error: %s" % cli_output.printable(text), file=sys.stderr)
        return 2 if isinstance(exc, config_schema.ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    finally:
        cli_remote.release_claims()  # (a test calls main in its own process, again and again)
    return 0


cli.SERVER_COMMANDS.update(cmd_serve=cmd_serve)


if __name__ == "__main__":
    sys.exit(main())
