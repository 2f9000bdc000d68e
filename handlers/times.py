"""``POST /api/enviar_tiempos/``: a judge's finish times for one team."""

import models
from handlers.base import ApiError, BaseHandler


class EnviarTiemposHandler(BaseHandler):
    """201 means every created record is committed to disk (the writer answers after fsync).

    Retries are safe: records already stored come back under ``duplicates``.
    """

    async def post(self):
        header = self.request.headers.get("Authorization", "")
        claims = None
        if header[:7].lower() == "bearer " and header[7:].strip():
            claims = self.tokens.decode(header[7:].strip(), "access")
        else:
            await self.authenticated()  # raises the right 401
        retry_after = self.limits.submissions.hit(claims["user_id"])
        if retry_after:
            raise ApiError(429, "rate_limited",
                           "Demasiados envíos; espere %d s y reintente." % retry_after,
                           headers={"Retry-After": str(retry_after)})
        equipo_id, records, ignored = self._validated()
        # The writer re-checks the user, the judge and the team inside the transaction.
        result = await self.db_write(models.store_submission, claims["user_id"], equipo_id, records)
        self.hub.records_stored(result["competencia_id"], equipo_id, len(result["created"]))
        self.write_json({"created": result["created"], "duplicates": result["duplicates"],
                         "ignored": ignored}, status=201)

    def _validated(self):
        try:
            return models.validate_submission(
                self.json_body(), self.config["race"]["max_records_per_submission"])
        except models.DomainError as exc:
            raise ApiError.from_domain(exc) from None


routes = [
    (r"/api/enviar_tiempos/", EnviarTiemposHandler),
]
