"""``GET /api/competencias/{id}/resultados/``: the standings, as JSON or ``?format=csv``, of
every team or of one category (``?categoria=NAME``: the same standings, filtered).

Answered from memory (:mod:`handlers.standings`): the ranking and its texts are computed once
per change in the standings' worker process, never per request and never on the event loop.
Both answers are public and cacheable (``BaseHandler.public_answer``): their ``ETag`` is made
with the standings, and a client or cache that already has them gets ``304`` at once.
"""

import models
import ledger
import registration
from handlers.base import BaseHandler
from handlers.services import BOOT
from handlers.errors import ApiError


class ResultadosHandler(BaseHandler):
    """GET (public) -> {"competencia", "regla", "registros_por_equipo", "categorias",
    "clasificacion", "server_time"}; ``?format=csv`` -> the same rows as a CSV file with a
    header row (``&excel=1``: the flavour a Spanish spreadsheet opens in columns, ``;`` and
    decimal comma; the plain one is for programs); ``?categoria=NAME`` -> only that
    category's teams (and ``"categoria"``)."""

    FORMATS = ("json", "csv")
    pace = "public"
    _identity = None

    async def take_turn(self):
        """An organizer's console (or a judge's app) sends its token: a valid one makes the
        read a trusted one, checked on the judges' and organizers' readers and never waiting
        behind the anonymous turns of its address; an anonymous read (or one whose token does
        not hold: a public read, a bad token is no token) takes its turn."""
        if self.request.headers.get("Authorization"):
            try:
                self._identity = await self.authenticated()
            except ApiError:
                self._identity = None
        if self._identity is None:
            await super().take_turn()

    async def get(self, competencia_id):
        cid = int(competencia_id)
        fmt = self.get_query_argument("format", "json")
        if fmt not in self.FORMATS:
            raise ApiError(400, "invalid_format",
                           "Formato desconocido %r: use json o csv." % fmt[:32],
                           {"format": "Debe ser json o csv."})
        excel = self.excel_requested(fmt)
        categoria = self.get_query_argument("categoria", None)
        if categoria is not None:
            categoria = categoria.strip() or None
            if categoria is not None and len(categoria) > registration.MAX_CATEGORIA:
                raise ApiError(400, "validation_error", "La categoría es demasiado larga.",
                               {"categoria": "Hasta %d caracteres." % registration.MAX_CATEGORIA})
        # 404 before anything is kept for this id
        await self.competition(cid, public=self._identity is None)
        snapshot = await self.settled(self.standings.get(cid))
        if self.public_answer(snapshot.etag):
            return
        if fmt == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition",
                            'attachment; filename="resultados-competencia-%d.csv"' % cid)
            self.finish(await self.settled(self.standings.excel_csv(snapshot, categoria))
                        if excel else snapshot.csv(categoria))
        else:
            self.finish(snapshot.json(models.iso(models.utcnow()), categoria))


class EquipoResultadoHandler(BaseHandler):
    """GET (public) /api/competencias/{cid}/equipos/{eid}/ -> {"competencia", "equipo",
    "registros"}: a team's records as they count, without reasons or judges."""

    pace = "public"

    async def get(self, competencia_id, equipo_id):
        detail = await team_detail(self, int(competencia_id), int(equipo_id), "j")
        if detail is not None:
            self.write_json(detail)


async def team_detail(handler, cid, eid, kind):
    """A team's public detail for ``handler`` (a JSON answer or a page: ``kind``), or None when
    the client already has it (answered ``304`` without reading it). Its validator is the
    competition's standings tag (``Standings.tag``), taken before the read: what is read is at
    least as new as what it names, and any later change makes it differ."""
    await handler.settled(handler.standings.get(cid))  # at once when they are current
    tag = handler.standings.tag(cid)
    if handler.public_answer('"%s%s.%d.%s"' % (kind, BOOT, eid, tag)):
        return None
    return await handler.db_public(ledger.team_detail, cid, eid)
