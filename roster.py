"""Roster and accounts: the judges, teams and logins of an event, as organizers set them up.

Domain functions over the models (they know nothing of Tornado, of the command line or of
files other than the roster they are given): importing a roster, the organizer's changes of
competitions, judges and teams (ORGANIZER.md "Roster and accounts", each with its history row),
the demo event, the rehearsal judges of ``simulate``, and the listings of judges and teams.
Each function that writes is all or nothing: it runs in one transaction (a savepoint inside the
caller's, if there is one), and the server runs it as one writer job; a roster import is the
exception on a server, planned off the writer and written in short steps (``plan_import``,
``import_steps``), so that it never holds the writer for more than a few ms. Errors are
``models.DomainError``s whose detail (in Spanish, like the API's) names the line or item at
fault.
"""

import csv
import json
import unicodedata

import models
import identity
import messages
import ledger
import registration
import venue_time

DEMO_COMPETITION = "Carrera Demo 5K"
REHEARSAL_PREFIX = "simjuez"
ROSTER_COLUMNS = ("juez_usuario", "juez_nombre", "equipo", "dorsal")


# -- the roster CSV ------------------------------------------------------------------------------
ROSTER_OPTIONAL = ("categoria",)
MAX_ROSTER_BYTES = 2 * 1024 * 1024


def read_roster(path):
    """The roster CSV file at ``path``: see :func:`parse_roster`."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_ROSTER_BYTES + 1)
    except OSError as exc:
        raise models.Invalid("no se puede leer %s: %s" % (path, exc.strerror or exc),
                             "invalid_roster") from None
    return parse_roster(data, str(path))


def _header_name(text):
    """``Juez Usuario`` is ``juez_usuario`` and ``Categoría`` is ``categoria``."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.replace("\ufeff", ""))
                    if not unicodedata.combining(c))
    return "_".join(plain.strip().lower().replace("-", " ").split())


def parse_roster(data, source="roster"):
    """Rows of a roster CSV as spreadsheets save it: ``,`` or ``;`` (detected from the header),
    UTF-8 with or without BOM, or Windows-1252 (Spanish Excel's own), headers in any case and
    with spaces or accents (``Juez Usuario`` is ``juez_usuario``). Returns (rows, notes): rows
    are dicts with ``line`` (the file's line number) and the columns; notes say what was
    assumed. Invalid, saying exactly what is wrong, when it cannot be used."""
    if len(data) > MAX_ROSTER_BYTES:
        raise models.Invalid("%s ocupa más de %d MiB: no es una lista de equipos" % (
            source, MAX_ROSTER_BYTES // 2**20), "invalid_roster")
    notes = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
        notes.append("%s no está en UTF-8: se leyó como Windows-1252 (la codificación de "
                     "Excel); revise los acentos de los nombres" % source)
    lines = text.splitlines()
    header = next((line for line in lines if line.strip()), "")
    if not header:
        raise models.Invalid("%s está vacío" % source, "invalid_roster")
    delimiter = ";" if header.count(";") > header.count(",") else ","
    try:
        table = list(csv.reader(lines, delimiter=delimiter))
    except csv.Error as exc:
        raise models.Invalid("%s no es un archivo CSV: %s" % (source, exc),
                             "invalid_roster") from None
    names = []
    start = next(i for i, row in enumerate(table) if any(cell.strip() for cell in row))
    names = [_header_name(cell) for cell in table[start]]
    missing = [c for c in ROSTER_COLUMNS if c not in names]
    if missing:
        raise models.Invalid("%s: faltan columnas: %s (su cabecera tiene: %s; separador %r; "
                             "se esperan %s)" % (source, ", ".join(missing),
                                                 ", ".join(n or "(vacía)" for n in names),
                                                 delimiter, ", ".join(ROSTER_COLUMNS)),
                             "invalid_roster")
    unknown = [cell.strip() for cell, name in zip(table[start], names)
               if name and name not in ROSTER_COLUMNS + ROSTER_OPTIONAL]
    if unknown:  # never dropped in silence: a garbled "Categoría" is a column lost
        raise models.Invalid("%s: columnas desconocidas: %s (se esperan %s y, si quiere, %s; "
                             "separador %r)" % (source, ", ".join(unknown),
                                                ", ".join(ROSTER_COLUMNS),
                                                ", ".join(ROSTER_OPTIONAL), delimiter),
                             "invalid_roster")
    rows = []
    for number, cells in enumerate(table[start + 1:], start=start + 2):
        if not any(cell.strip() for cell in cells):
            continue  # blank lines spreadsheets leave at the end
        if len(cells) > len(names) and any(cell.strip() for cell in cells[len(names):]):
            raise models.Invalid("%s, línea %d: tiene %d celdas y la cabecera %d (¿un %r dentro "
                                 "de un nombre? póngalo entre comillas)" % (
                                     source, number, len(cells), len(names), delimiter),
                                 "invalid_roster")
        row = {name: (cells[i].strip() if i < len(cells) else "")
               for i, name in enumerate(names) if name}
        row["line"] = number
        rows.append(row)
    if not rows:
        raise models.Invalid("%s tiene cabecera pero ninguna fila" % source, "invalid_roster")
    return rows, notes


# How many new judges one import may create: each needs a password hashed (scrypt, ~50-100 ms on
# a hashing thread), so 500 is most of a minute; an event's judges are tens.
MAX_NEW_JUDGES = 500
# Teams an import writes per writer job on a running server: each job is a few ms, so a start
# or a submission waits at most that long behind an import (issue 22).
IMPORT_STEP = 50
MAX_NAME = 200


def plan_roster(rows, competencia_id, source="roster"):
    """What importing roster rows (:func:`parse_roster`) into a competition would do, read
    without writing (a reader thread: the preview never holds the writer): every row checked,
    the existing judges and teams looked up in a few queries, linear in the rows.

    A judge already in the competition is reused. A judge of other competitions (the same
    judges, next month's race) is added to this one with the account and password it has: no
    new credentials (``cuentas_existentes`` counts them; ``jueces_nuevos`` counts every judge
    new to this competition). A team whose dorsal is already there is the same team: what
    the roster says differently (its name, its judge, its category when the roster has that
    column) is a correction, applied with its history row; the same roster again changes
    nothing. Returns the plan :func:`apply_roster` carries out, whose "result" is the answer
    without credentials: ``{"jueces", "jueces_nuevos", "cuentas_existentes", "equipos_nuevos",
    "equipos_cambiados", "credenciales": [], "detalle": {"jueces": [{"username", "nombre",
    "nuevo", "cuenta_existente"?: true}], "equipos": [{"linea", "nombre", "dorsal",
    "juez_usuario", "categoria", "nuevo", "cambios"?: {campo: [antes, despues]}}]}}``.
    Invalid / Conflict naming the line at fault.
    """
    comp = models.get_competencia(competencia_id)
    with_category = any("categoria" in row for row in rows)
    judges, dorsals, teams = {}, {}, []
    for row in rows:
        line = row.get("line", "?")
        where = "%s, línea %s" % (source, line)
        username = (row.get("juez_usuario") or "").strip()
        nombre_equipo = (row.get("equipo") or "").strip()
        for column, value in (("juez_usuario", username), ("equipo", nombre_equipo),
                              ("dorsal", (row.get("dorsal") or "").strip())):
            if not value:
                raise models.Invalid("%s: falta %s" % (where, column), "invalid_roster")
        if len(nombre_equipo) > MAX_NAME:
            raise models.Invalid("%s: el nombre del equipo tiene más de %d caracteres" % (
                where, MAX_NAME), "invalid_roster")
        try:
            dorsal = int(row["dorsal"])
        except (TypeError, ValueError):
            raise models.Invalid("%s: el dorsal %r no es un número" % (
                where, row["dorsal"]), "invalid_roster") from None
        if not 1 <= dorsal <= MAX_DORSAL:
            raise models.Invalid("%s: el dorsal %d debe ser un número positivo" % (
                where, dorsal), "invalid_roster")
        if dorsal in dorsals:
            raise models.Invalid("%s: el dorsal %d también está en la línea %s" % (
                where, dorsal, dorsals[dorsal]), "invalid_roster")
        dorsals[dorsal] = line
        try:
            categoria = registration.check_categoria(row.get("categoria"))
        except models.Invalid:
            raise models.Invalid("%s: la categoría tiene más de %d caracteres" % (
                where, registration.MAX_CATEGORIA), "invalid_roster") from None
        key = models.username_key(username)
        if key not in judges:
            nombre = (row.get("juez_nombre") or "").strip() or username
            if len(nombre) > MAX_NAME:
                raise models.Invalid("%s: el nombre del juez tiene más de %d caracteres" % (
                    where, MAX_NAME), "invalid_roster")
            problem = identity.username_problem(username)
            if problem is not None:
                raise models.Invalid("%s: %s" % (where, problem), "invalid_username")
            judges[key] = {"username": username, "nombre": nombre, "where": where,
                           "juez_id": None, "user_id": None,
                           "nombre_dado": bool((row.get("juez_nombre") or "").strip())}
        teams.append({"linea": line, "where": where, "nombre": nombre_equipo, "dorsal": dorsal,
                      "key": key, "categoria": categoria})
    # The judges and teams that exist, in a few queries (never one per row).
    # (A user judging several competitions has a judge row in each: one row per row here.)
    accounts = {}
    for chunk in models.chunks(list(judges), 500):
        for key, user_id, username, organizer, juez_id, juez_comp, juez_nombre in (
                models.User.select(models.User.username_key, models.User.id,
                                   models.User.username, models.User.is_organizer,
                                   models.Juez.id, models.Juez.competencia, models.Juez.nombre)
                .join(models.Juez, models.pw.JOIN.LEFT_OUTER,
                      on=(models.Juez.user == models.User.id))
                .where(models.User.username_key.in_(chunk))
                .order_by(models.Juez.id).tuples()):
            judge = judges[key]
            if juez_id is None or organizer:
                raise models.Conflict("%s: el usuario %r existe pero no es juez" % (
                    judge["where"], judge["username"]), "username_taken")
            if juez_comp == comp.id:
                judge.update(username=username, nombre=juez_nombre, juez_id=juez_id)
            else:  # a judge of another competition: its account, its latest name
                accounts[key] = (user_id, username, juez_nombre)
    for key, (user_id, username, juez_nombre) in accounts.items():
        judge = judges[key]
        if judge["juez_id"] is None:
            judge.update(user_id=user_id, username=username,
                         nombre=judge["nombre"] if judge["nombre_dado"] else juez_nombre)
    new_judges = [j for j in judges.values() if j["juez_id"] is None and j["user_id"] is None]
    added_judges = [j for j in judges.values() if j["juez_id"] is None]
    if len(new_judges) > MAX_NEW_JUDGES:
        raise models.Invalid("%s crea %d jueces nuevos; como mucho %d por importación (cada "
                             "uno necesita su contraseña): divida la lista" % (
                                 source, len(new_judges), MAX_NEW_JUDGES), "invalid_roster")
    existing = {e.dorsal: e for e in models.Equipo.select(
        models.Equipo.id, models.Equipo.dorsal, models.Equipo.nombre, models.Equipo.juez,
        models.Equipo.categoria).where(models.Equipo.competencia == comp.id)}
    names = dict(models.Juez.select(models.Juez.id, models.User.username).join(models.User)
                 .where(models.Juez.competencia == comp.id).tuples())
    detail_teams, creates, edits = [], [], []
    for team in teams:
        judge = judges[team["key"]]
        shown = {"linea": team["linea"], "nombre": team["nombre"], "dorsal": team["dorsal"],
                 "juez_usuario": judge["username"], "categoria": team["categoria"],
                 "nuevo": True}
        detail_teams.append(shown)
        before = existing.get(team["dorsal"])
        if before is None:
            creates.append(team)
            continue
        shown["nuevo"] = False
        changes = {}
        if before.nombre != team["nombre"]:
            changes["nombre"] = [before.nombre, team["nombre"]]
        if judge["juez_id"] is None or before.juez_id != judge["juez_id"]:
            changes["juez_id"] = [before.juez_id, judge["juez_id"]]  # None: a judge made now
        if with_category and before.categoria != team["categoria"]:
            changes["categoria"] = [before.categoria, team["categoria"]]
        if changes:
            shown["cambios"] = {("juez_usuario" if field == "juez_id" else field):
                                ([names.get(pair[0]), judge["username"]] if field == "juez_id"
                                 else pair) for field, pair in changes.items()}
            edits.append(dict(team, equipo_id=before.id, cambios=changes))
    result = {"jueces": len(judges), "jueces_nuevos": len(added_judges),
              "cuentas_existentes": len(added_judges) - len(new_judges),
              "equipos_nuevos": len(creates), "equipos_cambiados": len(edits),
              "credenciales": [],
              "detalle": {"jueces": [dict({"username": j["username"], "nombre": j["nombre"],
                                           "nuevo": j["juez_id"] is None},
                                          **({"cuenta_existente": True}
                                             if j["user_id"] is not None else {}))
                                     for j in judges.values()],
                          "equipos": detail_teams}}
    return {"competencia_id": comp.id, "source": source, "judges": judges,
            "new_judges": [j["username"] for j in new_judges], "creates": creates,
            "edits": edits, "result": result}


# Competitions whose import is being written in steps on this server (the writer's thread
# alone reads and changes it): their teams change through the import only, meanwhile.
_importing = set()


def begin_import(competencia_id):
    """An import of this competition starts writing in steps (a writer job): until
    :func:`end_import`, other changes of its teams are refused (``import_in_progress``)."""
    models.get_competencia(competencia_id)
    _no_import(competencia_id)
    _importing.add(competencia_id)


def end_import(competencia_id):
    _importing.discard(competencia_id)


def _no_import(competencia_id):
    if competencia_id in _importing:
        raise models.Conflict("Se está importando una lista en esta competencia; reintente en "
                              "unos segundos.", "import_in_progress")


_INSERT_TEAM = ('INSERT INTO "equipo" ("competencia_id", "nombre", "dorsal", "juez_id", '
                '"categoria") VALUES (?, ?, ?, ?, ?)')
_INSERT_USER = ('INSERT INTO "user" ("username", "username_key", "password_hash", "is_active", '
                '"is_organizer", "created_at", "token_gen") VALUES (?, ?, ?, 1, 0, ?, 0)')
_INSERT_JUDGE = ('INSERT INTO "juez" ("user_id", "competencia_id", "nombre", "is_active") '
                 'VALUES (?, ?, ?, 1)')
_INSERT_HISTORY = ('INSERT INTO "accion" ("competencia_id", "accion", "objeto", "objeto_id", '
                   '"usuario_id", "en", "motivo", "antes", "despues") '
                   'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')


def plan_import(data, competencia_id, source="roster"):
    """:func:`parse_roster` then :func:`plan_roster` of a roster CSV's bytes: (plan, notes).
    A server runs it in its worker process (Store.compute): parsing and checking 80,000 rows
    is most of a second of Python, which on a thread would hold the interpreter lock every
    wake-up of the event loop needs (a start notice, a judge's answer)."""
    rows, notes = parse_roster(data, source)
    return plan_roster(rows, competencia_id, source), notes


def import_answer(result, notes, dry_run):
    """What POST .../importar/ answers (ORGANIZER.md), from an import's or a plan's result."""
    return {"dry_run": dry_run, "jueces": result["jueces"],
            "jueces_nuevos": result["jueces_nuevos"],
            "cuentas_existentes": result["cuentas_existentes"],
            "equipos_nuevos": result["equipos_nuevos"],
            "equipos_cambiados": result["equipos_cambiados"],
            "credenciales": [{"username": u, "password": p, "juez_id": j, "nombre": n}
                             for u, p, j, n in result["credenciales"]],
            "detalle": result["detalle"], "notas": notes}


def preview_answer(data, competencia_id, source="roster"):
    """The preview's whole answer as JSON text, made where it is planned (the worker
    process): a big roster's answer is megabytes of JSON."""
    plan, notes = plan_import(data, competencia_id, source)
    return json.dumps(import_answer(plan["result"], notes, True), ensure_ascii=False,
                      separators=(",", ":"))


def import_steps(plan, step=IMPORT_STEP):
    """The plan cut into writer jobs of at most ``step`` items: the new judges first (a team
    needs its judge's id), then the teams to create or correct. Each is the ``part`` of
    :func:`apply_roster_step`."""
    items = ([("juez", key) for key, judge in plan["judges"].items() if judge["juez_id"] is None]
             + [("crear", t) for t in plan["creates"]] + [("editar", t) for t in plan["edits"]])
    return [items[i:i + step] for i in range(0, len(items), step)] or [[]]


def apply_roster_step(plan, part, user_id, passwords, judge_ids):
    """One writer job of an import (:func:`import_steps`): at most IMPORT_STEP judges or teams
    created or corrected, each with its history row, in plain statements (~20 us an item).
    New judges get the passwords made beforehand (``passwords``: {username_key: (password,
    hash)}; never hashed here, inside the writer's transaction); returns their credentials.
    ``judge_ids``: {username_key: juez_id}, filled in as judges are created.

    What the plan read is checked again here (a username or dorsal taken meanwhile, a team
    changed meanwhile): Conflict ``roster_changed`` and nothing of this step is written."""
    cid = plan["competencia_id"]
    credentials = []
    for key, judge in plan["judges"].items():
        if judge["juez_id"] is not None:
            judge_ids[key] = judge["juez_id"]
    with models.db.atomic():
        models.get_competencia(cid)
        keys = [key for kind, key in part if kind == "juez"]
        cursor = models.db.cursor()
        now = models.db_text(models.utcnow())
        accounts = {key: plan["judges"][key]["user_id"] for key in keys
                    if plan["judges"][key]["user_id"] is not None}  # judges of other races
        if keys:
            taken = [row[0] for row in models.User.select(models.User.username).where(
                models.User.username_key.in_([k for k in keys if k not in accounts])).tuples()]
            taken += [row[0] for row in models.User.select(models.User.username)
                      .join(models.Juez, on=(models.Juez.user == models.User.id))
                      .where(models.User.id.in_(list(accounts.values()))
                             & (models.Juez.competencia == cid)).tuples()]
            if taken:
                raise models.Conflict("el usuario %r se creó mientras se importaba; vuelva a "
                                      "importar" % taken[0], "roster_changed")
        for key in keys:
            judge = plan["judges"][key]
            if key in accounts:  # its account and password as they are
                cursor.execute(_INSERT_JUDGE, (accounts[key], cid, judge["nombre"]))
            else:
                password, password_hash = passwords[key]
                cursor.execute(_INSERT_USER, (judge["username"], key, password_hash, now))
                cursor.execute(_INSERT_JUDGE, (cursor.lastrowid, cid, judge["nombre"]))
            judge_ids[key] = cursor.lastrowid
            cursor.execute(_INSERT_HISTORY, (
                cid, "crear", "juez", str(cursor.lastrowid), user_id, now,
                "importado: %s" % judge["where"], None,
                models.json_text({"username": judge["username"], "nombre": judge["nombre"]})))
            if key not in accounts:
                credentials.append([judge["username"], password, judge_ids[key],
                                    judge["nombre"]])
        creates = [team for kind, team in part if kind == "crear"]
        edits = [team for kind, team in part if kind == "editar"]
        if creates:
            taken = set(models.Equipo.select(models.Equipo.dorsal).where(
                (models.Equipo.competencia == cid)
                & models.Equipo.dorsal.in_([t["dorsal"] for t in creates])).tuples())
            if taken:
                raise models.Conflict("el dorsal %d se añadió mientras se importaba; vuelva a "
                                      "importar" % min(taken)[0], "roster_changed")
            for team in creates:  # (plain statements: ~10 us a team, not Peewee's ~100 us)
                juez_id = judge_ids[team["key"]]
                cursor.execute(_INSERT_TEAM, (cid, team["nombre"], team["dorsal"], juez_id,
                                              team["categoria"]))
                cursor.execute(_INSERT_HISTORY, (
                    cid, "crear", "equipo", str(cursor.lastrowid), user_id, now,
                    "importado: %s" % team["where"], None, models.json_text({
                        "nombre": team["nombre"], "dorsal": team["dorsal"], "juez_id": juez_id,
                        "categoria": team["categoria"]})))
        if edits:
            current = {e.id: e for e in models.Equipo.select().where(
                models.Equipo.id.in_([t["equipo_id"] for t in edits]))}
            for team in edits:
                equipo = current.get(team["equipo_id"])
                antes, despues = {}, {}
                for field, (before, after) in team["cambios"].items():
                    if field == "juez_id" and after is None:
                        after = judge_ids[team["key"]]
                    if equipo is None or _team_fields(equipo)[field] != before:
                        raise models.Conflict("%s: el equipo de dorsal %d cambió mientras se "
                                              "importaba; vuelva a importar" % (
                                                  team["where"], team["dorsal"]),
                                              "roster_changed")
                    antes[field], despues[field] = before, after
                models.Equipo.update(**{("juez" if f == "juez_id" else f): v
                                        for f, v in despues.items()}).where(
                    models.Equipo.id == equipo.id).execute()
                cursor.execute(_INSERT_HISTORY, (
                    cid, "editar", "equipo", str(equipo.id), user_id, now,
                    "importado: %s" % team["where"], models.json_text(antes),
                    models.json_text(despues)))
    return credentials


def import_roster(rows, competencia_id, source="roster", user_id=None, dry_run=False,
                  passwords=None):
    """Judges and teams from roster rows (:func:`parse_roster`) into a competition, all or
    nothing (one transaction), each new judge and team a history row (``crear``) of
    ``user_id`` and each corrected team one (``editar``): :func:`plan_roster`, then its steps.
    The command line without a server runs it; a server runs the plan on a reader and the steps
    as writer jobs of their own. Returns the plan's result, with ``credenciales``: [[usuario,
    contrasena, juez_id, nombre]] of the new judges (a password generated for each, shown to
    nobody else). ``dry_run``: the plan's result only, nothing written, no password made."""
    plan = plan_roster(rows, competencia_id, source)
    if dry_run:
        return plan["result"]
    return apply_roster(plan, user_id, roster_passwords(plan, passwords))


def roster_passwords(plan, passwords=None):
    """{username_key: (password, hash)} for the plan's new judges: generated and hashed here,
    before any write transaction (never inside one), unless given in ``passwords``."""
    passwords = dict(passwords or {})
    for username in plan["new_judges"]:
        if models.username_key(username) not in passwords:
            password = identity.generate_password()
            passwords[models.username_key(username)] = (password,
                                                        identity.hash_password(password))
    return passwords


def apply_roster(plan, user_id, passwords):
    """Every step of a plan in one transaction (all or nothing): the command line's import
    when no server runs (one writer job; nobody else is writing). Returns the plan's result
    with the new judges' ``credenciales``."""
    judge_ids, credentials = {}, []
    with models.db.atomic():
        for part in import_steps(plan):
            credentials += apply_roster_step(plan, part, user_id, passwords, judge_ids)
    return dict(plan["result"], credenciales=credentials)


# -- the organizer's changes (the API and the command line; each with its history row) ----------
MAX_DORSAL = 10**9


def _text(value, field, max_length, required=True):
    """Text a person typed: stripped, at most ``max_length`` characters; None when optional
    and empty. Invalid (``validation_error``) else."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise models.Invalid("Falta %s (texto)." % field, "validation_error",
                             {field: "Obligatorio (texto)." if required else "Debe ser texto."})
    if len(value) > max_length:
        raise models.Invalid("%s es demasiado largo." % field, "validation_error",
                             {field: "Hasta %d caracteres." % max_length})
    return value.strip() or None


def _dorsal(value):
    if not models.is_int(value) or not 1 <= value <= MAX_DORSAL:
        raise models.Invalid("El dorsal no es válido.", "validation_error",
                             {"dorsal": "Un número entero positivo."})
    return value


def _team(equipo_id):
    equipo = models.Equipo.get_or_none(models.Equipo.id == equipo_id)
    if equipo is None:
        raise models.NotFound(messages.TEAM_NOT_FOUND % equipo_id, "team_not_found")
    return equipo


def _judge(juez_id, competencia_id=None, field="juez_id"):
    """The judge ``juez_id`` (of that competition, when given)."""
    if not models.is_int(juez_id) or not 1 <= juez_id <= 2**62:
        raise models.Invalid("El juez no es válido.", "validation_error",
                             {field: "Debe ser el id (entero) de un juez."})
    juez = (models.Juez.select(models.Juez, models.User).join(models.User)
            .where(models.Juez.id == juez_id).first())
    if juez is None:
        raise models.NotFound("El juez %s no existe." % juez_id, "judge_not_found")
    if competencia_id is not None and juez.competencia_id != competencia_id:
        raise models.Invalid("El juez %d es de otra competencia." % juez_id,
                             "judge_other_competition",
                             {field: "Debe ser un juez de esta competencia."})
    return juez


def judge_username(juez_id):
    """The username of judge ``juez_id`` (NotFound when there is none): what its link to the
    judge app fills in."""
    juez = None
    if 1 <= juez_id <= 2**62:  # SQLite's ids; a path's 0 or 19 digits is no judge either
        juez = (models.Juez.select(models.Juez, models.User).join(models.User)
                .where(models.Juez.id == juez_id).first())
    if juez is None:
        raise models.NotFound("El juez %s no existe." % juez_id, "judge_not_found")
    return juez.user.username


def judge_view(juez):
    """A judge as the organizer sees it: the judge object (PROTOCOL.md) plus its username and
    whether it is active."""
    return dict(juez.to_dict(), username=juez.user.username, activo=juez.is_active)


def _team_fields(equipo):
    return {"nombre": equipo.nombre, "dorsal": equipo.dorsal, "juez_id": equipo.juez_id,
            "categoria": equipo.categoria}


def _created_team(user_id, equipo, motivo=None):
    models.add_history(equipo.competencia_id, "crear", "equipo", equipo.id, user_id, motivo, None,
                       _team_fields(equipo))
    return ledger.team_view(equipo)


def _created_judge(user_id, juez, motivo=None):
    models.add_history(juez.competencia_id, "crear", "juez", juez.id, user_id, motivo, None,
                       {"username": juez.user.username, "nombre": juez.nombre})


def add_competition(user_id, nombre, fecha_hora=None):
    """A new competition. ``fecha_hora``: when it is scheduled (naive UTC, or ISO 8601 text).
    Returns the competition object."""
    nombre = _text(nombre, "nombre", 200)
    if fecha_hora is not None and not isinstance(fecha_hora, models.dt.datetime):
        try:
            fecha_hora = venue_time.parse_timestamp(fecha_hora)  # (anything but text: ValueError)
        except (ValueError, TypeError, OverflowError):
            raise models.Invalid("La fecha no es válida.", "validation_error",
                                 {"fecha_hora": "Debe ser una fecha ISO 8601."}) from None
    with models.db.atomic():
        comp = registration.create_competition(nombre, fecha_hora)
        models.add_history(comp, "crear", "competencia", comp.id, user_id, None, None,
                           {"nombre": comp.nombre, "fecha_hora": models.iso(comp.fecha_hora)})
    return comp.to_dict()


def add_organizer(user_id, username, password=None, password_hash=None):
    """A new organizer account: ``password`` (8+ characters), or ``password_hash`` made
    beforehand from it. Returns the user object ({"id", "username", "organizador"})."""
    with models.db.atomic():
        return identity.create_user(username, password, organizer=True,
                                    password_hash=password_hash).to_dict()


def add_judge(user_id, competencia_id, username, nombre=None, password=None,
              password_hash=None, password_given=True):
    """A new judge of a competition: ``password`` (8+ characters), or ``password_hash`` made
    beforehand from it. A judge of other competitions is added to this one with the password it
    has (registration.create_judge); Conflict ``judge_has_password`` if one was given
    (``password_given``: by the organizer, not made up by the server). Returns the judge
    (:func:`judge_view`) with ``cuenta_nueva``."""
    comp = models.get_competencia(competencia_id)
    nombre = _text(nombre, "nombre", 200, required=False)
    with models.db.atomic():
        juez = registration.create_judge(username, password, comp.id, nombre,
                                         password_hash=password_hash)
        if not juez.cuenta_nueva and password_given:
            raise models.Conflict(
                "El usuario %r ya es juez de otra competencia: se añade a esta con la "
                "contraseña que ya tiene (cámbiela aparte si hace falta)." % juez.user.username,
                "judge_has_password")
        _created_judge(user_id, juez)
    return dict(judge_view(juez), cuenta_nueva=juez.cuenta_nueva)


def add_team(user_id, competencia_id, nombre, dorsal, juez_id, categoria=None):
    """A new team of a competition, timed by one of its judges. Returns the team."""
    comp = models.get_competencia(competencia_id)
    nombre, dorsal = _text(nombre, "nombre", 200), _dorsal(dorsal)
    juez = _judge(juez_id, comp.id)
    categoria = registration.check_categoria(categoria)
    _no_import(comp.id)
    with models.db.atomic():
        return _created_team(user_id, registration.create_team(nombre, dorsal, juez.id, categoria))


TEAM_FIELDS = ("nombre", "dorsal", "juez_id", "categoria")


def edit_team(user_id, equipo_id, changes):
    """Rename a team, change its dorsal or category, or give it to another judge of its
    competition (``changes``: any of TEAM_FIELDS; other keys are ignored). The new judge sees
    it in its ``/api/me/`` at once; records already stored keep the judge who sent them.
    Nothing changed: no history row. Returns the team."""
    equipo = _team(equipo_id)
    _no_import(equipo.competencia_id)
    if not any(field in changes for field in TEAM_FIELDS):
        raise models.Invalid("Nada que cambiar.", "validation_error",
                             {"nombre": "Indique al menos uno de: %s." % ", ".join(TEAM_FIELDS)})
    new = {}
    if "nombre" in changes:
        new["nombre"] = _text(changes["nombre"], "nombre", 200)
    if "dorsal" in changes:
        new["dorsal"] = _dorsal(changes["dorsal"])
    if "juez_id" in changes:
        new["juez_id"] = _judge(changes["juez_id"], equipo.competencia_id).id
    if "categoria" in changes:
        new["categoria"] = registration.check_categoria(changes["categoria"])
    before = _team_fields(equipo)
    changed = {field: value for field, value in new.items() if before[field] != value}
    if not changed:
        return ledger.team_view(equipo)
    if "dorsal" in changed and models.Equipo.select().where(
            (models.Equipo.competencia == equipo.competencia_id)
            & (models.Equipo.dorsal == changed["dorsal"])).exists():
        raise models.Conflict("El dorsal %d ya existe en esta competencia." % changed["dorsal"],
                              "dorsal_taken")
    with models.db.atomic():
        models.Equipo.update(**{("juez" if f == "juez_id" else f): v for f, v in changed.items()}
                             ).where(models.Equipo.id == equipo.id).execute()
        models.add_history(equipo.competencia_id, "editar", "equipo", equipo.id, user_id, None,
                           {field: before[field] for field in changed}, changed)
    return ledger.team_view(_team(equipo.id))


def delete_team(user_id, equipo_id):
    """Remove a team that never had a time (a test team, a typo): ``team_has_records`` once a
    record was sent for it or moved to it (mark it dns instead). Returns its competition id."""
    equipo = _team(equipo_id)
    _no_import(equipo.competencia_id)
    if (models.RegistroTiempo.select().where(models.RegistroTiempo.equipo == equipo.id).exists()
            or models.Accion.select().where((models.Accion.accion == "mover")
                                            & (models.Accion.equipo_id == equipo.id)).exists()):
        raise models.Conflict("El equipo %s tiene tiempos: no se puede eliminar (márquelo como "
                              "dns si no corre)." % equipo.nombre, "team_has_records")
    with models.db.atomic():
        models.add_history(equipo.competencia_id, "eliminar", "equipo", equipo.id, user_id, None,
                           _team_fields(equipo))
        equipo.delete_instance()
    return equipo.competencia_id


def edit_judge(user_id, juez_id, changes, password_hash=None):
    """Rename a judge, deactivate or reactivate it (``changes``: "nombre", "activo"), and/or
    give it a new password (``password_hash``, made beforehand by identity.new_password_hash).
    Deactivating it or a new password refuses every token it was issued before, at once.
    Each kind of change is one history row (editar, desactivar/activar, contrasena). Returns
    (the judge, whether its tokens were revoked)."""
    juez = _judge(juez_id, field="jid")
    if "nombre" not in changes and "activo" not in changes and password_hash is None:
        raise models.Invalid("Nada que cambiar.", "validation_error",
                             {"nombre": "Indique nombre, activo o password."})
    nombre = _text(changes["nombre"], "nombre", 200) if "nombre" in changes else juez.nombre
    activo = changes.get("activo", juez.is_active)
    if not isinstance(activo, bool):
        raise models.Invalid("activo debe ser true o false.", "validation_error",
                             {"activo": "Debe ser booleano."})
    revoked = False
    with models.db.atomic():
        if nombre != juez.nombre:
            models.add_history(juez.competencia_id, "editar", "juez", juez.id, user_id, None,
                               {"nombre": juez.nombre}, {"nombre": nombre})
            juez.nombre = nombre
        if activo != juez.is_active:
            models.add_history(juez.competencia_id, "activar" if activo else "desactivar", "juez",
                               juez.id, user_id, None, {"activo": juez.is_active},
                               {"activo": activo})
            juez.is_active = activo
            revoked = not activo
        juez.save()
        if revoked:
            identity.revoke_tokens(juez.user_id)
        if password_hash is not None:
            identity.replace_password(juez.user_id, password_hash, user_id)
            revoked = True
    return judge_view(juez), revoked


# -- the demo event ------------------------------------------------------------------------------
def demo_competition_id():
    """The demo competition's id, or None if it was never created."""
    comp = models.Competencia.get_or_none(models.Competencia.nombre == DEMO_COMPETITION)
    return comp.id if comp is not None else None


def create_demo_event():
    """Competition "Carrera Demo 5K" (today at 09:00 local time), organizer ``organizador``
    and judges ``juez1`` (teams 1, 2) and ``juez2`` (teams 3, 4) with generated passwords.
    Returns their credentials:
    ``{"competencia_id", "organizador": {username, password}, "jueces": [{username, password,
    juez_id, equipos}]}``."""
    creds = {"organizador": {"username": "organizador", "password": identity.generate_password()},
             "jueces": []}
    with models.db.atomic():
        nine = venue_time.to_local(models.utcnow()).replace(hour=9, minute=0, second=0,
                                                            microsecond=0)  # today, local time
        comp = registration.create_competition(DEMO_COMPETITION,
                                               venue_time.parse_local_timestamp(nine.isoformat()))
        identity.create_user("organizador", creds["organizador"]["password"], organizer=True)
        dorsal = 1
        for n in (1, 2):
            password = identity.generate_password()
            juez = registration.create_judge("juez%d" % n, password, comp.id, "Juez %d" % n)
            creds["jueces"].append({"username": "juez%d" % n, "password": password,
                                    "juez_id": juez.id, "equipos": []})
            for letter in "AB":
                equipo = registration.create_team("Equipo %d%s" % (n, letter), dorsal, juez.id)
                creds["jueces"][-1]["equipos"].append(equipo.id)
                dorsal += 1
    creds["competencia_id"] = comp.id
    return creds


# -- the rehearsal judges of ``simulate`` --------------------------------------------------------
def rehearsal_judges(competencia_id, count, known=None):
    """Judges simjuez1..N with one team each in the competition, created or reused.

    ``known``: {username: credentials row} of rehearsal judges whose passwords are still at
    hand; they are reused as they are. Others get a new password (created, or reset when the
    password was lost). Returns credentials rows {"usuario", "contrasena", "juez_id", "nombre"}.
    """
    known = known or {}
    rows = []
    with models.db.atomic():
        models.get_competencia(competencia_id)
        dorsal = (models.Equipo.select(models.pw.fn.MAX(models.Equipo.dorsal))
                  .where(models.Equipo.competencia == competencia_id).scalar() or 0)
        for n in range(1, count + 1):
            username = "%s%d" % (REHEARSAL_PREFIX, n)
            user = models.User.get_or_none(models.User.username_key == username)
            juez = user and models.Juez.get_or_none((models.Juez.user == user.id)
                                                    & (models.Juez.competencia == competencia_id))
            if juez is not None and username in known:
                rows.append(known[username])
                continue
            password = identity.generate_password()
            if juez is None:  # (a rehearsal judge of another competition keeps its account)
                juez = registration.create_judge(username, password, competencia_id,
                                                 "Juez simulado %d" % n)
            if not getattr(juez, "cuenta_nueva", False):  # its password is not at hand
                identity.set_password(username, password)
            if not juez.equipos.exists():
                dorsal += 1
                registration.create_team("Equipo simulado %d" % n, dorsal, juez.id)
            rows.append({"usuario": username, "contrasena": password, "juez_id": juez.id,
                         "nombre": juez.nombre})
    return rows


# -- listings ------------------------------------------------------------------------------------
def list_judges(competencia_id=None):
    """Every judge (of one competition, or all): {"id", "username", "nombre", "competencia_id",
    "activo"}, by id."""
    query = models.Juez.select(models.Juez, models.User).join(models.User)
    if competencia_id:
        query = query.where(models.Juez.competencia == competencia_id)
    return [{"id": j.id, "username": j.user.username, "nombre": j.nombre,
             "competencia_id": j.competencia_id, "activo": j.is_active}
            for j in query.order_by(models.Juez.id)]


def list_teams(competencia_id=None):
    """Every team (of one competition, or all): the team object plus "juez_id",
    "juez_usuario", "competencia_id" and "categoria", by competition and dorsal."""
    names = dict(models.Juez.select(models.Juez.id, models.User.username)
                 .join(models.User).tuples())
    query = models.Equipo.select()
    if competencia_id:
        query = query.where(models.Equipo.competencia == competencia_id)
    return [dict(e.to_dict(), juez_id=e.juez_id, juez_usuario=names.get(e.juez_id),
                 competencia_id=e.competencia_id, categoria=e.categoria)
            for e in query.order_by(models.Equipo.competencia, models.Equipo.dorsal)]


def pick_judge(reference, judges, competencia_id=None):
    """Of the judges a username names (dicts or rows with ``competencia_id``: one per
    competition it times), the one of ``competencia_id``, or the only one; None for none.
    Invalid (``judge_ambiguous``) naming the competitions when it judges several and none was
    said, NotFound when it judges none of that competition."""
    def cid(juez):
        return juez["competencia_id"] if isinstance(juez, dict) else juez.competencia_id
    if competencia_id is not None and judges:
        chosen = [j for j in judges if cid(j) == competencia_id]
        if not chosen:
            raise models.NotFound("%s is no judge of competition %d" % (reference,
                                                                        competencia_id),
                                  "judge_not_found")
        return chosen[0]
    if len(judges) > 1:
        raise models.Invalid("%s judges competitions %s: say which with --competition ID" % (
            reference, ", ".join(str(cid(j)) for j in judges)), "judge_ambiguous")
    return judges[0] if judges else None


def find_judge(reference, competencia_id=None):
    """A judge by username (case-insensitive; of ``competencia_id`` when it judges several:
    :func:`pick_judge`) or by id; NotFound naming what was asked."""
    juez = None
    text = str(reference).strip()
    user = models.User.get_or_none(models.User.username_key == models.username_key(text))
    if user is not None:
        juez = pick_judge(text, list(models.Juez.select().where(models.Juez.user == user.id)
                                     .order_by(models.Juez.id)), competencia_id)
    if juez is None and text.isdigit():
        juez = models.Juez.get_or_none(models.Juez.id == int(text))
    if juez is None:
        raise models.NotFound("no judge %r: give a username or an id from `judge list`" % text,
                              "judge_not_found")
    return juez
