"""``POST /api/enviar_tiempos/``: a judge's finish times for one team."""

import ledger
import submissions
from handlers.base import BaseHandler
from handlers.errors import too_many


class SubmittingHandler(BaseHandler):
    """What every judge's submission endpoint checks before reading the body (the guide's
    ``/api/enviar_tiempos/`` and Movil5K's ``POST /api/equipos/{eid}/registros/``): the
    access token, then the judge's submission rate; bodies up to 256 KiB."""

    max_body_bytes = 256 * 1024
    user_id = token_gen = None

    async def prepare(self):
        await super().prepare()
        if self.request.method == "POST":  # token and limit checked before the body is read
            claims = self.access_claims()
            self.user_id, self.token_gen = claims["user_id"], claims["gen"]
            retry_after = self.limits.submissions.hit(self.user_id)
            if retry_after:
                raise too_many("Demasiados envíos; espere %d s y reintente." % retry_after,
                               retry_after)


class EnviarTiemposHandler(SubmittingHandler):
    """201 means every created record is committed to disk (the writer answers after fsync).

    Retries are safe: records already stored come back under ``duplicates``. Only the token is
    checked here; the writer checks the user (and that the token's generation still holds), the
    judge and the team inside its transaction.
    """

    async def post(self):
        equipo_id, records, ignored = submissions.validate_submission(
            await self.json_body_off_loop(), self.config["race"]["max_records_per_submission"])
        result = await self.db_write(submissions.store_submission, self.user_id, equipo_id, records,
                                     self.token_gen)
        self.hub.records_stored(result["competencia_id"], equipo_id, len(result["created"]))
        self.write_json({"created": result["created"], "duplicates": result["duplicates"],
                         "ignored": ignored}, status=201)


class EquipoRegistrosHandler(BaseHandler):
    """GET /api/equipos/{eid}/registros/ (the team's judge, or an organizer) -> {"equipo",
    "registros"}: the team's records as stored and counted, so an app can confirm what
    arrived."""

    async def get(self, equipo_id):
        user_id = (await self.authenticated())["user"]["id"]
        self.write_json(await self.db_read(ledger.team_records, user_id, int(equipo_id)))
