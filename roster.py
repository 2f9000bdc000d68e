"""Roster and accounts: the judges, teams and logins of an event, as organizers set them up.

Domain functions over the models (they know nothing of Tornado, of the command line or of
files other than the roster they are given): importing a roster, the organizer's changes of
competitions, judges and teams (ORGANIZER.md "Roster and accounts", each with its history row),
the demo event, the rehearsal judges of ``simulate``, and the listings of judges and teams.
Each function that writes is all or nothing: it runs in one transaction (a savepoint inside the
caller's, if there is one), and the server runs it as one writer job. Errors are
``models.DomainError``s whose detail (in Spanish, like the API's) names the line or item at
fault.
"""

import contextlib
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


class _Preview(Exception):
    """Ends a dry run: what the import did is rolled back, and this carries what it found."""

    def __init__(self, result):
        super().__init__("dry run")
        self.result = result


def import_roster(rows, competencia_id, source="roster", user_id=None, dry_run=False,
                  passwords=None):
    """Judges and teams from roster rows (:func:`parse_roster`) into a competition, all or
    nothing; each new judge and team is a history row (``crear``) of ``user_id``.

    A judge already in the competition is reused; a team already there with the same dorsal,
    name and judge is skipped, so importing the same roster again adds nothing. A new team
    takes the optional ``categoria`` column (empty: none). Returns
    ``{"jueces": n, "jueces_nuevos": n, "equipos_nuevos": n, "credenciales": [[usuario,
    contrasena, juez_id, nombre], ...], "detalle": {"jueces": [{"username", "nombre", "nuevo"}],
    "equipos": [{"linea", "nombre", "dorsal", "juez_usuario", "categoria", "nuevo"}]}}`` with a
    generated password for each new judge (shown to nobody else).

    ``dry_run``: the preview. The same import runs and is rolled back, so it finds exactly what
    the import would refuse or create; no password is made. ``passwords``: {username_key:
    (password, hash)} made beforehand for the new judges (the server hashes on its own threads,
    never in the writer); a new judge without one gets one made here.
    """
    models.get_competencia(competencia_id)
    passwords = passwords or {}
    credentials, judges, dorsals = [], {}, {}
    detail = {"jueces": [], "equipos": []}
    try:
        with models.db.atomic():
            for row in rows:
                line = row.get("line", "?")
                where = "%s, línea %s" % (source, line)
                username = (row.get("juez_usuario") or "").strip()
                nombre_equipo = (row.get("equipo") or "").strip()
                for column, value in (("juez_usuario", username), ("equipo", nombre_equipo),
                                      ("dorsal", (row.get("dorsal") or "").strip())):
                    if not value:
                        raise models.Invalid("%s: falta %s" % (where, column), "invalid_roster")
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
                key = models.username_key(username)
                juez = judges.get(key)
                if juez is None:
                    with _at(where):
                        juez = judges[key] = _roster_judge(
                            username, row, competencia_id, where, user_id, dry_run,
                            passwords.get(key), credentials, detail["jueces"])
                try:
                    categoria = models.check_categoria(row.get("categoria"))
                except models.Invalid:
                    raise models.Invalid("%s: la categoría tiene más de %d caracteres" % (
                        where, models.MAX_CATEGORIA), "invalid_roster") from None
                team = {"linea": line, "nombre": nombre_equipo, "dorsal": dorsal,
                        "juez_usuario": juez.user.username, "categoria": categoria,
                        "nuevo": True}
                detail["equipos"].append(team)
                existing = models.Equipo.get_or_none(
                    (models.Equipo.competencia == competencia_id)
                    & (models.Equipo.dorsal == dorsal))
                if existing is not None:
                    if existing.nombre == nombre_equipo and existing.juez_id == juez.id:
                        team["nuevo"] = False  # imported before
                        continue
                    raise models.Conflict("%s: el dorsal %d ya es el equipo %r de esta "
                                          "competencia" % (where, dorsal, existing.nombre),
                                          "dorsal_taken")
                with _at(where):
                    _created_team(user_id, models.create_team(nombre_equipo, dorsal, juez.id,
                                                              categoria),
                                  "importado: %s" % where)
            result = {"jueces": len(judges),
                      "jueces_nuevos": sum(j["nuevo"] for j in detail["jueces"]),
                      "equipos_nuevos": sum(t["nuevo"] for t in detail["equipos"]),
                      "credenciales": credentials, "detalle": detail}
            if dry_run:
                raise _Preview(result)
    except _Preview as preview:
        return preview.result
    return result


@contextlib.contextmanager
def _at(where):
    """A rule of the models that refuses an item of the roster names its line."""
    try:
        yield
    except models.DomainError as exc:
        raise type(exc)("%s: %s" % (where, exc.detail), exc.code, exc.errors) from None


# The placeholder password hash of a judge a dry run creates (and rolls back): nothing verifies
# against it, and no time is spent hashing a password nobody will see.
_NO_PASSWORD = "!"


def _roster_judge(username, row, competencia_id, where, user_id, dry_run, prepared,
                  credentials, listed):
    user = models.User.get_or_none(models.User.username_key == models.username_key(username))
    if user is not None:
        juez = models.Juez.get_or_none(models.Juez.user == user.id)
        if juez is None or juez.competencia_id != competencia_id:
            raise models.Conflict("el usuario %r existe pero no es juez de la competencia %d"
                                  % (username, competencia_id), "username_taken")
        listed.append({"username": user.username, "nombre": juez.nombre, "nuevo": False})
        return juez
    nombre = (row.get("juez_nombre") or "").strip() or username
    if dry_run:
        password, password_hash = None, _NO_PASSWORD
    else:
        password, password_hash = prepared or (models.generate_password(), None)
    juez = models.create_judge(username, password, competencia_id, nombre,
                               password_hash=password_hash)
    _created_judge(user_id, juez, "importado: %s" % where)
    if not dry_run:
        credentials.append([username, password, juez.id, nombre])
    listed.append({"username": juez.user.username, "nombre": nombre, "nuevo": True})
    return juez


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
    if not models._is_int(value) or not 1 <= value <= MAX_DORSAL:
        raise models.Invalid("El dorsal no es válido.", "validation_error",
                             {"dorsal": "Un número entero positivo."})
    return value


def _team(equipo_id):
    equipo = models.Equipo.get_or_none(models.Equipo.id == equipo_id)
    if equipo is None:
        raise models.NotFound("El equipo %s no existe." % equipo_id, "team_not_found")
    return equipo


def _judge(juez_id, competencia_id=None, field="juez_id"):
    """The judge ``juez_id`` (of that competition, when given)."""
    if not models._is_int(juez_id) or not 1 <= juez_id <= 2**62:
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
    models._history(equipo.competencia_id, "crear", "equipo", equipo.id, user_id, motivo, None,
                    _team_fields(equipo))
    return models.team_view(equipo)


def _created_judge(user_id, juez, motivo=None):
    models._history(juez.competencia_id, "crear", "juez", juez.id, user_id, motivo, None,
                    {"username": juez.user.username, "nombre": juez.nombre})


def add_competition(user_id, nombre, fecha_hora=None):
    """A new competition. ``fecha_hora``: when it is scheduled (naive UTC, or ISO 8601 text).
    Returns the competition object."""
    nombre = _text(nombre, "nombre", 200)
    if fecha_hora is not None and not isinstance(fecha_hora, models.dt.datetime):
        try:
            fecha_hora = models.parse_timestamp(fecha_hora)  # (anything but text: ValueError)
        except (ValueError, TypeError, OverflowError):
            raise models.Invalid("La fecha no es válida.", "validation_error",
                                 {"fecha_hora": "Debe ser una fecha ISO 8601."}) from None
    with models.db.atomic():
        comp = models.create_competition(nombre, fecha_hora)
        models._history(comp, "crear", "competencia", comp.id, user_id, None, None,
                        {"nombre": comp.nombre, "fecha_hora": models.iso(comp.fecha_hora)})
    return comp.to_dict()


def add_judge(user_id, competencia_id, username, nombre=None, password=None,
              password_hash=None):
    """A new judge of a competition: ``password`` (8+ characters), or ``password_hash`` made
    beforehand from it. Returns the judge (:func:`judge_view`)."""
    comp = models.get_competencia(competencia_id)
    nombre = _text(nombre, "nombre", 200, required=False)
    with models.db.atomic():
        juez = models.create_judge(username, password, comp.id, nombre,
                                   password_hash=password_hash)
        _created_judge(user_id, juez)
    return judge_view(juez)


def add_team(user_id, competencia_id, nombre, dorsal, juez_id, categoria=None):
    """A new team of a competition, timed by one of its judges. Returns the team."""
    comp = models.get_competencia(competencia_id)
    nombre, dorsal = _text(nombre, "nombre", 200), _dorsal(dorsal)
    juez = _judge(juez_id, comp.id)
    categoria = models.check_categoria(categoria)
    with models.db.atomic():
        return _created_team(user_id, models.create_team(nombre, dorsal, juez.id, categoria))


TEAM_FIELDS = ("nombre", "dorsal", "juez_id", "categoria")


def edit_team(user_id, equipo_id, changes):
    """Rename a team, change its dorsal or category, or give it to another judge of its
    competition (``changes``: any of TEAM_FIELDS; other keys are ignored). The new judge sees
    it in its ``/api/me/`` at once; records already stored keep the judge who sent them.
    Nothing changed: no history row. Returns the team."""
    equipo = _team(equipo_id)
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
        new["categoria"] = models.check_categoria(changes["categoria"])
    before = _team_fields(equipo)
    changed = {field: value for field, value in new.items() if before[field] != value}
    if not changed:
        return models.team_view(equipo)
    if "dorsal" in changed and models.Equipo.select().where(
            (models.Equipo.competencia == equipo.competencia_id)
            & (models.Equipo.dorsal == changed["dorsal"])).exists():
        raise models.Conflict("El dorsal %d ya existe en esta competencia." % changed["dorsal"],
                              "dorsal_taken")
    with models.db.atomic():
        models.Equipo.update(**{("juez" if f == "juez_id" else f): v for f, v in changed.items()}
                             ).where(models.Equipo.id == equipo.id).execute()
        models._history(equipo.competencia_id, "editar", "equipo", equipo.id, user_id, None,
                        {field: before[field] for field in changed}, changed)
    return models.team_view(_team(equipo.id))


def delete_team(user_id, equipo_id):
    """Remove a team that never had a time (a test team, a typo): ``team_has_records`` once a
    record was sent for it or moved to it (mark it dns instead). Returns its competition id."""
    equipo = _team(equipo_id)
    if (models.RegistroTiempo.select().where(models.RegistroTiempo.equipo == equipo.id).exists()
            or models.Accion.select().where((models.Accion.accion == "mover")
                                            & (models.Accion.equipo_id == equipo.id)).exists()):
        raise models.Conflict("El equipo %s tiene tiempos: no se puede eliminar (márquelo como "
                              "dns si no corre)." % equipo.nombre, "team_has_records")
    with models.db.atomic():
        models._history(equipo.competencia_id, "eliminar", "equipo", equipo.id, user_id, None,
                        _team_fields(equipo))
        equipo.delete_instance()
    return equipo.competencia_id


def edit_judge(user_id, juez_id, changes, password_hash=None):
    """Rename a judge, deactivate or reactivate it (``changes``: "nombre", "activo"), and/or
    give it a new password (``password_hash``, made beforehand by models.new_password_hash).
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
            models._history(juez.competencia_id, "editar", "juez", juez.id, user_id, None,
                            {"nombre": juez.nombre}, {"nombre": nombre})
            juez.nombre = nombre
        if activo != juez.is_active:
            models._history(juez.competencia_id, "activar" if activo else "desactivar", "juez",
                            juez.id, user_id, None, {"activo": juez.is_active},
                            {"activo": activo})
            juez.is_active = activo
            revoked = not activo
        juez.save()
        if revoked:
            models.revoke_tokens(juez.user_id)
        if password_hash is not None:
            models.replace_password(juez.user_id, password_hash, user_id)
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
