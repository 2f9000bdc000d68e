"""What the command line prints: its error, names made safe for a terminal, tables and JSON,
local times and durations as people read them.
"""

import json
import sys

import identity
import models
import race_defaults
import venue_time


class CliError(Exception):
    """A command could not do what was asked: one line on stderr, exit status 1."""


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
    return identity.generate_password(), True


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


def local(text):
    """A wire timestamp (UTC, ``Z``) as the venue's local time with its offset, for people."""
    return venue_time.local_iso(venue_time.parse_timestamp(text)) if text else None


def local_date(text, option="--date"):
    """An organizer's date: ISO 8601, in the venue's zone (race.timezone) without an offset."""
    try:
        return venue_time.parse_local_timestamp(text)
    except ValueError:
        raise CliError("%s must be ISO 8601, e.g. 2026-12-06T09:00 (local time, %s) or "
                       "2026-12-06T09:00:00+01:00" % (option, race_defaults.zone().key)) from None


def rule_line(regla):
    """A competition's scoring rule, short: ``puntos, best 5 count, 5 finishers to rank``."""
    return "%s, best %d count%s" % (regla["tipo"], regla["contados"], ", %d finishers to rank"
                                    % regla["minimo"] if regla["minimo"] > 1 else "")


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
        return venue_time.parse_duration(text, signed=signed)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def record_line(r):
    flags = [name for name, on in (("void", r["anulado"]), ("absent", r["ausente"]),
                                   ("pending", r["pendiente"]), ("early", r["antes_de_salida"]),
                                   ("impossible", r.get("tiempo_imposible")),
                                   ("manual", r["origen"] == "manual")) if on]
    return "%s  team %-5d judge %-5s %13s %s%s" % (
        r["id"], r["equipo_id"], r["juez_id"] if r["juez_id"] is not None else "-",
        venue_time.format_ms(r["tiempo"]), "counts" if r["cuenta"] else "-",
        ("  [%s]" % ", ".join(flags)) if flags else "")


EXCEL_HELP = ("with --csv: the CSV that Excel opens in columns where the decimal mark is a comma "
              "(Spain, Latin America): ';'-separated, times with a decimal comma, UTF-8 with BOM "
              "(without it: the plain comma-separated CSV, for programs)")


def format_results(result, now=None):
    """The standings as a plain-text table for a terminal: the race, the rule in words, then
    one line per team (of one category when the result is filtered by one)."""
    comp, regla = result["competencia"], result["regla"]
    category = result.get("categoria")
    lines = ["%s; best %d times count" % (race_line(comp), result["registros_por_equipo"]),
             "rule: %s. %s" % (rule_line(regla), regla["texto"]),
             # official: when they became so; provisional: as of now
             "results %s at %s%s" % ("official" if comp["oficial"] else "provisional",
                                     venue_time.local_iso(
                                         venue_time.parse_timestamp(comp["oficial_en"])
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
