"""Roster and accounts: the judges, teams and logins of an event, as organizers set them up.

Domain functions over the models (they know nothing of Tornado or of the command line): the
organizer's changes of competitions, judges and teams (ORGANIZER.md "Roster and accounts", each
with its history row), the demo event, the rehearsal judges of ``simulate``, and the listings of
judges and teams (a roster CSV's import is ``roster_import``). Each function that writes is all
or nothing: it runs in one transaction (a savepoint inside the caller's, if there is one), and
the server runs it as one writer job. Errors are ``models.DomainError``s whose detail (in
Spanish, like the API's) names the item at fault.
"""

import models
import identity
import messages
import ledger
import registration
import roster_import
import venue_time

DEMO_COMPETITION = "Carrera Demo 5K"
REHEARSAL_PREFIX = "simjuez"


# -- the organizer's changes (the API and the command line; each with its history row) ----------


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
    if not models.is_int(value) or not 1 <= value <= registration.MAX_DORSAL:
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




def _created_team(user_id, equipo, motivo=None):
    models.add_history(equipo.competencia_id, "crear", "equipo", equipo.id, user_id, motivo, None,
                       registration.team_fields(equipo))
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
    roster_import.no_import(comp.id)
    with models.db.atomic():
        return _created_team(user_id, registration.create_team(nombre, dorsal, juez.id, categoria))


TEAM_FIELDS = ("nombre", "dorsal", "juez_id", "categoria")


def edit_team(user_id, equipo_id, changes):
    """Rename a team, change its dorsal or category, or give it to another judge of its
    competition (``changes``: any of TEAM_FIELDS; other keys are ignored). The new judge sees
    it in its ``/api/me/`` at once; records already stored keep the judge who sent them.
    Nothing changed: no history row. Returns the team."""
    equipo = _team(equipo_id)
    roster_import.no_import(equipo.competencia_id)
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
    before = registration.team_fields(equipo)
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
    roster_import.no_import(equipo.competencia_id)
    if (models.RegistroTiempo.select().where(models.RegistroTiempo.equipo == equipo.id).exists()
            or models.Accion.select().where((models.Accion.accion == "mover")
                                            & (models.Accion.equipo_id == equipo.id)).exists()):
        raise models.Conflict("El equipo %s tiene tiempos: no se puede eliminar (márquelo como "
                              "dns si no corre)." % equipo.nombre, "team_has_records")
    with models.db.atomic():
        models.add_history(equipo.competencia_id, "eliminar", "equipo", equipo.id, user_id, None,
                           registration.team_fields(equipo))
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
    # The passwords hashed first: never inside the transaction (scrypt's ~0.1 s each).
    passwords = [identity.generate_password() for _ in (1, 2)]
    hashes = [identity.new_password_hash(password)
              for password in [creds["organizador"]["password"]] + passwords]
    with models.db.atomic():
        nine = venue_time.to_local(models.utcnow()).replace(hour=9, minute=0, second=0,
                                                            microsecond=0)  # today, local time
        comp = registration.create_competition(DEMO_COMPETITION,
                                               venue_time.parse_local_timestamp(nine.isoformat()))
        identity.create_user("organizador", creds["organizador"]["password"], organizer=True,
                             password_hash=hashes[0])
        dorsal = 1
        for n in (1, 2):
            password = passwords[n - 1]
            juez = registration.create_judge("juez%d" % n, password, comp.id, "Juez %d" % n,
                                             password_hash=hashes[n])
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
    password was lost), hashed before the transaction that stores it, never inside it.
    Returns credentials rows {"usuario", "contrasena", "juez_id", "nombre"}.
    """
    known = known or {}
    models.get_competencia(competencia_id)
    names = ["%s%d" % (REHEARSAL_PREFIX, n) for n in range(1, count + 1)]
    reusable = set()  # judges of this competition whose password is at hand (judge rows stay)
    for chunk in models.chunks([name for name in names if name in known], 500):
        reusable.update(key for (key,) in models.User.select(models.User.username_key)
                        .join(models.Juez, on=(models.Juez.user == models.User.id))
                        .where(models.User.username_key.in_(chunk)
                               & (models.Juez.competencia == competencia_id)).tuples())
    prepared = {}
    for name in names:
        if name not in reusable:
            password = identity.generate_password()
            prepared[name] = (password, identity.new_password_hash(password))
    rows = []
    with models.db.atomic():
        dorsal = (models.Equipo.select(models.pw.fn.MAX(models.Equipo.dorsal))
                  .where(models.Equipo.competencia == competencia_id).scalar() or 0)
        for n, username in enumerate(names, start=1):
            user = models.User.get_or_none(models.User.username_key == username)
            juez = user and models.Juez.get_or_none((models.Juez.user == user.id)
                                                    & (models.Juez.competencia == competencia_id))
            if juez is not None and username in known:
                rows.append(known[username])
                continue
            password, password_hash = prepared[username]
            if juez is None:  # (a rehearsal judge of another competition keeps its account)
                juez = registration.create_judge(username, password, competencia_id,
                                                 "Juez simulado %d" % n,
                                                 password_hash=password_hash)
            if not getattr(juez, "cuenta_nueva", False):  # its password is not at hand
                identity.replace_password(juez.user_id, password_hash)
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
