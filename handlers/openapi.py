"""``GET /api/openapi.json``: the OpenAPI 3 description of the REST API (docs/openapi.yaml)."""

from handlers.base import BaseHandler


class OpenApiHandler(BaseHandler):
    """The description loaded once at start-up (server5k.make_app), served as JSON."""

    pace = "public"

    def get(self):
        self.set_header("Cache-Control", "no-cache")
        self.finish(self.application.settings["server5k_openapi"])

