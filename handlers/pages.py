"""HTML for people (not the JSON API): the list of competitions and the live results page.

Spanish, autoescaped templates (names are text, never markup), a strict Content-Security-Policy
and nothing fetched from anywhere else: the page's script and stylesheet are served here too,
and its QR code is drawn here (segno, as SVG in a data: URI). Times are the venue's local time
(``race.timezone``) with their offset.
"""

import functools
import hashlib
import re
from pathlib import Path

import segno
import tornado.escape
import tornado.template
import tornado.web

import models
import race_control
import race_defaults
import venue_time
from handlers.services import BOOT, ServiceMixin
from handlers.results import team_detail
from handlers.wire import dumps

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
STATIC = ROOT / "static"

ESTADOS = {models.ESTADO_PROGRAMADA: "Programada", models.ESTADO_EN_CURSO: "En curso",
           models.ESTADO_FINALIZADA: "Finalizada"}


# Bidirectional controls (embeddings, overrides, isolates, marks): in a name they would reorder
# what is shown around them ("Trojan Source"). Taken out of every text a page shows: here for
# the templates, in static/*.js (BIDI) for what the scripts render.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def page_text(value):
    """The templates' autoescape: HTML-escaped text, bidirectional controls taken out."""
    return tornado.escape.xhtml_escape(BIDI_CONTROLS.sub("", tornado.escape.to_unicode(value)))


MESES = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic")


def _local(wire_text):
    return venue_time.to_local(venue_time.parse_timestamp(wire_text)) if wire_text else None


def offset_text(local):
    """``UTC+01:00``: the offset people read beside a local time."""
    z = local.strftime("%z")
    return "UTC%s:%s" % (z[:3], z[3:5])


def fecha_texto(wire_text):
    """A wire timestamp as a local date and time: ``6 dic 2026, 09:00 (UTC+01:00)``."""
    local = _local(wire_text)
    if local is None:
        return ""
    return "%d %s %d, %02d:%02d (%s)" % (local.day, MESES[local.month - 1], local.year,
                                         local.hour, local.minute, offset_text(local))


def hora_texto(wire_text):
    """A wire timestamp as a local time of day: ``10:23:45 (UTC+01:00)``."""
    local = _local(wire_text)
    if local is None:
        return ""
    return "%02d:%02d:%02d (%s)" % (local.hour, local.minute, local.second, offset_text(local))


def momento(comp):
    """The line under the race state: when it is due, when it started, when it finished (the
    page's script says the same as the race goes on)."""
    if comp["estado"] == models.ESTADO_FINALIZADA:
        return "Finalizada a las " + hora_texto(comp["finished_at"])
    if comp["estado"] == models.ESTADO_EN_CURSO:
        return "Salida a las " + hora_texto(comp["started_at"])
    if comp["fecha_hora"]:
        return "Salida prevista: " + fecha_texto(comp["fecha_hora"])
    return "Salida sin hora prevista"


@functools.lru_cache(maxsize=64)
def qr_data_uri(url):
    """The QR code of ``url`` as an SVG ``data:`` URI (the CSP's img-src allows data:), with
    its quiet zone; drawn once per address."""
    return segno.make(url, error="m").svg_data_uri(border=4, omitsize=True, dark="#000",
                                                   light="#fff")


def asset(name):
    """URL of a static file with a content hash, so browsers never run a stale script."""
    version = tornado.web.StaticFileHandler.get_version({"static_path": str(STATIC)}, name)
    return "/static/%s?v=%s" % (name, version[:16])


class PageHandler(ServiceMixin, tornado.web.RequestHandler):
    """HTML for people (not the JSON API): Spanish, autoescaped templates, strict CSP."""

    pace = "public"

    async def prepare(self):
        await self.take_turn()

    def get_template_path(self):
        return str(TEMPLATES)

    def create_template_loader(self, template_path):
        return tornado.template.Loader(template_path, autoescape="page_text")

    def get_template_namespace(self):
        namespace = super().get_template_namespace()
        namespace["page_text"] = page_text
        namespace["asset"] = asset
        namespace["estado_texto"] = lambda estado: ESTADOS.get(estado, estado)
        namespace.update(fecha_texto=fecha_texto, hora_texto=hora_texto, momento=momento,
                         zona=race_defaults.zone().key)
        return namespace

    def compute_etag(self):
        return None  # public pages set theirs from their data (public_answer), before rendering

    def data_etag(self, *data):
        """A page's validator from the (small) data it shows: a hash of a few hundred bytes,
        with this process's start for the templates it is rendered with."""
        digest = hashlib.blake2b(dumps(data).encode("utf-8"), digest_size=12).hexdigest()
        return '"p%s.%s"' % (BOOT, digest)

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
        titles = {404: "No encontrado", 405: "Método no permitido",
                  429: "Demasiadas peticiones", 503: "Servidor ocupado"}
        exc = kwargs.get("exc_info", (None, None, None))[1]
        for name, value in getattr(exc, "headers", {}).items():  # Retry-After of a 429/503
            self.set_header(name, value)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.render("error.html", status=status_code,
                    title=titles.get(status_code, "Error del servidor"))


class IndexPageHandler(PageHandler):
    """``/``: every competition with its state and a link to its live results, but those the
    organizer hid (a test race: its pages still open by their address)."""

    async def get(self):
        competencias = await self.db_public(race_control.all_competitions, True)
        if self.public_answer(self.data_etag(competencias)):
            return
        self.render("index.html", competencias=competencias)


class CompetenciaPageHandler(PageHandler):
    """``/competencias/{id}/``: the live results page (the script fills in the standings,
    one tab per category, and the printout), with the QR code that opens it."""

    async def get(self, competencia_id):
        comp = await self.competition(int(competencia_id), public=True)
        url = self.public_url("/competencias/%d/" % comp["id"])
        if self.public_answer(self.data_etag(comp, url)):
            return
        # Drawing a code costs ~5 ms: on a public reader, never on the loop (a request with a
        # new Host header would otherwise stall every judge's start notice).
        qr = await self.db_public(qr_data_uri, url)
        self.render("competencia.html", comp=comp, url=url, qr=qr)


class EquipoPageHandler(PageHandler):
    """``/competencias/{cid}/equipos/{eid}/``: one team's records as they count (public)."""

    async def get(self, competencia_id, equipo_id):
        detail = await team_detail(self, int(competencia_id), int(equipo_id), "h")
        if detail is None:
            return
        self.render("equipo.html", detail=detail, format_ms=venue_time.format_ms)


class ConsolePageHandler(PageHandler):
    """``/organizador/``: the organizer's console. The page is the same for everyone; its script
    signs in and reads everything through the API (templates/organizador.html)."""

    def get(self):
        self.render("organizador.html", zona=race_defaults.zone().key)  # times in the venue's zone


class StaticHandler(ServiceMixin, tornado.web.StaticFileHandler):
    """``/static/``: the pages' script and stylesheet. A path no file can have (a NUL byte, a
    name too long) is a 404 like any missing file; errors are JSON (ServiceMixin)."""

    pace = "public"

    async def prepare(self):
        await self.take_turn()

    def validate_absolute_path(self, root, absolute_path):
        try:
            return super().validate_absolute_path(root, absolute_path)
        except (ValueError, OSError):  # realpath() of "x.js\0.png", ENAMETOOLONG, ...
            raise tornado.web.HTTPError(404) from None
