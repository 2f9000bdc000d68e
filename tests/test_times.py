"""A judge sends finish times: stored durably, validated all-or-nothing, retries are safe."""

import uuid

import pytest

import models
from helpers import registros, stored_rows

URL = "/api/enviar_tiempos/"


def stored(config):
    """The records on disk (helpers.stored_rows), with the columns these tests look at."""
    return stored_rows(config["database"]["path"], "id_registro, equipo_id, tiempo, horas, "
                       "minutos, segundos, milisegundos, timestamp, estado_carrera")


@pytest.fixture
def juez1(client):
    return client.access("juez1", "pass-juez1")


@pytest.mark.gen_test
async def test_guide_payload_is_stored_and_201(client, config, event, juez1):
    token = await juez1
    body = {"equipo_id": event["equipos"]["a"], "registros": [
        {"timestamp": "2025-11-11T12:00:00.000Z", "tiempo": 12345},
        {"timestamp": "2025-11-11T12:00:01.000Z", "tiempo": 13345}]}
    code, answer = await client.post(URL, body, token)
    assert code == 201
    assert len(answer["created"]) == 2 and answer["duplicates"] == [] and answer["ignored"] == 0
    rows = stored(config)
    assert sorted(r[2] for r in rows) == [12345, 13345]
    row = next(r for r in rows if r[2] == 12345)
    assert row[1] == event["equipos"]["a"] and row[3:7] == (0, 0, 12, 345)
    assert row[7].startswith("2025-11-11 12:00:00")
    assert row[8] == "programada"
    assert {uuid.UUID(r[0]) for r in rows} == {uuid.UUID(i) for i in answer["created"]}


@pytest.mark.gen_test
async def test_only_first_15_are_processed(client, config, event, juez1):
    token = await juez1
    code, answer = await client.post(URL, {"equipo_id": event["equipos"]["a"],
                                           "registros": registros(16)}, token)
    assert code == 201 and len(answer["created"]) == 15 and answer["ignored"] == 1
    assert len(stored(config)) == 15
    assert max(r[2] for r in stored(config)) == 60_000 + 14 * 1000


@pytest.mark.gen_test
async def test_a_bad_16th_record_is_ignored_not_validated(client, config, event, juez1):
    token = await juez1
    body = {"equipo_id": event["equipos"]["a"], "registros": registros(15) + [{"tiempo": "x"}]}
    code, answer = await client.post(URL, body, token)
    assert code == 201 and answer["ignored"] == 1


@pytest.mark.gen_test
async def test_one_invalid_record_rejects_all_and_stores_nothing(client, config, event, juez1):
    token = await juez1
    bad = registros(5)
    bad[3]["tiempo"] = 1.5
    bad[4]["timestamp"] = "ayer"
    code, answer = await client.post(URL, {"equipo_id": event["equipos"]["a"],
                                           "registros": bad}, token)
    assert code == 400 and answer["code"] == "validation_error"
    assert set(answer["errors"]) == {"registros.3.tiempo", "registros.4.timestamp"}
    assert stored(config) == []


@pytest.mark.gen_test
@pytest.mark.parametrize("record, field", [
    ({"timestamp": "2025-11-11T12:00:00Z", "tiempo": True}, "tiempo"),
    ({"timestamp": "2025-11-11T12:00:00Z", "tiempo": "12345"}, "tiempo"),
    ({"timestamp": "2025-11-11T12:00:00Z", "tiempo": -1}, "tiempo"),
    ({"timestamp": "2025-11-11T12:00:00Z", "tiempo": 86_400_001}, "tiempo"),
    ({"timestamp": "2025-11-11T12:00:00Z", "tiempo": 10**30}, "tiempo"),
    ({"timestamp": "2025-11-11T12:00:00Z"}, "tiempo"),
    ({"timestamp": "11/11/2025", "tiempo": 1}, "timestamp"),
    ({"timestamp": 1731326400, "tiempo": 1}, "timestamp"),
    ({"tiempo": 1}, "timestamp"),
    ({"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1, "id_registro": "abc"}, "id_registro"),
    ({"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1, "id_registro": 5}, "id_registro"),
])
async def test_bad_record_fields(client, config, event, juez1, record, field):
    token = await juez1
    code, answer = await client.post(URL, {"equipo_id": event["equipos"]["a"],
                                           "registros": [record]}, token)
    assert code == 400 and answer["errors"] == {"registros.0." + field: answer["errors"][
        "registros.0." + field]}
    assert stored(config) == []


@pytest.mark.gen_test
@pytest.mark.parametrize("raw, code", [
    ("", "empty_body"),
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_body"),
    ('{"equipo_id": 1, "equipo_id": 2, "registros": []}', "invalid_json"),
    ('{"equipo_id": NaN, "registros": []}', "invalid_json"),
    ('{"equipo_id": 1, "registros": []}', "validation_error"),
    ('{"equipo_id": 1}', "validation_error"),
    ("[" * 100 + "]" * 100, "invalid_json"),
])
async def test_malformed_bodies_are_400_json(client, config, juez1, raw, code):
    token = await juez1
    status, answer, _ = await client.request("POST", URL, token=token, raw=raw)
    assert status == 400 and answer["code"] == code and answer["detail"]
    assert stored(config) == []


@pytest.mark.gen_test
async def test_wrong_content_type_is_400(client, event, juez1):
    token = await juez1
    status, answer, _ = await client.request(
        "POST", URL, token=token, raw="equipo_id=1", headers={"Content-Type": "text/plain"})
    assert status == 400 and answer["code"] == "unsupported_content_type"


@pytest.mark.gen_test
async def test_body_over_the_limit_is_413(client, event, juez1):
    token = await juez1
    body = {"equipo_id": event["equipos"]["a"], "registros": registros(15),
            "relleno": "x" * 300_000}
    status, answer = await client.post(URL, body, token)
    assert status == 413 and answer["code"] == "body_too_large"


@pytest.mark.gen_test
async def test_another_judges_team_is_403(client, config, event, juez1):
    token = await juez1
    code, answer = await client.post(URL, {"equipo_id": event["equipos"]["c"],
                                           "registros": registros(1)}, token)
    assert code == 403 and answer["code"] == "team_not_assigned"
    assert stored(config) == []


@pytest.mark.gen_test
async def test_unknown_team_is_404(client, event, juez1):
    token = await juez1
    code, answer = await client.post(URL, {"equipo_id": 9999, "registros": registros(1)}, token)
    assert code == 404 and answer["code"] == "team_not_found"


@pytest.mark.gen_test
async def test_user_without_judge_profile_is_403(client, event):
    token = await client.access("org", "org-pass")
    code, answer = await client.post(URL, {"equipo_id": event["equipos"]["a"],
                                           "registros": registros(1)}, token)
    assert code == 403 and answer["code"] == "not_a_judge"


@pytest.mark.gen_test
async def test_inactive_judge_with_valid_token_is_403(client, config, event, juez1):
    token = await juez1
    with models.db.connection_context():
        models.Juez.update(is_active=False).where(
            models.Juez.id == event["jueces"][0]).execute()
    code, answer = await client.post(URL, {"equipo_id": event["equipos"]["a"],
                                           "registros": registros(1)}, token)
    assert code == 403 and answer["code"] == "inactive_judge"
    assert stored(config) == []


@pytest.mark.gen_test
async def test_no_token_is_401(client, event):
    code, answer = await client.post(URL, {"equipo_id": event["equipos"]["a"],
                                           "registros": registros(1)})
    assert code == 401


@pytest.mark.gen_test
async def test_retries_never_duplicate(client, config, event, juez1):
    token = await juez1
    with_ids = {"equipo_id": event["equipos"]["a"], "registros": registros(3, ids=True)}
    without_ids = {"equipo_id": event["equipos"]["b"], "registros": registros(3)}
    first = [await client.post(URL, body, token) for body in (with_ids, without_ids)]
    again = [await client.post(URL, body, token) for body in (with_ids, without_ids)]
    for (code1, answer1), (code2, answer2) in zip(first, again):
        assert code1 == code2 == 201
        assert answer2["created"] == [] and answer2["duplicates"] == answer1["created"]
    assert [r["id_registro"] for r in with_ids["registros"]] == first[0][1]["created"]
    assert len(stored(config)) == 6


@pytest.mark.gen_test
async def test_partial_retry_stores_only_the_new_records(client, config, event, juez1):
    token = await juez1
    batch = registros(4, ids=True)
    await client.post(URL, {"equipo_id": event["equipos"]["a"], "registros": batch[:2]}, token)
    code, answer = await client.post(URL, {"equipo_id": event["equipos"]["a"],
                                           "registros": batch}, token)
    assert code == 201
    assert answer["duplicates"] == [r["id_registro"] for r in batch[:2]]
    assert answer["created"] == [r["id_registro"] for r in batch[2:]]
    assert len(stored(config)) == 4


@pytest.mark.gen_test
async def test_reused_id_with_different_data_is_409(client, config, event, juez1):
    token = await juez1
    record = registros(1, ids=True)
    await client.post(URL, {"equipo_id": event["equipos"]["a"], "registros": record}, token)
    changed = [dict(record[0], tiempo=999)] + registros(2, start_ms=5000)
    code, answer = await client.post(URL, {"equipo_id": event["equipos"]["a"],
                                           "registros": changed}, token)
    assert code == 409 and answer["code"] == "id_registro_conflict"
    assert len(stored(config)) == 1


@pytest.mark.gen_test
async def test_accepted_in_every_race_state_and_state_kept(client, config, event, juez1):
    token = await juez1
    organizer = await client.access("org", "org-pass")
    cid, team = event["competencia"], event["equipos"]["a"]
    states = []
    for step, action in enumerate([None, "iniciar", "detener"]):
        if action:
            code, _ = await client.post("/api/competencias/%d/%s/" % (cid, action),
                                        token=organizer)
            assert code == 200
        code, _ = await client.post(URL, {"equipo_id": team,
                                          "registros": registros(1, start_ms=step)}, token)
        assert code == 201
    states = sorted((r[2], r[8]) for r in stored(config))
    assert states == [(0, "programada"), (1, "en_curso"), (2, "finalizada")]


@pytest.mark.gen_test
async def test_naive_and_offset_timestamps_are_utc(client, config, event, juez1):
    token = await juez1
    body = {"equipo_id": event["equipos"]["a"], "registros": [
        {"timestamp": "2025-11-11T13:00:00+01:00", "tiempo": 1},
        {"timestamp": "2025-11-11T12:00:00", "tiempo": 2}]}
    code, _ = await client.post(URL, body, token)
    assert code == 201
    assert sorted(r[7] for r in stored(config)) == ["2025-11-11 12:00:00.000000"] * 2


@pytest.fixture
def three_per_minute(config):
    config["limits"]["submissions_per_minute"] = 3
    return config


@pytest.mark.gen_test
async def test_submission_rate_limit_per_judge(three_per_minute, client, event):
    token = await client.access("juez1", "pass-juez1")
    codes = []
    for i in range(4):
        code, answer, response = await client.request(
            "POST", URL, {"equipo_id": event["equipos"]["a"],
                          "registros": registros(1, start_ms=i)}, token)
        codes.append(code)
    assert codes == [201, 201, 201, 429]
    assert answer["code"] == "rate_limited" and int(response.headers["Retry-After"]) >= 1
    other = await client.access("juez2", "pass-juez2")
    code, _ = await client.post(URL, {"equipo_id": event["equipos"]["c"],
                                      "registros": registros(1)}, other)
    assert code == 201
