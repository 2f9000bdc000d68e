"""Entering an event: competitions, teams and judges created (the command line and the
roster import; the organizer's console goes through the same functions).
"""

import identity
import models


def create_competition(nombre, fecha_hora=None):
    if not nombre or not nombre.strip():
        raise models.Invalid("El nombre de la competencia no puede estar vacío.", "invalid_name")
    return models.Competencia.create(nombre=nombre.strip(), fecha_hora=fecha_hora)


def judge_account(username, competencia_id):
    """The account of ``username`` when it judges other competitions (its judge row here is
    to be added, its password kept), or None when there is no such account (a new one is to be
    made). Conflict ``username_taken`` when the account is an organizer's or already judges
    this competition."""
    if not isinstance(username, str):
        return None  # (no account: create_user says what is wrong with it)
    user = models.User.get_or_none(models.User.username_key == models.username_key(username))
    if user is None:
        return None
    judges = {competencia for competencia, in models.Juez.select(models.Juez.competencia)
              .where(models.Juez.user == user.id).tuples()}
    if competencia_id in judges:
        raise models.Conflict("El usuario %r ya es juez de esta competencia." % user.username,
                              "username_taken")
    if user.is_organizer or not judges:
        raise models.Conflict("El usuario %r ya existe y no es juez." % user.username,
                              "username_taken")
    return user


def create_judge(username, password, competencia_id, nombre=None, password_hash=None):
    """A judge of a competition: a new account (``password``, or its ``password_hash`` made
    beforehand), or, when ``username`` judges other competitions already, that account's judge
    row here (one person, one password: ``password`` and ``password_hash`` are then unused;
    ``nombre`` defaults to its name there). The judge's ``cuenta_nueva`` says which."""
    comp = models.get_competencia(competencia_id)
    with models.db.atomic():
        user = judge_account(username, comp.id)
        new_account = user is None
        if not new_account:
            nombre = nombre or (models.Juez.select(models.Juez.nombre)
                                .where(models.Juez.user == user.id)
                                .order_by(models.Juez.id.desc()).scalar())
        else:
            user = identity.create_user(username, password, password_hash=password_hash)
        juez = models.Juez.create(user=user, competencia=comp,
                                  nombre=(nombre or username).strip())
        juez.cuenta_nueva = new_account
        return juez


def create_team(nombre, dorsal, juez_id, categoria=None):
    """A team timed by a judge; ``categoria`` (optional) groups it for the standings."""
    juez = models.Juez.get_or_none(models.Juez.id == juez_id)
    if juez is None:
        raise models.NotFound("El juez %s no existe." % juez_id, "judge_not_found")
    if not nombre or not nombre.strip():
        raise models.Invalid("El nombre del equipo no puede estar vacío.", "invalid_name")
    categoria = check_categoria(categoria)
    if models.Equipo.select().where((models.Equipo.competencia == juez.competencia_id)
                                    & (models.Equipo.dorsal == dorsal)).exists():
        raise models.Conflict("El dorsal %d ya existe en esta competencia." % dorsal,
                              "dorsal_taken")
    return models.Equipo.create(id=_unused_team_id(), nombre=nombre.strip(), dorsal=dorsal,
                                juez=juez, competencia=juez.competencia_id, categoria=categoria)


def _unused_team_id():
    """An id no team ever had: above every team's and every id the history names (a deleted
    team's creation, status and penalty rows stay in it), so a new team never inherits a
    deleted one's history. (SQLite alone reuses the highest id once its row is deleted.)"""
    highest = models.db.execute_sql(
        "SELECT MAX(id) FROM equipo UNION ALL "
        "SELECT MAX(equipo_id) FROM accion UNION ALL "
        "SELECT MAX(CAST(objeto_id AS INTEGER)) FROM accion WHERE objeto = 'equipo'").fetchall()
    return 1 + max(row[0] or 0 for row in highest)


MAX_CATEGORIA = 100
MAX_DORSAL = 10**9  # a dorsal is 1 to this


def check_categoria(value):
    """A team's category as stored: stripped text of at most MAX_CATEGORIA characters, or None
    (empty means none). Invalid otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.strip()) > MAX_CATEGORIA:
        raise models.Invalid("La categoría no es válida.", "validation_error",
                             {"categoria": "Texto de hasta %d caracteres, o vacío."
                                           % MAX_CATEGORIA})
    return value.strip()


def team_fields(equipo):
    """A team's fields as its history rows record them (before and after a change)."""
    return {"nombre": equipo.nombre, "dorsal": equipo.dorsal, "juez_id": equipo.juez_id,
            "categoria": equipo.categoria}
