"""``GET /api/competencias/{id}/resultados/``: the standings, as JSON or ``?format=csv``.

The ranking, its JSON and its CSV are built on a reader thread, never on the event loop.
"""

import models
from handlers.base import BaseHandler
from handlers.errors import ApiError
from handlers.wire import dumps


def results_json(competencia_id, scored_per_team):
    result = models.ranking(competencia_id, scored_per_team)
    result["server_time"] = models.iso(models.utcnow())
    return dumps(result)


def results_csv(competencia_id, scored_per_team):
    return models.ranking_csv(models.ranking(competencia_id, scored_per_team))


class ResultadosHandler(BaseHandler):
    """GET (public) -> {"competencia", "registros_por_equipo", "clasificacion", "server_time"};
    ``?format=csv`` -> the same rows as a CSV file with a header row."""

    FORMATS = ("json", "csv")

    async def get(self, competencia_id):
        cid = int(competencia_id)
        fmt = self.get_query_argument("format", "json")
        if fmt not in self.FORMATS:
            raise ApiError(400, "invalid_format",
                           "Formato desconocido %r: use json o csv." % fmt[:32],
                           {"format": "Debe ser json o csv."})
        scored = self.config["race"]["records_scored_per_team"]
        if fmt == "csv":
            text = await self.db_read(results_csv, cid, scored)
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition",
                            'attachment; filename="resultados-competencia-%d.csv"' % cid)
            self.finish(text.encode("utf-8"))
        else:
            self.finish(await self.db_read(results_json, cid, scored))


class EquipoResultadoHandler(BaseHandler):
    """GET (public) /api/competencias/{cid}/equipos/{eid}/ -> {"competencia", "equipo",
    "registros"}: a team's records as they count, without reasons or judges."""

    async def get(self, competencia_id, equipo_id):
        self.write_json(await self.db_read(models.team_detail, int(competencia_id),
                                           int(equipo_id)))
