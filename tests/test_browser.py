"""The live results page in a real browser: headless Chromium (Debian's ``chromium`` package)
driven by Playwright, against the real server started as a subprocess on a free port.

The story: a spectator opens the page before the start; the organizer starts the race with the
real CLI (``server5k.py race start ID --url ...``) and the clock appears; judges submit times
through the API and the table changes without a reload; the server goes away and the page says
so, then reconnects by itself when it is back.

Skipped, with the reason, only when Chromium is not installed at /usr/bin/chromium or cannot be
launched on this machine. Screenshots (phone 390 px and desktop 1280 px wide) are written to the
test's tmp dir; set SERVER5K_UPDATE_SCREENSHOTS=1 to refresh docs/results-phone.png and
docs/results-desktop.png with them.
"""

import json
import re
import signal

import pytest
from playwright.sync_api import expect

from helpers import DESKTOP, PHONE, registros, request_json, save_screenshot

WAIT_MS = 10_000  # generous: the page updates within a second, the machine may be busy


@pytest.fixture
def server(spawn, tmp_path):
    """The demo event served by ``server5k.py serve`` in a subprocess (helpers.LiveServer)."""
    srv = spawn(tmp_path / "event.db")
    srv.cli("demo")
    srv.creds = json.loads((tmp_path / "event.db.demo-credentials.json").read_text())
    return srv.start()


def token(server, username, password):
    status, body = request_json("POST", server.base_url + "/api/token/",
                                {"username": username, "password": password})
    assert status == 200, body
    return body["access"]


def row(page, equipo_id):
    return page.locator('#clasificacion tbody tr[data-equipo-id="%d"]' % equipo_id)


def submit(server, token, equipo_id, *tiempos, minute=0):
    status, body = request_json("POST", server.base_url + "/api/enviar_tiempos/", {
        "equipo_id": equipo_id,
        "registros": registros(tiempos, at="2026-12-06T09:%02d:00.000Z" % minute)}, token=token)
    assert status == 201, body


def screenshot(page, tmp_path, name, viewport):
    page.set_viewport_size(viewport)
    # A steady picture: wait for the change highlights to fade and for the clock to tick.
    page.evaluate("Promise.allSettled(document.getAnimations().map(a => a.finished))"
                  ".then(() => true)")
    clock = page.locator("#reloj")
    expect(clock).not_to_have_text(clock.inner_text(), timeout=WAIT_MS)
    save_screenshot(page, tmp_path, name)


def test_live_results_page_follows_the_race(browser, server, tmp_path):
    cid = server.creds["competencia_id"]
    juez1, juez2 = server.creds["jueces"]
    a1, b1 = juez1["equipos"]
    a2, b2 = juez2["equipos"]
    token1 = token(server, juez1["username"], juez1["password"])
    token2 = token(server, juez2["username"], juez2["password"])

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
    expect(page.locator("#resultados")).to_have_attribute("data-conexion", "en-vivo",
                                                          timeout=WAIT_MS)
    page.evaluate("window.sinRecargar = true")  # gone if the page reloads

    # A phone that started by hand uploads before the organizer starts: the public page shows
    # the time, not a warning (the organizer's views flag it: issue 12).
    submit(server, token2, b2, 1_250_000)
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
    submit(server, token1, a1, 1_100_000, 1_180_000, 1_320_000)
    expect(row(page, a1).locator("td.pos")).to_have_text("1", timeout=WAIT_MS)
    expect(row(page, a1).locator("td.total")).to_have_text("1:00:00.000")
    expect(row(page, a1).locator("td.contados")).to_have_text("3")
    expect(row(page, a1).locator("td.mejor")).to_have_text("0:18:20.000")
    expect(row(page, a1).locator("td.promedio")).to_have_text("0:20:00.000")

    submit(server, token2, a2, 1_050_000, 1_090_000, 1_150_000, 1_400_000, minute=1)
    expect(row(page, a2).locator("td.pos")).to_have_text("1", timeout=WAIT_MS)  # 4 > 3
    expect(row(page, a1).locator("td.pos")).to_have_text("2")
    submit(server, token1, b1, 1_210_000, 1_330_000, minute=2)
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
    submit(server, token(server, juez["username"], juez["password"]), juez["equipos"][0], 999_000)
    expect(row(page, juez["equipos"][0]).locator("td.pos")).to_have_text("1", timeout=WAIT_MS)
    assert page.evaluate("window.sinRecargar") is True
