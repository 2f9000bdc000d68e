"""Importing a roster: the judges and teams of an event from the organizer's spreadsheet (CSV),
read, checked and planned without writing (nothing is written unless every line is right),
then written, each judge and team with its history row. A server plans off the writer, in its
worker process, which also makes the answer and cuts the plan into short writer steps, handed
over in a spool file one piece at a time (``prepare_import``, ``apply_spooled_step``), so that
an import never holds the writer, nor the server's interpreter lock, for more than a few ms; a
step that fails leaves the steps before it written (the server answers with their credentials,
and importing the same roster again completes it). The command line without a server writes the
whole plan in one transaction (``apply_roster``): all or nothing. Judges of other competitions
join with the account they have. Errors are ``models.DomainError``s whose detail (in Spanish,
like the API's) names the line at fault. Knows nothing of Tornado; the only files it touches
are the roster it is given and its own spool files.
"""

import contextlib
import csv
import json
import os
import pickle
import tempfile
import unicodedata

import identity
import models
import registration


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
    without writing (the preview never holds the writer: a server runs it in its worker process): every row checked,
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
        if not 1 <= dorsal <= registration.MAX_DORSAL:
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
    no_import(competencia_id)
    _importing.add(competencia_id)


def end_import(competencia_id):
    _importing.discard(competencia_id)


def no_import(competencia_id):
    """Conflict ``import_in_progress`` while an import of this competition is being written."""
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
    """:func:`parse_roster` then :func:`plan_roster` of a roster CSV's bytes: (plan, notes)."""
    rows, notes = parse_roster(data, source)
    return plan_roster(rows, competencia_id, source), notes


def import_answer(result, notes, dry_run):
    """What POST .../importar/ answers (ORGANIZER.md), from an import's or a plan's result."""
    return {"dry_run": dry_run, "jueces": result["jueces"],
            "jueces_nuevos": result["jueces_nuevos"],
            "cuentas_existentes": result["cuentas_existentes"],
            "equipos_nuevos": result["equipos_nuevos"],
            "equipos_cambiados": result["equipos_cambiados"],
            "credenciales": credentials_answer(result["credenciales"]),
            "detalle": result["detalle"], "notas": notes}


def credentials_answer(credentials):
    """[[usuario, contrasena, juez_id, nombre]] as the API answers them."""
    return [{"username": u, "password": p, "juez_id": j, "nombre": n}
            for u, p, j, n in credentials]


def _json(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# -- an import on a running server: prepared in its worker process, handed over in pieces ---------
# A big roster's answer is megabytes of JSON and its plan as much again: handed to the server
# process whole, unpickling it there would hold the interpreter lock (which the event loop
# needs) ~80 ms, and so would making the answer's JSON on a thread. So the worker writes them to
# a spool file and hands over only where each piece is; the server reads one piece at a time:
# each writer step its own (a few KiB), the answer in SPOOL_CHUNK pieces it sends as they come.
SPOOL_CHUNK = 256 * 1024
# The credentials go in the answer here (the worker makes the rest of it without them).
_CREDENTIALS_KEY = '"credenciales":[]'


def spool_folder():
    """Where a spool file is written: beside the database (a server's start removes what a
    killed one left there: ``store.clean_partials``), or the temporary folder."""
    path = models.db.database
    if path in (None, "", ":memory:") or str(path).startswith("file:"):
        return tempfile.gettempdir()
    return os.path.dirname(os.path.abspath(path))


def prepare_import(data, competencia_id, source="roster", dry_run=False, step=IMPORT_STEP,
                   owner=None):
    """What a server does with a roster CSV's bytes before it writes anything: parsed, checked
    and planned (:func:`plan_import`; errors as there), its answer made (the preview's whole
    answer; an import's without the credentials, which only its writer steps make) and its plan
    cut into writer steps (:func:`import_steps`), each pickled on its own, all of it written to
    a spool file (mode 0600, named like a backup's temporary file of process ``owner``, the
    server: a killed server's is removed by the next start). Runs in the worker process.

    Returns a small dict: ``path``, ``answer``: [(offset, length)] of the answer's pieces (its
    credentials go between the first and the second, :func:`answer_pieces`), ``steps``:
    [(offset, length, {"jueces", "equipos_nuevos", "equipos_cambiados"})], ``new_judges``
    (whose passwords the server makes) and ``result`` (the counts, without ``detalle``)."""
    plan, notes = plan_import(data, competencia_id, source)
    text = _json(import_answer(plan["result"], notes, dry_run)).encode()
    answer = [text]
    if not dry_run:  # (its first occurrence is the key: only counts come before it)
        at = text.index(_CREDENTIALS_KEY.encode()) + len(_CREDENTIALS_KEY) - 2
        answer = [text[:at], text[at + 2:]]
    handle, path = tempfile.mkstemp(dir=spool_folder(), prefix=".import.%d." % (
        owner or os.getpid()), suffix=".partial")
    pieces = {"path": path, "answer": [], "steps": [], "new_judges": plan["new_judges"],
              "result": {k: v for k, v in plan["result"].items() if k != "detalle"}}
    try:
        with os.fdopen(handle, "wb") as spool:
            for part in answer:
                pieces["answer"].append((spool.tell(), len(part)))
                spool.write(part)
            if not dry_run:
                for part in import_steps(plan, step):
                    blob = pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
                    pieces["steps"].append((spool.tell(), len(blob), step_counts(part)))
                    spool.write(blob)
    except BaseException:
        discard_spool(path)
        raise
    return pieces


def read_spool(path, offset, length):
    """``length`` bytes of a spool file from ``offset`` (a thread's work, not the loop's)."""
    with open(path, "rb") as spool:
        spool.seek(offset)
        data = spool.read(length)
    if len(data) != length:
        raise OSError("the import's spool file %s is shorter than expected" % path)
    return data


def answer_pieces(pieces, chunk=SPOOL_CHUNK):
    """Where each read of a prepared answer is, in order, none over ``chunk`` bytes: a list
    of (offset, length), with None where the credentials go (an import's answer)."""
    reads = []
    for index, (offset, length) in enumerate(pieces["answer"]):
        if index:
            reads.append(None)
        reads += [(at, min(chunk, offset + length - at))
                  for at in range(offset, offset + length, chunk)]
    return reads


def discard_spool(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def import_steps(plan, step=IMPORT_STEP):
    """The plan cut into writer jobs of at most ``step`` items: the new judges first (a team
    needs its judge's id), then the teams to create or correct. Each is the ``part`` of
    :func:`apply_roster_step` and holds all it needs (never the whole plan): ``{"competencia_id",
    "jueces": [(key, username, nombre, user_id or None, where)], "crear": [(nombre, dorsal,
    categoria, where, juez_id or None, key)], "editar": [(equipo_id, dorsal, where, cambios,
    key)]}``; a None juez_id is a judge made by an earlier step (``judge_ids``)."""
    judges = plan["judges"]
    items = ([("jueces", (key, j["username"], j["nombre"], j["user_id"], j["where"]))
              for key, j in judges.items() if j["juez_id"] is None]
             + [("crear", (t["nombre"], t["dorsal"], t["categoria"], t["where"],
                           judges[t["key"]]["juez_id"], t["key"])) for t in plan["creates"]]
             + [("editar", (t["equipo_id"], t["dorsal"], t["where"], t["cambios"], t["key"]))
                for t in plan["edits"]])
    parts = []
    for i in range(0, max(1, len(items)), step):
        part = {"competencia_id": plan["competencia_id"], "jueces": [], "crear": [],
                "editar": []}
        for kind, item in items[i:i + step]:
            part[kind].append(item)
        parts.append(part)
    return parts


STEP_COUNTS = ("jueces", "equipos_nuevos", "equipos_cambiados")


def step_counts(part):
    """What a step writes: {"jueces", "equipos_nuevos", "equipos_cambiados"} (STEP_COUNTS)."""
    return dict(zip(STEP_COUNTS, (len(part["jueces"]), len(part["crear"]),
                                  len(part["editar"]))))


def apply_spooled_step(path, offset, length, user_id, passwords, judge_ids):
    """:func:`apply_roster_step` of a step a spool file holds (:func:`prepare_import`): read and
    unpickled here, one step at a time (a few KiB), on the writer's thread."""
    return apply_roster_step(pickle.loads(read_spool(path, offset, length)), user_id,
                             passwords, judge_ids)


def apply_roster_step(part, user_id, passwords, judge_ids):
    """One writer job of an import (:func:`import_steps`): at most IMPORT_STEP judges or teams
    created or corrected, each with its history row, in plain statements (~20 us an item).
    New judges get the passwords made beforehand (``passwords``: {username_key: (password,
    hash)}; never hashed here, inside the writer's transaction); returns their credentials.
    ``judge_ids``: {username_key: juez_id}, filled in as judges are created.

    What the plan read is checked again here (a username or dorsal taken meanwhile, a team
    changed meanwhile): Conflict ``roster_changed`` and nothing of this step is written."""
    cid = part["competencia_id"]
    credentials = []
    with models.db.atomic():
        models.get_competencia(cid)
        cursor = models.db.cursor()
        now = models.db_text(models.utcnow())
        judges = part["jueces"]
        accounts = {key: user_id for key, _, _, user_id, _ in judges
                    if user_id is not None}  # judges of other races
        if judges:
            taken = [row[0] for row in models.User.select(models.User.username).where(
                models.User.username_key.in_([j[0] for j in judges
                                              if j[0] not in accounts])).tuples()]
            taken += [row[0] for row in models.User.select(models.User.username)
                      .join(models.Juez, on=(models.Juez.user == models.User.id))
                      .where(models.User.id.in_(list(accounts.values()))
                             & (models.Juez.competencia == cid)).tuples()]
            if taken:
                raise models.Conflict("el usuario %r se creó mientras se importaba; vuelva a "
                                      "importar" % taken[0], "roster_changed")
        for key, username, nombre, _, where in judges:
            if key in accounts:  # its account and password as they are
                cursor.execute(_INSERT_JUDGE, (accounts[key], cid, nombre))
            else:
                password, password_hash = passwords[key]
                cursor.execute(_INSERT_USER, (username, key, password_hash, now))
                cursor.execute(_INSERT_JUDGE, (cursor.lastrowid, cid, nombre))
            judge_ids[key] = cursor.lastrowid
            cursor.execute(_INSERT_HISTORY, (
                cid, "crear", "juez", str(cursor.lastrowid), user_id, now,
                "importado: %s" % where, None,
                models.json_text({"username": username, "nombre": nombre})))
            if key not in accounts:
                credentials.append([username, password, judge_ids[key], nombre])
        creates, edits = part["crear"], part["editar"]
        if creates:
            taken = set(models.Equipo.select(models.Equipo.dorsal).where(
                (models.Equipo.competencia == cid)
                & models.Equipo.dorsal.in_([t[1] for t in creates])).tuples())
            if taken:
                raise models.Conflict("el dorsal %d se añadió mientras se importaba; vuelva a "
                                      "importar" % min(taken)[0], "roster_changed")
            for nombre, dorsal, categoria, where, juez_id, key in creates:
                # (plain statements: ~10 us a team, not Peewee's ~100 us)
                juez_id = juez_id or judge_ids[key]
                cursor.execute(_INSERT_TEAM, (cid, nombre, dorsal, juez_id, categoria))
                cursor.execute(_INSERT_HISTORY, (
                    cid, "crear", "equipo", str(cursor.lastrowid), user_id, now,
                    "importado: %s" % where, None, models.json_text({
                        "nombre": nombre, "dorsal": dorsal, "juez_id": juez_id,
                        "categoria": categoria})))
        if edits:
            current = {e.id: e for e in models.Equipo.select().where(
                models.Equipo.id.in_([t[0] for t in edits]))}
            for equipo_id, dorsal, where, cambios, key in edits:
                equipo = current.get(equipo_id)
                antes, despues = {}, {}
                for field, (before, after) in cambios.items():
                    if field == "juez_id" and after is None:
                        after = judge_ids[key]
                    if equipo is None or registration.team_fields(equipo)[field] != before:
                        raise models.Conflict("%s: el equipo de dorsal %d cambió mientras se "
                                              "importaba; vuelva a importar" % (where, dorsal),
                                              "roster_changed")
                    antes[field], despues[field] = before, after
                models.Equipo.update(**{("juez" if f == "juez_id" else f): v
                                        for f, v in despues.items()}).where(
                    models.Equipo.id == equipo.id).execute()
                cursor.execute(_INSERT_HISTORY, (
                    cid, "editar", "equipo", str(equipo.id), user_id, now,
                    "importado: %s" % where, models.json_text(antes),
                    models.json_text(despues)))
    return credentials


def import_roster(rows, competencia_id, source="roster", user_id=None, dry_run=False,
                  passwords=None):
    """Judges and teams from roster rows (:func:`parse_roster`) into a competition, all or
    nothing (one transaction), each new judge and team a history row (``crear``) of
    ``user_id`` and each corrected team one (``editar``): :func:`plan_roster`, then its steps.
    Without a server; a server prepares the plan in its worker process (:func:`prepare_import`)
    and writes its steps as writer jobs of their own. Returns the plan's result, with ``credenciales``: [[usuario,
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
            credentials += apply_roster_step(part, user_id, passwords, judge_ids)
    return dict(plan["result"], credenciales=credentials)
