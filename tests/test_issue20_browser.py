"""Issue 20 in the organizer's console, in headless Chromium against the real server in a
subprocess: a Spanish Excel roster (Windows-1252, ``;``) arrives as the server reads it, the
console parses clock text as the server does, and shows the venue's time."""

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from helpers import DESKTOP, ORGANIZER, T0, in_dialog, open_console, request_json, sign_in, tab

WAIT_MS = 10_000
CASES = json.loads((Path(__file__).parent / "duration_cases.json").read_text(
    encoding="utf-8"))["cases"]
# As Spanish Excel saves "CSV (delimitado por comas)": Windows-1252 and semicolons.
ROSTER_1252 = ("Juez Usuario;Juez Nombre;Equipo;Dorsal;Categoría\r\n"
               "marta;Marta Ibáñez;Los Peñascos;1;Educación Infantil\r\n"
               "marta;Marta Ibáñez;Águilas;2;Educación Primaria\r\n").encode("cp1252")


@pytest.fixture
def server(spawn, tmp_path):
    return spawn(tmp_path / "event.db", race={"timezone": "Pacific/Auckland"}).organize(
        "5K del Colegio", "--date", "2026-12-06T09:00:00Z").start()


def open_teams(browser, server, **page_options):
    page = open_console(browser, server) if not page_options else None
    if page is None:
        page = browser.new_page(viewport=DESKTOP, locale="es-ES", **page_options)
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.goto(server.base_url + "/organizador/")
    sign_in(page)
    return page


def upload_bytes(page, data, name="lista.csv"):
    page.get_by_label("Archivo CSV").set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": data}])
    page.get_by_role("button", name="Vista previa").click()


def test_a_spanish_excel_roster_through_the_console(browser, server):
    page = open_teams(browser, server)
    page.get_by_role("link", name="5K del Colegio").click()
    tab(page, "Equipos y jueces")
    # A column the importer does not know is an error naming it, not silence.
    upload_bytes(page, "juez_usuario;juez_nombre;equipo;dorsal;Categoria2\nm;M;E;1;x\n".encode())
    expect(page.locator("#form-importar .error")).to_contain_text("Categoria2", timeout=WAIT_MS)
    upload_bytes(page, ROSTER_1252)
    expect(page.locator("#previa-lineas")).to_contain_text(
        "Línea 2: Los Peñascos · dorsal 1 · juez marta · Educación Infantil", timeout=WAIT_MS)
    page.get_by_role("button", name="Importar").click()
    in_dialog(page, "Sí, importar")
    expect(page.locator("#equipos [data-equipo-id]")).to_have_count(2, timeout=WAIT_MS)
    teams = server.api("GET", "/api/competencias/1/resultados/")["clasificacion"]
    assert sorted((t["equipo"], t["categoria"]) for t in teams) == [
        ("Los Peñascos", "Educación Infantil"), ("Águilas", "Educación Primaria")]
    assert [j["nombre"] for j in server.api("GET", "/api/jueces/")["jueces"]] == [
        "Marta Ibáñez"]

    # A penalty typed as the field's own example says, then cleared.
    team = next(t for t in teams if t["equipo"] == "Águilas")
    row = page.locator('#equipos [data-equipo-id="%d"]' % team["equipo_id"])
    row.get_by_role("button", name="Penalización").click()
    in_dialog(page, "Guardar penalización", **{
        "Penalización (p. ej. +2:00 o 30s; 0 la quita)": "30s", "Motivo": "atajo"})
    expect(row).to_contain_text("penalización +30.0 s", timeout=WAIT_MS)

    # The same roster for next month's race (item 12): Marta keeps her account and password,
    # and the preview says so; no new password is shown.
    otra = server.api("POST", "/api/competencias/", {"nombre": "5K de enero"})["id"]
    page.goto(server.base_url + "/organizador/#c=%d&t=plantilla" % otra)
    expect(page.get_by_role("heading", name="5K de enero")).to_be_visible(timeout=WAIT_MS)
    upload_bytes(page, ROSTER_1252)
    expect(page.locator("#previa-resumen")).to_have_text(
        "Se crearán 1 jueces y 2 equipos (1 de los jueces ya tienen cuenta de otra competencia: "
        "entran con su contraseña de siempre).", timeout=WAIT_MS)
    page.get_by_role("button", name="Importar").click()
    in_dialog(page, "Sí, importar")
    expect(page.locator("#equipos [data-equipo-id]")).to_have_count(2, timeout=WAIT_MS)
    assert [(j["username"], j["competencia_id"]) for j in server.api(
        "GET", "/api/jueces/")["jueces"]] == [("marta", 1), ("marta", otra)]
    assert not page.errors


def test_the_console_parses_clock_text_as_the_server_does(browser, server):
    page = open_console(browser, server)
    answers = page.evaluate("""cases => cases.map(([text, signed]) => {
        try { return window.Server5KDuracion.parse(text, signed); } catch (e) { return null; }
    })""", [case[:2] for case in CASES])
    assert answers == [case[2] for case in CASES]


def test_the_console_shows_the_venues_time_and_says_paper_times_stay(browser, server):
    # This browser is in New York; the venue (race.timezone) in Auckland, UTC+13 in December.
    page = open_teams(browser, server, timezone_id="America/New_York")
    expect(page.locator("#competencias li", has_text="5K del Colegio")).to_contain_text("22:00")
    # A date typed in the console is the venue's too: 10:00 in Auckland is 21:00Z the day before.
    page.get_by_label("Nombre", exact=True).fill("5K de Navidad")
    page.get_by_label("Fecha y hora (opcional)").fill("2026-12-07T10:00")
    page.get_by_role("button", name="Crear competencia").click()
    expect(page.locator("#comp-nombre")).to_have_text("5K de Navidad", timeout=WAIT_MS)
    created = server.api("GET", "/api/competencias/2/")
    assert created["fecha_hora"] == "2026-12-06T21:00:00.000Z"
    page.goto(server.base_url + "/organizador/")
    page.get_by_role("link", name="5K del Colegio").click()
    status, token = request_json("POST", server.base_url + "/api/token/",
                                 {"username": ORGANIZER[0], "password": ORGANIZER[1]})
    request_json("POST", server.base_url + "/api/competencias/1/iniciar/", {},
                 token=token["access"])
    tab(page, "Carrera")
    page.get_by_role("button", name="Ajustar la salida").click()
    expect(page.get_by_role("dialog")).to_contain_text("tiempos en papel")


LONG_NAMES = ("Asociación Deportiva Educación Infantil", "Club Atletismo Internacionalización",
              "Corredores Extraordinariamente Perseverantes")
# Every word of the team names on one line (a word broken mid-way spans two client rects).
SPLIT_WORDS = """() => {
    const split = [];
    for (const cell of document.querySelectorAll('#clasificacion td.equipo')) {
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const re = /\\S+/g;
            let m;
            while ((m = re.exec(node.data))) {
                const range = document.createRange();
                range.setStart(node, m.index);
                range.setEnd(node, m.index + m[0].length);
                const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                if (tops.size > 1) { split.push(m[0]); }
            }
        }
    }
    return split;
}"""


def test_team_names_never_break_mid_word_on_a_phone(browser, spawn, tmp_path):
    from helpers import PHONE
    srv = spawn(tmp_path / "names.db")
    srv.cli("competition", "add", "5K")
    srv.cli("judge", "add", "marta", "--competition", "1", "--password", "clave-de-marta")
    for dorsal, name in enumerate(LONG_NAMES, start=1):
        srv.cli("team", "add", name, "--dorsal", str(dorsal), "--judge", "1")
    srv.start()
    judge = srv.token("marta", "clave-de-marta")
    for equipo_id in (1, 2, 3):  # times, penalties' worth of digits: the other columns widen
        srv.enviar_tiempos(judge, equipo_id, 3_599_999, 3_600_001, 3_700_000, at=T0)
    for width in (PHONE["width"], 360):
        page = browser.new_page(viewport={"width": width, "height": 800}, locale="es-ES")
        page.goto(srv.base_url + "/competencias/1/")
        expect(page.locator("#clasificacion td.equipo")).to_have_count(3, timeout=WAIT_MS)
        assert page.evaluate(SPLIT_WORDS) == [], width
        if width == PHONE["width"]:
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.close()
