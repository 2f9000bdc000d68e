"""Race morning's roster and accounts (issue 13, ORGANIZER.md "Roster and accounts"): competitions,
judges and teams created and edited by the organizer, a roster CSV previewed and imported, and
the rules that take effect at once on a running server: a new password or a deactivation
refuses every token issued before (401 ``token_revoked``) and closes the judge's sockets; a
reassigned team is the new judge's at once. A judge's token can do none of it. The real app, a
real SQLite file, real HTTP and WebSocket clients; the command line against the real server."""

import asyncio
import json

import pytest

import models
import identity as identity_room
import registration
import submissions
from helpers import fetch, judge_socket, login, registros, submission, wait_for, wait_for_async

ROSTER = ("juez_usuario,juez_nombre,equipo,dorsal,categoria\n"
          "maria,María López,Tortugas,10,Veteranos\n"
          "maria,María López,Liebres,11,\n"
          "jose,José Ruiz,Gacelas,12,Veteranos\n")


async def audit(client, cid, token):
    return (await client.call("GET", "/api/competencias/%d/auditoria/" % cid,
                              token=token))["acciones"]


async def importar(client, cid, token, text, dry_run=False, status=200):
    return await client.call("POST", "/api/competencias/%d/importar/%s" % (
        cid, "?dry_run=1" if dry_run else ""), token=token, raw=text, status=status,
        headers={"Content-Type": "text/csv; charset=utf-8"})


# -- who may ------------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_a_judge_token_can_use_none_of_the_roster_endpoints(client, event):
    cid, a, j1 = event["competencia"], event["equipos"]["a"], event["jueces"][0]
    judge, token = await client.access("juez1", "pass-juez1"), await client.organizer()
    before = await audit(client, cid, token)
    csv_headers = {"Content-Type": "text/csv"}
    # (GET /api/competencias/ answers a judge Movil5K's list of its own competition: issue 23)
    code, own = await client.get("/api/competencias/", token=judge)
    assert code == 200 and [c["id"] for c in own] == [cid]
    for method, path, body, headers in [
            ("POST", "/api/competencias/", {"nombre": "Mía"}, None),
            ("POST", "/api/competencias/%d/jueces/" % cid, {"username": "colado"}, None),
            ("GET", "/api/jueces/", None, None),
            ("PATCH", "/api/jueces/%d/" % j1, {"password": "me-la-cambio-yo"}, None),
            ("PATCH", "/api/jueces/%d/" % event["jueces"][1], {"activo": False}, None),
            ("POST", "/api/competencias/%d/equipos/" % cid,
             {"nombre": "Extra", "dorsal": 99, "juez_id": j1}, None),
            ("PATCH", "/api/equipos/%d/" % a, {"juez_id": event["jueces"][1]}, None),
            ("DELETE", "/api/equipos/%d/" % event["equipos"]["c"], None, None),
            ("POST", "/api/competencias/%d/importar/" % cid, None, csv_headers),
            ("POST", "/api/competencias/%d/importar/?dry_run=1" % cid, None, csv_headers),
            ("POST", "/api/organizador/ws-ticket/", None, None)]:
        raw = ROSTER if headers else None
        code, answer, _ = await client.request(method, path, body, judge, headers=headers,
                                               raw=raw)
        assert (code, answer["code"]) == (403, "organizer_only"), (method, path, answer)
        code, answer, _ = await client.request(method, path, body, None, headers=headers,
                                               raw=raw)
        assert code == 401, (method, path, answer)
    assert await audit(client, cid, token) == before  # nothing changed
    assert (await client.post("/api/token/", {"username": "juez1",
                                              "password": "pass-juez1"}))[0] == 200
    code, me = await client.get("/api/me/", token=await client.access("juez1", "pass-juez1"))
    assert [e["id"] for e in me["juez"]["equipos"]] == [a, event["equipos"]["b"]]


# -- competitions, judges, teams ------------------------------------------------------------------
@pytest.mark.gen_test
async def test_create_and_list_competitions(client, event):
    token = await client.organizer()
    comp = await client.call("POST", "/api/competencias/",
                             {"nombre": " 5K de Reyes ", "fecha_hora": "2027-01-06T10:00:00+01:00"},
                             token, status=201)
    assert comp["nombre"] == "5K de Reyes" and comp["fecha_hora"] == "2027-01-06T09:00:00.000Z"
    assert comp["estado"] == "programada"
    listed = (await client.call("GET", "/api/competencias/", token=token))["competencias"]
    assert [c["id"] for c in listed] == [event["competencia"], event["otra"], comp["id"]]
    (created,) = await audit(client, comp["id"], token)
    assert (created["accion"], created["objeto"], created["usuario"]) == (
        "crear", "competencia", "org")
    for body in ({}, {"nombre": ""}, {"nombre": 5}, {"nombre": "x", "fecha_hora": "mañana"},
                 {"nombre": "x" * 201}):
        answer = await client.call("POST", "/api/competencias/", body, token, status=400)
        assert answer["code"] == "validation_error" and answer["errors"], body


@pytest.mark.gen_test
async def test_a_new_judge_gets_a_generated_password_once_or_one_of_8_characters(client, event):
    cid, token = event["competencia"], await client.organizer()
    path = "/api/competencias/%d/jueces/" % cid
    made = await client.call("POST", path, {"username": "Lucia", "nombre": "Lucía Gil"}, token,
                             status=201)
    juez, password = made["juez"], made["password"]
    assert len(password) > identity_room.MIN_PASSWORD
    assert (juez["username"], juez["nombre"], juez["activo"]) == ("Lucia", "Lucía Gil", True)
    assert juez["competencia"]["id"] == cid and juez["equipos"] == []
    code, me = await client.get("/api/me/", token=await client.access("lucia", password))
    assert me["juez"]["id"] == juez["id"]
    chosen = await client.call("POST", path, {"username": "pablo", "password": "8 chars!"},
                               token, status=201)
    assert chosen["password"] is None and chosen["juez"]["nombre"] == "pablo"
    await client.access("pablo", "8 chars!")
    for body in ({"username": "corta", "password": "7 chars"}, {"username": "x", "password": 12345678},
                 {"username": "x", "password": "        "}):
        answer = await client.call("POST", path, body, token, status=400)
        assert answer["code"] == "validation_error" and "password" in answer["errors"]
    assert (await client.call("POST", path, {"username": "LUCIA"}, token,
                              status=409))["code"] == "username_taken"
    assert (await client.call("POST", "/api/competencias/999/jueces/", {"username": "y"}, token,
                              status=404))["code"] == "competition_not_found"
    assert [(a["accion"], a["objeto"], a["objeto_id"]) for a in await audit(client, cid, token)] == [
        ("crear", "juez", str(juez["id"])), ("crear", "juez", str(chosen["juez"]["id"]))]


@pytest.mark.gen_test
async def test_teams_are_added_edited_and_a_test_team_removed(client, event):
    cid, token, j1, j2 = event["competencia"], await client.organizer(), *event["jueces"][:2]
    team = await client.call("POST", "/api/competencias/%d/equipos/" % cid,
                             {"nombre": "Prueba", "dorsal": 50, "juez_id": j1, "categoria": "Mixto"},
                             token, status=201)
    assert (team["nombre"], team["dorsal"], team["juez_id"], team["categoria"]) == (
        "Prueba", 50, j1, "Mixto")
    for body, status, code in (
            ({"nombre": "Otra", "dorsal": 50, "juez_id": j1}, 409, "dorsal_taken"),
            ({"nombre": "Otra", "dorsal": 51, "juez_id": event["jueces"][2]}, 400,
             "judge_other_competition"),
            ({"nombre": "Otra", "dorsal": 51, "juez_id": 999}, 404, "judge_not_found"),
            ({"nombre": "Otra", "dorsal": 0, "juez_id": j1}, 400, "validation_error"),
            ({"nombre": "Otra", "dorsal": True, "juez_id": j1}, 400, "validation_error"),
            ({"nombre": " ", "dorsal": 51, "juez_id": j1}, 400, "validation_error")):
        answer = await client.call("POST", "/api/competencias/%d/equipos/" % cid, body, token,
                                   status=status)
        assert answer["code"] == code, body
    path = "/api/equipos/%d/" % team["id"]
    edited = await client.call("PATCH", path, {"nombre": "Los de Prueba", "dorsal": 52,
                                               "juez_id": j2, "categoria": None}, token)
    assert (edited["nombre"], edited["dorsal"], edited["juez_id"], edited["categoria"]) == (
        "Los de Prueba", 52, j2, None)
    same = await client.call("PATCH", path, {"nombre": "Los de Prueba"}, token)  # no change
    assert same == edited
    assert (await client.call("PATCH", path, {"dorsal": 1}, token, status=409))["code"] == (
        "dorsal_taken")
    assert (await client.call("PATCH", path, {"otra": 1}, token, status=400))["code"] == (
        "validation_error")
    # A team with records cannot be removed; the test team can.
    await client.post("/api/enviar_tiempos/", submission(event["equipos"]["a"], [60_000]),
                      await client.access("juez1", "pass-juez1"))
    answer = await client.call("DELETE", "/api/equipos/%d/" % event["equipos"]["a"], None, token,
                               status=409)
    assert answer["code"] == "team_has_records"
    code, _, response = await client.request("DELETE", path, None, token)
    assert code == 204 and not response.body
    assert (await client.call("DELETE", path, None, token, status=404))["code"] == (
        "team_not_found")
    entries = [a for a in await audit(client, cid, token) if a["objeto"] == "equipo"]
    assert [a["accion"] for a in entries] == ["crear", "editar", "eliminar"]
    assert entries[1]["antes"] == {"nombre": "Prueba", "dorsal": 50, "juez_id": j1,
                                   "categoria": "Mixto"}
    assert entries[1]["despues"] == {"nombre": "Los de Prueba", "dorsal": 52, "juez_id": j2,
                                     "categoria": None}
    assert entries[2]["antes"]["nombre"] == "Los de Prueba"
    standings = (await client.get("/api/competencias/%d/resultados/" % cid))[1]
    assert team["id"] not in [r["equipo_id"] for r in standings["clasificacion"]]


@pytest.mark.gen_test
async def test_a_reassigned_team_is_the_new_judges_at_once(client, event):
    cid, a, (j1, j2) = event["competencia"], event["equipos"]["a"], event["jueces"][:2]
    token = await client.organizer()
    juez1, juez2 = (await client.access("juez1", "pass-juez1"),
                    await client.access("juez2", "pass-juez2"))
    await client.enviar_tiempos(juez1, a, 1_200_000)
    await client.call("PATCH", "/api/equipos/%d/" % a, {"juez_id": j2}, token)
    code, me = await client.get("/api/me/", token=juez2)  # the same token, no new login
    assert a in [e["id"] for e in me["juez"]["equipos"]]
    code, me = await client.get("/api/me/", token=juez1)
    assert a not in [e["id"] for e in me["juez"]["equipos"]]
    answer = await client.enviar_tiempos(juez1, a, 1_300_000, minute=1, status=403)
    assert answer["code"] == "team_not_assigned"
    await client.enviar_tiempos(juez2, a, 1_300_000, minute=1)
    records = (await client.call("GET", "/api/competencias/%d/registros/?equipo_id=%d" % (cid, a),
                                 token=token))["registros"]
    assert [r["juez_id"] for r in records] == [j1, j2]  # each keeps the judge who sent it


# -- revocation -----------------------------------------------------------------------------------
async def closed(ws):
    """The close code once the server has closed ``ws`` (messages before it are skipped)."""
    while await asyncio.wait_for(ws.read_message(), 10) is not None:
        pass
    ws.close()  # (the client's side of it)
    return ws.close_code


async def refused_everywhere(client, event, tokens, ticket):
    """Every place that takes a judge's token or ticket refuses these with 401."""
    access, refresh, j1 = tokens["access"], tokens["refresh"], event["jueces"][0]
    for code, answer in [await client.get("/api/me/", token=access),
                         await client.post("/api/ws-ticket/", token=access),
                         await client.post("/api/token/refresh/", {"refresh": refresh}),
                         await client.post("/api/enviar_tiempos/",
                                           submission(event["equipos"]["a"], [1_000_000]), access),
                         await client.get("/api/equipos/%d/registros/" % event["equipos"]["a"],
                                          token=access)]:
        assert (code, answer["code"]) == (401, "token_revoked"), answer
    assert await client.handshake_status("/ws/juez/%d/?token=%s" % (j1, access)) == 401
    assert await client.handshake_status("/ws/juez/%d/?ticket=%s" % (j1, ticket)) == 401


@pytest.mark.gen_test(timeout=30)
async def test_a_new_password_refuses_every_earlier_token_and_closes_the_sockets(client, event):
    cid, j1, token = event["competencia"], event["jueces"][0], await client.organizer()
    tokens = await client.login("juez1", "pass-juez1")
    await client.enviar_tiempos(tokens["access"], event["equipos"]["a"], 60_000)
    ws, _ = await client.judge_socket(j1, tokens["access"])
    ticket_ws, _ = await client.judge_socket(j1, ticket=(await client.post(
        "/api/ws-ticket/", token=tokens["access"]))[1]["ticket"])
    unused = (await client.post("/api/ws-ticket/", token=tokens["access"]))[1]["ticket"]
    other, _ = await client.judge_socket(event["jueces"][1], await client.access("juez2",
                                                                                 "pass-juez2"))
    short = await client.call("PATCH", "/api/jueces/%d/" % j1, {"password": "corta"}, token,
                              status=400)
    assert "password" in short["errors"]
    await client.call("PATCH", "/api/jueces/%d/" % j1, {"password": "nueva-clave"}, token)
    assert await closed(ws) == 1008 and await closed(ticket_ws) == 1008
    await refused_everywhere(client, event, tokens, unused)
    assert (await client.post("/api/token/", {"username": "juez1",
                                              "password": "pass-juez1"}))[0] == 401
    fresh = await client.access("juez1", "nueva-clave")
    await client.enviar_tiempos(fresh, event["equipos"]["a"], 70_000)
    assert (await client.get("/api/me/", token=fresh))[0] == 200
    other.write_message(json.dumps({"type": "ping", "data": {}}))  # juez2 is untouched
    assert json.loads(await other.read_message())["type"] == "pong"
    (entry,) = [a for a in await audit(client, cid, token) if a["accion"] == "contrasena"]
    assert entry["objeto_id"] == str(j1) and entry["antes"] is None and entry["despues"] is None
    other.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_lost_phone_is_locked_out_in_one_request(client, event):
    cid, j1, token = event["competencia"], event["jueces"][0], await client.organizer()
    tokens = await client.login("juez1", "pass-juez1")
    ws, _ = await client.judge_socket(j1, tokens["access"])
    unused = (await client.post("/api/ws-ticket/", token=tokens["access"]))[1]["ticket"]
    judge = await client.call("PATCH", "/api/jueces/%d/" % j1, {"activo": False}, token)
    assert judge["activo"] is False
    assert await closed(ws) == 1008
    await refused_everywhere(client, event, tokens, unused)
    # Whoever has the phone and the password cannot log in: a deactivated judge is an inactive
    # user (401, as a wrong password), nor renew the session with a refresh token.
    code, answer = await client.post("/api/token/", {"username": "juez1",
                                                     "password": "pass-juez1"})
    assert (code, answer["code"]) == (401, "invalid_credentials")
    board = await client.call("GET", "/api/competencias/%d/jueces/" % cid, token=token)
    assert [j["activo"] for j in board["jueces"]] == [False, True]
    await client.call("PATCH", "/api/jueces/%d/" % j1, {"activo": True, "nombre": "Juez 1"},
                      token)
    found = await client.access("juez1", "pass-juez1")  # reactivated: it logs in again
    await client.enviar_tiempos(found, event["equipos"]["a"], 60_000)
    assert [a["accion"] for a in await audit(client, cid, token)] == [
        "desactivar", "editar", "activar"]
    for body in ({"activo": "no"}, {}, {"nombre": ""}):
        assert (await client.call("PATCH", "/api/jueces/%d/" % j1, body, token,
                                  status=400))["code"] == "validation_error"
    assert (await client.call("PATCH", "/api/jueces/999/", {"activo": False}, token,
                              status=404))["code"] == "judge_not_found"


@pytest.mark.gen_test(timeout=30)
async def test_a_revocation_by_another_process_closes_the_sockets_at_the_next_sweep(
        client, event, app):
    j1 = event["jueces"][0]
    ws, _ = await client.judge_socket(j1, await client.access("juez1", "pass-juez1"))
    other, _ = await client.judge_socket(event["jueces"][1],
                                         await client.access("juez2", "pass-juez2"))
    guard = app.settings["server5k_guard"]
    assert await guard.sweep() == 0
    with models.db.connection_context():  # as `judge passwd` does, from its own process
        identity_room.set_password("juez1", "otra-clave-1")
    assert await guard.sweep() == 1
    assert await closed(ws) == 1008
    await wait_for_async(lambda: app.settings["server5k_hub"].sockets_of(j1) == 0)
    assert await guard.sweep() == 0  # juez2's socket is still good
    other.close()


# -- the roster CSV ---------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_roster_preview_writes_nothing_then_the_import_creates_it_all(client, event):
    cid, token = event["competencia"], await client.organizer()
    preview = await importar(client, cid, token, ROSTER, dry_run=True)
    assert preview["dry_run"] is True
    assert (preview["jueces_nuevos"], preview["equipos_nuevos"], preview["credenciales"]) == (
        2, 3, [])
    assert preview["detalle"]["jueces"] == [
        {"username": "maria", "nombre": "María López", "nuevo": True},
        {"username": "jose", "nombre": "José Ruiz", "nuevo": True}]
    assert [(t["linea"], t["nombre"], t["dorsal"], t["juez_usuario"], t["categoria"], t["nuevo"])
            for t in preview["detalle"]["equipos"]] == [
        (2, "Tortugas", 10, "maria", "Veteranos", True), (3, "Liebres", 11, "maria", None, True),
        (4, "Gacelas", 12, "jose", "Veteranos", True)]
    judges = (await client.call("GET", "/api/jueces/", token=token))["jueces"]
    assert "maria" not in [j["username"] for j in judges]
    assert await audit(client, cid, token) == []
    done = await importar(client, cid, token, ROSTER)
    assert (done["dry_run"], done["jueces_nuevos"], done["equipos_nuevos"]) == (False, 2, 3)
    creds = {c["username"]: c for c in done["credenciales"]}
    assert sorted(creds) == ["jose", "maria"]
    me = (await client.get("/api/me/", token=await client.access(
        "maria", creds["maria"]["password"])))[1]
    assert me["juez"]["id"] == creds["maria"]["juez_id"]
    assert [e["nombre"] for e in me["juez"]["equipos"]] == ["Tortugas", "Liebres"]
    entries = await audit(client, cid, token)
    # (the judges first: an import writes them in its first step, its teams after)
    assert [(a["accion"], a["objeto"]) for a in entries] == [
        ("crear", "juez"), ("crear", "juez"), ("crear", "equipo"), ("crear", "equipo"),
        ("crear", "equipo")]
    assert entries[0]["motivo"] == "importado: El CSV, línea 2"
    for entry in entries:
        assert creds["maria"]["password"] not in json.dumps(entry)
    again = await importar(client, cid, token, ROSTER)
    assert (again["jueces_nuevos"], again["equipos_nuevos"], again["credenciales"]) == (0, 0, [])
    assert [t["nuevo"] for t in again["detalle"]["equipos"]] == [False, False, False]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("text, status, words", [
    (ROSTER + "ana,Ana,Linces,uno\n", 400, "línea 5: el dorsal 'uno' no es un número"),
    (ROSTER + "ana,Ana,Linces,10\n", 400, "línea 5: el dorsal 10 también está en la línea 2"),
    (ROSTER + "ana,Ana,,13\n", 400, "línea 5: falta equipo"),
    (ROSTER + "org,Ana,Linces,13\n", 409, "línea 5: el usuario 'org' existe pero no es juez"),
    ("usuario,equipo\nx,y\n", 400, "faltan columnas: juez_usuario, juez_nombre, dorsal"),
    ("juez_usuario,juez_nombre,equipo,dorsal\n", 400, "tiene cabecera pero ninguna fila"),
])
async def test_a_rejected_roster_line_imports_nothing(client, event, text, status, words):
    cid, token = event["competencia"], await client.organizer()
    for dry_run in (True, False):
        answer = await importar(client, cid, token, text, dry_run=dry_run, status=status)
        assert words in answer["detail"], answer
    assert await audit(client, cid, token) == []
    judges = (await client.call("GET", "/api/jueces/", token=token))["jueces"]
    assert [j["username"] for j in judges] == ["juez1", "juez2", "juez3"]


@pytest.mark.gen_test(timeout=60)
async def test_a_corrected_roster_applies_its_changes_with_history_and_says_which(
        client, event):
    """Issue 20 item 12: a category fixed, a team renamed, a team moved to another judge."""
    cid, token = event["competencia"], await client.organizer()
    await importar(client, cid, token, ROSTER)
    fixed = ("juez_usuario,juez_nombre,equipo,dorsal,categoria\n"
             "maria,María López,Tortugas Ninja,10,Veteranos\n"   # renamed
             "maria,María López,Liebres,11,Junior\n"             # category fixed
             "maria,María López,Gacelas,12,Veteranos\n")         # moved from jose to maria
    preview = await importar(client, cid, token, fixed, dry_run=True)
    assert (preview["equipos_nuevos"], preview["equipos_cambiados"]) == (0, 3)
    assert [t.get("cambios") for t in preview["detalle"]["equipos"]] == [
        {"nombre": ["Tortugas", "Tortugas Ninja"]}, {"categoria": [None, "Junior"]},
        {"juez_usuario": ["jose", "maria"]}]
    assert [a["accion"] for a in await audit(client, cid, token)].count("editar") == 0
    done = await importar(client, cid, token, fixed)
    assert done["equipos_cambiados"] == 3 and done["detalle"] == preview["detalle"]
    edits = [a for a in await audit(client, cid, token) if a["accion"] == "editar"]
    judges = {j["username"]: j["id"]
              for j in (await client.call("GET", "/api/jueces/", token=token))["jueces"]}
    assert [(e["antes"], e["despues"], e["motivo"]) for e in edits] == [
        ({"nombre": "Tortugas"}, {"nombre": "Tortugas Ninja"}, "importado: El CSV, línea 2"),
        ({"categoria": None}, {"categoria": "Junior"}, "importado: El CSV, línea 3"),
        ({"juez_id": judges["jose"]}, {"juez_id": judges["maria"]},
         "importado: El CSV, línea 4")]
    teams = {t["dorsal"]: t for t in (await client.call(
        "GET", "/api/competencias/%d/resultados/" % cid))["clasificacion"]}
    assert teams[10]["equipo"] == "Tortugas Ninja" and teams[11]["categoria"] == "Junior"
    again = await importar(client, cid, token, fixed)
    assert again["equipos_cambiados"] == 0
    assert not any("cambios" in t for t in again["detalle"]["equipos"])
    # A roster without the categoria column leaves the categories as they are.
    plain = "juez_usuario,juez_nombre,equipo,dorsal\nmaria,María López,Liebres,11\n"
    assert (await importar(client, cid, token, plain, dry_run=True))["equipos_cambiados"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_roster_names_are_200_characters_at_most_like_the_apis(client, event):
    cid, token = event["competencia"], await client.organizer()
    for text in (ROSTER + "ana,Ana,%s,13\n" % ("x" * 201),
                 ROSTER + "ana,%s,Linces,13\n" % ("y" * 201)):
        answer = await importar(client, cid, token, text, dry_run=True, status=400)
        assert "línea 5" in answer["detail"] and "200 caracteres" in answer["detail"]
    ok = await importar(client, cid, token, ROSTER + "ana,Ana,%s,13\n" % ("x" * 200))
    assert ok["equipos_nuevos"] == 4


@pytest.mark.gen_test(timeout=60)
async def test_a_preview_reads_without_the_writer(app, client, event):
    """Issue 22: the preview never waits for (nor holds) the writer: with the writer held by
    another job, it still answers; the import itself waits its turn."""
    import threading
    cid, token = event["competencia"], await client.organizer()
    hold, held = threading.Event(), threading.Event()

    def busy():
        held.set()
        hold.wait(30)
    job = app.settings["server5k_store"].write(busy)
    await wait_for_async(held.is_set)
    try:
        preview = await importar(client, cid, token, ROSTER, dry_run=True)
        assert preview["equipos_nuevos"] == 3
        importing = asyncio.ensure_future(importar(client, cid, token, ROSTER))
        await asyncio.sleep(0.3)
        assert not importing.done()  # the real import waits for the writer
    finally:
        hold.set()
    await asyncio.wrap_future(job)
    assert (await importing)["equipos_nuevos"] == 3


def test_an_import_is_handed_to_the_server_in_bounded_pieces(tmp_path):
    """Issue 22: what the worker hands the server process for an import is small whatever the
    roster (where each piece is in a spool file, never the plan or the answer themselves); each
    writer step is read and unpickled on its own and holds at most IMPORT_STEP items; the
    answer is read in pieces of at most the chunk, the credentials spliced where they go."""
    import os
    import pickle
    import roster_import
    models.open_database(tmp_path / "pieces.db")

    def roster(name):
        return ("juez_usuario,juez_nombre,equipo,dorsal\n" + "".join(
            "j%d,,%s,%d\n" % (n % 7, name, n + 1) for n in range(400))).encode()
    with models.db.connection_context():
        cid = registration.create_competition("Piezas").id
        short = roster_import.prepare_import(roster("x"), cid, "El CSV", step=50, owner=4242)
        long = roster_import.prepare_import(roster("x" * 200), cid, "El CSV", step=50,
                                            owner=4242)
    try:
        assert os.path.basename(short["path"]).startswith(".import.4242.")
        assert os.path.dirname(short["path"]) == str(tmp_path)
        sizes = [os.path.getsize(p["path"]) for p in (short, long)]
        assert sizes[1] > sizes[0] + 400 * 199 * 2  # (the names, in the answer and the steps)
        handed = [len(pickle.dumps(p)) for p in (short, long)]
        assert handed[1] - handed[0] < 64, handed  # the names never travel in what is handed
        assert short["new_judges"] == ["j%d" % n for n in range(7)]
        items, ids, credentials = [], {}, []
        prepared = {u: ("clave-%s" % u, "!") for u in short["new_judges"]}
        with models.db.connection_context():
            for offset, length, counts in short["steps"]:
                part = pickle.loads(roster_import.read_spool(short["path"], offset, length))
                size = len(part["jueces"]) + len(part["crear"]) + len(part["editar"])
                assert 0 < size <= 50 and counts == roster_import.step_counts(part)
                assert set(part) == {"competencia_id", "jueces", "crear", "editar"}
                items.append(size)
                credentials += roster_import.apply_spooled_step(short["path"], offset, length,
                                                                None, prepared, ids)
            assert models.Equipo.select().where(models.Equipo.competencia == cid).count() == 400
        assert sum(items) == 7 + 400 and len(items) == 9
        reads = roster_import.answer_pieces(short, chunk=1000)
        assert reads.count(None) == 1 and all(n <= 1000 for _, n in filter(None, reads))
        text = b"".join(json.dumps(roster_import.credentials_answer(credentials)).encode()
                        if where is None else roster_import.read_spool(short["path"], *where)
                        for where in reads)
        answer = json.loads(text)
        assert (answer["dry_run"], answer["equipos_nuevos"], answer["jueces_nuevos"]) == (
            False, 400, 7)
        assert sorted(c["username"] for c in answer["credenciales"]) == short["new_judges"]
        assert len(answer["detalle"]["equipos"]) == 400
    finally:
        for pieces in (short, long):
            roster_import.discard_spool(pieces["path"])
    assert not list(tmp_path.glob(".import.*"))


def test_a_killed_servers_spool_file_is_removed_by_the_next_start(tmp_path):
    """A spool file is named for the server that asked for it (its pid): the cleaning a
    server's start does (store.clean_partials, as for a killed backup's file) removes those
    of a server that is gone, and leaves a running one's."""
    import os
    import subprocess
    import sys
    import roster_import
    import store
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    models.open_database(tmp_path / "spool.db")
    with models.db.connection_context():
        cid = registration.create_competition("Restos").id
        left = roster_import.prepare_import(ROSTER.encode(), cid, owner=gone.pid)
        ours = roster_import.prepare_import(ROSTER.encode(), cid, owner=os.getpid())
    assert store.clean_partials(str(tmp_path)) == [os.path.basename(left["path"])]
    assert not os.path.exists(left["path"]) and os.path.exists(ours["path"])
    roster_import.discard_spool(ours["path"])


@pytest.mark.gen_test(timeout=60)
async def test_a_big_answer_is_sent_in_pieces_and_its_spool_file_removed(client, event,
                                                                         config, monkeypatch):
    """The preview and the import answer from their spool file a piece at a time (here 100
    bytes each), the same JSON as ever, and leave no spool file behind."""
    import pathlib
    import roster_import
    monkeypatch.setattr(roster_import, "SPOOL_CHUNK", 100)
    cid, token = event["competencia"], await client.organizer()
    text = ROSTER + "".join("ana,Ana,Equipo %d,%d\n" % (n, n) for n in range(20, 60))
    preview = await importar(client, cid, token, text, dry_run=True)
    assert (preview["equipos_nuevos"], len(preview["detalle"]["equipos"])) == (43, 43)
    done = await importar(client, cid, token, text)
    assert (done["dry_run"], done["equipos_nuevos"], len(done["detalle"]["equipos"])) == (
        False, 43, 43)
    assert sorted(c["username"] for c in done["credenciales"]) == ["ana", "jose", "maria"]
    folder = pathlib.Path(config["database"]["path"]).parent  # (removed once it is sent)
    await wait_for_async(lambda: not list(folder.glob(".import.*")), what="no spool file")


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("after, inject, status, code, written", [
    # another competition's judge takes the username "jose" while maria's step is written
    (1, "username", 409, "roster_changed", (1, 1, 0)),
    # a team of dorsal 11 appears (a path without the import's mark) after the first team
    (3, "dorsal", 409, "roster_changed", (2, 2, 1)),
    # the second step fails for a reason that is no rule's (a bug, the disk)
    (2, "crash", 500, "internal_error", (1, 1, 0)),
])
async def test_an_import_stopped_partway_answers_what_it_wrote_with_its_passwords(
        client, event, monkeypatch, after, inject, status, code, written):
    """An import written in steps that fails partway keeps what its earlier steps wrote (each
    with its history row) and answers it: its status and code, and ``importado`` with the
    passwords of the judges it made, which log in. The same roster imported again completes it.
    (Steps of one item here: maria, jose, then the teams 10, 11, 12.)"""
    import roster_import
    cid, token = event["competencia"], await client.organizer()
    monkeypatch.setattr(roster_import, "IMPORT_STEP", 1)
    real, calls = roster_import.apply_spooled_step, []

    def step(*args):
        calls.append(1)
        if inject == "crash" and len(calls) == after:
            raise RuntimeError("a step that dies")
        done = real(*args)
        if len(calls) == after and inject == "username":
            registration.create_judge("jose", None, event["otra"], "José de la otra",
                                      password_hash="!")
        elif len(calls) == after and inject == "dorsal":
            registration.create_team("Intrusos", 11, event["jueces"][0])
        return done
    monkeypatch.setattr(roster_import, "apply_spooled_step", step)
    answer = await importar(client, cid, token, ROSTER, status=status)
    assert answer["code"] == code
    partial = answer["importado"]
    assert (partial["pasos"], partial["pasos_total"]) == (written[0] + written[2], 5)
    assert (partial["jueces_nuevos"], len(partial["credenciales"]),
            partial["equipos_nuevos"]) == written
    assert "Vuelva a importar la misma lista" in answer["detail"]
    for credential in partial["credenciales"]:  # shown once, here, and they work
        me = (await client.get("/api/me/", token=await client.access(
            credential["username"], credential["password"])))[1]
        assert me["juez"]["id"] == credential["juez_id"]
    entries = await audit(client, cid, token)
    assert len(entries) == written[0] + written[2]  # each written item with its history row
    # Nothing blocks the competition afterwards, and the same roster completes the import.
    monkeypatch.setattr(roster_import, "apply_spooled_step", real)
    again = await importar(client, cid, token, ROSTER)
    dorsals = {t["dorsal"]: t for t in again["detalle"]["equipos"]}
    assert sorted(dorsals) == [10, 11, 12]
    assert again["equipos_nuevos"] == 3 - written[2] - (inject == "dorsal")
    assert again["equipos_cambiados"] == (1 if inject == "dorsal" else 0)
    if inject == "username":  # jose joins with the account made meanwhile: no new password
        assert again["cuentas_existentes"] == 1 and again["credenciales"] == []
    else:
        assert [c["username"] for c in again["credenciales"]] == (
            ["jose"] if written[0] == 1 else [])
    if inject == "dorsal":  # the intruder's team is corrected to what the roster says
        assert dorsals[11]["cambios"]["nombre"] == ["Intrusos", "Liebres"]


@pytest.mark.gen_test(timeout=60)
async def test_the_cli_keeps_the_passwords_of_an_import_stopped_partway(client, event, config,
                                                                       tmp_path, monkeypatch):
    """``server5k.py import`` through a running server (its own code, on a thread, against the
    real app): an import the server stopped partway still writes the passwords of the judges
    it made to the credentials file, then fails with one line saying what was written."""
    import types
    import cli_local
    import cli_output
    import cli_remote
    import roster_import
    monkeypatch.setattr(roster_import, "IMPORT_STEP", 1)
    real = roster_import.apply_spooled_step

    def step(*args):  # jose's account appears in another competition after maria's step
        done = real(*args)
        if not models.User.select().where(models.User.username_key == "jose").exists():
            registration.create_judge("jose", None, event["otra"], None, password_hash="!")
        return done
    monkeypatch.setattr(roster_import, "apply_spooled_step", step)
    roster = tmp_path / "lista.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    login = types.SimpleNamespace(user="org", password="org-pass", url=None)
    args = types.SimpleNamespace(roster=str(roster), competition=event["competencia"],
                                 credentials=None)

    def run():
        args.server = cli_remote.ServerSession(login, config, url=client.base_url)
        cli_local.cmd_import(args, config)
    with pytest.raises(cli_output.CliError) as failed:
        await asyncio.get_running_loop().run_in_executor(None, run)
    line = str(failed.value)
    assert line.startswith("import failed (409 roster_changed): el usuario 'jose' se creó")
    assert "written before it stopped: 1 judges, 0 new teams" in line
    assert "new passwords in %s" % (tmp_path / "lista-credenciales.csv") in line
    rows = (tmp_path / "lista-credenciales.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == 2 and rows[1].startswith("maria,")
    password = rows[1].split(",")[1]
    assert await client.access("maria", password)


def test_the_demo_event_and_the_rehearsal_judges_hash_before_they_write(tmp_path, monkeypatch):
    """Issue 22: a password is never hashed (scrypt, ~0.1 s) inside a write transaction, also
    on the command line's paths without a server (the demo event, ``simulate``'s judges)."""
    import roster
    models.open_database(tmp_path / "demo.db")
    real, inside = identity_room.hash_password, []

    def hashing(password):
        inside.append(models.db.in_transaction())
        return real(password)
    monkeypatch.setattr(identity_room, "hash_password", hashing)
    with models.db.connection_context():
        demo = roster.create_demo_event()
        first = roster.rehearsal_judges(demo["competencia_id"], 3)
        # simjuez1's password still at hand: reused; the other two's lost: new ones
        again = roster.rehearsal_judges(demo["competencia_id"], 3, {"simjuez1": first[0]})
        stored = {u.username: u.password_hash for u in models.User.select()}
    assert inside == [False] * (3 + 3 + 2)
    assert again[0] == first[0] and again[1]["contrasena"] != first[1]["contrasena"]
    for row in again:
        assert identity_room.verify_password(row["contrasena"], stored[row["usuario"]])
    for juez in demo["jueces"]:
        assert identity_room.verify_password(juez["password"], stored[juez["username"]])
    assert identity_room.verify_password(demo["organizador"]["password"], stored["organizador"])


def test_an_import_being_written_refuses_other_team_changes_of_its_competition(tmp_path):
    import roster
    import roster_import
    models.open_database(tmp_path / "guard.db")
    with models.db.connection_context():
        comp = registration.create_competition("Guardia")
        other = registration.create_competition("Otra")
        juez = roster.add_judge(None, comp.id, "ana", password="clave-de-ana")
        otro = roster.add_judge(None, other.id, "luis", password="clave-de-luis")
        team = roster.add_team(None, comp.id, "Uno", 1, juez["id"])
        roster_import.begin_import(comp.id)
        try:
            for change in (lambda: roster.add_team(None, comp.id, "Dos", 2, juez["id"]),
                           lambda: roster.edit_team(None, team["id"], {"nombre": "Otro"}),
                           lambda: roster.delete_team(None, team["id"]),
                           lambda: roster_import.begin_import(comp.id)):
                with pytest.raises(models.Conflict) as refused:
                    change()
                assert refused.value.code == "import_in_progress"
            roster.add_team(None, other.id, "Tres", 3, otro["id"])  # another competition: fine
        finally:
            roster_import.end_import(comp.id)
        roster.add_team(None, comp.id, "Dos", 2, juez["id"])


def test_an_import_step_checks_again_what_its_plan_read(tmp_path):
    """A dorsal taken or a team changed between the plan (a reader) and the step (the writer):
    409 roster_changed, and nothing of that step is written."""
    import roster
    import roster_import
    models.open_database(tmp_path / "stale.db")
    with models.db.connection_context():
        comp = registration.create_competition("Carrera")
        juez = roster.add_judge(None, comp.id, "ana", password="clave-de-ana")
        rows, _ = roster_import.parse_roster(ROSTER.encode())
        plan = roster_import.plan_roster(rows, comp.id)
        roster.add_team(None, comp.id, "Intrusos", 11, juez["id"])
        prepared = {models.username_key(u): ("x" * 12, "!") for u in plan["new_judges"]}
        with pytest.raises(models.Conflict) as refused:
            roster_import.apply_roster_step(roster_import.import_steps(plan)[0], None, prepared, {})
        assert refused.value.code == "roster_changed"
        assert [j["username"] for j in roster.list_judges()] == ["ana"]
        assert [t["dorsal"] for t in roster.list_teams()] == [11]


def test_a_version_4_database_gains_the_history_index_on_teams(tmp_path):
    path = tmp_path / "v4.db"
    models.open_database(path)
    with models.db.connection_context():
        models.db.execute_sql('DROP INDEX "accion_equipo_id"')
        models.SchemaVersion.update(version=4).execute()
    models.open_database(path)
    with models.db.connection_context():
        plan = " ".join(row[-1] for row in models.db.execute_sql(
            "EXPLAIN QUERY PLAN SELECT valor FROM accion WHERE competencia_id = 1 "
            "AND equipo_id = 7 AND accion IN ('estado', 'penalizacion')"))
        assert "accion_equipo_id" in plan, plan
        assert models.SchemaVersion.get().version == models.SCHEMA_VERSION


@pytest.mark.gen_test
async def test_the_roster_is_sent_as_csv(client, event):
    cid, token = event["competencia"], await client.organizer()
    path = "/api/competencias/%d/importar/" % cid
    for headers, raw, code in (({"Content-Type": "application/json"}, ROSTER,
                                "unsupported_content_type"),
                               ({"Content-Type": "text/csv"}, " \n", "empty_body")):
        answer = await client.call("POST", path, token=token, raw=raw, headers=headers,
                                   status=400)
        assert answer["code"] == code
    answer = await client.call("POST", path + "?dry_run=quizas", token=token, raw=ROSTER,
                               headers={"Content-Type": "text/csv"}, status=400)
    assert answer["code"] == "validation_error"
    answer = await importar(client, 999, token, ROSTER, status=404)
    assert answer["code"] == "competition_not_found"


# -- passwords and tokens in the domain ----------------------------------------------------------
def test_passwords_set_by_hand_are_8_characters_or_more(tmp_path):
    models.open_database(tmp_path / "cuentas.db")
    with models.db.connection_context():
        comp = registration.create_competition("Claves")
        for short in ("", "1234567", "       ", None, 12345678):
            with pytest.raises(models.Invalid):
                identity_room.create_user("ana", short)
            with pytest.raises(models.Invalid):
                registration.create_judge("ana", short, comp.id)
        identity_room.create_user("ana", "12345678", organizer=True)
        with pytest.raises(models.Invalid):
            identity_room.set_password("ana", "corta")
        assert len(identity_room.generate_password()) > identity_room.MIN_PASSWORD


def test_a_password_change_moves_the_generation_the_writer_checks(tmp_path):
    models.open_database(tmp_path / "cuentas.db")
    with models.db.connection_context():
        comp = registration.create_competition("Claves")
        juez = registration.create_judge("ana", "clave-de-ana", comp.id)
        equipo = registration.create_team("Uno", 1, juez.id)
        identity = identity_room.user_identity(juez.user_id, 0)
        assert identity["gen"] == 0
        submissions.store_submission(juez.user_id, equipo.id, registros([1000], validated=True), 0)
        identity_room.set_password("ana", "otra-clave")
        with pytest.raises(models.Unauthenticated) as refused:
            submissions.store_submission(juez.user_id, equipo.id, registros([2000], validated=True), 0)
        assert refused.value.code == "token_revoked"
        with pytest.raises(models.Unauthenticated):
            identity_room.user_identity(juez.user_id, 0)
        assert identity_room.user_identity(juez.user_id, 1)["gen"] == 1
        submissions.store_submission(juez.user_id, equipo.id, registros([2000], validated=True), 1)
        assert identity_room.token_generations([juez.user_id, 999]) == {juez.user_id: 1}


# -- the command line, against the running server ------------------------------------------------
def test_cli_team_edit_and_judge_deactivate_reach_the_running_server(spawn, event, config):
    server = spawn(config["database"]["path"], server={"ws_ping_interval_s": 1}).start()
    env = {"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"}
    a = event["equipos"]["a"]
    edited = json.loads(server.cli("team", "edit", str(a), "--name", "Águilas", "--dorsal", "21",
                                   "--judge", "JUEZ2", "--category", "Sub-20", "--json",
                                   env=env).stdout)
    assert (edited["nombre"], edited["dorsal"], edited["juez_id"], edited["categoria"]) == (
        "Águilas", 21, event["jueces"][1], "Sub-20")
    assert "needs --name" in server.cli("team", "edit", str(a), env=env, check=False).stderr
    assert "no judge 'nadie'" in server.cli("judge", "deactivate", "nadie", env=env,
                                            check=False).stderr

    async def socket_of_juez1():
        tokens = await login(server.base_url, "juez1", "pass-juez1")
        ws, _ = await judge_socket("%s/ws/juez/%d/?token=%s" % (
            server.ws_base, event["jueces"][0], tokens["access"]))
        return ws, tokens

    async def story():
        ws, tokens = await socket_of_juez1()
        out = await asyncio.to_thread(server.cli, "judge", "deactivate", "Juez1", env=env)
        assert "inactive; its tokens are refused" in out.stdout
        assert await closed(ws) == 1008
        code, answer, _ = await fetch("GET", server.base_url + "/api/me/", token=tokens["access"])
        assert (code, answer["code"]) == (401, "token_revoked")
        assert "active" in (await asyncio.to_thread(server.cli, "judge", "activate", "juez1",
                                                    env=env)).stdout
        # judge passwd goes through the running server (issue 22 item 2): the old tokens are
        # refused and the socket closed at once.
        ws, tokens = await socket_of_juez1()
        out = await asyncio.to_thread(server.cli, "judge", "passwd", "juez1", "--password",
                                      "clave-nueva-1", env=env)
        assert "every token issued before is refused" in out.stdout
        code, answer, _ = await fetch("GET", server.base_url + "/api/me/", token=tokens["access"])
        assert (code, answer["code"]) == (401, "token_revoked")
        assert await closed(ws) == 1008
        await login(server.base_url, "juez1", "clave-nueva-1")

    asyncio.run(story())
    assert "PATCH /api/jueces/" in server.log()


def test_generated_passwords_never_start_like_a_spreadsheet_formula(monkeypatch):
    draws = iter(["-starts-bad", "_fine-12345"])
    monkeypatch.setattr(identity_room.secrets, "token_urlsafe", lambda n: next(draws))
    assert identity_room.generate_password() == "_fine-12345"
