"""The command line (``python server5k.py [--config FILE] COMMAND``): its parser; each command
is in cli_local (the database) or cli_remote (the running server). server5k.main parses and
dispatches.
"""

import argparse
import re

import cli_local
import cli_output
import cli_remote
import models
import replica
import scoring

# server5k.py's own commands, registered there on import (the command line does not import
# the app: server5k imports cli).
SERVER_COMMANDS = {}


def provide(args, config):
    """Give the command what it declared it needs (see NOTHING ... CHANGES)."""
    need = getattr(args, "needs", None) or getattr(args.func, "needs", cli_output.NOTHING)
    args.server = None
    if need == cli_output.DATABASE:
        cli_remote.open_event_database(args, config, cli_remote.claim_database(config))
    elif need == cli_output.CHANGES:
        # No server: this command holds the database's lock until it ends, so none can start
        # and write beside it (cli_remote.claim_database).
        url = cli_remote.claim_database(config)
        if url is None:
            cli_remote.open_event_database(args, config)
            return
        cli_remote.check_not_demo(args, config)
        path = config["database"]["path"]
        message = "database %s (config %s) is served by %s: the change went through it"
        cli_output.say(args, message % (path, config["_path"], url))
        args.server = cli_remote.ServerSession(args, config, url, why=(
            "a server is running for %s at %s, so changes go through it as an organizer"
            % (path, url)))


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
    p.set_defaults(func=SERVER_COMMANDS["cmd_serve"])
    sub.add_parser("init-db", help="create or migrate the database, and its signing secret "
                   "unless SERVER5K_SECRET_KEY is set").set_defaults(func=cli_local.cmd_init_db)
    sub.add_parser("demo", help="create the demo event (once) and print its logins, without "
                   "serving").set_defaults(func=cli_local.cmd_demo)
    p = sub.add_parser("restore", help="bring back the live copy (replica.url) into a new file",
                       description="The latest copy from replica.url (or --from URL) restored to "
                       "PATH, checked (integrity, Server5K schema, age) before it is put there.")
    p.add_argument("--to", required=True, metavar="PATH", help="the new database file (must not "
                   "exist)")
    p.add_argument("--from", dest="source", metavar="URL", help="the replica URL (default: "
                   "replica.url of the config)")
    p.add_argument("--any-age", action="store_true", help="accept a copy older than %d h "
                   "(default: refused as stale)" % (replica.DEFAULT_MAX_AGE_S // 3600))
    p.set_defaults(func=cli_local.cmd_restore)
    p = sub.add_parser("backup", help="a consistent copy of the database in FILE (safe while "
                       "the server runs)")
    p.add_argument("file", metavar="FILE", help="where to write the copy (must not exist)")
    p.set_defaults(func=cli_local.cmd_backup)

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
    p.add_argument("--scoring", choices=scoring.REGLAS, help="the rule")
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
        func = cli_remote.cmd_competition_set if name == "set" else cli_local.cmd_competition
        p.set_defaults(func=func, needs=cli_output.DATABASE if name == "list" else None)

    p = sub.add_parser("organizer", help="organizer accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = p.add_parser("add", help="a new organizer (may start, stop and correct races)")
    p.add_argument("username", help="what the organizer types to log in (case-insensitive)")
    p.add_argument("--password", help="at least 8 characters (default: generated and printed "
                   "once)")
    p.add_argument("--json", action="store_true", help="print it as one JSON line")
    p.set_defaults(func=cli_local.cmd_organizer)

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
        p.set_defaults(func=cli_local.cmd_judge,
                       needs=cli_output.DATABASE if name == "list" else None)
    for action, words in (("deactivate", "(server) lock a judge out at once: its tokens are "
                                         "refused and its open sockets closed"),
                          ("activate", "(server) let a deactivated judge log in and work again")):
        p = judge.add_parser(action, help=words)
        p.add_argument("username", metavar="USERNAME", help="the judge's username (or id)")
        p.add_argument("--competition", type=int, metavar="ID", help="the competition (needed "
                       "when the username judges several)")
        add_session_arguments(p)
        p.set_defaults(func=cli_remote.cmd_judge_active)

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
    p.add_argument("--competition", type=int, metavar="ID", help="the competition (needed "
                   "when the judge's username judges several)")
    p.add_argument("--json", action="store_true", help="print it as one JSON line")
    p = team.add_parser("list", help="teams with their judges")
    p.add_argument("--competition", type=int, metavar="ID", help="only this competition's")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    for name, p in team.choices.items():
        p.set_defaults(func=cli_local.cmd_team,
                       needs=cli_output.DATABASE if name == "list" else None)
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
    p.set_defaults(func=cli_remote.cmd_team_edit)
    p = team.add_parser("status", help="(server) ok, dns, dnf or dsq")
    p.add_argument("eid", type=int, metavar="EID", help="the team's id (team list)")
    p.add_argument("estado", choices=models.ESTADOS_EQUIPO,
                   help="ok, dns (did not start), dnf (did not finish), dsq (disqualified)")
    p.add_argument("--reason", required=True, help="why (kept in the history)")
    add_session_arguments(p)
    p.set_defaults(func=cli_remote.cmd_team_correction)
    p = team.add_parser("penalty", help="(server) a time penalty added to the team's total")
    p.add_argument("eid", type=int, metavar="EID", help="the team's id (team list)")
    p.add_argument("ms", metavar="D", help="milliseconds or clock text: 20s, -1.5s, 1:00; 0 "
                   "clears it")
    p.add_argument("--reason", required=True, help="why (kept in the history)")
    add_session_arguments(p)
    p.set_defaults(func=cli_remote.cmd_team_correction)

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
        p.set_defaults(func=cli_remote.cmd_records)

    p = sub.add_parser("audit", help="(server) a competition's history: who, when, why")
    p.add_argument("id", type=int, metavar="ID", help="the competition's id (competition list)")
    p.add_argument("--csv", metavar="FILE", help="write it as CSV to FILE")
    p.add_argument("--excel", action="store_true", help=cli_output.EXCEL_HELP)
    add_session_arguments(p)
    p.set_defaults(func=cli_remote.cmd_audit)

    p = sub.add_parser("import", help="judges and teams from a roster CSV (nothing written "
                       "unless every line is right)",
                       description="Columns juez_usuario, juez_nombre, equipo, dorsal (and "
                       "optionally categoria), one row per team; separated by , or ; "
                       "(detected); UTF-8 or Windows-1252; headers in any case. Every line is "
                       "checked before anything is written. Without a server: one transaction, "
                       "all or nothing. Through a running server: short steps; one that fails "
                       "partway leaves the earlier ones written (the error says what, their "
                       "new passwords still go to the credentials file). Importing the same "
                       "roster again adds nothing, and completes an import stopped partway.")
    p.add_argument("roster", metavar="ROSTER.csv", help="the roster saved from a spreadsheet")
    p.add_argument("--competition", type=int, required=True, metavar="ID",
                   help="the competition's id (competition list)")
    p.add_argument("--credentials", metavar="FILE",
                   help="where to write new judges' passwords (CSV, mode 0600; default "
                        "ROSTER-credenciales.csv beside the roster, never overwritten)")
    p.set_defaults(func=cli_local.cmd_import)

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
    p.set_defaults(func=cli_local.cmd_simulate)

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
        p.set_defaults(func=cli_remote.cmd_race)

    p = sub.add_parser("results", help="the standings; (server) results official ID, results "
                       "reopen ID --reason R",
                       description="results ID prints the standings (or --csv FILE, --json); "
                       "results official ID freezes them for the awards and results reopen ID "
                       "--reason R reopens them, on the running server. " + ENV_HELP)
    p.add_argument("what", metavar="ID", help="the competition, or official / reopen")
    p.add_argument("id", nargs="?", type=int, help=argparse.SUPPRESS)
    p.add_argument("--csv", metavar="FILE", help="write the standings as CSV to FILE (the same "
                   "file as the page's download)")
    p.add_argument("--excel", action="store_true", help=cli_output.EXCEL_HELP)
    p.add_argument("--category", metavar="C", help="only the teams of category C, with their "
                   "position in it")
    p.add_argument("--reason", help="why (results official/reopen; kept in the history)")
    add_session_arguments(p)
    p.set_defaults(func=cli_remote.cmd_results)
    return parser


def add_session_arguments(p):
    """How a command reaches the running server as an organizer (and --json output)."""
    p.add_argument("--user", help="organizer username (default $SERVER5K_USER)")
    p.add_argument("--password", help="organizer password (default $SERVER5K_PASSWORD)")
    p.add_argument("--url", help="server URL (default from the config)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
