"""Race-day corrections (issue 12, ORGANIZER.md): every mistake fixed by one request, the raw
records never touched, every change in the history exactly once, and a phone's retry changing
nothing. The real app, a real SQLite file, real HTTP."""

import asyncio
import json
import signal
import uuid

import pytest
import tornado.websocket

from helpers import fetch, login, next_message, nothing_within, registros, stored_rows

TS = "2026-12-06T09:%02d:%02d.000Z"


async def records(client, cid, token, **query):
    path = "/api/competencias/%d/registros/" % cid
    if query:
        path += "?" + "&".join("%s=%s" % item for item in query.items())
    code, body = await client.get(path, token=token)
    assert code == 200, body
    return body["registros"]


async def audit(client, cid, token):
    code, body = await client.get("/api/competencias/%d/auditoria/" % cid, token=token)
    assert code == 200, body
    return body["acciones"]


async def act(client, token, rid, action, motivo="revisado", status=200):
    code, body = await client.post("/api/registros/%s/%s/" % (rid, action), {"motivo": motivo},
                                   token=token)
    assert code == status, body
    return body


async def patch(client, token, rid, status=200, **body):
    code, answer, _ = await client.request("PATCH", "/api/registros/%s/" % rid, body, token)
    assert code == status, answer
    return answer


def raw_rows(config):
    """registro_tiempo as stored (helpers.stored_rows): what the app sent."""
    return stored_rows(config["database"]["path"],
                       "id_registro, equipo_id, juez_id, tiempo, origen")


async def started(client, event):
    """The event's race started, with juez1's team A holding two times and B one."""
    token, judge = await client.organizer(), await client.access("juez1", "pass-juez1")
    await client.race_action(event["competencia"], token)
    a = await client.enviar_tiempos(judge, event["equipos"]["a"], 1_200_000, 1_300_000)
    b = await client.enviar_tiempos(judge, event["equipos"]["b"], 1_250_000, minute=1)
    return {"org": token, "judge": judge, "a": a["created"], "b": b["created"],
            "cid": event["competencia"], "eq": event["equipos"]}


# -- each correction changes the standings as the rules say ---------------------------------
@pytest.mark.gen_test
async def test_void_and_restore_a_stray_tap(client, event, config):
    race = await started(client, event)
    cid, eq = race["cid"], race["eq"]
    before = raw_rows(config)
    voided = await act(client, race["org"], race["a"][0], "anular", "toque por error")
    assert voided["anulado"] is True and voided["cuenta"] is False
    rows, _ = await client.standings(cid)
    assert rows[eq["a"]]["registros_contados"] == 1
    assert rows[eq["a"]]["tiempo_total_ms"] == 1_300_000
    # Voiding a voided record is a no-op: same answer, no second history entry.
    entries = len(await audit(client, cid, race["org"]))
    assert (await act(client, race["org"], race["a"][0], "anular"))["anulado"] is True
    assert len(await audit(client, cid, race["org"])) == entries
    restored = await act(client, race["org"], race["a"][0], "restaurar", "era bueno")
    assert restored["anulado"] is False and restored["cuenta"] is True
    rows, _ = await client.standings(cid)
    assert rows[eq["a"]]["tiempo_total_ms"] == 2_500_000
    assert raw_rows(config) == before  # the stored records never changed


@pytest.mark.gen_test
async def test_move_a_record_to_the_right_team(client, event, config):
    race = await started(client, event)
    cid, eq = race["cid"], race["eq"]
    moved = await patch(client, race["org"], race["a"][1], equipo_id=eq["b"],
                        motivo="el juez tocó el equipo equivocado")
    assert moved["equipo_id"] == eq["b"] and moved["equipo_recibido_id"] == eq["a"]
    rows, _ = await client.standings(cid)
    assert rows[eq["a"]]["registros_contados"] == 1
    assert rows[eq["b"]]["registros_contados"] == 2
    assert rows[eq["b"]]["tiempo_total_ms"] == 1_250_000 + 1_300_000
    listed = await records(client, cid, race["org"], equipo_id=eq["b"])
    assert sorted(r["id"] for r in listed) == sorted([race["b"][0], race["a"][1]])
    # The raw record still names the team it was sent for.
    assert [r for r in raw_rows(config) if r[0] == race["a"][1].replace("-", "")][0][1] == eq["a"]


@pytest.mark.gen_test
async def test_fix_a_time_keeps_the_time_as_received(client, event):
    race = await started(client, event)
    fixed = await patch(client, race["org"], race["a"][0], tiempo=1_185_200,
                        motivo="hoja de papel: 19:45.2")
    assert fixed["tiempo"] == 1_185_200 and fixed["tiempo_recibido"] == 1_200_000
    rows, _ = await client.standings(race["cid"])
    assert rows[race["eq"]["a"]]["mejor_ms"] == 1_185_200


@pytest.mark.gen_test
async def test_paper_time_for_a_phone_that_died(client, event, config):
    race = await started(client, event)
    cid, eq = race["cid"], race["eq"]
    code, record = await client.post("/api/competencias/%d/registros/" % cid, {
        "equipo_id": eq["c"], "tiempo": 1_500_000, "motivo": "el móvil de juez2 murió"},
        token=race["org"])
    assert code == 201, record
    assert record["origen"] == "manual" and record["juez_id"] is None and record["cuenta"]
    # Two equal entries are two records (two runners with the same time on paper).
    code, second = await client.post("/api/competencias/%d/registros/" % cid, {
        "equipo_id": eq["c"], "tiempo": 1_500_000, "motivo": "segundo corredor"},
        token=race["org"])
    assert code == 201 and second["id"] != record["id"]
    rows, _ = await client.standings(cid)
    assert rows[eq["c"]]["registros_contados"] == 2
    assert [r[4] for r in raw_rows(config)].count("manual") == 2


@pytest.mark.gen_test
async def test_a_late_start_moves_every_time_and_the_start(client, event):
    race = await started(client, event)
    cid, eq = race["cid"], race["eq"]
    _, before = await client.standings(cid)
    code, body = await client.post("/api/competencias/%d/ajustar_tiempos/" % cid, {
        "delta_ms": 20_000, "motivo": "race start se lanzó 20 s tarde"}, token=race["org"])
    assert code == 200, body
    assert body["registros_afectados"] == 3
    old = before["competencia"]["started_at"]
    assert body["competencia"]["started_at"] < old  # 20 s earlier
    rows, after = await client.standings(cid)
    assert rows[eq["a"]]["tiempo_total_ms"] == 2_500_000 + 2 * 20_000
    assert after["competencia"]["started_at"] == body["competencia"]["started_at"]
    # The live competition (what late judges are replayed) follows at once.
    code, comp = await client.get("/api/competencias/%d/" % cid)
    assert comp["started_at"] == body["competencia"]["started_at"]
    # A correction made after it sets the time that counts; adjustments made later add to it.
    await patch(client, race["org"], race["a"][0], tiempo=1_000_000, motivo="papel")
    await client.post("/api/competencias/%d/ajustar_tiempos/" % cid, {
        "delta_ms": -5_000, "motivo": "eran 15 s"}, token=race["org"])
    listed = {r["id"]: r for r in await records(client, cid, race["org"])}
    assert listed[race["a"][0]]["tiempo"] == 995_000
    assert listed[race["a"][1]]["tiempo"] == 1_300_000 + 15_000


@pytest.mark.gen_test
async def test_one_judges_adjustment_leaves_the_others(client, event):
    race = await started(client, event)
    cid, eq = race["cid"], race["eq"]
    judge2 = await client.access("juez2", "pass-juez2")
    await client.enviar_tiempos(judge2, eq["c"], 1_400_000)
    code, body = await client.post("/api/competencias/%d/ajustar_tiempos/" % cid, {
        "delta_ms": 30_000, "juez_id": event["jueces"][1],
        "motivo": "su app oyó la salida 30 s tarde"}, token=race["org"])
    assert code == 200 and body["registros_afectados"] == 1
    rows, _ = await client.standings(cid)
    assert rows[eq["c"]]["tiempo_total_ms"] == 1_430_000
    assert rows[eq["a"]]["tiempo_total_ms"] == 2_500_000
    # A record that judge sends later is adjusted too ("those still to come").
    await client.enviar_tiempos(judge2, eq["c"], 1_100_000, minute=2)
    rows, _ = await client.standings(cid)
    assert rows[eq["c"]]["tiempo_total_ms"] == 1_430_000 + 1_130_000


@pytest.mark.gen_test
async def test_team_status_and_penalty(client, event):
    race = await started(client, event)
    cid, eq = race["cid"], race["eq"]
    code, team = await client.post("/api/equipos/%d/penalizacion/" % eq["b"], {
        "ms": 120_000, "motivo": "atajo"}, token=race["org"])
    assert code == 200 and team["penalizacion_ms"] == 120_000
    rows, _ = await client.standings(cid)
    assert rows[eq["b"]]["tiempo_total_ms"] == 1_250_000 + 120_000
    assert rows[eq["b"]]["penalizacion_ms"] == 120_000
    code, team = await client.post("/api/equipos/%d/estado/" % eq["a"], {
        "estado": "dsq", "motivo": "corredor sin dorsal"}, token=race["org"])
    assert code == 200 and team["estado"] == "dsq"
    rows, result = await client.standings(cid)
    order = [(r["posicion"], r["equipo_id"], r["estado"]) for r in result["clasificacion"]]
    assert order[0] == (1, eq["b"], "ok")
    assert (None, eq["a"], "dsq") == order[-1]  # listed after every ranked team
    listed = await records(client, cid, race["org"], equipo_id=eq["a"])
    assert not any(r["cuenta"] for r in listed)
    # Penalty 0 clears it.
    await client.post("/api/equipos/%d/penalizacion/" % eq["b"], {"ms": 0, "motivo": "revisado"},
                      token=race["org"])
    rows, _ = await client.standings(cid)
    assert rows[eq["b"]]["tiempo_total_ms"] == 1_250_000


@pytest.mark.gen_test
async def test_official_results_freeze_what_counts(client, event):
    race = await started(client, event)
    cid, eq = race["cid"], race["eq"]
    code, body = await client.post("/api/competencias/%d/oficializar/" % cid, token=race["org"])
    assert code == 409 and body["code"] == "race_not_finished"
    await client.post("/api/competencias/%d/detener/" % cid, token=race["org"])
    code, comp = await client.post("/api/competencias/%d/oficializar/" % cid, token=race["org"])
    assert code == 200 and comp["oficial"] is True and comp["oficial_en"].endswith("Z")
    _, frozen = await client.standings(cid)
    assert frozen["competencia"]["oficial"] is True
    # A late upload is answered 201 as always, and waits.
    late = await client.enviar_tiempos(race["judge"], eq["b"], 1_000_000, minute=3)
    rows, _ = await client.standings(cid)
    assert rows[eq["b"]]["registros_contados"] == 1 and rows[eq["b"]]["pendientes"] == 1
    assert rows[eq["b"]]["tiempo_total_ms"] == 1_250_000  # the podium did not move
    [pending] = [r for r in await records(client, cid, race["org"]) if r["pendiente"]]
    assert pending["id"] == late["created"][0] and not pending["cuenta"]
    accepted = await act(client, race["org"], pending["id"], "aceptar", "protesta aceptada")
    assert accepted["pendiente"] is False and accepted["cuenta"] is True
    await act(client, race["org"], pending["id"], "aceptar", status=409)  # not pending any more
    code, comp = await client.post("/api/competencias/%d/reabrir/" % cid,
                                   {"motivo": "revisión"}, token=race["org"])
    assert code == 200 and comp["oficial"] is False


@pytest.mark.gen_test
async def test_a_zero_is_an_absent_runner(client, event):
    race = await started(client, event)
    cid, eq = race["cid"], race["eq"]
    await client.enviar_tiempos(race["judge"], eq["b"], 0, minute=4)
    rows, _ = await client.standings(cid)
    assert rows[eq["b"]]["ausentes"] == 1 and rows[eq["b"]]["registros_contados"] == 1
    # Adjustments never make an absent runner a finisher.
    await client.post("/api/competencias/%d/ajustar_tiempos/" % cid, {
        "delta_ms": 5_000, "motivo": "salida"}, token=race["org"])
    [absent] = [r for r in await records(client, cid, race["org"]) if r["ausente"]]
    assert absent["tiempo"] == 0 and not absent["cuenta"]


# -- the history ------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_every_change_has_exactly_one_history_entry(client, event):
    race = await started(client, event)
    cid, eq, token = race["cid"], race["eq"], race["org"]
    first = await audit(client, cid, token)
    assert [a["accion"] for a in first] == ["iniciar"]
    assert first[0]["usuario"] == "org"
    changes = [
        lambda: act(client, token, race["a"][0], "anular", "uno"),
        lambda: act(client, token, race["a"][0], "restaurar", "dos"),
        lambda: patch(client, token, race["a"][1], equipo_id=eq["b"], motivo="tres"),
        lambda: patch(client, token, race["a"][1], tiempo=1_299_000, motivo="cuatro"),
        lambda: client.post("/api/competencias/%d/registros/" % cid,
                            {"equipo_id": eq["a"], "tiempo": 1_700_000, "motivo": "cinco"},
                            token=token),
        lambda: client.post("/api/competencias/%d/ajustar_tiempos/" % cid,
                            {"delta_ms": 1_000, "motivo": "seis"}, token=token),
        lambda: client.post("/api/equipos/%d/estado/" % eq["c"],
                            {"estado": "dns", "motivo": "siete"}, token=token),
        lambda: client.post("/api/equipos/%d/penalizacion/" % eq["b"],
                            {"ms": 10_000, "motivo": "ocho"}, token=token),
        lambda: client.post("/api/competencias/%d/detener/" % cid, token=token),
        lambda: client.post("/api/competencias/%d/oficializar/" % cid, {"motivo": "nueve"},
                            token=token),
        lambda: client.post("/api/competencias/%d/reabrir/" % cid, {"motivo": "diez"},
                            token=token),
    ]
    for n, change in enumerate(changes, start=2):
        await change()
        assert len(await audit(client, cid, token)) == n
    entries = await audit(client, cid, token)
    assert [a["accion"] for a in entries] == [
        "iniciar", "anular", "restaurar", "mover", "corregir", "manual", "ajustar", "estado",
        "penalizacion", "detener", "oficializar", "reabrir"]
    assert all(a["usuario"] == "org" and a["en"].endswith("Z") for a in entries)
    assert [a["motivo"] for a in entries[1:9]] == [
        "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho"]
    mover = entries[3]
    assert mover["antes"]["equipo_id"] == eq["a"] and mover["despues"]["equipo_id"] == eq["b"]
    # A record's own history: its corrections and the adjustment that touched it.
    code, history = await client.get("/api/registros/%s/historial/" % race["a"][1], token=token)
    assert code == 200
    assert [h["accion"] for h in history["historial"]] == ["mover", "corregir", "ajustar"]
    assert history["registro"]["tiempo"] == 1_300_000
    # And the CSV export of the whole history.
    code, text, response = await client.request(
        "GET", "/api/competencias/%d/auditoria/?format=csv" % cid, token=token)
    assert code == 200 and response.headers["Content-Type"].startswith("text/csv")
    lines = text.lstrip("\ufeff").strip().splitlines()
    assert lines[0].startswith("id,en,usuario,accion") and len(lines) == 1 + len(entries)


# -- a phone's retry changes nothing ----------------------------------------------------------
@pytest.mark.gen_test
async def test_retries_never_revive_a_voided_record_nor_recreate_a_moved_one(client, event, config):
    race = await started(client, event)
    cid, eq, judge = race["cid"], race["eq"], race["judge"]
    rid = str(uuid.uuid4())
    sent = await client.enviar_tiempos(judge, eq["a"], 1_111_000, ids=[rid], minute=5)
    assert sent["created"] == [rid]
    await act(client, race["org"], rid, "anular", "duplicado")
    await patch(client, race["org"], race["a"][0], equipo_id=eq["b"], motivo="otro equipo")
    rows_before = raw_rows(config)
    # The same requests again: by id_registro, and by team + timestamp + tiempo.
    again = await client.enviar_tiempos(judge, eq["a"], 1_111_000, ids=[rid], minute=5)
    assert again == {"created": [], "duplicates": [rid], "ignored": 0}
    again = await client.enviar_tiempos(judge, eq["a"], 1_200_000, 1_300_000)
    assert again["created"] == [] and again["duplicates"] == race["a"]
    assert raw_rows(config) == rows_before
    listed = {r["id"]: r for r in await records(client, cid, race["org"])}
    assert listed[rid]["anulado"] is True
    assert listed[race["a"][0]]["equipo_id"] == eq["b"]
    rows, _ = await client.standings(cid)
    assert rows[eq["a"]]["registros_contados"] == 1  # only the record never moved


@pytest.mark.gen_test
async def test_a_paper_time_is_never_taken_for_a_phones_copy(client, event):
    race = await started(client, event)
    cid, eq = race["cid"], race["eq"]
    code, paper = await client.post("/api/competencias/%d/registros/" % cid, {
        "equipo_id": eq["a"], "tiempo": 1_400_000, "timestamp": TS % (6, 0),
        "motivo": "papel"}, token=race["org"])
    assert code == 201
    # The phone later uploads the same team, timestamp and time: a record of its own.
    sent = await client.enviar_tiempos(race["judge"], eq["a"], 1_400_000, minute=6)
    assert len(sent["created"]) == 1 and sent["created"][0] != paper["id"]


# -- bad input: a JSON error each, nothing written --------------------------------------------
@pytest.mark.gen_test
@pytest.mark.parametrize("method,path,body,status,code", [
    ("POST", "/api/registros/%s/anular/" % uuid.uuid4(), {"motivo": "x"}, 404,
     "record_not_found"),
    ("POST", "/api/registros/{a0}/anular/", {}, 400, "validation_error"),
    ("POST", "/api/registros/{a0}/anular/", {"motivo": "   "}, 400, "validation_error"),
    ("POST", "/api/registros/{a0}/anular/", {"motivo": "x" * 501}, 400, "validation_error"),
    ("PATCH", "/api/registros/{a0}/", {"equipo_id": "{x}", "motivo": "x"}, 400,
     "team_other_competition"),
    ("PATCH", "/api/registros/{a0}/", {"equipo_id": 999, "motivo": "x"}, 404, "team_not_found"),
    ("PATCH", "/api/registros/{a0}/", {"motivo": "x"}, 400, "validation_error"),
    ("PATCH", "/api/registros/{a0}/", {"tiempo": -1, "motivo": "x"}, 400, "validation_error"),
    ("PATCH", "/api/registros/{a0}/", {"tiempo": 1.5, "motivo": "x"}, 400, "validation_error"),
    ("POST", "/api/competencias/{cid}/registros/", {"equipo_id": "{x}", "tiempo": 1,
                                                    "motivo": "x"}, 400,
     "team_other_competition"),
    ("POST", "/api/competencias/{cid}/registros/", {"equipo_id": "{a}", "tiempo": 1,
                                                    "timestamp": "ayer", "motivo": "x"}, 400,
     "validation_error"),
    ("POST", "/api/competencias/{cid}/ajustar_tiempos/", {"delta_ms": -1_250_001,
                                                          "motivo": "x"}, 409, "negative_time"),
    ("POST", "/api/competencias/{cid}/ajustar_tiempos/", {"delta_ms": 0, "motivo": "x"}, 400,
     "validation_error"),
    ("POST", "/api/competencias/{cid}/ajustar_tiempos/", {"delta_ms": 1, "juez_id": 999,
                                                          "motivo": "x"}, 404,
     "judge_not_found"),
    ("POST", "/api/competencias/{cid}/ajustar_tiempos/", {"delta_ms": 1, "juez_id": 2**80,
                                                          "motivo": "x"}, 404,
     "judge_not_found"),
    ("POST", "/api/equipos/{a}/estado/", {"estado": "retirado", "motivo": "x"}, 400,
     "validation_error"),
    ("POST", "/api/equipos/{a}/penalizacion/", {"ms": "20s", "motivo": "x"}, 400,
     "validation_error"),
    ("POST", "/api/equipos/999/estado/", {"estado": "dns", "motivo": "x"}, 404,
     "team_not_found"),
    ("POST", "/api/competencias/{cid}/reabrir/", {}, 400, "validation_error"),
    ("GET", "/api/competencias/{cid}/registros/?equipo_id=abc", None, 400, "validation_error"),
    ("GET", "/api/competencias/999/registros/", None, 404, "competition_not_found"),
    ("GET", "/api/registros/%s/historial/" % uuid.uuid4(), None, 404, "record_not_found"),
])
async def test_bad_corrections_are_refused_and_write_nothing(client, event, config, method, path,
                                                             body, status, code):
    race = await started(client, event)
    names = {"a0": race["a"][0], "cid": race["cid"], "a": race["eq"]["a"], "x": race["eq"]["x"]}
    path = path.format(**names)
    if body:
        body = json.loads(json.dumps(body).replace('"{x}"', str(names["x"]))
                          .replace('"{a}"', str(names["a"])))
    entries = len(await audit(client, race["cid"], race["org"]))
    rows = raw_rows(config)
    got, answer, response = await client.request(method, path, body, race["org"])
    assert (got, answer["code"]) == (status, code), answer
    assert answer["detail"]
    assert response.headers["Content-Type"].startswith("application/json")
    assert len(await audit(client, race["cid"], race["org"])) == entries
    assert raw_rows(config) == rows


@pytest.mark.gen_test
async def test_a_judge_token_is_refused_everywhere_here(client, event):
    race = await started(client, event)
    rid, cid, a = race["a"][0], race["cid"], race["eq"]["a"]
    for method, path, body in [
            ("GET", "/api/competencias/%d/registros/" % cid, None),
            ("POST", "/api/competencias/%d/registros/" % cid,
             {"equipo_id": a, "tiempo": 1, "motivo": "x"}),
            ("POST", "/api/registros/%s/anular/" % rid, {"motivo": "x"}),
            ("POST", "/api/registros/%s/restaurar/" % rid, {"motivo": "x"}),
            ("POST", "/api/registros/%s/aceptar/" % rid, {"motivo": "x"}),
            ("PATCH", "/api/registros/%s/" % rid, {"tiempo": 1, "motivo": "x"}),
            ("GET", "/api/registros/%s/historial/" % rid, None),
            ("POST", "/api/competencias/%d/ajustar_tiempos/" % cid, {"delta_ms": 1,
                                                                     "motivo": "x"}),
            ("POST", "/api/equipos/%d/estado/" % a, {"estado": "dns", "motivo": "x"}),
            ("POST", "/api/equipos/%d/penalizacion/" % a, {"ms": 1, "motivo": "x"}),
            ("POST", "/api/competencias/%d/oficializar/" % cid, {}),
            ("POST", "/api/competencias/%d/reabrir/" % cid, {"motivo": "x"}),
            ("GET", "/api/competencias/%d/auditoria/" % cid, None)]:
        code, answer, _ = await client.request(method, path, body, race["judge"])
        assert (code, answer["code"]) == (403, "organizer_only"), (method, path, answer)
        code, answer, _ = await client.request(method, path, body, None)
        assert code == 401, (method, path, answer)
    assert len(await audit(client, cid, race["org"])) == 1  # only the start


# -- what the public and the judge see --------------------------------------------------------
@pytest.mark.gen_test
async def test_the_public_team_page_and_the_judges_read_back(client, event):
    race = await started(client, event)
    cid, eq = race["cid"], race["eq"]
    await act(client, race["org"], race["a"][0], "anular", "motivo privado")
    code, detail = await client.get("/api/competencias/%d/equipos/%d/" % (cid, eq["a"]))
    assert code == 200
    assert detail["equipo"]["nombre"] == "Equipo A"
    assert [set(r) for r in detail["registros"]] == [
        {"id", "tiempo", "cuenta", "anulado", "ausente", "antes_de_salida", "pendiente",
         "origen"}] * 2
    assert "motivo privado" not in json.dumps(detail)
    assert [r["anulado"] for r in detail["registros"]] == [True, False]
    code, _ = await client.get("/api/competencias/%d/equipos/%d/" % (cid, eq["x"]))
    assert code == 404  # a team of another competition
    # The judge reads back what arrived; another judge may not; the organizer may.
    code, mine = await client.get("/api/equipos/%d/registros/" % eq["a"], token=race["judge"])
    assert code == 200 and [r["id"] for r in mine["registros"]] == race["a"]
    other = await client.access("juez2", "pass-juez2")
    code, answer = await client.get("/api/equipos/%d/registros/" % eq["a"], token=other)
    assert (code, answer["code"]) == (403, "team_not_assigned")
    code, _ = await client.get("/api/equipos/%d/registros/" % eq["a"], token=race["org"])
    assert code == 200
    code, _ = await client.get("/api/equipos/%d/registros/" % eq["a"])
    assert code == 401
    # The HTML page of the team, linked from the results page.
    code, html, response = await client.request("GET", "/competencias/%d/equipos/%d/"
                                                % (cid, eq["a"]))
    assert code == 200 and "Equipo A" in html and "anulado" in html
    assert "motivo privado" not in html


# -- live state and crashes -------------------------------------------------------------------
@pytest.mark.gen_test
async def test_a_start_adjustment_moves_the_live_race_at_once(client, event):
    """The hub, a late judge's replay and the page follow the adjusted start, without a
    restart; the judges already counting are not told again (their stopwatch must not reset)."""
    race = await started(client, event)
    cid = race["cid"]
    early, _ = await client.judge_socket(event["jueces"][1], await client.access("juez2",
                                                                                  "pass-juez2"))
    assert (await next_message(early))["type"] == "carrera.iniciada"
    page = await tornado.websocket.websocket_connect(client.ws_url("/ws/resultados/%d/" % cid))
    assert (await next_message(page))["type"] == "conexion.establecida"
    assert (await next_message(page))["type"] == "resultados"
    code, body = await client.post("/api/competencias/%d/ajustar_tiempos/" % cid, {
        "delta_ms": 20_000, "motivo": "salida 20 s tarde"}, token=race["org"])
    assert code == 200
    moved = body["competencia"]["started_at"]
    update = await next_message(page)  # the page: new clock start and new totals
    assert update["type"] == "resultados"
    assert update["data"]["competencia"]["started_at"] == moved
    late, hello = await client.judge_socket(event["jueces"][1], await client.access("juez2",
                                                                                     "pass-juez2"))
    assert hello["data"]["competencia"]["started_at"] == moved
    replay = await next_message(late)
    assert replay["type"] == "carrera.iniciada" and replay["data"]["started_at"] == moved
    assert await nothing_within(early, 0.3)  # no second start for the phone already counting
    for ws in (early, late, page):
        ws.close()


def test_corrections_answered_200_survive_sigkill(spawn, event, config):
    server = spawn(config["database"]["path"]).start()
    base = server.base_url
    cid, eq = event["competencia"], event["equipos"]

    async def correct():
        org = (await login(base, "org", "org-pass"))["access"]
        judge = (await login(base, "juez1", "pass-juez1"))["access"]
        await fetch("POST", "%s/api/competencias/%d/iniciar/" % (base, cid), token=org)
        code, sent, _ = await fetch("POST", base + "/api/enviar_tiempos/", {
            "equipo_id": eq["a"], "registros": registros([1_200_000, 1_300_000])}, token=judge)
        assert code == 201
        a0, a1 = sent["created"]
        steps = [
            ("POST", "/api/registros/%s/anular/" % a0, {"motivo": "uno"}),
            ("PATCH", "/api/registros/%s/" % a1, {"equipo_id": eq["b"], "motivo": "dos"}),
            ("POST", "/api/competencias/%d/registros/" % cid,
             {"equipo_id": eq["c"], "tiempo": 1_500_000, "motivo": "tres"}),
            ("POST", "/api/competencias/%d/ajustar_tiempos/" % cid,
             {"delta_ms": 20_000, "motivo": "cuatro"}),
            ("POST", "/api/equipos/%d/penalizacion/" % eq["b"], {"ms": 5_000, "motivo": "cinco"}),
        ]
        answers = []
        for method, path, body in steps:
            code, answer, _ = await fetch(method, base + path, body, token=org)
            assert code in (200, 201), answer
            answers.append(answer)
        server.signal(signal.SIGKILL)  # right after the last 200: the laptop dies
        return org, a0, a1, answers

    org, a0, a1, answers = asyncio.run(correct())
    server.wait(10)
    server.start()

    async def after():
        token = (await login(base, "org", "org-pass"))["access"]
        code, history, _ = await fetch("GET", "%s/api/competencias/%d/auditoria/" % (base, cid),
                                       token=token)
        assert [a["accion"] for a in history["acciones"]] == [
            "iniciar", "anular", "mover", "manual", "ajustar", "penalizacion"]
        code, listed, _ = await fetch("GET", "%s/api/competencias/%d/registros/" % (base, cid),
                                      token=token)
        by_id = {r["id"]: r for r in listed["registros"]}
        assert by_id[a0]["anulado"] is True
        assert by_id[a1]["equipo_id"] == eq["b"] and by_id[a1]["tiempo"] == 1_320_000
        assert by_id[answers[2]["id"]]["origen"] == "manual"
        code, comp, _ = await fetch("GET", "%s/api/competencias/%d/" % (base, cid))
        assert comp["started_at"] == answers[3]["competencia"]["started_at"]
        code, result, _ = await fetch("GET", "%s/api/competencias/%d/resultados/" % (base, cid))
        row_b = [r for r in result["clasificacion"] if r["equipo_id"] == eq["b"]][0]
        assert row_b["tiempo_total_ms"] == 1_320_000 + 5_000

    asyncio.run(after())


# -- the command line -------------------------------------------------------------------------
def test_the_six_mistakes_fixed_from_the_command_line(spawn, event, config, tmp_path):
    """README "Fixing mistakes on race day", command by command, against the real server."""
    server = spawn(config["database"]["path"]).start()
    as_org = {"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"}
    cid, eq = str(event["competencia"]), event["equipos"]

    def cli(*args, check=True):
        return server.cli(*args, env=as_org, check=check)

    def lines(result):
        return result.stdout.strip().splitlines()

    cli("race", "start", cid)
    judge = asyncio.run(login(server.base_url, "juez1", "pass-juez1"))["access"]
    code, sent, _ = asyncio.run(fetch("POST", server.base_url + "/api/enviar_tiempos/", {
        "equipo_id": eq["a"], "registros": registros([1_200_000, 1_300_000, 1_400_000])},
        token=judge))
    assert code == 201
    a0, a1, a2 = sent["created"]
    listing = cli("records", "list", cid, "--team", str(eq["a"]))
    assert lines(listing)[0].startswith("3 records of competition")
    assert all(rid in listing.stdout for rid in (a0, a1, a2))
    # 1. the wrong team; 2. a paper time; 3. a late start; 4. one judge late; 5. a stray tap;
    # 6. a team disqualified and one penalised; then official results for the awards.
    assert "team %-5d" % eq["b"] in cli("records", "edit", a0, "--team", str(eq["b"]),
                                        "--reason", "equipo equivocado").stdout
    paper = cli("records", "add", cid, "--team", str(eq["c"]), "--tiempo", "19:45.2",
                "--reason", "hoja de papel", "--json")
    assert json.loads(paper.stdout)["tiempo"] == 1_185_200
    shifted = cli("race", "shift", cid, "--by", "+20s", "--reason", "salida tarde")
    assert "+20000 ms added to 3 records" in shifted.stdout  # not the paper time
    cli("race", "shift", cid, "--by", "-1.5s", "--judge", str(event["jueces"][0]),
        "--reason", "su app")
    voided = cli("records", "void", a1, "--reason", "toque por error").stdout
    assert "[void, impossible]" in voided  # 21 min, sent seconds after the start: flagged
    assert "estado dsq" in cli("team", "status", str(eq["c"]), "dsq", "--reason", "x").stdout
    assert "penalty 120000" in cli("team", "penalty", str(eq["b"]), "2:00.0",
                                   "--reason", "atajo").stdout
    cli("race", "stop", cid)
    assert "results official" in cli("results", "official", cid).stdout
    table = cli("results", cid)
    assert "results official" in lines(table)[0]
    history = cli("records", "history", a0)
    assert [line.split()[1] for line in lines(history)[1:]] == ["mover", "ajustar", "ajustar"]
    audit_csv = tmp_path / "auditoria.csv"
    cli("audit", cid, "--csv", str(audit_csv))
    rows = audit_csv.read_text(encoding="utf-8-sig").strip().splitlines()
    assert [row.split(",")[3] for row in rows[1:]] == [
        "iniciar", "mover", "manual", "ajustar", "ajustar", "anular", "estado", "penalizacion",
        "detener", "oficializar"]
    # Errors: one line on stderr, non-zero exit, in the command line's own words.
    for args, words in ((["records", "void", a1], "--reason"),
                        (["records", "add", cid, "--team", str(eq["a"]), "--tiempo", "diez",
                          "--reason", "x"], "not a time"),
                        (["race", "shift", cid, "--by", "-99:00", "--reason", "x"],
                         "negative_time"),
                        (["results", "reopen", cid], "--reason"),
                        (["race", "start", cid], "race reset %s" % cid)):
        result = cli(*args, check=False)
        assert result.returncode != 0, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert words in result.stderr, result.stderr
