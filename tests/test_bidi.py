"""Bidirectional controls in names (U+202A-202E, U+2066-2069, U+200E/F, U+061C) never reach a
page: the templates take them out (handlers.pages.page_text), and so do the results page's and
the console's scripts from every text the server sends them, so a team name cannot reorder what
is shown around it. The API keeps the names exactly as stored."""

import re

import pytest
from playwright.sync_api import expect

from helpers import DESKTOP, PHONE, fetch, sign_in

BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
COMPETITION = "5K \u202eodaruG\u202c del Puerto"
TEAM = "Tortugas \u2066\u202e99 lasrodoR\u2069\u200f"
JUDGE = "Mar\u061cía \u200eLópez"
WAIT_MS = 10_000


@pytest.fixture
def server(spawn, tmp_path):
    srv = spawn(tmp_path / "event.db").organize(COMPETITION)
    srv.cli("judge", "add", "maria", "--competition", "1", "--name", JUDGE,
            "--password", "clave-de-maria")
    srv.cli("team", "add", TEAM, "--dorsal", "7", "--judge", "maria")
    return srv.start()


def assert_no_bidi(text, where):
    found = BIDI.findall(text)
    assert not found, "%s shows %s" % (where, ["U+%04X" % ord(c) for c in found])


@pytest.mark.gen_test(timeout=60)
async def test_templates_take_bidi_controls_out_and_the_api_keeps_them(server):
    for path in ("/", "/competencias/1/", "/competencias/1/equipos/1/"):
        code, _, response = await fetch("GET", server.base_url + path)
        assert code == 200, path
        html = response.body.decode("utf-8")
        assert_no_bidi(html, path)
        assert "5K odaruG del Puerto" in html, path
    code, team, _ = await fetch("GET", server.base_url + "/api/competencias/1/equipos/1/")
    assert code == 200 and team["equipo"]["nombre"] == TEAM  # the data as stored
    assert "Tortugas 99 lasrodoR" in (await fetch(
        "GET", server.base_url + "/competencias/1/equipos/1/"))[2].body.decode("utf-8")


def test_the_scripts_take_bidi_controls_out(browser, server):
    page = browser.new_page(viewport=DESKTOP, locale="es-ES")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The live results page: the standings come from the API and the socket.
    page.goto(server.base_url + "/competencias/1/")
    expect(page.locator("#clasificacion tbody")).to_contain_text("Tortugas 99 lasrodoR",
                                                                 timeout=WAIT_MS)
    assert_no_bidi(page.inner_text("body"), "the results page")
    assert_no_bidi(page.title(), "the results page's title")
    # The console: the competition, its teams and judges.
    page.goto(server.base_url + "/organizador/")
    sign_in(page)
    page.get_by_role("link", name="5K odaruG del Puerto").click()
    expect(page.locator("#comp-nombre")).to_have_text("5K odaruG del Puerto")
    page.get_by_role("navigation").get_by_role("link", name="Equipos y jueces").click()
    expect(page.locator("#equipos")).to_contain_text("Tortugas 99 lasrodoR", timeout=WAIT_MS)
    expect(page.locator("#consola")).to_contain_text("María López")
    assert_no_bidi(page.inner_text("body"), "the console")
    assert_no_bidi(page.title(), "the console's title")
    assert not errors


def test_the_judge_app_takes_bidi_controls_out(browser, server):
    """The judge app (/juez/): the competition's, the team's and the judge's names come from
    the API and are kept on the phone (the session in localStorage, read again on a reload)."""
    page = browser.new_page(viewport=PHONE, locale="es-ES")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.base_url + "/juez/")
    sign_in(page, ("maria", "clave-de-maria"))
    expect(page.locator("#comp-nombre")).to_have_text("5K odaruG del Puerto", timeout=WAIT_MS)
    expect(page.locator("#equipos")).to_contain_text("Tortugas 99 lasrodoR")
    expect(page.locator("#juez-nombre")).to_have_text("Juez: María López")
    assert_no_bidi(page.inner_text("body"), "the judge app")
    page.reload()
    expect(page.locator("#equipos")).to_contain_text("Tortugas 99 lasrodoR", timeout=WAIT_MS)
    assert_no_bidi(page.inner_text("body"), "the judge app after a reload")
    assert not errors
