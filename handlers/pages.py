"""HTML for people (not the JSON API): the list of competitions and the live results page.

Spanish, autoescaped templates (names are text, never markup), a strict Content-Security-Policy
and nothing fetched from anywhere else: the page's script and stylesheet are served here too.
"""

from pathlib import Path

import tornado.web

import models
from handlers.base import ServiceMixin

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
STATIC = ROOT / "static"

ESTADOS = {models.ESTADO_PROGRAMADA: "Programada", models.ESTADO_EN_CURSO: "En curso",
           models.ESTADO_FINALIZADA: "Finalizada"}


def asset(name):
    """URL of a static file with a content hash, so browsers never run a stale script."""
    version = tornado.web.StaticFileHandler.get_version({"static_path": str(STATIC)}, name)
    return "/static/%s?v=%s" % (name, version[:16])


class PageHandler(ServiceMixin, tornado.web.RequestHandler):
    """HTML for people (not the JSON API): Spanish, autoescaped templates, strict CSP."""

    def get_template_path(self):
        return str(TEMPLATES)

    def get_template_namespace(self):
        namespace = super().get_template_namespace()
        namespace["asset"] = asset
        namespace["estado_texto"] = lambda estado: ESTADOS.get(estado, estado)
        return namespace

    def set_default_headers(self):
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        # Nothing is fetched from anywhere else; ws:/wss: for older phones that do not
        # count same-origin WebSockets as 'self'.
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

    def write_error(self, status_code, **kwargs):
        titles = {404: "No encontrado", 405: "Método no permitido"}
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.render("error.html", status=status_code,
                    title=titles.get(status_code, "Error del servidor"))


class IndexPageHandler(PageHandler):
    """``/``: every competition with its state and a link to its live results."""

    async def get(self):
        competencias = await self.db_read(models.all_competitions)
        self.render("index.html", competencias=competencias)


class CompetenciaPageHandler(PageHandler):
    """``/competencias/{id}/``: the live results page (the script fills in the standings)."""

    async def get(self, competencia_id):
        self.render("competencia.html", comp=await self.competition(int(competencia_id)))


class EquipoPageHandler(PageHandler):
    """``/competencias/{cid}/equipos/{eid}/``: one team's records as they count (public)."""

    async def get(self, competencia_id, equipo_id):
        detail = await self.db_read(models.team_detail, int(competencia_id), int(equipo_id))
        self.render("equipo.html", detail=detail, format_ms=models.format_ms)


class ConsolePageHandler(PageHandler):
    """``/organizador/``: the organizer's console. The page is the same for everyone; its script
    signs in and reads everything through the API (templates/organizador.html)."""

    def get(self):
        self.render("organizador.html")
