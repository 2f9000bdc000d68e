"""``GET /api/competencias/{id}/resultados/``: the standings, as JSON or ``?format=csv``, of
every team or of one category (``?categoria=NAME``: the same standings, filtered).

The ranking, its JSON and its CSV are built on a reader thread, never on the event loop.
"""

import models
from handlers.base import BaseHandler
from handlers.errors import ApiError
from handlers.wire import dumps


def standings(competencia_id, scored_per_team=models.COMPETITION_RULE, categoria=None):
    """The ranking (by the competition's own rule unless a count is given), of one category
    when ``categoria`` is given."""
    result = models.ranking(competencia_id, scored_per_team)
    return result if categoria is None else models.only_category(result, categoria)


def results_json(competencia_id, scored_per_team=models.COMPETITION_RULE, categoria=None):
    result = standings(competencia_id, scored_per_team, categoria)
    result["server_time"] = models.iso(models.utcnow())
    return dumps(result)


def results_csv(competencia_id, scored_per_team=models.COMPETITION_RULE, categoria=None):
    return models.ranking_csv(standings(competencia_id, scored_per_team, categoria))


class ResultadosHandler(BaseHandler):
    """GET (public) -> {"competencia", "regla", "registros_por_equipo", "categorias",
    "clasificacion", "server_time"}; ``?format=csv`` -> the same rows as a CSV file with a
    header row; ``?categoria=NAME`` -> only that category's teams (and ``"categoria"``)."""

    FORMATS = ("json", "csv")

    async def get(self, competencia_id):
        cid = int(competencia_id)
        fmt = self.get_query_argument("format", "json")
        if fmt not in self.FORMATS:
            raise ApiError(400, "invalid_format",
                           "Formato desconocido %r: use json o csv." % fmt[:32],
                           {"format": "Debe ser json o csv."})
        categoria = self.get_query_argument("categoria", None)
        if categoria is not None:
            categoria = categoria.strip() or None
            if categoria is not None and len(categoria) > models.MAX_CATEGORIA:
                raise ApiError(400, "validation_error", "La categoría es demasiado larga.",
                               {"categoria": "Hasta %d caracteres." % models.MAX_CATEGORIA})
        if fmt == "csv":
            text = await self.db_read(results_csv, cid, models.COMPETITION_RULE, categoria)
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition",
                            'attachment; filename="resultados-competencia-%d.csv"' % cid)
            self.finish(text.encode("utf-8"))
        else:
            self.finish(await self.db_read(results_json, cid, models.COMPETITION_RULE,
                                           categoria))


class EquipoResultadoHandler(BaseHandler):
    """GET (public) /api/competencias/{cid}/equipos/{eid}/ -> {"competencia", "equipo",
    "registros"}: a team's records as they count, without reasons or judges."""

    async def get(self, competencia_id, equipo_id):
        self.write_json(await self.db_read(models.team_detail, int(competencia_id),
                                           int(equipo_id)))
