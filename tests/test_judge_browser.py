"""The judge app (/juez/, JUEZ.md) in a real browser: headless Chromium (Debian's ``chromium``)
driven by Playwright, at a phone's 390 px, against the real server in a subprocess.

Every page runs with the phone's clock minutes wrong (both ``Date`` and
``performance.timeOrigin``, by an init script), and every time it sends is checked, as the
server stored it, against the real start (the server's ``started_at``) and the moment the test
clicked, within 100 ms.

The stories: race day (sign in, wait, the start by the socket, taps for two teams, an absent
runner, an undo under failing Wi-Fi, the 16th record refused); offline (taps, a reload served by
the service worker, still listed; back online, all sent, none twice); the server killed and
restarted mid-race; a late sign-in after the start, with the socket out of reach at first;
the start heard by polling; plain http on a venue network; the console handing out the link and
QR code.

Screenshots at 390 px (before the start, racing, offline) go to the test's tmp dir; with
SERVER5K_UPDATE_SCREENSHOTS=1 they replace docs/juez-*.png.
"""

import asyncio
import datetime as dt
import re
import time
import uuid

import pytest
from playwright.sync_api import expect

import rehearsal
from helpers import (CHROMIUM, DESKTOP, ORGANIZER, PHONE, LoopThread, decode_qr, open_console,
                     request_json, save_screenshot, sign_in, wait_for)

WAIT_MS = 15_000  # generous: the app reacts within a second or two, the machine may be busy
MARIA = ("maria", "clave-de-maria")
JOSE = ("jose", "clave-de-jose")
TOLERANCE_MS = 100
XSS = "<img src=x onerror=alert(1)>"
# The phone's clock: 7 minutes and 1.234 s slow (Date and performance.timeOrigin alike).
SKEW_MS = -(7 * 60_000 + 1_234)
WRONG_CLOCK = """
(() => {
  const SKEW = %d;
  const RealDate = Date;
  function PhoneDate(...args) {
    if (!new.target) { return new RealDate(RealDate.now() + SKEW).toString(); }
    return args.length ? new RealDate(...args) : new RealDate(RealDate.now() + SKEW);
  }
  PhoneDate.prototype = RealDate.prototype;
  PhoneDate.now = () => RealDate.now() + SKEW;
  PhoneDate.parse = RealDate.parse;
  PhoneDate.UTC = RealDate.UTC;
  window.Date = PhoneDate;
  const origin = performance.timeOrigin + SKEW;
  Object.defineProperty(Performance.prototype, 'timeOrigin', { get() { return origin; } });
})();
""" % SKEW_MS


@pytest.fixture
def server(spawn, tmp_path):
    """A competition, its organizer, María with Tortugas (1) and Liebres (2), José with Gacelas
    (3) and a team whose name looks like markup (4), served by ``server5k.py serve``."""
    return event_server(spawn, tmp_path)


def event_server(spawn, tmp_path, **config):
    srv = spawn(tmp_path / "event.db", **config).organize("5K del Puerto", "--date",
                                                          "2026-12-06T09:00:00Z")
    srv.start()
    teams = {}
    for (username, password), nombre, equipos in ((MARIA, "María López", [("Tortugas", 1), ("Liebres", 2)]),
                                                  (JOSE, "José Ruiz", [("Gacelas", 3), (XSS, 4)])):
        juez = srv.api("POST", "/api/competencias/1/jueces/",
                       {"username": username, "nombre": nombre, "password": password})["juez"]
        for equipo, dorsal in equipos:
            teams[equipo] = srv.api("POST", "/api/competencias/1/equipos/",
                                    {"nombre": equipo, "dorsal": dorsal, "juez_id": juez["id"]})["id"]
    srv.teams = teams
    return srv


def stored(server, equipo=None):
    """The records as the server stored them (the organizer's view), oldest first."""
    query = "?equipo_id=%d" % server.teams[equipo] if equipo else ""
    return server.api("GET", "/api/competencias/1/registros/" + query)["registros"]


def ms(iso):
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def phone(browser, server):
    """A phone's browser: 390 px, Spanish, its clock 7 minutes slow."""
    context = browser.new_context(viewport=PHONE, locale="es-ES", has_touch=True)
    context.add_init_script(WRONG_CLOCK)
    page = context.new_page()
    page.errors, page.sockets = [], []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("websocket", lambda ws: page.sockets.append(ws.url))
    page.on("dialog", lambda d: d.dismiss())
    page.goto(server.base_url + "/juez/")
    return page


def team(page, nombre):
    return page.locator(".equipo", has=page.get_by_role("button", name=re.compile(nombre)))


def tap(page, nombre, dorsal):
    """Tap a team's big button (found by its accessible name: nombre and dorsal); returns the
    real time (ms since the epoch) just before and just after."""
    button = page.get_by_role("button", name=re.compile("%s.*%d" % (nombre, dorsal)))
    button.scroll_into_view_if_needed()
    before = time.time() * 1000
    button.click()
    after = time.time() * 1000
    return before, after


def shoot(page, tmp_path, name):
    page.evaluate("window.scrollTo(0, 0)")
    save_screenshot(page, tmp_path, name)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def controlled(page):
    """Wait for the service worker to control the page (an event, not a poll: a polled string
    would be evaluated by the page, which its CSP forbids)."""
    page.evaluate("""() => new Promise(done => navigator.serviceWorker.controller ? done() :
        navigator.serviceWorker.addEventListener('controllerchange', () => done()))""")


def clock_synced(page):
    expect(page.locator("#reloj-servidor")).to_contain_text(re.compile(r"Hora del servidor ±\d+ ms"),
                                                           timeout=WAIT_MS)


def check_times(records, taps, started_at):
    """Each stored record's tiempo is the real time of its tap since the real start (within
    TOLERANCE_MS), and its timestamp is on the real clock, not the phone's."""
    start = ms(started_at)
    assert len(records) == len(taps)
    for record, (before, after) in zip(records, taps):
        assert before - start - TOLERANCE_MS <= record["tiempo_recibido"] <= after - start + TOLERANCE_MS, (
            record, before - start, after - start)
        assert before - TOLERANCE_MS <= ms(record["timestamp"]) <= after + TOLERANCE_MS


def no_secrets(page, server):
    assert page.sockets and all(re.fullmatch(r"ws://[^/]+/ws/juez/\d+/\?ticket=[\w-]+", u)
                                for u in page.sockets), page.sockets
    assert "eyJ" not in page.url and "eyJ" not in server.log()
    assert page.errors == []


def test_race_day_on_a_phone_with_a_wrong_clock(browser, server, tmp_path):
    page = phone(browser, server)
    assert abs(page.evaluate("Date.now()") - time.time() * 1000 - SKEW_MS) < 5_000
    assert abs(page.evaluate("performance.timeOrigin") - time.time() * 1000 - SKEW_MS) < 60_000

    # The link from the console fills in the username; a wrong password says so.
    page.goto(server.base_url + "/juez/?usuario=maria")
    expect(page.get_by_label("Usuario", exact=True)).to_have_value("maria")
    sign_in(page, (MARIA[0], "no-es-esta"))
    expect(page.locator("#form-entrar .error")).to_have_text("Usuario o contraseña incorrectos.")
    sign_in(page, MARIA)

    # Before the start: the competition, its teams, waiting, connected, the server's clock.
    expect(page.get_by_text("Esperando la salida")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#comp-nombre")).to_have_text("5K del Puerto")
    expect(page.locator("#comp-prevista")).to_contain_text("Salida prevista: 6 dic 2026")
    expect(page.locator("#conexion")).to_have_text("Conectado", timeout=WAIT_MS)
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar")
    clock_synced(page)
    # The buttons work before the start too (this phone may not know of it yet), with a warning.
    expect(page.get_by_role("button", name=re.compile("Tortugas.*1"))).to_be_enabled()
    expect(page.locator("#sin-salida")).to_contain_text("aún no sabe de la salida")
    shoot(page, tmp_path, "juez-espera.png")

    # The start, by the socket.
    started_at = server.api("POST", "/api/competencias/1/iniciar/")["competencia"]["started_at"]
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#reloj")).to_have_text(re.compile(r"^0:00:0\d$"))
    expect(page.locator("#sin-salida")).to_be_hidden()

    # Taps for two teams, each sent and confirmed.
    taps = [tap(page, "Tortugas", 1), tap(page, "Liebres", 2), tap(page, "Tortugas", 1)]
    tortugas, liebres = team(page, "Tortugas"), team(page, "Liebres")
    expect(tortugas.locator(".cuenta")).to_have_text("2 de 15")
    expect(liebres.locator(".cuenta")).to_have_text("1 de 15")
    expect(page.locator(".tiempos .enviado")).to_have_count(3, timeout=WAIT_MS)
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar")

    # An absent runner: a tiempo of 0, after a confirmation.
    liebres.get_by_role("button", name="Ausente").click()
    page.get_by_role("dialog").get_by_role("button", name="Sí, ausente").click()
    expect(liebres.locator(".tiempos li").first).to_contain_text("Ausente")
    expect(liebres.locator(".tiempos li").first).to_contain_text("Enviado", timeout=WAIT_MS)
    expect(liebres.locator(".cuenta")).to_have_text("2 de 15")
    expect(page.locator("#conexion")).to_have_text("Conectado")
    shoot(page, tmp_path, "juez-carrera.png")

    # Wi-Fi failing: a tap waits on the phone, and can be undone while it has not left.
    page.route("**/api/enviar_tiempos/", lambda route: route.abort())
    tap(page, "Tortugas", 1)
    expect(tortugas.locator(".cuenta")).to_have_text("3 de 15")
    expect(tortugas.locator(".tiempos li").first).to_contain_text("Pendiente")
    expect(page.locator("#por-enviar")).to_have_text("1 por enviar")
    # Touch targets of at least 48 px, every one of them.
    heights = page.evaluate("() => [...document.querySelectorAll('button')]"
                            ".filter(b => b.offsetParent).map(b => b.getBoundingClientRect().height)")
    assert len(heights) == 7 and min(heights) >= 48, heights
    tortugas.get_by_role("button", name="Deshacer").click()
    expect(tortugas.locator(".cuenta")).to_have_text("2 de 15")
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar")
    # What was sent cannot be undone on the phone (only the organizer voids a record).
    tortugas.get_by_role("button", name="Deshacer").click()
    expect(page.locator("#aviso")).to_contain_text("ya se envió")
    page.unroute("**/api/enviar_tiempos/")

    # Up to 15 records per team; the 16th is refused on the phone and never sent.
    for _ in range(13):
        tap(page, "Tortugas", 1)
    expect(tortugas.locator(".cuenta")).to_have_text("15 de 15")
    tap(page, "Tortugas", 1)
    expect(page.locator("#aviso")).to_contain_text("ya tiene 15 registros")
    expect(tortugas.locator(".cuenta")).to_have_text("15 de 15")
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar", timeout=WAIT_MS)

    # The server holds each tap once, on the real clock: within 100 ms of the real start.
    assert len(stored(server, "Tortugas")) == 15
    records = stored(server)
    assert len(records) == 17 and len({r["id"] for r in records}) == 17
    check_times(records[:3], taps, started_at)
    absent = [r for r in records if r["ausente"]]
    assert [(r["equipo_id"], r["tiempo_recibido"]) for r in absent] == [(server.teams["Liebres"], 0)]
    # ... read back by the judge as the app could, with its own token.
    status, token = request_json("POST", server.base_url + "/api/token/",
                                 {"username": MARIA[0], "password": MARIA[1]})
    status, back = request_json("GET", server.base_url + "/api/equipos/%d/registros/"
                                % server.teams["Liebres"], token=token["access"])
    assert status == 200 and len(back["registros"]) == 2

    # The judges board: connected, heard the start, its stopwatch on time (no alert), though
    # the phone's clock is 7 minutes slow.
    board = {j["username"]: j for j in server.api("GET", "/api/competencias/1/jueces/")["jueces"]}
    maria = board["maria"]
    assert maria["conectado"] and maria["inicio_notificado_en"] and not maria["alerta"]
    assert abs(maria["inicio_implicito_ms"]) <= TOLERANCE_MS, maria

    # A stop is shown as such, and the clock stops.
    server.api("POST", "/api/competencias/1/detener/")
    expect(page.get_by_text("Carrera finalizada", exact=True)).to_be_visible(timeout=WAIT_MS)
    no_secrets(page, server)


def start_race(server):
    return server.api("POST", "/api/competencias/1/iniciar/")["competencia"]["started_at"]


def test_offline_taps_survive_a_reload_and_are_sent_once(browser, server, tmp_path):
    page = phone(browser, server)
    sign_in(page, MARIA)
    expect(page.get_by_text("Esperando la salida")).to_be_visible(timeout=WAIT_MS)
    clock_synced(page)
    # After the first visit the service worker holds the app (127.0.0.1 is a secure context).
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=WAIT_MS)
    expect(page.locator("#aviso-https")).to_be_hidden()
    started_at = start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)

    # The Wi-Fi goes: taps are kept and counted as waiting.
    page.context.set_offline(True)
    expect(page.locator("#conexion")).to_have_text("Sin conexión", timeout=WAIT_MS)
    taps = [tap(page, "Tortugas", 1), tap(page, "Liebres", 2), tap(page, "Tortugas", 1)]
    expect(page.locator("#por-enviar")).to_have_text("3 por enviar")
    expect(page.locator(".tiempos .pendiente")).to_have_count(3)
    shoot(page, tmp_path, "juez-sin-conexion.png")

    # "Salir" warns while taps are unsent (and stays when told no).
    page.get_by_role("button", name="Salir").click()
    expect(page.get_by_role("dialog")).to_contain_text("Quedan 3 toques sin enviar")
    page.get_by_role("dialog").get_by_role("button", name="Cancelar").click()

    # A reload without network: the service worker serves the app, the taps are still there,
    # and the race goes on (one more tap, timed from the offset kept across the reload).
    assert page.reload().from_service_worker
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".tiempos .pendiente")).to_have_count(3)
    expect(page.locator("#por-enviar")).to_have_text("3 por enviar")
    taps.append(tap(page, "Liebres", 2))
    expect(page.locator("#por-enviar")).to_have_text("4 por enviar")
    assert stored(server) == []

    # Back online: everything is sent by itself within seconds, oldest first, each once.
    page.context.set_offline(False)
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar", timeout=WAIT_MS)
    expect(page.locator(".tiempos .enviado")).to_have_count(4)
    records = stored(server)
    assert len(records) == 4 and len({r["id"] for r in records}) == 4
    by_team = sorted(records, key=lambda r: r["timestamp"])
    check_times(by_team, taps, started_at)

    # Another reload sends nothing again.
    page.reload()
    expect(page.locator(".tiempos .enviado")).to_have_count(4, timeout=WAIT_MS)
    expect(page.locator("#conexion")).to_have_text("Conectado", timeout=WAIT_MS)
    assert len(stored(server)) == 4
    no_secrets(page, server)


def test_the_server_killed_and_restarted_mid_race(browser, server):
    page = phone(browser, server)
    sign_in(page, MARIA)
    clock_synced(page)
    started_at = start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    taps = [tap(page, "Tortugas", 1)]
    expect(page.locator(".tiempos .enviado")).to_have_count(1, timeout=WAIT_MS)

    server.stop()  # SIGKILL: no goodbye to the sockets
    expect(page.locator("#conexion")).to_have_text("Sin conexión", timeout=WAIT_MS)
    taps += [tap(page, "Liebres", 2), tap(page, "Tortugas", 1)]
    expect(page.locator("#por-enviar")).to_have_text("2 por enviar")

    server.start()
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar", timeout=WAIT_MS)
    expect(page.locator("#conexion")).to_have_text("Conectado", timeout=WAIT_MS)
    expect(page.get_by_text("Carrera en curso")).to_be_visible()
    records = stored(server)
    assert len(records) == 3 and len({r["id"] for r in records}) == 3
    check_times(records, taps, started_at)
    wait_for(lambda: {j["username"]: j for j in server.api("GET", "/api/competencias/1/jueces/")
                      ["jueces"]}["maria"]["conectado"], what="María connected again")
    no_secrets(page, server)


def without_server_time(route):
    """A route handler: /api/me/ as the server answers it, less its ``server_time``."""
    response = route.fetch()
    body = response.json()
    body.pop("server_time", None)
    route.fulfill(response=response, json=body)


def test_a_late_sign_in_runs_at_once_and_times_from_the_real_start(browser, server):
    started_at = start_race(server)
    page = phone(browser, server)
    # The socket is out of reach at first, and the polls carry no clock (as an older server's
    # /api/me/): the app learns the start from the API, and waits for the server's clock
    # before timing.
    page.route("**/api/ws-ticket/", lambda route: route.abort())
    page.route("**/api/me/", without_server_time)
    sign_in(page, JOSE)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#reloj-servidor")).to_contain_text("Sin hora del servidor todavía")
    taps = [tap(page, "Gacelas", 3)]
    gacelas = team(page, "Gacelas")
    expect(gacelas.locator(".tiempos li").first).to_contain_text("Pendiente")
    expect(gacelas.locator(".tiempos li").first).to_contain_text("sin hora aún")

    page.unroute("**/api/ws-ticket/")
    page.unroute("**/api/me/")
    clock_synced(page)
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar", timeout=WAIT_MS)
    taps.append(tap(page, "Gacelas", 3))
    expect(gacelas.locator(".tiempos .enviado")).to_have_count(2, timeout=WAIT_MS)
    expect(page.locator("#reloj")).to_have_text(re.compile(r"^0:00:\d\d$"))
    records = stored(server)
    check_times(records, taps, started_at)
    # A judge sees only its own teams, their names as text (never markup).
    assert page.locator(".equipo").count() == 2
    expect(page.get_by_role("button", name=re.compile(re.escape(XSS) + ".*4"))).to_be_visible()
    assert page.locator("img").count() == 0

    # A false start is shown as such; its taps stay listed, marked, and no longer count.
    server.api("POST", "/api/competencias/1/reiniciar/", {"force": True})
    expect(page.get_by_text("Esperando la salida")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#nota-salida")).to_contain_text("Salida en falso")
    expect(gacelas.locator(".cuenta")).to_have_text("0 de 15")
    expect(gacelas.locator(".tiempos .anterior")).to_have_count(2)
    started_at = start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#nota-salida")).to_be_hidden()
    again = [tap(page, "Gacelas", 3)]
    expect(gacelas.locator(".cuenta")).to_have_text("1 de 15")
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar", timeout=WAIT_MS)
    check_times(stored(server)[2:], again, started_at)

    # "Salir" with nothing to send signs out at once and forgets the tokens.
    page.get_by_role("button", name="Salir").click()
    expect(page.get_by_role("button", name="Entrar")).to_be_visible()
    assert page.evaluate("localStorage.getItem('server5k.juez.sesion')") is None
    page.reload()
    expect(page.get_by_role("button", name="Entrar")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_label("Usuario", exact=True)).to_have_value("jose")
    no_secrets(page, server)


def test_plain_http_on_a_venue_network(browser, server):
    """Over http://sede.lan (not a secure context): no service worker, no crypto.randomUUID,
    and the app says so; taps are still kept, sent with ids of their own, and confirmed."""
    lan = browser.browser_type.launch(executable_path=CHROMIUM,
                                      headless=True,
                                      args=["--host-resolver-rules=MAP sede.lan 127.0.0.1"])
    try:
        context = lan.new_context(viewport=PHONE, locale="es-ES")
        context.add_init_script(WRONG_CLOCK)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto("http://sede.lan:%d/juez/?usuario=maria" % server.port)
        assert page.evaluate("window.isSecureContext") is False
        assert page.evaluate("typeof crypto.randomUUID") == "undefined"
        expect(page.locator("#aviso-https")).to_be_visible()
        expect(page.locator("#aviso-https")).to_contain_text("HTTPS")
        page.get_by_label("Contraseña", exact=True).fill(MARIA[1])
        page.get_by_role("button", name="Entrar").click()
        clock_synced(page)
        started_at = start_race(server)
        expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
        taps = [tap(page, "Tortugas", 1), tap(page, "Tortugas", 1)]
        expect(page.locator(".tiempos .enviado")).to_have_count(2, timeout=WAIT_MS)
        records = stored(server)
        assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                                r["id"]) for r in records), records
        check_times(records, taps, started_at)
        assert page.evaluate("navigator.serviceWorker === undefined || "
                             "navigator.serviceWorker.controller === null")
        assert errors == []
    finally:
        lan.close()


def test_the_console_hands_each_judge_a_link_and_qr_code(browser, server, tmp_path):
    console = browser.new_page(viewport=PHONE, locale="es-ES")
    console.goto(server.base_url + "/organizador/")
    sign_in(console, ORGANIZER)
    console.get_by_role("link", name="5K del Puerto").click()
    console.get_by_role("navigation").get_by_role("link", name="Equipos y jueces").click()
    maria = console.locator("#jueces li", has_text="María López")
    maria.get_by_role("button", name="Enlace y QR").click()
    dialog = console.get_by_role("dialog")
    link = server.base_url + "/juez/?usuario=maria"
    expect(dialog.get_by_role("link", name=link)).to_be_visible()
    expect(dialog).to_contain_text("la contraseña se entrega aparte")
    assert MARIA[1] not in dialog.inner_text()
    qr = dialog.get_by_role("img", name="Código QR del enlace de maria")
    png = tmp_path / "qr-maria.png"
    qr.screenshot(path=str(png))
    assert decode_qr(png) == link

    # The link opens the app with the username filled in; the judge types only the password.
    page = phone(browser, server)
    page.goto(link)
    expect(page.get_by_label("Usuario", exact=True)).to_have_value("maria")
    expect(page.get_by_label("Contraseña", exact=True)).to_be_focused()
    page.get_by_label("Contraseña", exact=True).fill(MARIA[1])
    page.get_by_role("button", name="Entrar").click()
    expect(page.locator("#conexion")).to_have_text("Conectado", timeout=WAIT_MS)

    # The judges board shows a judge on the browser app as any other: connected, and it heard
    # the start.
    console.get_by_role("dialog").get_by_role("button", name="Cerrar").click()
    console.get_by_role("navigation").get_by_role("link", name="Carrera").click()
    card = console.locator("#tablero [data-juez-id]", has_text="María López")
    expect(card).to_contain_text("Conectado", timeout=WAIT_MS)
    start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    expect(card).to_contain_text("Oyó la salida", timeout=WAIT_MS)


def test_the_start_heard_by_polling_when_the_socket_is_out_of_reach(browser, server):
    page = phone(browser, server)
    sign_in(page, MARIA)
    clock_synced(page)  # the socket was up: the offset is known...
    page.route("**/api/ws-ticket/", lambda route: route.abort())
    page.reload()  # ...and now it cannot open again
    expect(page.get_by_text("Esperando la salida")).to_be_visible(timeout=WAIT_MS)
    started_at = start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)  # polled
    assert len([u for u in page.sockets if "/ws/juez/" in u]) == 1
    # Timed on the server's clock all the same: the polls of /api/me/ are samples too (the
    # offset carried across the reload by the phone's own clock is only the first guess).
    expect(page.locator("#reloj-servidor")).to_contain_text("Hora del servidor ±")
    taps = [tap(page, "Liebres", 2)]
    expect(page.locator(".tiempos .enviado")).to_have_count(1, timeout=WAIT_MS)
    check_times(stored(server), taps, started_at)
    assert page.errors == []


def test_a_phone_whose_monotonic_clock_stopped_while_asleep(browser, server):
    """Where a phone sleeps, performance.now() may stop while the wall clock goes on: the app
    notices the two parting and does not time from the stale offset."""
    page = phone(browser, server)
    page.evaluate("""() => {
        const realNow = performance.now.bind(performance);
        window.sueno = 0;
        performance.now = () => realNow() - window.sueno;
    }""")
    sign_in(page, MARIA)
    clock_synced(page)
    started_at = start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    taps = [tap(page, "Tortugas", 1)]
    page.evaluate("window.sueno = 60000")  # a minute asleep, as the monotonic clock saw it
    taps.append(tap(page, "Tortugas", 1))
    expect(page.locator(".tiempos .enviado")).to_have_count(2, timeout=WAIT_MS)
    check_times(stored(server), taps, started_at)
    assert page.errors == []


def test_a_team_taken_from_the_judge_with_taps_unsent(browser, server):
    """The organizer gives a team to another judge while this phone holds unsent taps for it:
    the server refuses them (403), the phone keeps them and says so, and sends them once the
    team is back."""
    page = phone(browser, server)
    sign_in(page, MARIA)
    clock_synced(page)
    start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    page.route("**/api/enviar_tiempos/", lambda route: route.abort())
    tap(page, "Liebres", 2)
    expect(page.locator("#por-enviar")).to_have_text("1 por enviar")
    liebres, jose = server.teams["Liebres"], stored_judge(server, "jose")
    maria = stored_judge(server, "maria")
    server.api("PATCH", "/api/equipos/%d/" % liebres, {"juez_id": jose})
    page.unroute("**/api/enviar_tiempos/")
    expect(page.locator("#aviso")).to_contain_text("no acepta", timeout=WAIT_MS)
    page.reload()  # the phone learns its teams again: Liebres is gone, its tap is not
    expect(page.locator(".equipo")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#otros-pendientes")).to_contain_text("1 toques de equipos que ya no tiene")
    expect(page.locator("#por-enviar")).to_have_text("1 por enviar")
    assert stored(server) == []

    server.api("PATCH", "/api/equipos/%d/" % liebres, {"juez_id": maria})
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar", timeout=WAIT_MS)
    expect(page.locator(".equipo")).to_have_count(2, timeout=WAIT_MS)
    assert [r["equipo_id"] for r in stored(server)] == [liebres]
    assert page.errors == []


def stored_judge(server, username, competencia=1):
    return {j["username"]: j["id"] for j in server.api("GET", "/api/jueces/")["jueces"]
            if j["competencia_id"] == competencia}[username]


def test_a_judge_of_two_competitions_times_each_on_its_own(browser, server):
    """María also judges the afternoon race (issue 20 item 12): one sign-in; the app opens the
    race that is running, offers the other one, and on the switch listens to that race's start
    on its judge id there; the choice survives a reload."""
    tarde = server.api("POST", "/api/competencias/", {"nombre": "10K de la tarde"})["id"]
    aqui = server.api("POST", "/api/competencias/%d/jueces/" % tarde, {"username": "maria"})
    assert aqui["password"] is None  # her account and password, as they are
    pumas = server.api("POST", "/api/competencias/%d/equipos/" % tarde, {
        "nombre": "Pumas", "dorsal": 1, "juez_id": aqui["juez"]["id"]})["id"]
    server.api("POST", "/api/competencias/%d/iniciar/" % tarde)
    page = phone(browser, server)
    sign_in(page, MARIA)
    expect(page.locator("#comp-nombre")).to_have_text("10K de la tarde", timeout=WAIT_MS)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".equipo")).to_have_count(1)
    clock_synced(page)
    tap(page, "Pumas", 1)
    expect(team(page, "Pumas").locator(".tiempos .enviado")).to_have_count(1, timeout=WAIT_MS)

    page.get_by_role("button", name="Cambiar a 5K del Puerto").click()
    expect(page.locator("#comp-nombre")).to_have_text("5K del Puerto", timeout=WAIT_MS)
    expect(page.get_by_text("Esperando la salida")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".equipo")).to_have_count(2)
    # Her socket is now her judge row's in the first race: the board there shows her connected
    # (asked of the server: the page's socket list only fills while Playwright is called).
    wait_for(lambda: {j["username"]: j for j in server.api("GET", "/api/competencias/1/jueces/")
                      ["jueces"]}["maria"]["conectado"], what="María connected in the first race")
    clock_synced(page)
    started_at = start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    taps = [tap(page, "Tortugas", 1)]
    expect(team(page, "Tortugas").locator(".tiempos .enviado")).to_have_count(1, timeout=WAIT_MS)
    check_times(stored(server, "Tortugas"), taps, started_at)
    page.reload()
    expect(page.locator("#comp-nombre")).to_have_text("5K del Puerto", timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Cambiar a 10K de la tarde")).to_be_visible()
    records = server.api("GET", "/api/competencias/%d/registros/" % tarde)["registros"]
    assert [(r["equipo_id"], r["juez_id"]) for r in records] == [(pumas, aqui["juez"]["id"])]
    assert page.errors == []


def test_a_phone_that_first_hears_the_start_after_an_adjustment(browser, server):
    """The start was pressed 20 s after the gun and corrected at once (+20 s, ORGANIZER.md:
    every app record of the race, those still to come too, counts 20 s more). A phone that
    signs in only then times against the start as it was given (``inicio_dado``), so its
    counted times are right: the real time since the gun, not 20 s more."""
    given = start_race(server)
    adjusted = server.api("POST", "/api/competencias/1/ajustar_tiempos/", {
        "delta_ms": 20_000, "motivo": "salida pulsada 20 s tarde"})["competencia"]
    assert adjusted["inicio_dado"] == given and ms(adjusted["started_at"]) == ms(given) - 20_000
    page = phone(browser, server)
    sign_in(page, JOSE)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    clock_synced(page)
    taps = [tap(page, "Gacelas", 3)]
    expect(team(page, "Gacelas").locator(".tiempos .enviado")).to_have_count(1, timeout=WAIT_MS)
    [record] = stored(server, "Gacelas")
    check_times([record], taps, given)  # as received: against the start as given
    real = ms(adjusted["started_at"])  # the gun
    before, after = taps[0]
    assert before - real - TOLERANCE_MS <= record["tiempo"] <= after - real + TOLERANCE_MS, (
        record, before - real)
    assert page.errors == []


def test_a_phone_away_through_a_false_start_times_from_the_new_start(browser, server):
    """The phone heard the first start, then lost the server (its socket gone, no reads);
    meanwhile the organizer reset it (a false start) and started again. Back, the phone hears a
    start other than the one it timed (``inicio_dado``): its unsent taps take the new one, as
    taps kept without a start do: one made after it is timed from it and sent; one made before
    it (during the cancelled start) is listed, counts for nothing and is never sent."""
    page = phone(browser, server)
    sign_in(page, MARIA)
    clock_synced(page)
    start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    for path in ("**/api/ws-ticket/", "**/api/me/", "**/api/enviar_tiempos/"):
        page.route(path, lambda route: route.abort())
    server.stop()  # SIGKILL: the socket is gone, and the phone cannot open another
    expect(page.locator("#conexion")).to_have_text("Sin conexión", timeout=WAIT_MS)
    tap(page, "Liebres", 2)  # during the start about to be cancelled
    server.start()
    server.api("POST", "/api/competencias/1/reiniciar/", {"force": True})
    time.sleep(1.5)  # the new start comes a moment later
    started_at = start_race(server)
    taps = [tap(page, "Tortugas", 1)]  # timed against the start the phone knows, for now
    for path in ("**/api/ws-ticket/", "**/api/me/"):
        page.unroute(path)
    tortugas, liebres = team(page, "Tortugas"), team(page, "Liebres")
    expect(liebres.locator(".tiempos .antes")).to_contain_text("No se envía", timeout=WAIT_MS)
    expect(liebres.locator(".cuenta")).to_have_text("0 de 15")
    expect(tortugas.locator(".cuenta")).to_have_text("1 de 15")
    expect(tortugas.locator(".tiempos .anterior")).to_have_count(0)
    page.unroute("**/api/enviar_tiempos/")
    expect(tortugas.locator(".tiempos .enviado")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#conexion")).to_have_text("Conectado", timeout=WAIT_MS)
    taps.append(tap(page, "Liebres", 2))
    expect(liebres.locator(".tiempos .enviado")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar")
    check_times(stored(server), taps, started_at)
    assert page.errors == []


def test_offline_the_manifests_icons_come_from_the_service_worker(browser, server):
    """The manifest names its icons by their plain URLs (not the pages' hashed ones): the
    service worker keeps those too, so an installed app draws its icon without a network."""
    page = phone(browser, server)
    controlled(page)
    manifest = page.evaluate("fetch(document.querySelector('link[rel=manifest]').href)"
                             ".then(r => r.json())")
    icons = sorted({i["src"] for i in manifest["icons"]})
    assert "/static/juez/icono-192.png" in icons
    answers = []
    page.on("response", lambda r: answers.append((r.url, r.status, r.from_service_worker)))
    page.context.set_offline(True)
    got = page.evaluate("srcs => Promise.all(srcs.map(s => fetch(s).then("
                        "r => r.blob().then(b => [r.status, b.type, b.size]))))", icons)
    assert all(status == 200 and size > 0 for status, _, size in got), got
    assert all(kind.startswith("image/") for _, kind, _ in got), got
    served = {u.replace(server.base_url, ""): (s, sw) for u, s, sw in answers}
    assert all(served[src] == (200, True) for src in icons), served
    assert page.errors == []


def test_offline_at_the_gun_the_taps_wait_for_the_start_and_are_timed_from_it(browser, server):
    """The phone heard the server (its clock is known) but went offline before the gun; the
    race started; the judge taps anyway (warned that the start is not known); a tap made
    before the gun waits too. Back online, the taps take the real start: times within 100 ms,
    each sent once; the tap before the start is kept and listed, neither counted nor sent."""
    page = phone(browser, server)
    sign_in(page, MARIA)
    expect(page.get_by_text("Esperando la salida")).to_be_visible(timeout=WAIT_MS)
    clock_synced(page)
    tap(page, "Liebres", 2)  # before the gun (online: the phone knows it has not started)
    liebres, tortugas = team(page, "Liebres"), team(page, "Tortugas")
    expect(liebres.locator(".tiempos li").first).to_contain_text("sin salida aún")
    expect(page.locator("#aviso")).to_contain_text("Toque guardado sin salida")
    page.context.set_offline(True)
    expect(page.locator("#conexion")).to_have_text("Sin conexión", timeout=WAIT_MS)
    started_at = start_race(server)
    taps = [tap(page, "Tortugas", 1), tap(page, "Liebres", 2), tap(page, "Tortugas", 1)]
    expect(page.get_by_text("Esperando la salida")).to_be_visible()
    expect(page.locator("#sin-salida")).to_be_visible()
    expect(tortugas.locator(".cuenta")).to_have_text("2 de 15")
    expect(liebres.locator(".cuenta")).to_have_text("2 de 15")
    expect(page.locator("#por-enviar")).to_have_text("4 por enviar")
    assert stored(server) == []

    page.context.set_offline(False)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar", timeout=WAIT_MS)
    expect(page.locator(".tiempos .enviado")).to_have_count(3)
    expect(liebres.locator(".tiempos .antes")).to_contain_text("antes de la salida")
    expect(liebres.locator(".tiempos .antes")).to_contain_text("No se envía")
    expect(liebres.locator(".cuenta")).to_have_text("1 de 15")
    expect(page.locator("#otros-pendientes")).to_contain_text("1 toques anteriores a la salida")
    records = stored(server)
    assert len(records) == 3 and len({r["id"] for r in records}) == 3
    check_times(sorted(records, key=lambda r: r["timestamp"]), taps, started_at)
    page.reload()  # nothing is sent again, the early tap is still listed
    expect(page.locator(".tiempos .enviado")).to_have_count(3, timeout=WAIT_MS)
    expect(liebres.locator(".tiempos .antes")).to_have_count(1)
    expect(page.locator("#conexion")).to_have_text("Conectado", timeout=WAIT_MS)
    assert len(stored(server)) == 3
    assert page.errors == []


def test_a_second_phone_of_the_judge_reads_back_what_the_first_sent(browser, server):
    """The judge's records as the server holds them (GET /api/equipos/{eid}/registros/) are
    merged with the phone's: a second phone (or a cleared one) lists the first one's times as
    sent and counts them in "N de 15" (the 16th is refused from the union); a record the
    organizer voided is marked and no longer counts."""
    first = phone(browser, server)
    sign_in(first, MARIA)
    clock_synced(first)
    start_race(server)
    expect(first.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    tap(first, "Tortugas", 1)
    tap(first, "Tortugas", 1)
    expect(first.locator(".tiempos .enviado")).to_have_count(2, timeout=WAIT_MS)
    texts = first.locator(".tiempos .valor").all_inner_texts()

    second = phone(browser, server)  # another browser context: nothing of the first phone
    sign_in(second, MARIA)
    tortugas = team(second, "Tortugas")
    expect(tortugas.locator(".cuenta")).to_have_text("2 de 15", timeout=WAIT_MS)
    expect(tortugas.locator(".tiempos .enviado")).to_have_count(2)
    expect(tortugas.locator(".tiempos li").first).to_contain_text("desde otro móvil")
    assert tortugas.locator(".tiempos .valor").all_inner_texts() == texts
    expect(second.locator("#por-enviar")).to_have_text("0 por enviar")

    voided = stored(server, "Tortugas")[0]["id"]
    server.api("POST", "/api/registros/%s/anular/" % voided, {"motivo": "toque de prueba"})
    second.reload()
    expect(tortugas.locator(".cuenta")).to_have_text("1 de 15", timeout=WAIT_MS)
    expect(tortugas.locator("[data-registro='%s']" % voided)).to_contain_text("anulado por el organizador")
    clock_synced(second)
    for _ in range(14):
        tap(second, "Tortugas", 1)
    expect(tortugas.locator(".cuenta")).to_have_text("15 de 15")
    tap(second, "Tortugas", 1)
    expect(second.locator("#aviso")).to_contain_text("ya tiene 15 registros")
    expect(second.locator("#por-enviar")).to_have_text("0 por enviar", timeout=WAIT_MS)
    assert len(stored(server, "Tortugas")) == 16

    # The organizer moves the first phone's other time to Liebres: on that phone (read back on
    # its reload) it is marked in Tortugas and counts in Liebres.
    moved = stored(server, "Tortugas")[1]["id"]
    server.api("PATCH", "/api/registros/%s/" % moved, {"equipo_id": server.teams["Liebres"],
                                                      "motivo": "era de Liebres"})
    first.reload()
    tortugas, liebres = team(first, "Tortugas"), team(first, "Liebres")
    expect(tortugas.locator("[data-registro='%s']" % moved)).to_contain_text(
        "movido a otro equipo", timeout=WAIT_MS)
    expect(tortugas.locator(".cuenta")).to_have_text("14 de 15")
    expect(liebres.locator("[data-registro='%s']" % moved)).to_contain_text("movido aquí")
    expect(liebres.locator(".cuenta")).to_have_text("1 de 15")
    assert first.errors == [] and second.errors == []


def test_closing_the_tab_keeps_the_unsent_taps(browser, server):
    """The tab is closed with taps unsent (the Wi-Fi failing); a new tab of the same browser
    lists them and sends them, each once, timed from the real start."""
    page = phone(browser, server)
    sign_in(page, MARIA)
    clock_synced(page)
    started_at = start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    page.route("**/api/enviar_tiempos/", lambda route: route.abort())
    taps = [tap(page, "Tortugas", 1), tap(page, "Liebres", 2)]
    expect(page.locator("#por-enviar")).to_have_text("2 por enviar")
    context = page.context
    page.close()

    again = context.new_page()
    again.goto(server.base_url + "/juez/")
    expect(again.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    expect(again.locator(".tiempos li")).to_have_count(2)
    expect(again.locator("#por-enviar")).to_have_text("0 por enviar", timeout=WAIT_MS)
    expect(again.locator(".tiempos .enviado")).to_have_count(2)
    records = stored(server)
    assert len(records) == 2 and len({r["id"] for r in records}) == 2
    check_times(records, taps, started_at)


def test_the_access_token_expires_while_offline(browser, spawn, tmp_path):
    """Access tokens live 10 s here: the phone is offline past that, with taps waiting; back
    online its next requests are refused (401), it renews the token with its refresh token and
    sends everything, once."""
    server = event_server(spawn, tmp_path, auth={"access_token_lifetime_s": 10})
    page = phone(browser, server)
    renewals = []
    page.on("request", lambda r: renewals.append(r.url) if r.url.endswith("/api/token/refresh/") else None)
    sign_in(page, MARIA)
    signed_in = time.monotonic()
    clock_synced(page)
    started_at = start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    page.context.set_offline(True)
    expect(page.locator("#conexion")).to_have_text("Sin conexión", timeout=WAIT_MS)
    taps = [tap(page, "Tortugas", 1), tap(page, "Liebres", 2)]
    # The token's lifetime is time itself: wait it out (plus the JWT's one-second granularity).
    time.sleep(max(0.0, signed_in + 11.5 - time.monotonic()))
    assert renewals == []
    page.context.set_offline(False)
    expect(page.locator("#por-enviar")).to_have_text("0 por enviar", timeout=WAIT_MS)
    expect(page.locator(".tiempos .enviado")).to_have_count(2)
    assert renewals  # the expired token was renewed, not the session lost
    expect(page.get_by_text("Carrera en curso")).to_be_visible()
    records = stored(server)
    assert len(records) == 2 and len({r["id"] for r in records}) == 2
    check_times(sorted(records, key=lambda r: r["timestamp"]), taps, started_at)
    assert page.errors == []


def test_on_a_laptop(browser, server, tmp_path):
    """/juez/ at a laptop's width: a centred column, the teams side by side, nothing wider than
    the window, the same big buttons."""
    context = browser.new_context(viewport=DESKTOP, locale="es-ES")
    page = context.new_page()
    page.goto(server.base_url + "/juez/")
    sign_in(page, MARIA)
    expect(page.get_by_text("Esperando la salida")).to_be_visible(timeout=WAIT_MS)
    start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
    save_screenshot(page, tmp_path, "juez-portatil.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    main = page.locator("main").bounding_box()
    assert main["width"] < DESKTOP["width"] * 0.75
    assert abs(main["x"] - (DESKTOP["width"] - main["x"] - main["width"])) < 20  # centred
    boxes = [page.get_by_role("button", name=re.compile(n)).bounding_box()
             for n in ("Tortugas.*1", "Liebres.*2")]
    assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[0]["x"] < boxes[1]["x"]  # side by side
    assert min(b["height"] for b in boxes) >= 48
    taps = [tap(page, "Liebres", 2)]
    expect(page.locator(".tiempos .enviado")).to_have_count(1, timeout=WAIT_MS)
    assert len(stored(server)) == len(taps)


def test_the_judges_board_shows_both_clients_alike(browser, server):
    """María on /juez/ and José with the integration guide's client (rehearsal.VirtualJudge,
    the socket by access token): the console's judges board shows the two the same way, from
    the same fields."""
    page = phone(browser, server)
    sign_in(page, MARIA)
    clock_synced(page)
    phones = LoopThread()
    jose = phones.run(guide_client(server, JOSE))
    try:
        console = open_console(browser, server)
        sign_in(console, ORGANIZER)
        console.get_by_role("link", name="5K del Puerto").click()
        console.get_by_role("navigation").get_by_role("link", name="Carrera").click()
        expect(console.locator("#conectados")).to_have_text("2 de 2 conectados", timeout=WAIT_MS)
        start_race(server)
        expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)
        phones.run(asyncio.wait_for(jose.started.wait(), 10))
        tap(page, "Tortugas", 1)
        expect(page.locator(".tiempos .enviado")).to_have_count(1, timeout=WAIT_MS)
        gacelas = server.teams["Gacelas"]
        start = dt.datetime.fromisoformat(jose.start_info["started_at"].replace("Z", "+00:00"))
        now = dt.datetime.now(dt.timezone.utc)
        assert phones.run(jose.submit(gacelas, [{
            "id_registro": str(uuid.uuid4()), "tiempo": (now - start) // dt.timedelta(milliseconds=1),
            "timestamp": now.isoformat().replace("+00:00", "Z")}]))
        cards = {}
        for username, nombre, equipo in (("maria", "María López", "Tortugas"),
                                         ("jose", "José Ruiz", "Gacelas")):
            card = cards[username] = console.locator("#tablero [data-juez-id]", has_text=nombre)
            expect(card).to_contain_text(equipo + ": 1 tiempo", timeout=WAIT_MS)
            expect(card).to_contain_text("Conectado")
            expect(card).to_contain_text("1 conexión")
            expect(card).to_contain_text(re.compile(r"Oyó la salida .* · su cronómetro: "))
        shape = "el => [el.className, [...el.querySelectorAll('*')].map(c => c.tagName + '.' + c.className)]"
        assert cards["maria"].evaluate(shape) == cards["jose"].evaluate(shape)
        board = {j["username"]: j for j in server.api("GET", "/api/competencias/1/jueces/")["jueces"]}
        maria_row, jose_row = board["maria"], board["jose"]
        assert set(maria_row) == set(jose_row)
        for row in (maria_row, jose_row):
            assert row["conectado"] and row["sockets"] == 1 and row["inicio_notificado_en"], row
            assert not row["alerta"] and abs(row["inicio_implicito_ms"]) <= 1000, row
        assert page.errors == []
    finally:
        phones.run(hang_up(jose))
        phones.close()


async def guide_client(server, credentials):
    """A judge with the integration guide's client: signs in, learns its teams, opens the socket
    with its access token."""
    judge = rehearsal.VirtualJudge(server.base_url, *credentials, http=rehearsal.make_http())
    await judge.login()
    await judge.learn()
    await judge.connect()
    return judge


async def hang_up(judge):
    judge.close()
    judge.http.close()
    await asyncio.sleep(0)  # the loop's turn that lets the socket's transport go


def test_a_phone_whose_socket_never_opens_takes_the_servers_clock_from_its_polls(browser, server):
    """A network that drops WebSockets from the first visit: no ping/pong ever, no offset kept
    from an earlier page. The polls of /api/me/ carry ``server_time``: the phone (its clock 7
    minutes wrong) still times its taps from the real start and sends them."""
    page = phone(browser, server)
    page.route("**/api/ws-ticket/", lambda route: route.abort())
    sign_in(page, MARIA)
    expect(page.get_by_text("Esperando la salida")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#reloj-servidor")).to_contain_text("±", timeout=WAIT_MS)
    started_at = start_race(server)
    expect(page.get_by_text("Carrera en curso")).to_be_visible(timeout=WAIT_MS)  # polled
    taps = [tap(page, "Liebres", 2), tap(page, "Tortugas", 1)]
    expect(page.locator(".tiempos .enviado")).to_have_count(2, timeout=WAIT_MS)
    check_times(stored(server), taps, started_at)
    assert not [u for u in page.sockets if "/ws/juez/" in u]
    assert page.errors == []
