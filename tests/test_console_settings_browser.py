"""The console does what the README says a browser is enough for (issue 20, items 10, 11, 13),
in headless Chromium against the real server: the addresses the judges' phones can use on the
race screen; renaming the competition and hiding it from the public index; the results tab's
category tabs and its rule in words, and choosing the scoring rule; and the CSV downloads in
the flavour Spanish Excel opens in columns, next to the plain ones."""

import csv
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from helpers import downloaded, in_dialog, open_console, request_json, sign_in, tab
from test_addresses import kernel_addresses
from test_console_browser import WAIT_MS

PUBLIC_URL = "http://carrera.example:8000"
TEAMS = (("Tortugas", 1, "Veteranos"), ("Liebres", 2, "Abierta"), ("Gacelas", 3, "Veteranos"))
TIMES = {"Tortugas": [1_200_000, 1_260_000], "Liebres": [1_140_000], "Gacelas": [1_080_000,
                                                                                  1_500_000]}


@pytest.fixture
def server(spawn, tmp_path):
    """A competition of three teams in two categories with times, on every interface."""
    srv = spawn(tmp_path / "event.db", server={"host": "0.0.0.0", "public_url": PUBLIC_URL},
                race={"impossible_time_tolerance_ms": 3_600_000})
    srv.organize()
    srv.cli("competition", "add", "Otra carrera")
    srv.cli("judge", "add", "maria", "--competition", "1", "--password", "clave-de-maria")
    for nombre, dorsal, categoria in TEAMS:
        srv.cli("team", "add", nombre, "--dorsal", str(dorsal), "--judge", "maria",
                "--category", categoria)
    srv.start()
    srv.api("POST", "/api/competencias/1/iniciar/")
    token = srv.token("maria", "clave-de-maria")
    for equipo_id, (nombre, _, _) in enumerate(TEAMS, start=1):
        srv.enviar_tiempos(token, equipo_id, *TIMES[nombre], every_s=60)
    return srv


def public_index(server):
    with urllib.request.urlopen(server.base_url + "/", timeout=15) as response:
        return response.read().decode()


def rows(page):
    return page.locator("#clasificacion tbody tr")


def test_settings_categories_rule_addresses_and_excel_in_the_console(browser, server):
    page = open_console(browser, server)
    sign_in(page)
    page.get_by_role("link", name="5K del Puerto").click()

    # The race screen: where the judges' phones reach the server.
    urls = [PUBLIC_URL] + ["http://%s:%d" % (a, server.port) for a in kernel_addresses()]
    expect(page.locator("#direcciones")).to_have_text(
        "Dirección para los móviles de los jueces: " + " · ".join(urls), timeout=WAIT_MS)

    # Rename: the header, the public API and the history follow.
    page.get_by_role("button", name="Cambiar el nombre").click()
    in_dialog(page, "Guardar nombre", Nombre="5K del Puerto 2026")
    expect(page.locator("#comp-nombre")).to_have_text("5K del Puerto 2026", timeout=WAIT_MS)
    status, comp = request_json("GET", server.base_url + "/api/competencias/1/")
    assert comp["nombre"] == "5K del Puerto 2026"

    # Hide it from the public index (a test race), then list it again.
    assert "5K del Puerto 2026" in public_index(server)
    page.get_by_role("button", name="Ocultar del índice público").click()
    in_dialog(page, "Sí, ocultar")
    expect(page.locator("#comp-oculta")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Mostrar en el índice público")).to_be_visible()
    index = public_index(server)
    assert "5K del Puerto 2026" not in index and "Otra carrera" in index
    page.get_by_role("link", name="← Competencias").click()
    listed = page.locator("#competencias li", has_text="5K del Puerto 2026")
    expect(listed).to_contain_text("Oculta del índice público", timeout=WAIT_MS)
    listed.get_by_role("link").click()
    page.get_by_role("button", name="Mostrar en el índice público").click()
    in_dialog(page, "Sí, mostrar")
    expect(page.locator("#comp-oculta")).to_be_hidden(timeout=WAIT_MS)
    assert "5K del Puerto 2026" in public_index(server)

    # The results tab: the rule in words (the standings' own text) and one tab per category.
    tab(page, "Resultados")
    standings = request_json("GET", server.base_url + "/api/competencias/1/resultados/")[1]
    expect(page.locator("#regla-texto")).to_have_text(standings["regla"]["texto"],
                                                      timeout=WAIT_MS)
    tabs = page.get_by_role("tablist", name="Categorías").get_by_role("tab")
    expect(tabs).to_have_text(["General", "Abierta", "Veteranos"])
    expect(rows(page)).to_have_count(3)
    tabs.filter(has_text="Veteranos").click()
    expect(tabs.filter(has_text="Veteranos")).to_have_attribute("aria-selected", "true")
    expect(rows(page)).to_have_count(2)
    # suma: Tortugas 20:00 + 21:00 = 41:00 beats Gacelas 18:00 + 25:00 = 43:00.
    expect(rows(page).locator("td:nth-child(1)")).to_have_text(["1", "2"])
    expect(rows(page).locator("td:nth-child(2) strong")).to_have_text(["Tortugas", "Gacelas"])
    with page.expect_download() as download:
        page.get_by_role("link", name="Resultados para Excel").click()
    table = list(csv.reader(downloaded(download), delimiter=";"))
    assert [row[2] for row in table[1:]] == ["Tortugas", "Gacelas"]  # the category shown
    assert table[1][7] == "0:41:00,000"

    # Choose the rule: the mean of the best time. A wrong number is refused in the dialog.
    page.get_by_role("button", name="Regla de puntuación").click()
    dialog = in_dialog(page, "Guardar regla", Regla="Media de los mejores tiempos",
                       Tiempos_que_cuentan_por_equipo="0")
    expect(dialog.locator(".error")).to_contain_text("números enteros desde 1")
    in_dialog(page, "Guardar regla", Tiempos_que_cuentan_por_equipo="1",
              **{"Motivo (opcional)": "reglamento"})
    expect(page.get_by_role("dialog")).to_be_hidden(timeout=WAIT_MS)  # saved
    standings = request_json("GET", server.base_url + "/api/competencias/1/resultados/")[1]
    assert standings["regla"]["tipo"] == "promedio" and standings["regla"]["contados"] == 1
    expect(page.locator("#regla-texto")).to_have_text(standings["regla"]["texto"],
                                                      timeout=WAIT_MS)
    assert standings["regla"]["texto"].startswith("Media del mejor tiempo")
    # promedio of the best one: Gacelas 18:00 now beats Tortugas 20:00 (the tab is kept).
    expect(rows(page).locator("td:nth-child(2) strong")).to_have_text(["Gacelas", "Tortugas"],
                                                                      timeout=WAIT_MS)
    expect(page.locator("#auditoria")).to_contain_text("Regla de puntuación")
    expect(page.locator("#auditoria")).to_contain_text("«reglamento»")

    # The history and the records, for Excel (';') beside the plain CSV (',').
    with page.expect_download() as download:
        page.get_by_role("button", name="Historial para Excel").click()
    table = list(csv.reader(downloaded(download), delimiter=";"))
    assert table[0][:4] == ["id", "en", "usuario", "accion"]
    assert [row[3] for row in table[1:] if row[3] not in ("crear", "iniciar")] == [
        "renombrar", "ocultar", "mostrar", "regla"]
    with page.expect_download() as download:
        page.get_by_role("button", name="Historial (CSV)").click()
    assert list(csv.reader(downloaded(download)))[0][:4] == ["id", "en", "usuario", "accion"]
    tab(page, "Registros")
    with page.expect_download() as download:
        page.get_by_role("button", name="Registros para Excel").click()
    table = list(csv.reader(downloaded(download), delimiter=";"))
    assert table[0][:3] == ["id", "equipo_id", "juez_id"] and len(table) == 6
    # A new judge's password, for Excel: ';', and a BOM so "José" survives.
    tab(page, "Equipos y jueces")
    page.get_by_role("button", name="Añadir juez").click()
    in_dialog(page, "Añadir juez", Usuario_del_juez="jose", Nombre="José Ruiz")
    with page.expect_download() as download:
        page.get_by_role("button", name="Contraseñas para Excel").click()
    data = Path(download.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(data.decode("utf-8-sig").splitlines(), delimiter=";"))
    assert table[0] == ["usuario", "nombre", "contrasena"] and table[1][:2] == ["jose",
                                                                                "José Ruiz"]
    assert page.errors == [] and page.native_dialogs == []
