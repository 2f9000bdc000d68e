"""Organizer actions: start, stop, false start, who is connected; the public competition."""

import pytest

import models


def path(cid, action=""):
    return "/api/competencias/%s/%s" % (cid, action + "/" if action else "")


@pytest.fixture
def organizer(client):
    return client.access("org", "org-pass")


@pytest.mark.gen_test
async def test_competition_is_public(client, event):
    code, comp = await client.get(path(event["competencia"]))
    assert code == 200
    # (plus Movil5K's name, datetime, is_active and is_running: tests/test_movil5k.py)
    movil5k = {k: comp.pop(k) for k in ("name", "datetime", "is_active", "is_running")}
    assert comp == {"id": event["competencia"], "nombre": "Carrera de prueba",
                    "fecha_hora": None, "estado": "programada", "started_at": None,
                    "finished_at": None, "oficial": False, "oficial_en": None,
                    "oculta": False, "inicio_dado": None}
    assert movil5k["name"] == "Carrera de prueba" and movil5k["is_running"] is False


@pytest.mark.gen_test
@pytest.mark.parametrize("cid", ["999", "abc", "0", "-1", "99999999999999999999999"])
async def test_unknown_competition_is_404(client, event, cid):
    code, answer = await client.get(path(cid))
    assert code == 404 and answer["detail"]


@pytest.mark.gen_test
async def test_judge_token_cannot_start(client, event):
    token = await client.access("juez1", "pass-juez1")
    for action in ("iniciar", "detener", "reiniciar"):
        code, answer = await client.post(path(event["competencia"], action), token=token)
        assert code == 403 and answer["code"] == "organizer_only"
    code, answer = await client.get(path(event["competencia"], "jueces"), token=token)
    assert code == 403
    code, comp = await client.get(path(event["competencia"]))
    assert comp["estado"] == "programada"


@pytest.mark.gen_test
async def test_no_token_cannot_start(client, event):
    code, answer = await client.post(path(event["competencia"], "iniciar"))
    assert code == 401


@pytest.mark.gen_test
async def test_start_twice_is_409_and_keeps_started_at(client, event, organizer):
    token = await organizer
    code, first = await client.post(path(event["competencia"], "iniciar"), token=token)
    assert code == 200 and first["notificados"] == 0
    code, answer = await client.post(path(event["competencia"], "iniciar"), token=token)
    assert code == 409 and answer["code"] == "race_already_running"
    code, comp = await client.get(path(event["competencia"]))
    assert comp["started_at"] == first["competencia"]["started_at"]
    with models.db.connection_context():
        stored = models.Competencia.get_by_id(event["competencia"])
    assert models.iso(stored.started_at) == first["competencia"]["started_at"]


@pytest.mark.gen_test
async def test_stop_when_not_running_is_409(client, event, organizer):
    code, answer = await client.post(path(event["competencia"], "detener"), token=await organizer)
    assert code == 409 and answer["code"] == "race_not_running"


@pytest.mark.gen_test
async def test_reset_rules(client, event, organizer):
    token = await organizer
    cid = event["competencia"]
    code, answer = await client.post(path(cid, "reiniciar"), token=token)
    assert code == 200 and answer["notificados"] == 0  # already scheduled: a no-op
    await client.post(path(cid, "iniciar"), token=token)
    judge = await client.access("juez1", "pass-juez1")
    code, _ = await client.post("/api/enviar_tiempos/", {
        "equipo_id": event["equipos"]["a"],
        "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1000}]}, judge)
    assert code == 201
    code, answer = await client.post(path(cid, "reiniciar"), token=token)
    assert code == 409 and answer["code"] == "records_since_start"
    code, answer = await client.post(path(cid, "reiniciar"), {"force": "yes"}, token)
    assert code == 400
    code, answer = await client.post(path(cid, "reiniciar"), {"force": True}, token)
    assert code == 200 and answer["competencia"]["estado"] == "programada"
    with models.db.connection_context():
        assert models.RegistroTiempo.select().count() == 1  # nothing is ever deleted


@pytest.mark.gen_test
async def test_unknown_competition_action_is_404(client, event, organizer):
    code, answer = await client.post(path(999, "iniciar"), token=await organizer)
    assert code == 404 and answer["code"] == "competition_not_found"


@pytest.mark.gen_test
async def test_judges_list_shows_who_is_connected(client, event, organizer):
    token = await organizer
    judge = await client.access("juez1", "pass-juez1")
    ws, _ = await client.judge_socket(event["jueces"][0], judge)
    code, answer = await client.get(path(event["competencia"], "jueces"), token=token)
    assert code == 200
    assert answer["competencia"]["id"] == event["competencia"] and answer["conectados"] == 1
    by_id = {j["id"]: j for j in answer["jueces"]}
    assert set(by_id) == set(event["jueces"][:2])  # not the other race's judge
    one, two = by_id[event["jueces"][0]], by_id[event["jueces"][1]]
    assert one["conectado"] is True and one["sockets"] == 1
    assert one["ultima_conexion"].endswith("Z")
    assert one["username"] == "juez1" and [e["dorsal"] for e in one["equipos"]] == [1, 2]
    assert two["conectado"] is False and two["sockets"] == 0 and two["ultima_conexion"] is None
    ws.close()
