"""Issue 20, "Wrong results": each wrong result a new organizer met on race day, reproduced
through the real app (real SQLite file, real HTTP and WebSocket clients)."""

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

import models
import race_control
import ranking
import registration
import venue_time
from helpers import next_message, registros

TS = "2026-12-06T09:00:00.000Z"


# -- 2. different id_registro = different records --------------------------------------------
@pytest.mark.gen_test
async def test_ties_and_absents_with_their_own_ids_are_all_stored(client, event):
    judge = await client.access("juez1", "pass-juez1")
    team = event["equipos"]["a"]
    ids = [str(uuid.uuid4()) for _ in range(5)]
    sent = registros([65_000, 65_000, 0, 0, 0], at=TS, every_s=0, ids=ids)
    answer = await client.call("POST", "/api/enviar_tiempos/",
                               {"equipo_id": team, "registros": sent}, judge, 201)
    assert answer["created"] == ids and answer["duplicates"] == []
    # The phone retries: every id answered under its own id.
    again = await client.call("POST", "/api/enviar_tiempos/",
                              {"equipo_id": team, "registros": sent}, judge, 201)
    assert again["created"] == [] and again["duplicates"] == ids
    rows = (await client.standings(event["competencia"]))[0]
    assert rows[team]["registros_contados"] == 2 and rows[team]["ausentes"] == 3
    assert rows[team]["tiempo_total_ms"] == 130_000


@pytest.mark.gen_test
async def test_records_without_ids_repeat_as_a_multiset(client, event):
    judge = await client.access("juez1", "pass-juez1")
    team = event["equipos"]["a"]
    three = {"equipo_id": team, "registros": registros([0, 0, 0], at=TS, every_s=0)}
    first = await client.call("POST", "/api/enviar_tiempos/", three, judge, 201)
    assert len(first["created"]) == 3 and first["duplicates"] == []
    retry = await client.call("POST", "/api/enviar_tiempos/", three, judge, 201)
    assert retry["created"] == [] and sorted(retry["duplicates"]) == sorted(first["created"])
    four = {"equipo_id": team, "registros": registros([0, 0, 0, 0], at=TS, every_s=0)}
    more = await client.call("POST", "/api/enviar_tiempos/", four, judge, 201)
    assert len(more["created"]) == 1 and len(more["duplicates"]) == 3
    # A record with an id never stands in for one without (nor the other way round).
    with_id = registros([0], at=TS, ids=True)
    answer = await client.call("POST", "/api/enviar_tiempos/",
                               {"equipo_id": team, "registros": with_id}, judge, 201)
    assert answer["created"] == [with_id[0]["id_registro"]]
    rows = (await client.standings(event["competencia"]))[0]
    assert rows[team]["ausentes"] == 5


# -- 8. a retry after a reassignment ---------------------------------------------------------
@pytest.mark.gen_test
async def test_retry_after_reassignment_is_a_duplicate_but_new_records_are_refused(client,
                                                                                   event):
    token, judge = await client.organizer(), await client.access("juez1", "pass-juez1")
    team = event["equipos"]["a"]
    body = {"equipo_id": team, "registros": registros([61_000, 62_000], at=TS, ids=[
        uuid.uuid4(), None])}
    first = await client.call("POST", "/api/enviar_tiempos/", body, judge, 201)
    await client.call("PATCH", "/api/equipos/%d/" % team, {"juez_id": event["jueces"][1]},
                      token)
    again = await client.call("POST", "/api/enviar_tiempos/", body, judge, 201)
    assert again == {"created": [], "duplicates": first["created"], "ignored": 0}
    new = {"equipo_id": team, "registros": body["registros"] + registros([63_000], at=TS)}
    refused = await client.call("POST", "/api/enviar_tiempos/", new, judge, 403)
    assert refused["code"] == "team_not_assigned"
    assert (await client.standings(event["competencia"]))[0][team]["registros_contados"] == 2


# -- 4. paper times are never shifted ---------------------------------------------------------
@pytest.mark.gen_test
async def test_paper_times_are_not_shifted_by_a_start_adjustment(client, event):
    token, judge = await client.organizer(), await client.access("juez1", "pass-juez1")
    cid, team = event["competencia"], event["equipos"]["a"]
    await client.race_action(cid, token)
    sent = await client.call("POST", "/api/enviar_tiempos/", {
        "equipo_id": team, "registros": registros([60_000], ids=True)}, judge, 201)
    paper = "/api/competencias/%d/registros/" % cid
    before = await client.call("POST", paper, {"equipo_id": team, "tiempo": 62_500,
                                               "motivo": "papel"}, token, 201)
    shifted = await client.call("POST", "/api/competencias/%d/ajustar_tiempos/" % cid,
                                {"delta_ms": 20_000, "motivo": "salida real antes"}, token)
    assert shifted["registros_afectados"] == 1  # the app's record only
    after = await client.call("POST", paper, {"equipo_id": team, "tiempo": 64_000,
                                              "motivo": "papel"}, token, 201)
    listed = {r["id"]: r for r in (await client.call("GET", paper, token=token))["registros"]}
    assert listed[sent["created"][0]]["tiempo"] == 80_000
    assert listed[before["id"]]["tiempo"] == 62_500
    assert listed[after["id"]]["tiempo"] == 64_000
    assert (await client.standings(cid))[0][team]["tiempo_total_ms"] == 80_000 + 62_500 + 64_000
    # A negative adjustment is judged on the app's records only.
    await client.call("POST", "/api/competencias/%d/ajustar_tiempos/" % cid,
                      {"delta_ms": -70_000, "motivo": "demasiado"}, token, 409)


# -- 7. ids of anything with history are never reused ---------------------------------------
@pytest.mark.gen_test
async def test_a_deleted_teams_id_and_history_never_reach_a_new_team(client, event):
    token = await client.organizer()
    cid = event["competencia"]
    made = await client.call("POST", "/api/competencias/%d/equipos/" % cid, {
        "nombre": "Prueba", "dorsal": 90, "juez_id": event["jueces"][0]}, token, 201)
    await client.call("POST", "/api/equipos/%d/estado/" % made["id"],
                      {"estado": "dsq", "motivo": "prueba"}, token)
    await client.call("POST", "/api/equipos/%d/penalizacion/" % made["id"],
                      {"ms": 30_000, "motivo": "prueba"}, token)
    await client.call("DELETE", "/api/equipos/%d/" % made["id"], token=token, status=204)
    new = await client.call("POST", "/api/competencias/%d/equipos/" % cid, {
        "nombre": "Los de verdad", "dorsal": 91, "juez_id": event["jueces"][0]}, token, 201)
    assert new["id"] > made["id"]
    row = (await client.standings(cid))[0][new["id"]]
    assert row["estado"] == "ok" and row["penalizacion_ms"] == 0


def test_ids_with_history_survive_a_restart_of_the_sequence(config, event):
    """The highest id deleted is remembered by the database, not by the process."""
    with models.db.connection_context():
        made = registration.create_team("Borrable", 50, event["jueces"][0])
        import roster
        roster.delete_team(None, made.id)
    models.db.close()
    models.open_database(config["database"]["path"])
    with models.db.connection_context():
        assert registration.create_team("Nueva", 51, event["jueces"][0]).id > made.id
        comp = registration.create_competition("Otra más")
        assert comp.id > event["otra"]


# -- 3. the judges board: lateness from the moment the start was given ----------------------
@pytest.mark.gen_test
async def test_a_start_adjustment_makes_nobody_late(client, event):
    token, judge = await client.organizer(), await client.access("juez1", "pass-juez1")
    cid, team = event["competencia"], event["equipos"]["a"]
    ws, _ = await client.judge_socket(event["jueces"][0], token=judge)
    started = (await client.race_action(cid, token))["competencia"]
    notice = await next_message(ws)
    assert notice["type"] == "carrera.iniciada"
    # The phone's stopwatch started as it heard the start: its records imply 0 ms.
    given = venue_time.parse_timestamp(started["started_at"])
    finish = given + dt.timedelta(seconds=75)
    await client.call("POST", "/api/enviar_tiempos/", {"equipo_id": team, "registros": registros(
        [75_000], at=finish, ids=True)}, judge, 201)
    await client.call("POST", "/api/competencias/%d/ajustar_tiempos/" % cid,
                      {"delta_ms": 20_000, "motivo": "la salida real fue antes"}, token)
    board = await client.call("GET", "/api/competencias/%d/jueces/" % cid, token=token)
    uno = next(j for j in board["jueces"] if j["id"] == event["jueces"][0])
    assert 0 <= uno["retraso_inicio_ms"] < 2000, uno
    assert uno["inicio_implicito_ms"] == 0, uno
    assert uno["alerta"] is False
    ws.close()


def test_a_judges_first_notice_is_kept_in_the_database(config, event):
    """What a restarted server reads: the first notice, not the replay after the restart."""
    with models.db.connection_context():
        comp = race_control.start_competition(event["competencia"])
        given = venue_time.parse_timestamp(comp["started_at"])
        juez = event["jueces"][0]
        heard = given + dt.timedelta(milliseconds=40)
        race_control.record_start_notice(event["competencia"], juez, heard)
        race_control.record_start_notice(event["competencia"], juez, given + dt.timedelta(seconds=65))
        board = race_control.competition_judges(event["competencia"])
    assert board["inicio_dado"] == comp["started_at"]
    uno = next(j for j in board["jueces"] if j["id"] == juez)
    assert uno["inicio_notificado_en"] == models.iso(heard)


# -- 6. one parser of clock text --------------------------------------------------------------
DURATION_CASES = json.loads((Path(__file__).parent / "duration_cases.json").read_text(
    encoding="utf-8"))["cases"]


@pytest.mark.parametrize("text, signed, expected", DURATION_CASES)
def test_the_one_parser_of_clock_text(text, signed, expected):
    if expected is None:
        with pytest.raises(ValueError):
            venue_time.parse_duration(text, signed=signed)
    else:
        assert venue_time.parse_duration(text, signed=signed) == expected


# -- 1. a column the importer does not know is an error, not silence --------------------------
@pytest.mark.gen_test
async def test_an_unknown_roster_column_is_named_by_the_api(client, event):
    token = await client.organizer()
    garbled = "juez_usuario;juez_nombre;equipo;dorsal;Categor\ufffda\nm;M;E;9;Infantil\n"
    code, answer, _ = await client.request(
        "POST", "/api/competencias/%d/importar/?dry_run=1" % event["competencia"], None, token,
        headers={"Content-Type": "text/csv"}, raw=garbled.encode("utf-8"))
    assert code == 400 and answer["code"] == "invalid_roster", answer
    assert "Categor\ufffda" in answer["detail"] and "categoria" in answer["detail"]


def test_an_unknown_roster_column_is_named_by_the_command_line(config, event, tmp_path):
    from helpers import run_cli
    config_path = tmp_path / "cli.yaml"
    config_path.write_text("database:\n  path: %s\n" % config["database"]["path"])
    roster_path = tmp_path / "lista.csv"
    roster_path.write_bytes("juez_usuario,juez_nombre,equipo,dorsal,Club\nm,M,E,9,X\n".encode())
    result = run_cli(config_path, "import", str(roster_path), "--competition",
                     str(event["competencia"]), check=False)
    assert result.returncode != 0 and "Club" in result.stderr, result
    assert len(result.stderr.strip().splitlines()) == 1


# -- 15. small things ---------------------------------------------------------------------------
def test_results_say_when_they_became_official(config, event):
    import cli_output
    with models.db.connection_context():
        race_control.start_competition(event["competencia"])
        race_control.stop_competition(event["competencia"])
        comp, _ = race_control.make_official(None, event["competencia"])
        result = ranking.ranking(event["competencia"])
    official = venue_time.parse_timestamp(comp["oficial_en"])
    later = official + dt.timedelta(hours=2)
    table = cli_output.format_results(result, now=later)
    assert "results official at %s" % venue_time.local_iso(official) in table, table
    assert venue_time.local_iso(later) not in table


@pytest.mark.gen_test
async def test_paper_times_never_arrived_after_the_finish(client, event):
    token, judge = await client.organizer(), await client.access("juez1", "pass-juez1")
    cid, team = event["competencia"], event["equipos"]["a"]
    await client.race_action(cid, token)
    await client.race_action(cid, token, "detener")
    await client.call("POST", "/api/competencias/%d/registros/" % cid, {
        "equipo_id": team, "tiempo": 62_500, "motivo": "hoja de papel"}, token, 201)
    result = await client.call("GET", "/api/competencias/%d/resultados/" % cid)
    board = await client.call("GET", "/api/competencias/%d/jueces/" % cid, token=token)
    assert result["registros_tras_final"] == 0 and board["registros_tras_final"] == 0
    await client.call("POST", "/api/enviar_tiempos/", {
        "equipo_id": team, "registros": registros([61_000], ids=True)}, judge, 201)
    result = await client.call("GET", "/api/competencias/%d/resultados/" % cid)
    board = await client.call("GET", "/api/competencias/%d/jueces/" % cid, token=token)
    assert result["registros_tras_final"] == 1 and board["registros_tras_final"] == 1
