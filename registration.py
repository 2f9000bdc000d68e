"""Entering an event: competitions, teams and judges created (the command line and the
roster import; the organizer's console goes through the same functions).
"""

import identity
import models


def create_competition(nombre, fecha_hora=None):
    if not nombre or not nombre.strip():
        raise models.Invalid("El nombre de la competencia no puede estar vacío.", "invalid_name")
    return models.Competencia.create(nombre=nombre.strip(), fecha_hora=fecha_hora)


def create_judge(username, password, competencia_id, nombre=None, password_hash=None):
    comp = models.get_competencia(competencia_id)
    with models.db.atomic():
        user = identity.create_user(username, password, password_hash=password_hash)
        return models.Juez.create(user=user, competencia=comp, nombre=(nombre or username).strip())


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
        raise models.Conflict("El dorsal %d ya existe en esta competencia." % dorsal, "dorsal_taken")
    return models.Equipo.create(id=_unused_team_id(), nombre=nombre.strip(), dorsal=dorsal, juez=juez,
                                competencia=juez.competencia_id, categoria=categoria)


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


def check_categoria(value):
    """A team's category as stored: stripped text of at most MAX_CATEGORIA characters, or None
    (empty means none). Invalid otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.strip()) > MAX_CATEGORIA:
        raise models.Invalid("La categoría no es válida.", "validation_error",
                             {"categoria": "Texto de hasta %d caracteres, o vacío." % MAX_CATEGORIA})
    return value.strip()
