"""The organizer's console, below the browser (the browser itself: test_console_browser.py): its
live socket ``/ws/organizador/{id}/`` opened with a single-use ticket and telling what changed
within a second, and its page served with a strict Content-Security-Policy and no inline
script."""

import asyncio
import re

import pytest
import tornado.websocket

import models
import identity
from helpers import next_message, nothing_within, registros


async def console_ticket(client, token):
    code, answer = await client.post("/api/organizador/ws-ticket/", token=token)
    assert code == 200, answer
    assert answer["expires_in"] == 30 and len(answer["ticket"]) >= 32
    return answer["ticket"]


async def console(client, cid, token):
    """An open console socket and its conexion.establecida."""
    ws = await tornado.websocket.websocket_connect(client.ws_url(
        "/ws/organizador/%d/?ticket=%s" % (cid, await console_ticket(client, token))))
    return ws, await next_message(ws)


async def changes(ws, timeout=1.0):
    """The kinds of change the next ``cambios`` message names (within ``timeout``: the
    console's promise is a second)."""
    message = await next_message(ws, timeout)
    assert message["type"] == "cambios", message
    return set(message["data"]["que"])


@pytest.mark.gen_test(timeout=30)
async def test_the_console_hears_what_changed_within_a_second(client, event):
    cid, org = event["competencia"], await client.access("org", "org-pass")
    ws, hello = await console(client, cid, org)
    assert hello["type"] == "conexion.establecida"
    assert hello["data"]["competencia_id"] == cid and hello["data"]["server_time"].endswith("Z")
    assert hello["data"]["competencia"]["estado"] == "programada"
    await nothing_within(ws, 0.3)
    judge = await client.access("juez1", "pass-juez1")
    judge_ws, _ = await client.judge_socket(event["jueces"][0], judge)
    assert await changes(ws) == {"conexiones"}
    code, _ = await client.post("/api/competencias/%d/iniciar/" % cid, token=org)
    assert "estado" in await changes(ws)
    code, _ = await client.post("/api/enviar_tiempos/", {
        "equipo_id": event["equipos"]["a"], "registros": registros(3)}, token=judge)
    assert code == 201
    assert "registros" in await changes(ws)
    code, _, _ = await client.request("PATCH", "/api/equipos/%d/" % event["equipos"]["b"],
                                      {"nombre": "Equipo Be"}, org)
    assert "equipos" in await changes(ws)
    # A burst is one message (at most every 0.25 s), naming every kind of change in it.
    for n in range(5):
        await client.post("/api/enviar_tiempos/", {
            "equipo_id": event["equipos"]["a"], "registros": registros([n + 1])}, token=judge)
    judge_ws.close()
    seen = await changes(ws)
    while "conexiones" not in seen:
        seen |= await changes(ws)
    assert seen <= {"registros", "conexiones"}
    # Another competition's changes are not told here.
    other = await client.access("juez3", "pass-juez3")
    await client.post("/api/enviar_tiempos/", {"equipo_id": event["equipos"]["x"],
                                                "registros": registros(1)}, token=other)
    await nothing_within(ws, 0.5)
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_console_socket_takes_an_organizers_ticket_once_and_never_a_token(
        client, event):
    cid, org = event["competencia"], await client.access("org", "org-pass")
    judge = await client.access("juez1", "pass-juez1")
    path = "/ws/organizador/%d/?%s"
    assert await client.handshake_status(path % (cid, "")) == 401
    assert await client.handshake_status(path % (cid, "token=" + org)) == 401
    ticket = await console_ticket(client, org)
    assert await client.handshake_status("/ws/organizador/999/?ticket=" + ticket) == 404
    assert await client.handshake_status(path % (cid, "ticket=" + ticket)) == 401  # spent
    # A judge's ticket opens no console (and a judge cannot get a console ticket).
    code, answer = await client.post("/api/ws-ticket/", token=judge)
    assert await client.handshake_status(path % (cid, "ticket=" + answer["ticket"])) == 403
    code, answer = await client.post("/api/organizador/ws-ticket/", token=judge)
    assert (code, answer["code"]) == (403, "organizer_only")
    # An organizer's ticket opens no judge socket.
    assert await client.handshake_status("/ws/juez/%d/?ticket=%s" % (
        event["jueces"][0], await console_ticket(client, org))) == 403


@pytest.mark.gen_test(timeout=30)
async def test_a_console_closes_when_its_organizers_password_changes(client, event, app):
    cid, org = event["competencia"], await client.access("org", "org-pass")
    ws, _ = await console(client, cid, org)
    with models.db.connection_context():  # `judge passwd org` from its own process
        identity.set_password("org", "nueva-clave-org")
    assert await app.settings["server5k_guard"].sweep() == 1
    while await asyncio.wait_for(ws.read_message(), 10) is not None:
        pass
    assert ws.close_code == 1008
    ws.close()


@pytest.mark.gen_test
async def test_the_console_page_sends_a_strict_csp_and_runs_no_inline_script(client, event):
    html, response, scripts = await client.strict_page("/organizador/")
    assert response.headers["Cache-Control"] == "no-store"
    # Its own scripts only (the helpers the pages share, the clock-text parser it shares with
    # the server's tests, the console's parts, one concern each, and last the console that
    # starts them), from files, none inline, each with its content's hash.
    assert [re.fullmatch(r'src="/static/([\w/]+\.js)\?v=[0-9a-f]+"', a.strip())[1]
            for a, _ in scripts] == [
        "comun.js", "duracion.js", "organizador/pagina.js", "organizador/dialogo.js",
        "organizador/sesion.js", "organizador/competencia.js", "organizador/carrera.js",
        "organizador/registros.js", "organizador/plantilla.js", "organizador/clasificacion.js",
        "organizador.js"]
    console_code = ""
    for attributes, _ in scripts:
        code, script, _ = await client.request("GET", re.search(r'src="([^"]+)"', attributes)[1])
        assert code == 200
        # Values are written as text: the scripts never parse markup nor run strings.
        for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                       "eval(", "new Function", "localStorage"):
            assert unsafe not in script, unsafe
        if "organizador" in attributes:
            console_code += script
    assert "sessionStorage.setItem" in console_code  # (the console's session: organizador/sesion.js)
