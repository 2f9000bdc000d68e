"""The organizer's console in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright against the real server in a subprocess, with virtual judges' phones
(rehearsal.VirtualJudge) on a loop of their own.

The story is race day through the console only: sign in, upload the roster (preview, then one
confirmation), the two judges' phones connect and show as connected, start, the records arrive
in the feed, one is voided, a paper time is added, one is moved, the public page follows, stop,
the results are made official and the CSV downloaded. Then the ways it goes wrong: a wrong
password, a judge's account, a rejected roster line, failed actions, names that look like
markup, a double click, a reload and signing out.

Screenshots of the four tabs at 390 px and 1280 px go to the test's tmp dir; with
SERVER5K_UPDATE_SCREENSHOTS=1 they replace docs/console-*.png.
"""

import csv
import datetime as dt
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

import rehearsal
from helpers import (DESKTOP, ORGANIZER, PHONE, ROOT, LoopThread, downloaded, in_dialog,
                     open_console, registros, save_screenshot, sign_in, tab, wait_for)

WAIT_MS = 10_000  # generous: the console updates within a second, the machine may be busy
ROSTER = ("juez_usuario,juez_nombre,equipo,dorsal,categoria\n"
          "maria,María López,Tortugas,1,Veteranos\n"
          "maria,María López,Liebres,2,\n"
          "jose,José Ruiz,Gacelas,3,Veteranos\n")
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def server(spawn, tmp_path):
    """A competition and its organizer, nothing else, served by ``server5k.py serve``. (The
    phones send 20-minute times seconds after the start: the tolerance keeps them from being
    flagged as impossible.)"""
    return spawn(tmp_path / "event.db",
                 race={"impossible_time_tolerance_ms": 3_600_000}).organize().start()


@pytest.fixture
def phones():
    """The judges' phones' own loop; the phones connected on it hang up after the test."""
    loop = LoopThread()
    loop.judges = []
    yield loop
    if loop.judges:
        loop.run(hang_up(loop.judges))
    loop.close()


def upload(page, text, name="lista.csv"):
    page.get_by_label("Archivo CSV").set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": text.encode("utf-8")}])
    page.get_by_role("button", name="Vista previa").click()


def record(page, rid):
    return page.locator('#registros [data-registro="%s"]' % rid)


def shoot(page, tmp_path, name):
    """The screen at both widths (the phone's second: the story goes on at the laptop's)."""
    page.evaluate("Promise.allSettled(document.getAnimations().map(a => a.finished))")
    page.evaluate("window.scrollTo(0, 0); document.getElementById('hecho').hidden = true")
    for viewport, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page.set_viewport_size(viewport)
        save_screenshot(page, tmp_path, "console-%s-%s.png" % (name, suffix))
        if viewport is PHONE:
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)


def test_race_day_through_the_console(browser, server, phones, tmp_path):
    cid = 1
    page = open_console(browser, server)

    # Sign in and open the competition.
    sign_in(page)
    page.get_by_role("link", name="5K del Puerto").click()
    expect(page.locator("#comp-nombre")).to_have_text("5K del Puerto")
    # Its standings read carries its token (issue 21): never behind the anonymous turns.
    reads = [r for r in page.requests if r.url.endswith("/api/competencias/1/resultados/")]
    assert reads and all(r.headers.get("authorization", "").startswith("Bearer ") for r in reads)

    # The roster: a preview that writes nothing, then one confirmation.
    tab(page, "Equipos y jueces")
    upload(page, ROSTER)
    expect(page.locator("#previa-resumen")).to_have_text("Se crearán 2 jueces y 3 equipos.")
    expect(page.locator("#previa-lineas")).to_contain_text("Línea 4: Gacelas · dorsal 3 · juez jose")
    assert server.api("GET", "/api/jueces/")["jueces"] == []
    page.get_by_role("button", name="Importar").click()
    in_dialog(page, "Sí, importar")
    expect(page.locator("#credenciales")).to_be_visible()
    expect(page.locator("#equipos [data-equipo-id]")).to_have_count(3)
    with page.expect_download() as download:
        page.get_by_role("button", name="Descargar contraseñas (CSV)").click()
    creds = {row["usuario"]: row["contrasena"] for row in csv.DictReader(downloaded(download))}
    assert sorted(creds) == ["jose", "maria"] and all(len(p) > 8 for p in creds.values())
    shoot(page, tmp_path, "equipos")

    # The roster again, corrected (a category fixed): the preview says what changes, and the
    # import applies it (issue 20 item 12), with nothing new to create.
    upload(page, ROSTER.replace("Liebres,2,", "Liebres,2,Abierta"), "lista-corregida.csv")
    expect(page.locator("#previa-resumen")).to_have_text(
        "Se crearán 0 jueces y 0 equipos (3 ya estaban); se corregirán 1 equipos que ya estaban.")
    expect(page.locator("#previa-lineas")).to_contain_text(
        "Línea 3: Liebres · dorsal 2 · juez maria · Abierta · categoria: — → Abierta")
    page.get_by_role("button", name="Importar").click()
    in_dialog(page, "Sí, importar")
    expect(page.locator("#vista-previa")).to_be_hidden()
    liebres = [t for t in server.api("GET", "/api/competencias/1/resultados/")["clasificacion"]
               if t["equipo"] == "Liebres"]
    assert liebres[0]["categoria"] == "Abierta"

    # Two judges' phones log in with them and connect: the board shows them connected.
    tab(page, "Carrera")
    expect(page.locator("#conectados")).to_have_text("0 de 2 conectados")
    judges = phones.judges = phones.run(connect_phones(server, creds))
    maria, jose = judges
    expect(page.locator("#conectados")).to_have_text("2 de 2 conectados", timeout=WAIT_MS)
    expect(page.locator('#tablero [data-juez-id="%d"]' % maria.juez_id)).to_contain_text(
        "Conectado")

    # Start: the confirmation says how many judges are connected; both phones hear it.
    page.get_by_role("button", name="Iniciar carrera").click()
    expect(page.get_by_role("dialog")).to_contain_text("Hay 2 de 2 jueces conectados.")
    in_dialog(page, "Sí, iniciar")
    phones.run(started(judges))
    expect(page.locator("#comp-estado")).to_have_text("En curso", timeout=WAIT_MS)
    expect(page.locator("#reloj")).to_have_text(re.compile(r"^0:00:0\d$"), timeout=WAIT_MS)
    first = page.locator("#reloj").inner_text()
    expect(page.locator("#reloj")).not_to_have_text(first, timeout=WAIT_MS)  # it runs

    # The phones send their times: the feed shows them, newest first, without a reload.
    tortugas, liebres = maria.equipos
    (gacelas,) = jose.equipos
    sent = phones.run(send(maria, tortugas, 1_200_000, 1_250_000))
    sent += phones.run(send(maria, liebres, 1_300_000))
    sent += phones.run(send(jose, gacelas, 1_320_000))
    expect(page.locator('#tablero [data-juez-id="%d"]' % maria.juez_id)).to_contain_text(
        "Tortugas: 2 tiempos", timeout=WAIT_MS)
    tab(page, "Registros")
    expect(page.locator("#registros [data-registro]")).to_have_count(4, timeout=WAIT_MS)
    assert page.locator("#registros [data-registro]").first.get_attribute(
        "data-registro") == sent[-1]
    page.evaluate("window.sinRecargar = true")

    # Void one (a stray tap), with its reason.
    record(page, sent[1]).get_by_role("button", name="Anular").click()
    in_dialog(page, "Anular", Motivo="toque por error")
    expect(record(page, sent[1])).to_contain_text("anulado", timeout=WAIT_MS)
    expect(record(page, sent[1]).get_by_role("button", name="Restaurar")).to_be_visible()

    # A paper time for a phone that lost a runner.
    page.get_by_role("button", name="Añadir tiempo").click()
    in_dialog(page, "Guardar tiempo", Equipo="Gacelas (dorsal 3)", **{
        "Tiempo (p. ej. 19:45.2)": "21:03.5", "Motivo": "hoja de papel"})
    expect(page.locator("#registros [data-registro]")).to_have_count(5, timeout=WAIT_MS)
    expect(page.locator("#registros [data-registro]").first).to_contain_text("0:21:03.500")
    expect(page.locator("#registros [data-registro]").first).to_contain_text("en papel")

    # Move one that was tapped on the wrong team.
    record(page, sent[2]).get_by_role("button", name="Mover").click()
    in_dialog(page, "Mover", Al_equipo="Tortugas (dorsal 1)", Motivo="equipo equivocado")
    expect(record(page, sent[2])).to_contain_text("Tortugas", timeout=WAIT_MS)
    record(page, sent[2]).get_by_role("button", name="Historial").click()
    history = page.get_by_role("dialog")
    expect(history).to_contain_text("Movido de equipo")
    expect(history).to_contain_text("«equipo equivocado»")
    history.get_by_role("button", name="Cerrar").click()
    shoot(page, tmp_path, "registros")

    # The public page follows: Tortugas 2 counted (one voided, one moved in), Liebres none.
    public = browser.new_page(viewport=PHONE, locale="es-ES")
    public.goto(server.base_url + "/competencias/%d/" % cid)
    row = public.locator('#clasificacion tbody tr[data-equipo-id="%d"]' % tortugas)
    expect(row.locator("td.contados")).to_have_text("2", timeout=WAIT_MS)
    expect(row.locator("td.total")).to_have_text("0:41:40.000")
    gacelas_row = public.locator('#clasificacion tbody tr[data-equipo-id="%d"]' % gacelas)
    expect(gacelas_row.locator("td.contados")).to_have_text("2")

    # Stop, then make the results official: the public page says so within a second.
    tab(page, "Carrera")
    shoot(page, tmp_path, "carrera")
    page.get_by_role("button", name="Detener carrera").click()
    in_dialog(page, "Sí, detener")
    expect(page.locator("#comp-estado")).to_have_text("Finalizada", timeout=WAIT_MS)
    tab(page, "Resultados")
    page.get_by_role("button", name="Oficializar resultados").click()
    in_dialog(page, "Sí, oficializar")
    expect(page.locator("#comp-oficial")).to_have_text("Resultados oficiales", timeout=WAIT_MS)
    expect(public.locator("#oficial")).to_have_text("Resultados oficiales", timeout=WAIT_MS)
    expect(page.locator("#auditoria")).to_contain_text("Resultados oficiales")
    with page.expect_download() as download:
        page.get_by_role("link", name="Resultados (CSV)").click()
    rows = list(csv.DictReader(downloaded(download)))
    assert [(r["equipo"], r["posicion"], r["registros_contados"]) for r in rows] == [
        ("Tortugas", "1", "2"), ("Gacelas", "2", "2"), ("Liebres", "", "0")]
    with page.expect_download() as download:
        page.get_by_role("button", name="Historial (CSV)").click()
    assert "toque por error" in downloaded(download).read()
    shoot(page, tmp_path, "resultados")

    # Every change is in the history, by the organizer (after the competition's creation by the
    # command line), with its reason.
    created, *acciones = server.api("GET", "/api/competencias/%d/auditoria/" % cid)["acciones"]
    assert (created["accion"], created["usuario"]) == ("crear", None)
    # (an import writes its judges first, then its teams; the corrected roster, one editar)
    assert [(a["accion"], a["objeto"]) for a in acciones] == [("crear", "juez"), ("crear", "juez"),
        ("crear", "equipo"), ("crear", "equipo"), ("crear", "equipo"), ("editar", "equipo"),
        ("iniciar", "competencia"),
        ("anular", "registro"), ("manual", "registro"), ("mover", "registro"),
        ("detener", "competencia"), ("oficializar", "competencia")]
    assert {a["usuario"] for a in acciones} == {"ana"}
    assert [a["motivo"] for a in acciones[7:10]] == ["toque por error", "hoja de papel",
                                                    "equipo equivocado"]
    # No token in a URL or in the server's log: the live socket opened with a ticket.
    assert page.sockets and all(re.fullmatch(r"ws://[^/]+/ws/organizador/1/\?ticket=[\w-]+", u)
                                for u in page.sockets)
    assert "eyJ" not in page.url and "eyJ" not in server.log()
    assert page.evaluate("window.sinRecargar") is True
    assert page.errors == [] and page.native_dialogs == []


async def connect_phones(server, creds):
    http = rehearsal.make_http()
    judges = [rehearsal.VirtualJudge(server.base_url, name, creds[name], http=http)
              for name in ("maria", "jose")]
    for judge in judges:
        await judge.login()
        await judge.learn()
        await judge.connect()
    return judges


async def started(judges):
    for judge in judges:
        await judge.started.wait()


async def send(judge, equipo_id, *tiempos):
    """The phone's upload, each time stamped when its runner finished on the phone's clock;
    returns its records' ids, in order."""
    start = dt.datetime.fromisoformat(judge.start_info["started_at"].replace("Z", ""))
    records = [registros([t], at=start + dt.timedelta(milliseconds=t), ids=True)[0]
               for t in tiempos]
    assert await judge.submit(equipo_id, records)
    return [r["id_registro"] for r in records]


async def hang_up(judges):
    for judge in judges:
        judge.close()
    judges[0].http.close()


def test_the_console_says_what_went_wrong_in_plain_words(browser, server, tmp_path):
    page = open_console(browser, server, PHONE)
    form_error = page.locator("#form-entrar .error")

    # A wrong password, then a judge's account.
    sign_in(page, (ORGANIZER[0], "no-es-esta"))
    expect(form_error).to_have_text("Usuario o contraseña incorrectos, o usuario inactivo.")
    server.api("POST", "/api/competencias/1/jueces/", {"username": "pepe",
                                                       "password": "clave-de-pepe"})
    sign_in(page, ("pepe", "clave-de-pepe"))
    expect(form_error).to_have_text(
        "Esta cuenta es de un juez: la consola es solo para organizadores.")
    sign_in(page)
    page.get_by_role("link", name="5K del Puerto").click()

    # A rejected roster line: said with its line, and nothing imported.
    tab(page, "Equipos y jueces")
    upload(page, ROSTER + "ana,Ana,Linces,uno\n")
    expect(page.locator("#form-importar .error")).to_contain_text(
        "línea 5: el dorsal 'uno' no es un número")
    expect(page.locator("#vista-previa")).to_be_hidden()
    assert [j["username"] for j in server.api("GET", "/api/jueces/")["jueces"]] == ["pepe"]

    # Names are text, never markup: a roster full of markup shows it as it is.
    upload(page, "juez_usuario,juez_nombre,equipo,dorsal\nraro,%s,\"%s\",7\n" % (XSS, XSS))
    expect(page.locator("#previa-lineas")).to_contain_text(XSS)
    page.get_by_role("button", name="Importar").click()
    in_dialog(page, "Sí, importar")
    expect(page.locator("#equipos [data-equipo-id]")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#equipos")).to_contain_text(XSS)
    expect(page.locator("#jueces")).to_contain_text(XSS)
    assert page.locator("img").count() == 0

    # A double click does it once: one paper time (no second request).
    tab(page, "Registros")
    page.get_by_role("button", name="Añadir tiempo").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Tiempo (p. ej. 19:45.2)").fill("19:45.2")
    dialog.get_by_label("Motivo").fill("hoja de papel")
    dialog.get_by_role("button", name="Guardar tiempo").dblclick()
    expect(page.locator("#registros [data-registro]")).to_have_count(1, timeout=WAIT_MS)
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(500)
    assert len(server.api("GET", "/api/competencias/1/registros/")["registros"]) == 1

    # A failed action: the server's reason in the dialog, which stays open to fix it.
    page.get_by_role("button", name="Añadir tiempo").click()
    in_dialog(page, "Guardar tiempo", **{"Tiempo (p. ej. 19:45.2)": "19:45.2"})
    expect(dialog.locator(".error")).to_have_text(
        "Falta el motivo de la corrección. Obligatorio: diga por qué (texto, hasta 500 caracteres).")
    dialog.get_by_label("Tiempo (p. ej. 19:45.2)").fill("19 minutos")
    dialog.get_by_label("Motivo").fill("hoja de papel")
    dialog.get_by_role("button", name="Guardar tiempo").click()
    expect(dialog.locator(".error")).to_contain_text("Escriba el tiempo como 19:45.2")
    dialog.get_by_role("button", name="Cancelar").click()
    expect(dialog).to_be_hidden()

    # A team with a time cannot be removed: the dialog says why.
    tab(page, "Equipos y jueces")
    page.locator("#equipos [data-equipo-id]").get_by_role("button", name="Eliminar").click()
    dialog = in_dialog(page, "Sí, eliminar")
    expect(dialog.locator(".error")).to_contain_text("tiene tiempos: no se puede eliminar")
    dialog.get_by_role("button", name="Cancelar").click()
    tab(page, "Carrera")
    page.get_by_role("button", name="Iniciar carrera").click()
    in_dialog(page, "Sí, iniciar")
    expect(page.locator("#comp-estado")).to_have_text("En curso", timeout=WAIT_MS)
    server.api("POST", "/api/competencias/1/detener/")  # from elsewhere: the page follows
    expect(page.locator("#comp-estado")).to_have_text("Finalizada", timeout=WAIT_MS)

    # The session survives a reload, and ends with "Salir".
    page.reload()
    expect(page.locator("#comp-nombre")).to_have_text("5K del Puerto", timeout=WAIT_MS)
    page.get_by_role("button", name="Salir").click()
    expect(page.get_by_role("button", name="Entrar")).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="Entrar")).to_be_visible()
    assert page.evaluate("Object.keys(sessionStorage)") == []
    assert page.errors == [] and page.native_dialogs == []


def test_an_import_stopped_partway_shows_the_passwords_it_made(browser, server, tmp_path):
    """Issue 22: an import through the console that stops partway (here another competition's
    judge takes the username of the 51st new judge while the 51 passwords are being hashed,
    after the roster was planned) says so, and shows the passwords of the 50 judges its first
    step made: they are shown nowhere else. Importing the same list again completes it."""
    server.api("POST", "/api/competencias/", {"nombre": "Otra carrera"})
    roster = "juez_usuario,juez_nombre,equipo,dorsal\n" + "".join(
        "j%02d,,Equipo %d,%d\n" % (n, n, n) for n in range(1, 52))
    page = open_console(browser, server)
    sign_in(page)
    page.get_by_role("link", name="5K del Puerto").click()
    tab(page, "Equipos y jueces")
    upload(page, roster)
    expect(page.locator("#previa-resumen")).to_have_text("Se crearán 51 jueces y 51 equipos.")
    wait_for(lambda: not list(tmp_path.glob(".import.*")), what="the preview's spool file gone")
    page.get_by_role("button", name="Importar").click()
    in_dialog(page, "Sí, importar")
    # Planned (the worker wrote its spool file): the passwords are being hashed, then written.
    wait_for(lambda: list(tmp_path.glob(".import.*")), what="the import planned")
    server.api("POST", "/api/competencias/2/jueces/", {"username": "j51",
                                                       "password": "clave-de-j51"})
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("La importación se detuvo tras escribir 1 de sus 3 pasos "
                                   "(50 jueces, 0 equipos nuevos", timeout=60_000)
    expect(page.locator("#credenciales")).to_be_visible()
    expect(page.locator("#credenciales-filas tr")).to_have_count(50)
    first = page.locator("#credenciales-filas tr").first.locator("td")
    assert first.nth(0).inner_text() == "j01"
    assert server.token("j01", first.nth(2).inner_text())
    dialog.get_by_role("button", name="Cancelar").click()
    upload(page, roster, "otra-vez.csv")
    expect(page.locator("#previa-resumen")).to_contain_text("Se crearán 1 jueces y 51 equipos")
    page.get_by_role("button", name="Importar").click()
    in_dialog(page, "Sí, importar")
    expect(page.locator("#equipos [data-equipo-id]")).to_have_count(51, timeout=WAIT_MS)
    expect(page.locator("#credenciales-filas tr")).to_have_count(50)  # j51 has its account


def test_a_session_revoked_while_the_console_is_open_goes_back_to_sign_in(browser, server):
    """A new password for the organizer, from another process: the console's live socket is
    closed (1008), the dialog left open closes, and the sign-in screen says why (the socket,
    the session, the dialog and the sign-in screen are four of the console's files)."""
    page = open_console(browser, server)
    sign_in(page)
    page.get_by_role("link", name="5K del Puerto").click()
    expect(page.locator("#en-vivo")).to_have_text("● En vivo", timeout=WAIT_MS)
    page.get_by_role("button", name="Cambiar el nombre").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    # (The command line changes only a judge's password while the server runs: another
    # process writes the organizer's into the database, as the socket guard expects.)
    subprocess.run([sys.executable, "-c", "import sys, models, identity\n"
                    "models.open_database(sys.argv[1])\n"
                    "with models.db.connection_context():\n"
                    "    identity.set_password(sys.argv[2], sys.argv[3])",
                    server.db_path, ORGANIZER[0], "otra-clave-del-org"],
                   cwd=ROOT, check=True, timeout=60)
    expect(page.locator("#form-entrar .error")).to_have_text(
        "Su sesión ya no vale (cambió la contraseña o se desactivó la cuenta). Vuelva a entrar.",
        timeout=WAIT_MS)
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.locator("#en-vivo")).to_be_hidden()
    assert page.evaluate("Object.keys(sessionStorage)") == []
    sign_in(page, (ORGANIZER[0], "otra-clave-del-org"))
    expect(page.locator("#comp-nombre")).to_have_text("5K del Puerto", timeout=WAIT_MS)
    assert page.errors == [] and page.native_dialogs == []
