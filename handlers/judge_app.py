"""The judge app in the browser (``/juez/``, JUEZ.md) and the organizer's link to it.

The app is a client of the same API as every other judge's app (PROTOCOL.md): these handlers only
serve its page (static/juez/, templates/juez.html), its service worker and, for the console, the
link and QR code that open it with a judge's username filled in (never a password).
"""

import json
import urllib.parse

import tornado.web

import roster
from handlers.base import OrganizerHandler
from handlers.pages import STATIC, PageHandler, asset, qr_data_uri

# What the service worker keeps on the phone: the app itself, nothing of the API.
APP_FILES = ("comun.js", "juez/lectura.js", "juez/juez.js", "juez/juez.css",
             "juez/manifest.webmanifest", "juez/icono.svg", "juez/icono-192.png",
             "juez/icono-512.png")

HTTPS_NOTICE = ("Sin HTTPS el navegador no guarda la app en el móvil: los toques nunca se "
                "pierden, pero una recarga sin conexión no abre la app. Para trabajar sin "
                "conexión tras recargar, sirva Server5K por HTTPS (server.tls_cert o el proxy "
                "de la guía de despliegue).")


def secure_address(url):
    """Whether a browser treats ``url`` as a secure context (service workers, Wake Lock,
    crypto.randomUUID): https, or the machine itself."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or parts.hostname in ("localhost", "127.0.0.1", "::1")


def judge_link(base_url, username):
    """The address that opens the judge app with ``username`` filled in."""
    return "%s/juez/?usuario=%s" % (base_url, urllib.parse.quote(username, safe=""))


class JuezPageHandler(PageHandler):
    """``/juez/``: the judge app's one page; its script signs in and does everything through
    the API. The team limit ("N de 15") comes from the configuration."""

    def get(self):
        self.render("juez.html", maximo=self.config["race"]["records_scored_per_team"],
                    aviso_https=HTTPS_NOTICE)


class JuezServiceWorkerHandler(PageHandler):
    """``/juez/sw.js``: the service worker (its scope is ``/juez/``). Its text names the app's
    files with their content hashes, so a new version of any of them is a new worker and the
    phones pick it up on their next visit online."""

    def get(self):
        files = [asset(name) for name in APP_FILES]
        version = tornado.web.StaticFileHandler.get_content_version(
            str(STATIC / "juez" / "sw.js")) + "".join(f.rsplit("=", 1)[1] for f in files)
        text = (STATIC / "juez" / "sw.js").read_text(encoding="utf-8")
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.write("var VERSION = %s;\nvar APP_FILES = %s;\n" % (
            json.dumps(version[:24]), json.dumps(files)))
        self.write(text)


class JuezEnlaceHandler(OrganizerHandler):
    """``GET /api/jueces/{jid}/enlace/`` (organizer) -> ``{"url", "qr", "seguro", "aviso"}``:
    the address that opens the judge app with the judge's username filled in, its QR code (an
    SVG ``data:`` URI, drawn on a reader thread) and, when phones cannot treat that address
    as secure (plain http on a venue network), what that means for working offline."""

    async def get(self, juez_id):
        username = await self.db_read(roster.judge_username, int(juez_id))
        url = judge_link(self.public_url("").rstrip("/"), username)
        qr = await self.db_read(qr_data_uri, url)
        seguro = secure_address(url)
        self.write_json({"url": url, "qr": qr, "seguro": seguro,
                         "aviso": None if seguro else HTTPS_NOTICE})
