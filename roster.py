"""Roster and accounts: the judges, teams and logins of an event, as organizers set them up.

Domain functions over the models (they know nothing of Tornado, of the command line or of
files other than the roster they are given): importing a roster, the demo event, the rehearsal
judges of ``simulate``, and the listings of judges and teams. Each function that writes is all
or nothing: it runs in one transaction (a savepoint inside the caller's, if there is one).
Errors are ``models.DomainError``s whose detail names the line or item at fault.
"""

import csv
import unicodedata

import models

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
        raise models.Invalid("cannot read %s: %s" % (path, exc.strerror or exc),
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
        raise models.Invalid("%s is larger than %d MiB: not a roster" % (
            source, MAX_ROSTER_BYTES // 2**20), "invalid_roster")
    notes = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
        notes.append("%s is not UTF-8: read as Windows-1252 (Excel's encoding); check the "
                     "accents of the names" % source)
    lines = text.splitlines()
    header = next((line for line in lines if line.strip()), "")
    if not header:
        raise models.Invalid("%s is empty" % source, "invalid_roster")
    delimiter = ";" if header.count(";") > header.count(",") else ","
    try:
        table = list(csv.reader(lines, delimiter=delimiter))
    except csv.Error as exc:
        raise models.Invalid("%s is not a CSV file: %s" % (source, exc), "invalid_roster") from None
    names = []
    start = next(i for i, row in enumerate(table) if any(cell.strip() for cell in row))
    names = [_header_name(cell) for cell in table[start]]
    missing = [c for c in ROSTER_COLUMNS if c not in names]
    if missing:
        raise models.Invalid("%s lacks columns: %s (its header has: %s; separated by %r; "
                             "expected %s)" % (source, ", ".join(missing),
                                               ", ".join(n or "(empty)" for n in names),
                                               delimiter, ", ".join(ROSTER_COLUMNS)),
                             "invalid_roster")
    rows = []
    for number, cells in enumerate(table[start + 1:], start=start + 2):
        if not any(cell.strip() for cell in cells):
            continue  # blank lines spreadsheets leave at the end
        if len(cells) > len(names) and any(cell.strip() for cell in cells[len(names):]):
            raise models.Invalid("%s line %d has %d cells, the header %d (a %r inside a name? "
                                 "quote it)" % (source, number, len(cells), len(names),
                                                delimiter), "invalid_roster")
        row = {name: (cells[i].strip() if i < len(cells) else "")
               for i, name in enumerate(names) if name}
        row["line"] = number
        rows.append(row)
    if not rows:
        raise models.Invalid("%s has a header but no rows" % source, "invalid_roster")
    return rows, notes


def import_roster(rows, competencia_id, source="roster"):
    """Judges and teams from roster rows (:func:`parse_roster`) into a competition, all or
    nothing.

    A judge already in the competition is reused; a team already there with the same dorsal,
    name and judge is skipped, so importing the same roster again adds nothing. A new team
    takes the optional ``categoria`` column (empty: none). Returns
    ``{"jueces": n, "equipos_nuevos": n, "credenciales": [[usuario, contrasena, juez_id,
    nombre], ...]}`` with a generated password for each new judge (shown to nobody else).
    """
    models.get_competencia(competencia_id)
    credentials, judges, teams, dorsals = [], {}, 0, {}
    with models.db.atomic():
        for row in rows:
            line = row.get("line", "?")
            where = "%s line %s" % (source, line)
            username = (row.get("juez_usuario") or "").strip()
            nombre_equipo = (row.get("equipo") or "").strip()
            for column, value in (("juez_usuario", username), ("equipo", nombre_equipo),
                                  ("dorsal", (row.get("dorsal") or "").strip())):
                if not value:
                    raise models.Invalid("%s: %s is empty" % (where, column), "invalid_roster")
            try:
                dorsal = int(row["dorsal"])
            except (TypeError, ValueError):
                raise models.Invalid("%s: dorsal %r is not a number" % (where, row["dorsal"]),
                                     "invalid_roster") from None
            if not 1 <= dorsal <= 10**9:
                raise models.Invalid("%s: dorsal %d must be a positive number" % (where, dorsal),
                                     "invalid_roster")
            if dorsal in dorsals:
                raise models.Invalid("%s: dorsal %d is also on line %s" % (
                    where, dorsal, dorsals[dorsal]), "invalid_roster")
            dorsals[dorsal] = line
            key = models.username_key(username)
            juez = judges.get(key)
            if juez is None:
                juez = judges[key] = _roster_judge(username, row, competencia_id, credentials,
                                                   where)
            existing = models.Equipo.get_or_none(
                (models.Equipo.competencia == competencia_id) & (models.Equipo.dorsal == dorsal))
            if existing is not None:
                if existing.nombre == nombre_equipo and existing.juez_id == juez.id:
                    continue  # imported before
                raise models.Conflict("%s: dorsal %d is already team %r of this competition"
                                      % (where, dorsal, existing.nombre), "dorsal_taken")
            try:
                categoria = models.check_categoria(row.get("categoria"))
            except models.Invalid:
                raise models.Invalid("%s: categoria is longer than %d characters" % (
                    where, models.MAX_CATEGORIA), "invalid_roster") from None
            models.create_team(nombre_equipo, dorsal, juez.id, categoria)
            teams += 1
    return {"jueces": len(judges), "equipos_nuevos": teams, "credenciales": credentials}


def _roster_judge(username, row, competencia_id, credentials, where):
    user = models.User.get_or_none(models.User.username_key == models.username_key(username))
    if user is not None:
        juez = models.Juez.get_or_none(models.Juez.user == user.id)
        if juez is None or juez.competencia_id != competencia_id:
            raise models.Conflict("%s: user %r exists but is not a judge of competition %d"
                                  % (where, username, competencia_id), "username_taken")
        return juez
    password = models.generate_password()
    nombre = (row.get("juez_nombre") or "").strip() or username
    juez = models.create_judge(username, password, competencia_id, nombre)
    credentials.append([username, password, juez.id, nombre])
    return juez


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
    creds = {"organizador": {"username": "organizador", "password": models.generate_password()},
             "jueces": []}
    with models.db.atomic():
        nine = models.to_local(models.utcnow()).replace(hour=9, minute=0, second=0,
                                                        microsecond=0)  # today, local time
        comp = models.create_competition(DEMO_COMPETITION,
                                         models.parse_local_timestamp(nine.isoformat()))
        models.create_user("organizador", creds["organizador"]["password"], organizer=True)
        dorsal = 1
        for n in (1, 2):
            password = models.generate_password()
            juez = models.create_judge("juez%d" % n, password, comp.id, "Juez %d" % n)
            creds["jueces"].append({"username": "juez%d" % n, "password": password,
                                    "juez_id": juez.id, "equipos": []})
            for letter in "AB":
                equipo = models.create_team("Equipo %d%s" % (n, letter), dorsal, juez.id)
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
            juez = user and models.Juez.get_or_none(models.Juez.user == user.id)
            if juez is not None and juez.competencia_id != competencia_id:
                raise models.Conflict("%s is a judge of competition %d, not %d"
                                      % (username, juez.competencia_id, competencia_id),
                                      "username_taken")
            if juez is not None and username in known:
                rows.append(known[username])
                continue
            password = models.generate_password()
            if juez is None:
                juez = models.create_judge(username, password, competencia_id,
                                           "Juez simulado %d" % n)
            else:
                models.set_password(username, password)
            if not juez.equipos.exists():
                dorsal += 1
                models.create_team("Equipo simulado %d" % n, dorsal, juez.id)
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


def find_judge(reference):
    """A judge by username (case-insensitive) or by id; NotFound naming what was asked."""
    juez = None
    text = str(reference).strip()
    user = models.User.get_or_none(models.User.username_key == models.username_key(text))
    if user is not None:
        juez = models.Juez.get_or_none(models.Juez.user == user.id)
    if juez is None and text.isdigit():
        juez = models.Juez.get_or_none(models.Juez.id == int(text))
    if juez is None:
        raise models.NotFound("no judge %r: give a username or an id from `judge list`" % text,
                              "judge_not_found")
    return juez
