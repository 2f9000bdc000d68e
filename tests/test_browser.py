"""The live results page in a real browser: headless Chromium (Debian's ``chromium`` package)
driven by Playwright, against the real server started as a subprocess on a free port.

The story: a spectator opens the page before the start; the organizer starts the race with the
real CLI (``server5k.py race start ID --url ...``) and the clock appears; judges submit times
through the API and the table changes without a reload; the server goes away and the page says
so, then reconnects by itself when it is back.

Then the awards: one tab per category, the rule chosen on the command line and shown in words,
the page after the finish in the venue's local time, the printout (Chromium's print emulation,
and a real A4 PDF: one page per category, podium first) and the QR code, read back by zbarimg
(Debian's zbar-tools) to the public address.

Skipped, with the reason, only when Chromium is not installed at /usr/bin/chromium or cannot be
launched on this machine (the QR check: when zbarimg is missing). Screenshots are written to the
test's tmp dir; set SERVER5K_UPDATE_SCREENSHOTS=1 to refresh docs/results-phone.png,
docs/results-desktop.png, docs/results-categories.png and docs/results-print.png with them.
"""

import json
import re
import signal

import pytest
from playwright.sync_api import expect

from helpers import DESKTOP, PHONE, decode_qr, save_screenshot

WAIT_MS = 10_000  # generous: the page updates within a second, the machine may be busy


@pytest.fixture
def server(spawn, tmp_path):
    """The demo event served by ``server5k.py serve`` in a subprocess (helpers.LiveServer)."""
    srv = spawn(tmp_path / "event.db")
    srv.cli("demo")
    srv.creds = json.loads((tmp_path / "event.db.demo-credentials.json").read_text())
    return srv.start()


def row(page, equipo_id):
    return page.locator('#clasificacion tbody tr[data-equipo-id="%d"]' % equipo_id)


def screenshot(page, tmp_path, name, viewport, ticking=True):
    page.set_viewport_size(viewport)
    # A steady picture: wait for the change highlights to fade and for the clock to tick.
    page.evaluate("Promise.allSettled(document.getAnimations().map(a => a.finished))"
                  ".then(() => true)")
    if ticking:
        clock = page.locator("#reloj")
        expect(clock).not_to_have_text(clock.inner_text(), timeout=WAIT_MS)
    return save_screenshot(page, tmp_path, name)


def test_live_results_page_follows_the_race(browser, server, tmp_path):
    cid = server.creds["competencia_id"]
    juez1, juez2 = server.creds["jueces"]
    a1, b1 = juez1["equipos"]
    a2, b2 = juez2["equipos"]
    token1 = server.token(juez1["username"], juez1["password"])
    token2 = server.token(juez2["username"], juez2["password"])

    page = browser.new_page(viewport=DESKTOP, locale="es-ES")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The index lists the competition and links to its page.
    page.goto(server.base_url + "/")
    expect(page.locator("h1")).to_have_text("Competencias")
    page.get_by_role("link", name="Carrera Demo 5K").click()
    page.wait_for_url(server.base_url + "/competencias/%d/" % cid)

    # Before the start: every team listed without a position, no clock, live connection on.
    expect(page.locator("#clasificacion tbody tr")).to_have_count(4, timeout=WAIT_MS)
    expect(row(page, a1).locator("td.pos")).to_have_text("–")
    expect(page.locator("#estado")).to_have_text("Programada")
    expect(page.locator("#reloj")).to_be_hidden()
    expect(page.locator("#categorias")).to_be_hidden()  # no categories: no tabs
    expect(page.locator("#resultados")).to_have_attribute("data-conexion", "en-vivo",
                                                          timeout=WAIT_MS)
    page.evaluate("window.sinRecargar = true")  # gone if the page reloads

    # A phone that started by hand uploads before the organizer starts: the public page shows
    # the time, not a warning (the organizer's views flag it: issue 12).
    server.enviar_tiempos(token2, b2, 1_250_000)
    expect(row(page, b2).locator("td.pos")).to_have_text("1", timeout=WAIT_MS)
    expect(row(page, b2)).not_to_contain_text("antes de la salida")
    expect(page.locator("#oficial")).to_have_text("Resultados provisionales")

    # The organizer starts the race with the real CLI: state and running clock appear.
    started = server.cli("race", "start", str(cid), "--url", server.base_url, env={
        "SERVER5K_USER": server.creds["organizador"]["username"],
        "SERVER5K_PASSWORD": server.creds["organizador"]["password"]})
    assert started.returncode == 0, started.stderr
    assert "en_curso" in started.stdout
    expect(page.locator("#estado")).to_have_text("En curso", timeout=WAIT_MS)
    expect(page.locator("#reloj")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#reloj")).to_have_text(
        re.compile(r"^0:00:0[0-9]$"), timeout=WAIT_MS)
    first_tick = page.locator("#reloj").inner_text()
    expect(page.locator("#reloj")).not_to_have_text(first_tick, timeout=WAIT_MS)  # running

    # Judges submit: the table changes by itself.
    server.enviar_tiempos(token1, a1, 1_100_000, 1_180_000, 1_320_000)
    expect(row(page, a1).locator("td.pos")).to_have_text("1", timeout=WAIT_MS)
    expect(row(page, a1).locator("td.total")).to_have_text("1:00:00.000")
    expect(row(page, a1).locator("td.contados")).to_have_text("3")
    expect(row(page, a1).locator("td.mejor")).to_have_text("0:18:20.000")
    expect(row(page, a1).locator("td.promedio")).to_have_text("0:20:00.000")

    server.enviar_tiempos(token2, a2, 1_050_000, 1_090_000, 1_150_000, 1_400_000, minute=1)
    expect(row(page, a2).locator("td.pos")).to_have_text("1", timeout=WAIT_MS)  # 4 > 3
    expect(row(page, a1).locator("td.pos")).to_have_text("2")
    server.enviar_tiempos(token1, b1, 1_210_000, 1_330_000, minute=2)
    expect(row(page, b1).locator("td.pos")).to_have_text("3", timeout=WAIT_MS)
    expect(page.locator("#clasificacion tbody tr td.equipo")).to_have_count(4)
    first_team = page.locator("#clasificacion tbody tr").first.locator("td.equipo")
    expect(first_team).to_contain_text("Equipo 2A")

    assert page.evaluate("window.sinRecargar") is True, "the page reloaded"
    assert errors == []

    screenshot(page, tmp_path, "results-desktop.png", DESKTOP)
    screenshot(page, tmp_path, "results-phone.png", PHONE)
    # On a phone the team cell carries dorsal, best and mean; the table still fits the screen.
    expect(row(page, a1).locator(".detalle")).to_be_visible()
    expect(row(page, a1).locator(".detalle")).to_contain_text("Mejor 0:18:20.000")
    expect(row(page, a1).locator("td.mejor")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_page_shows_a_lost_connection_and_reconnects_by_itself(browser, server):
    cid = server.creds["competencia_id"]
    page = browser.new_page(viewport=PHONE, locale="es-ES")
    page.goto(server.base_url + "/competencias/%d/" % cid)
    live = page.locator("#resultados")
    expect(live).to_have_attribute("data-conexion", "en-vivo", timeout=WAIT_MS)
    expect(page.locator("#aviso-conexion")).to_be_hidden()
    page.evaluate("window.sinRecargar = true")

    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    expect(page.locator("#aviso-conexion")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#aviso-conexion")).to_contain_text("Se perdió la conexión en vivo")
    expect(live).to_have_attribute("data-conexion", "perdida")

    server.start()
    expect(live).to_have_attribute("data-conexion", "en-vivo", timeout=30_000)
    expect(page.locator("#aviso-conexion")).to_be_hidden()
    # And it is live again: a submission after the reconnect shows up.
    juez = server.creds["jueces"][0]
    server.enviar_tiempos(server.token(juez["username"], juez["password"]), juez["equipos"][0], 999_000)
    expect(row(page, juez["equipos"][0]).locator("td.pos")).to_have_text("1", timeout=WAIT_MS)
    assert page.evaluate("window.sinRecargar") is True


PUBLIC_URL = "http://resultados.example:8000"  # how the venue's phones reach the laptop
A4 = {"width": 794, "height": 1123}  # CSS pixels at 96 dpi


@pytest.fixture
def awards(spawn, tmp_path):
    """The demo event plus four teams in two categories, in Bogotá (UTC-05:00 all year), with
    the public address set; served by ``server5k.py serve``."""
    srv = spawn(tmp_path / "awards.db", server={"public_url": PUBLIC_URL},
                race={"timezone": "America/Bogota"})
    srv.cli("demo")
    srv.creds = json.loads((tmp_path / "awards.db.demo-credentials.json").read_text())
    srv.teams = {}
    for dorsal, (name, judge, category) in enumerate((
            ("Liebres", "juez1", "Veteranos"), ("Tortugas", "juez1", "Veteranos"),
            ("Gacelas", "juez2", "Abierta"), ("Linces", "juez2", "Abierta")), start=11):
        team = json.loads(srv.cli("--demo", "team", "add", name, "--dorsal", str(dorsal), "--judge", judge,
                                  "--category", category, "--json").stdout)
        srv.teams[name] = team["id"]
    org = srv.creds["organizador"]
    srv.org = {"SERVER5K_USER": org["username"], "SERVER5K_PASSWORD": org["password"]}
    return srv.start()


def test_awards_tabs_print_and_qr_code(browser, awards, tmp_path):
    cid = awards.creds["competencia_id"]
    juez1, juez2 = awards.creds["jueces"]
    token1 = awards.token(juez1["username"], juez1["password"])
    token2 = awards.token(juez2["username"], juez2["password"])
    teams = awards.teams

    def cli(*args):
        run = awards.cli(*args, "--url", awards.base_url, env=awards.org)
        assert run.returncode == 0, run.stderr
        return run.stdout

    page = browser.new_page(viewport=DESKTOP, locale="es-ES", timezone_id="Asia/Tokyo")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(awards.base_url + "/competencias/%d/" % cid)
    expect(page.locator("#clasificacion tbody tr")).to_have_count(8, timeout=WAIT_MS)

    # Before the start: the scheduled start, in the venue's time (the browser is in Tokyo).
    expect(page.locator("#momento")).to_have_text(re.compile(
        r"^Salida prevista: [0-9]{1,2} [a-z]+ 20[0-9]{2}, 09:00 \(UTC-05:00\)$"))
    expect(page.locator("#oficial")).to_have_text("Resultados provisionales")

    # One tab per category, and General, which is shown first.
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_text(["General", "Abierta", "Veteranos"])
    expect(page.get_by_role("tab", name="General")).to_have_attribute("aria-selected", "true")

    cli("race", "start", str(cid))
    expect(page.locator("#momento")).to_have_text(
        re.compile(r"^Salida a las [0-9:]{8} \(UTC-05:00\)$"), timeout=WAIT_MS)
    awards.enviar_tiempos(token1, teams["Liebres"], 1_100_000, 1_150_000, 1_400_000)
    awards.enviar_tiempos(token1, teams["Tortugas"], 1_120_000, 1_130_000, 1_160_000, minute=1)
    awards.enviar_tiempos(token2, teams["Gacelas"], 1_000_000, 1_300_000, 1_310_000, minute=2)
    awards.enviar_tiempos(token2, teams["Linces"], 1_200_000, minute=3)

    # The cross-country rule, set on the command line: the page follows without a reload.
    page.evaluate("window.sinRecargar = true")
    out = cli("competition", "set", str(cid), "--scoring", "puntos", "--counted", "2",
              "--min-finishers", "2", "--reason", "reglamento del cross")
    assert "puntos, best 2 count, 2 finishers to rank" in out
    expect(page.locator("#regla")).to_contain_text("Por puestos, como en cross", timeout=WAIT_MS)
    expect(page.locator("#clasificacion th.puntos")).to_be_visible()
    # Places among the runners of the three teams with two finishers (Linces has one): Gacelas
    # 1000 (1), Liebres 1100 (2), Tortugas 1120 (3), 1130 (4), Liebres 1150 (5), Tortugas 1160
    # (6), Gacelas 1300 (7), 1310 (8), Liebres 1400 (9). Points of the best two: Tortugas
    # 3 + 4 = 7 and Liebres 2 + 5 = 7, a tie that Tortugas' third runner (6th) wins over
    # Liebres' (9th); Gacelas 1 + 7 = 8.
    expect(row(page, teams["Tortugas"]).locator("td.pos")).to_have_text("1", timeout=WAIT_MS)
    expect(row(page, teams["Tortugas"]).locator("td.puntos")).to_have_text("7")
    expect(row(page, teams["Liebres"]).locator("td.pos")).to_have_text("2")
    expect(row(page, teams["Gacelas"]).locator("td.pos")).to_have_text("3")
    expect(row(page, teams["Linces"]).locator("td.pos")).to_have_text("–")

    # The Abierta tab: its teams only, with their place in it.
    page.get_by_role("tab", name="Abierta").click()
    expect(page.get_by_role("tab", name="Abierta")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#clasificacion tbody tr")).to_have_count(2)
    expect(row(page, teams["Gacelas"]).locator("td.pos")).to_have_text("1")
    expect(row(page, teams["Linces"]).locator("td.pos")).to_have_text("–")
    assert page.url.endswith("?categoria=Abierta")
    expect(page.locator("#csv")).to_have_attribute(
        "href", "/api/competencias/%d/resultados/?format=csv&categoria=Abierta" % cid)
    screenshot(page, tmp_path, "results-categories.png", DESKTOP)
    page.get_by_role("tab", name="Veteranos").click()
    expect(page.locator("#clasificacion tbody tr")).to_have_count(2)
    expect(row(page, teams["Tortugas"]).locator("td.pos")).to_have_text("1")
    expect(row(page, teams["Liebres"]).locator("td.pos")).to_have_text("2")

    # After the finish: when, the final time, and official once the organizer says so.
    cli("race", "stop", str(cid))
    expect(page.locator("#momento")).to_have_text(
        re.compile(r"^Finalizada a las [0-9:]{8} \(UTC-05:00\)$"), timeout=WAIT_MS)
    expect(page.locator("#reloj-etiqueta")).to_have_text("Tiempo final")
    expect(page.locator("#reloj")).to_have_text(re.compile(r"^0:00:[0-9]{2}$"))
    cli("results", "official", str(cid))
    expect(page.locator("#oficial")).to_have_text("Resultados oficiales", timeout=WAIT_MS)
    assert page.evaluate("window.sinRecargar") is True

    # The QR code on the page (for the projector), read back at the end.
    qr_png = tmp_path / "qr.png"
    page.locator("#qr img").screenshot(path=str(qr_png))
    expect(page.locator("#qr-url")).to_have_text(PUBLIC_URL + "/competencias/%d/" % cid)

    # Printed: no navigation, no live banner; one sheet per category, General first.
    page.set_viewport_size(A4)
    page.emulate_media(media="print")
    for hidden in (".volver", "#categorias", "#en-vivo", "#aviso-conexion", "#clasificacion",
                   "#qr", "#imprimir"):
        expect(page.locator(hidden)).to_be_hidden()
    sheets = page.locator("#impresion .hoja")
    expect(sheets).to_have_count(3)
    expect(sheets.locator("h2")).to_have_text(
        ["Clasificación general", "Categoría Abierta", "Categoría Veteranos"])
    for n in range(3):
        sheet = sheets.nth(n)
        expect(sheet.locator("h1")).to_have_text("Carrera Demo 5K")
        expect(sheet.locator(".hoja-oficial")).to_have_text(re.compile(
            r"^Resultados oficiales · Finalizada a las [0-9:]{8} \(UTC-05:00\)$"))
        expect(sheet.locator(".hoja-regla")).to_contain_text("Regla: Por puestos")
        expect(sheet.locator(".hoja-impreso")).to_have_text(re.compile(
            r"^Impreso el [0-9]{1,2} [a-z]+ 20[0-9]{2}, [0-9:]{5} \(UTC-05:00\)$"))
        # The podium comes right after the header, before the table.
        assert sheet.evaluate("s => [...s.children].map(c => c.className)") == [
            "hoja-cabecera", "podio", "hoja-tabla"]
        if n:
            assert sheet.evaluate("s => getComputedStyle(s).breakBefore") == "page"
    veteranos = sheets.nth(2)
    expect(veteranos.locator(".podio li")).to_have_text(
        [re.compile(r"^1\.º\s*Tortugas\s*7 pts$"), re.compile(r"^2\.º\s*Liebres\s*7 pts$")])
    expect(veteranos.locator(".hoja-tabla tbody tr")).to_have_count(2)
    expect(sheets.nth(1).locator(".hoja-tabla tbody tr td.pos")).to_have_text(["1", "–"])
    screenshot(page, tmp_path, "results-print.png", A4, ticking=False)
    sheet_qr = tmp_path / "qr-print.png"
    sheets.nth(0).locator(".hoja-qr").screenshot(path=str(sheet_qr))
    # On real A4 paper: exactly one page per category (the tables are short).
    pdf = page.pdf(format="A4", print_background=True)
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 3
    assert errors == []
    # A category's own address opens its tab (what a projector can show all morning).
    other = browser.new_page(viewport=DESKTOP, locale="es-ES")
    other.goto(awards.base_url + "/competencias/%d/?categoria=Veteranos" % cid)
    expect(other.get_by_role("tab", name="Veteranos")).to_have_attribute(
        "aria-selected", "true", timeout=WAIT_MS)
    expect(other.locator("#clasificacion tbody tr")).to_have_count(2)
    # Both QR codes, on the screen and on paper, open the public address (zbarimg reads them).
    for png in (qr_png, sheet_qr):
        assert decode_qr(png) == PUBLIC_URL + "/competencias/%d/" % cid


def test_page_polls_with_if_none_match_when_its_socket_is_refused(browser, spawn, tmp_path):
    """A server (or a proxy) that refuses the live socket: the page says so, asks for the
    standings every few seconds with If-None-Match (304 while nothing changed), and shows a
    new time without a reload."""
    srv = spawn(tmp_path / "event.db", limits={"spectator_sockets": 0})
    srv.cli("demo")
    creds = json.loads((tmp_path / "event.db.demo-credentials.json").read_text())
    srv.start()
    cid = creds["competencia_id"]
    page = browser.new_page(viewport=PHONE, locale="es-ES")
    answers = []  # (status, If-None-Match sent) of the page's standings requests
    page.on("response", lambda r: answers.append(
        (r.status, r.request.headers.get("if-none-match")))
        if "/resultados/" in r.url and "/api/" in r.url else None)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(srv.base_url + "/competencias/%d/" % cid)
    live = page.locator("#resultados")
    expect(live).to_have_attribute("data-conexion", "sondeo", timeout=WAIT_MS)
    expect(page.locator("#aviso-conexion")).to_be_visible()
    expect(page.locator("#aviso-conexion")).to_contain_text(
        "Sin conexión en vivo: los resultados se actualizan cada 3 s")
    expect(page.locator("#en-vivo")).to_be_hidden()
    assert sockets, "the page never tried its socket"
    page.evaluate("window.sinRecargar = true")
    # Conditional polling: the validator of an earlier answer comes back, and gets 304.
    if not any(status == 304 and sent for status, sent in answers):
        with page.expect_response(lambda r: "/api/" in r.url and r.status == 304
                                  and r.request.headers.get("if-none-match"), timeout=WAIT_MS):
            pass

    juez = creds["jueces"][0]
    srv.enviar_tiempos(srv.token(juez["username"], juez["password"]), juez["equipos"][0], 999_000)
    expect(row(page, juez["equipos"][0]).locator("td.pos")).to_have_text("1", timeout=WAIT_MS)
    assert page.evaluate("window.sinRecargar") is True
    assert (200, None) == answers[0]  # the first one had nothing to ask about
