"""Roster and accounts: the judges, teams and logins of an event, as organizers set them up.

Domain functions over the models (they know nothing of Tornado, of the command line or of
files other than the roster they are given): importing a roster, the demo event, the rehearsal
judges of ``simulate``, and the listings of judges and teams. Each function that writes is all
or nothing: it runs in one transaction (a savepoint inside the caller's, if there is one).
Errors are ``models.DomainError``s whose detail names the line or item at fault.
"""

import csv

import models

DEMO_COMPETITION = "Carrera Demo 5K"
REHEARSAL_PREFIX = "simjuez"
ROSTER_COLUMNS = ("juez_usuario", "juez_nombre", "equipo", "dorsal")


# -- the roster CSV ------------------------------------------------------------------------------
def read_roster(path):
    """The rows of a roster CSV file (dicts by column). Invalid if it cannot be used."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise models.Invalid("cannot read %s: %s" % (path, exc), "invalid_roster") from None
    if not rows:
        raise models.Invalid("%s has no rows" % path, "invalid_roster")
    missing = [c for c in ROSTER_COLUMNS if c not in rows[0]]
    if missing:
        raise models.Invalid("%s lacks columns: %s (expected %s)" % (
            path, ", ".join(missing), ", ".join(ROSTER_COLUMNS)), "invalid_roster")
    return rows


def import_roster(rows, competencia_id, source="roster"):
    """Judges and teams from roster rows into a competition, all or nothing.

    A judge already in the competition is reused; a team already there with the same dorsal,
    name and judge is skipped, so importing the same roster again adds nothing. Returns
    ``{"jueces": n, "equipos_nuevos": n, "credenciales": [[usuario, contrasena, juez_id,
    nombre], ...]}`` with a generated password for each new judge (shown to nobody else).
    """
    models.get_competencia(competencia_id)
    credentials, judges, teams = [], {}, 0
    with models.db.atomic():
        for line, row in enumerate(rows, start=2):
            username = (row["juez_usuario"] or "").strip()
            try:
                dorsal = int(row["dorsal"])
            except (TypeError, ValueError):
                raise models.Invalid("%s line %d: dorsal %r is not a number"
                                     % (source, line, row["dorsal"]), "invalid_roster") from None
            if not username or not (row["equipo"] or "").strip():
                raise models.Invalid("%s line %d: juez_usuario and equipo are required"
                                     % (source, line), "invalid_roster")
            key = models.username_key(username)
            juez = judges.get(key)
            if juez is None:
                juez = judges[key] = _roster_judge(username, row, competencia_id, credentials,
                                                   "%s line %d" % (source, line))
            existing = models.Equipo.get_or_none(
                (models.Equipo.competencia == competencia_id) & (models.Equipo.dorsal == dorsal))
            if existing is not None:
                if existing.nombre == row["equipo"].strip() and existing.juez_id == juez.id:
                    continue  # imported before
                raise models.Conflict("%s line %d: dorsal %d is already team %r"
                                      % (source, line, dorsal, existing.nombre), "dorsal_taken")
            models.create_team(row["equipo"], dorsal, juez.id)
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
    """Competition "Carrera Demo 5K", organizer ``organizador`` and judges ``juez1`` (teams 1,
    2) and ``juez2`` (teams 3, 4) with generated passwords. Returns their credentials:
    ``{"competencia_id", "organizador": {username, password}, "jueces": [{username, password,
    juez_id, equipos}]}``."""
    creds = {"organizador": {"username": "organizador", "password": models.generate_password()},
             "jueces": []}
    with models.db.atomic():
        comp = models.create_competition(DEMO_COMPETITION, models.utcnow().replace(
            hour=9, minute=0, second=0, microsecond=0))
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
    """Every team (of one competition, or all): the team object plus "juez_id" and
    "competencia_id", by competition and dorsal."""
    query = models.Equipo.select()
    if competencia_id:
        query = query.where(models.Equipo.competencia == competencia_id)
    return [dict(e.to_dict(), juez_id=e.juez_id, competencia_id=e.competencia_id)
            for e in query.order_by(models.Equipo.competencia, models.Equipo.dorsal)]
