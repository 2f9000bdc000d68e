"""The commands that work on the database itself (init-db, backup, restore, demo, competition,
organizer, judge, team, import, simulate), through the domain functions.
"""

import asyncio
import csv
import getpass
import json
import os
import sys
from pathlib import Path

import cli_output
import cli_remote
import config_schema
import identity
import ledger
import models
import race_control
import rehearsal
import replica
import roster
import roster_import
import store
import venue_time


def ensure_demo(config):
    """Create the demo event once (idempotent): its credentials, kept beside the database."""
    path = cli_remote.demo_credentials_file(config)
    models.open_database(config["database"]["path"])
    with models.db.connection_context():
        if path.exists() and roster.demo_competition_id() is not None:
            return json.loads(path.read_text())
        creds = roster.create_demo_event()
    config_schema.write_private(path, lambda handle: json.dump(creds, handle, indent=2))
    return creds


def print_demo(creds, config):
    url = cli_remote.base_url(config)
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


def write_alone(fn, *args):
    """A change with no server running: the domain function run as the server runs it, as a
    job of the one writer (store.Writer: its thread, BEGIN IMMEDIATE, a savepoint, a durable
    commit). Passwords are hashed before, never inside its transaction. Only under the
    database's lock (cli_remote.claim_database found no server): never beside a server."""
    cli_remote.check_claimed(models.db.database)
    writer = store.Writer()
    writer.start()
    try:
        return writer.submit(fn, *args).result()
    finally:
        writer.stop()


@cli_output.needs(cli_output.NOTHING)
def cmd_init_db(args, config):
    url = cli_remote.claim_database(config)
    if url is not None:
        print("database ready: %s is served by %s (its schema is version %d)" % (
            config["database"]["path"], url, models.SCHEMA_VERSION))
        return
    cli_output.say(args, "database %s (config %s)" % (config["database"]["path"], config["_path"]))
    models.open_database(config["database"]["path"])
    config_schema.signing_secret(config)
    print("database ready: %s (schema version %d)" % (config["database"]["path"],
                                                     models.SCHEMA_VERSION))
    print("signing secret: %s; keep it: the same secret keeps every phone logged in across "
          "restarts, and a second machine needs a copy" % config_schema.secret_source(config))


@cli_output.needs(cli_output.NOTHING)
def cmd_backup(args, config):
    """A consistent copy of the event database, safe while the server is running."""
    cli_output.say(args, "database %s (config %s)" % (config["database"]["path"], config["_path"]))
    records = store.backup(config["database"]["path"], args.file)
    print("backup written: %s (%d time records)" % (args.file, records))


@cli_output.needs(cli_output.NOTHING)
def cmd_demo(args, config):
    if cli_remote.claim_database(config) is not None:
        if not cli_remote.demo_credentials_file(config).exists():
            raise cli_output.CliError("a server is running for %s: the demo event is made by "
                                      "`serve --demo` (stop it first)" % config["database"]["path"])
        print_demo(json.loads(cli_remote.demo_credentials_file(config).read_text()), config)
        return
    cli_output.say(args, "database %s (config %s)" % (config["database"]["path"], config["_path"]))
    print_demo(ensure_demo(config), config)


@cli_output.needs(cli_output.CHANGES)
def cmd_competition(args, config):
    if args.action == "add":
        fecha = cli_output.local_date(args.date) if args.date else None
        if args.server:
            comp = args.server.call("POST", "/api/competencias/", {
                "nombre": args.name, "fecha_hora": fecha and venue_time.local_iso(fecha)},
                what="competition add")
        else:
            comp = write_alone(roster.add_competition, None, args.name, fecha)
        start = ", start %s" % venue_time.local_iso(fecha) if fecha else ""
        cli_output.emit(args, comp, "competition %d created: %s%s" % (
            comp["id"], comp["nombre"], start))
    else:
        rows = race_control.all_competitions()
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
        for c in [] if args.json else cli_output.shown(rows):
            print("%4d  %-11s %-25s %s" % (c["id"], c["estado"],
                                          cli_output.local(c["fecha_hora"]) or "-", c["nombre"]))


@cli_output.needs(cli_output.CHANGES)
def cmd_organizer(args, config):
    password, generated = cli_output.password_or_generated(args)
    if args.server:
        user = args.server.call("POST", "/api/organizadores/", {
            "username": args.username, "password": password}, what="organizer add")
    else:
        user = write_alone(roster.add_organizer, None, args.username, None,
                           identity.new_password_hash(password))
    obj = dict(user, **({"password": password} if generated else {}))
    cli_output.emit(args, obj, "organizer %d created: %s%s" % (
        user["id"], user["username"],
        ("\npassword (shown once): %s" % password) if generated else ""))


@cli_output.needs(cli_output.CHANGES)
def cmd_judge(args, config):
    if args.action == "add":
        # A judge of other competitions is added with the password it has: a generated one is
        # only for a new account (and a given one is refused for an existing account).
        password, generated = cli_output.password_or_generated(args)
        if args.server:
            answer = args.server.call("POST", "/api/competencias/%d/jueces/" % args.competition, {
                "username": args.username, "nombre": args.name,
                **({} if generated else {"password": password})}, what="judge add")
            juez, shown = answer["juez"], answer["password"]
        else:
            juez = write_alone(roster.add_judge, None, args.competition, args.username,
                               args.name, None, identity.new_password_hash(password),
                               not generated)
            shown = password if generated and juez["cuenta_nueva"] else None
        obj = {"id": juez["id"], "username": juez["username"], "nombre": juez["nombre"],
               "competencia_id": juez["competencia"]["id"], "cuenta_nueva": juez["cuenta_nueva"]}
        if shown:
            obj["password"] = shown
        cli_output.emit(args, obj, "judge %d created: %s (competition %d)%s" % (
            obj["id"], obj["username"], obj["competencia_id"],
            ("\npassword (shown once): %s" % shown) if shown else
            "" if juez["cuenta_nueva"] else "; the account it judges other competitions with: "
            "same username, same password"))
    elif args.action == "list":
        rows = roster.list_judges(args.competition)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
        for r in [] if args.json else cli_output.shown(rows):
            print("%4d  %-20s %-25s competition %d%s" % (
                r["id"], r["username"], r["nombre"], r["competencia_id"],
                "" if r["activo"] else "  (inactive)"))
    else:  # passwd
        if args.password:
            password, generated = args.password, False
        elif sys.stdin.isatty():
            password, generated = getpass.getpass("new password: "), False
            if not password:
                raise cli_output.CliError("empty password")
        else:
            password, generated = identity.generate_password(), True
        if args.server:  # a judge's password, through the server: its sockets close at once
            try:
                juez_id = cli_remote.judge_id(args.server, args.username, "only a judge's "
                                              "password can be changed while the server runs")
            except cli_output.CliError:
                if organizer_account(config, args.username):
                    raise cli_output.CliError(
                        "%s is an organizer: its password is changed only with no server "
                        "running for %s (the server has no way to change it, and this command "
                        "never writes the database beside it): stop the server, run this "
                        "again, serve again; or `organizer add` another organizer through it"
                        % (args.username, config["database"]["path"])) from None
                raise
            juez = args.server.call("PATCH", "/api/jueces/%d/" % juez_id,
                                    {"password": password}, what="judge passwd")
            username = juez["username"]
        else:  # refused at their next use by a server started later (token generations)
            user = models.User.get_or_none(
                models.User.username_key == models.username_key(args.username))
            if user is None:
                raise models.NotFound("El usuario %r no existe." % args.username,
                                      "user_not_found")
            write_alone(identity.replace_password, user.id, identity.new_password_hash(password))
            username = user.username
        print("password changed for %s; every token issued before is refused%s" % (
            username, ("\nnew password (shown once): %s" % password) if generated else ""))


def organizer_account(config, username):
    """Whether ``username`` is an organizer's account: read from the database (a reader, never
    in a running server's way; opened without schema work, which would write)."""
    models.db.init(config["database"]["path"], pragmas=models.PRAGMAS)
    with models.db.connection_context():
        user = models.User.get_or_none(
            models.User.username_key == models.username_key(username))
    return user is not None and user.is_organizer


@cli_output.needs(cli_output.CHANGES)
def cmd_team(args, config):
    if args.action == "add":
        if args.server:
            juez = cli_remote.server_judge(args.server, args.judge, competencia_id=args.competition)
            team = args.server.call("POST", "/api/competencias/%d/equipos/" % (
                juez["competencia_id"]), {"nombre": args.name, "dorsal": args.dorsal,
                                          "juez_id": juez["id"], "categoria": args.category},
                what="team add")
            username = juez["username"]
        else:
            juez = roster.find_judge(args.judge, args.competition)
            team = write_alone(roster.add_team, None, juez.competencia_id, args.name,
                               args.dorsal, juez.id, args.category)
            username = juez.user.username
        obj = {key: team[key] for key in ("id", "nombre", "dorsal", "juez_id", "competencia_id",
                                          "categoria")}
        cli_output.emit(args, obj, "team %d created: %s (dorsal %d, judge %s, competition %d%s)" % (
            team["id"], team["nombre"], team["dorsal"], username,
            team["competencia_id"], ", category %s" % team["categoria"] if team["categoria"]
            else ""))
    else:
        rows = roster.list_teams(args.competition)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
        for r in [] if args.json else cli_output.shown(rows):
            print("%4d  dorsal %-5d %-30s judge %-20s competition %d%s" % (
                r["id"], r["dorsal"], r["nombre"], r["juez_usuario"] or "-", r["competencia_id"],
                "  category %s" % r["categoria"] if r["categoria"] else ""))


CREDENTIAL_COLUMNS = ("usuario", "contrasena", "juez_id", "nombre")


def write_credentials(handle, rows, spreadsheet=False):
    """The credentials CSV that `import` and `simulate --create-demo` write (and read back,
    with or without a byte order mark). A cell a spreadsheet would run as a formula (a judge
    named ``=HYPERLINK(...)``) gets a leading apostrophe, as the console's downloads do
    (ledger.csv_cell); read_credential takes it off again. ``spreadsheet``: the one `import`
    writes for the organizer to open, with a UTF-8 byte order mark, so a spreadsheet keeps the
    judges' accented names."""
    if spreadsheet:
        handle.write("\ufeff")
    writer = csv.writer(handle)
    writer.writerow(CREDENTIAL_COLUMNS)
    writer.writerows([ledger.csv_cell(value) for value in row] for row in rows)


def read_credential(value):
    """A cell of a credentials CSV as it was before write_credentials guarded it."""
    if isinstance(value, str) and value[:1] == "'" and ledger.csv_cell(value[1:]) != value[1:]:
        return value[1:]
    return value


@cli_output.needs(cli_output.CHANGES)
def cmd_import(args, config):
    """Judges and teams from a CSV roster; new passwords go to a 0600 file. Nothing is written
    unless every line is right. A team already there (its dorsal) is corrected where the roster
    says otherwise. Without a server, all or nothing (one transaction); through a running
    server, written in short steps: one that fails (something changed meanwhile, a full disk)
    leaves the earlier ones written, and their new judges' passwords still go to the file."""
    path = Path(args.roster)
    rows, notes = roster_import.read_roster(path)  # (read and checked here: errors name the file)
    creds_path = cli_remote.credentials_file(args.credentials, path)  # (refused before writing)
    if args.server:
        where = "/api/competencias/%d/importar/" % args.competition
        status, answer = args.server.answer("POST", where, raw=path.read_bytes(),
                                            content_type="text/csv", timeout=600)
        if status >= 300:
            raise _interrupted_import(args.server, status, answer, where, creds_path)
        notes = [note.replace("El CSV", str(path)) for note in answer["notas"]]
        result = dict(answer, credenciales=_credential_rows(answer["credenciales"]))
    else:  # read and hashed here, then written in one transaction (all or nothing)
        plan = roster_import.plan_roster(rows, args.competition, source=str(path))
        result = write_alone(roster_import.apply_roster, plan, None, roster_import.roster_passwords(plan))
    for note in notes:
        print("note: %s" % cli_output.printable(note))
    if result["credenciales"]:
        _write_import_credentials(creds_path, result["credenciales"])
    else:
        creds_path = None
    for team in result["detalle"]["equipos"]:
        if team.get("cambios"):
            changes = "; ".join("%s %s -> %s" % (field, before, after)
                                for field, (before, after) in team["cambios"].items())
            print("line %s: dorsal %d %s" % (team["linea"], team["dorsal"],
                                             cli_output.printable(changes)))
    print("imported %d judges (%d new) and %d teams into competition %d%s%s" % (
        result["jueces"], len(result["credenciales"]), result["equipos_nuevos"], args.competition,
        "; %d teams corrected" % result["equipos_cambiados"] if result["equipos_cambiados"]
        else "", ("; new passwords in %s (mode 0600)" % creds_path) if creds_path else ""))


def _credential_rows(credentials):
    return [[c["username"], c["password"], c["juez_id"], c["nombre"]] for c in credentials]


def _write_import_credentials(creds_path, rows):
    config_schema.write_private(creds_path, lambda handle: write_credentials(
        handle, rows, spreadsheet=True), exclusive=True)


def _interrupted_import(session, status, answer, where, creds_path):
    """The CliError of a refused import; one the server stopped partway (``importado``) says
    what it wrote, its new judges' passwords saved first: they are shown nowhere else."""
    partial = answer.get("importado")
    if not isinstance(partial, dict):
        return session.refusal(status, answer, where, "import")
    more = "; written before it stopped: %d judges, %d new teams, %d teams corrected" % (
        partial["jueces_nuevos"], partial["equipos_nuevos"], partial["equipos_cambiados"])
    if partial["credenciales"]:
        _write_import_credentials(creds_path, _credential_rows(partial["credenciales"]))
        more += "; their new passwords in %s (mode 0600)" % creds_path
    more += "; import the same roster again to complete it"
    return session.refusal(status, dict(answer, detail=partial.get("causa")), where, "import",
                           more)


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
            if not cli_remote.demo_credentials_file(config).exists():
                raise cli_output.CliError("no demo event in %s: give --competition ID"
                                          % config["database"]["path"])
            competencia_id = json.loads(cli_remote.demo_credentials_file(config).read_text())[
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
    config_schema.write_private(path, lambda handle: write_credentials(
        handle, [[r["usuario"], r["contrasena"], r["juez_id"], r["nombre"]] for r in rows]))
    return competencia_id, path


@cli_output.needs(cli_output.NOTHING)
def rehearsal_judges_through(session, competencia_id, count, known):
    """roster.rehearsal_judges, through the running server's API (as an organizer)."""
    judges = {j["username"]: j for j in session.call("GET", "/api/jueces/",
                                                     what="judge list")["jueces"]
              if j["competencia_id"] == competencia_id}  # (one row per competition judged)
    board = session.call("GET", "/api/competencias/%d/jueces/" % competencia_id,
                         what="judges board")
    with_teams = {j["id"] for j in board["jueces"] if j["equipos"]}
    dorsal = max([e["dorsal"] for j in board["jueces"] for e in j["equipos"]] or [0])
    rows = []
    for n in range(1, count + 1):
        username = "%s%d" % (roster.REHEARSAL_PREFIX, n)
        juez = judges.get(username)
        if juez is not None and username in known:
            rows.append(known[username])
            continue
        added = None
        if juez is None:  # (a rehearsal judge of another competition keeps its account)
            added = session.call("POST", "/api/competencias/%d/jueces/" % competencia_id, {
                "username": username, "nombre": "Juez simulado %d" % n}, what="judge add")
            juez = added["juez"]
        if added is not None and added["password"] is not None:
            password = added["password"]
        else:  # its password is not at hand: a new one
            password = identity.generate_password()
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
    url = cli_remote.server_url(args.url, config)
    competencia_id = args.competition
    if args.create_demo:
        print("creating or reusing %d rehearsal judges (%s1..%s%d) ..." % (
            args.judges, roster.REHEARSAL_PREFIX, roster.REHEARSAL_PREFIX, args.judges), flush=True)
        url = cli_remote.claim_database(config)
        # (a server runs for the database: the rehearsal judges are made through it, as an
        # organizer: --user/--password or SERVER5K_USER/SERVER5K_PASSWORD)
        session = url and cli_remote.ServerSession(args, config, url)
        competencia_id, path = create_simulation_judges(config, args.judges, competencia_id,
                                                        session)
        cli_remote.release_claims()  # (a server may start now: the rehearsal waits for one)
        print("competition %d; their passwords are in %s (mode 0600)" % (competencia_id, path))
    else:
        path = Path(args.credentials) if args.credentials else simulation_credentials_path(config)
        if not path.exists():
            raise cli_output.CliError("no judge credentials at %s: pass --credentials FILE (the "
                                      "CSV that `import` writes) or --create-demo to create "
                                      "rehearsal judges" % path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            credentials = [(read_credential(row["usuario"]), read_credential(row["contrasena"]))
                           for row in csv.DictReader(handle)]
    except (KeyError, csv.Error, UnicodeDecodeError) as exc:
        raise cli_output.CliError("%s is not a credentials CSV (usuario,contrasena,...): %s"
                                  % (path, exc)) from None
    if len(credentials) < args.judges:
        raise cli_output.CliError("%s holds %d judges, fewer than --judges %d"
                                  % (path, len(credentials), args.judges))
    organizer = None
    if args.start:
        user = args.user or os.environ.get("SERVER5K_USER")
        password = args.password or os.environ.get("SERVER5K_PASSWORD")
        if not user or not password:
            raise cli_output.CliError("--start needs organizer credentials: --user/--password or "
                                      "SERVER5K_USER/SERVER5K_PASSWORD")
        organizer = (user, password)
    else:
        print("waiting for the organizer to start the race once the judges are connected, "
              "e.g. python server5k.py race start %s" % (competencia_id or "ID"), flush=True)
    summary, ok = asyncio.run(rehearsal.simulate(
        url, credentials[:args.judges], competencia_id, organizer, wait_start_s=args.wait,
        ssl_context=cli_remote.client_context(config)))
    print(summary)
    if not ok:
        raise cli_output.CliError("the rehearsal did not complete (see the summary above)")


@cli_output.needs(cli_output.NOTHING)
def cmd_restore(args, config):
    """The latest live copy (replica.url, or --from URL) into a new database file, checked."""
    url = args.source or config["replica"]["url"]
    if not url:
        raise cli_output.CliError("no copy to restore from: pass --from URL or set replica.url")
    info = replica.restore(url, args.to, models.SCHEMA_VERSION,
                           max_age_s=None if args.any_age else replica.DEFAULT_MAX_AGE_S)
    print("restored %s from %s: %d time records, the newest received %s; the copy's newest "
          "change is %s old (%s)" % (
              info["path"], replica.redact_url(url), info["records"],
              info["newest_received_at"] or "-",
              "%.1f s" % info["age_s"] if info["age_s"] is not None else "an unknown time",
              info["copied_at"] or "-"))
    print("next: point database.path at it, use the same signing secret (copy %s) and serve; "
          "set replica.url to a NEW location on this machine" % config_schema.secret_file(config))
