"""One judge, several competitions (issue 20 item 12): the same person times next month's race,
or the morning's and the afternoon's, with one account and one password; a roster that names
judges of another competition imports them as they are. The real app on a real SQLite file, real
HTTP and WebSocket clients; the command line as a subprocess."""

import json

import jwt
import pytest

from helpers import LiveServer, handshake_status, judge_path, next_message, nothing_within, \
    stored_rows

ROSTER = ("juez_usuario,juez_nombre,equipo,dorsal\n"
          "juez1,,Tortugas,10\n"
          "juez3,Juez Tres en la primera,Liebres,11\n"
          "nueva,Nueva Jueza,Gacelas,12\n")


async def importar(client, cid, token, text, dry_run=False, status=200):
    return await client.call("POST", "/api/competencias/%d/importar/%s" % (
        cid, "?dry_run=1" if dry_run else ""), token=token, raw=text, status=status,
        headers={"Content-Type": "text/csv; charset=utf-8"})


async def judges_of(client, token, cid):
    return {j["username"]: j for j in (await client.call(
        "GET", "/api/jueces/", token=token))["jueces"] if j["competencia_id"] == cid}


@pytest.mark.gen_test(timeout=60)
async def test_a_roster_naming_judges_of_another_competition_imports_them_as_they_are(
        client, event):
    """juez3 judges the other race, juez1 this one: imported into the first competition, juez3
    keeps its account and password (no credentials), only the new judge gets some."""
    cid, token = event["competencia"], await client.organizer()
    preview = await importar(client, cid, token, ROSTER, dry_run=True)
    assert (preview["jueces_nuevos"], preview["cuentas_existentes"],
            preview["equipos_nuevos"], preview["credenciales"]) == (2, 1, 3, [])
    assert preview["detalle"]["jueces"] == [
        {"username": "juez1", "nombre": "Juez Uno", "nuevo": False},
        {"username": "juez3", "nombre": "Juez Tres en la primera", "nuevo": True,
         "cuenta_existente": True},
        {"username": "nueva", "nombre": "Nueva Jueza", "nuevo": True}]
    done = await importar(client, cid, token, ROSTER)
    assert (done["jueces_nuevos"], done["cuentas_existentes"]) == (2, 1)
    assert [c["username"] for c in done["credenciales"]] == ["nueva"]
    here = await judges_of(client, token, cid)
    assert set(here) == {"juez1", "juez2", "juez3", "nueva"}
    assert here["juez3"]["id"] != event["jueces"][2]  # a judge row of its own, here
    # The same password as before; /api/me/ lists both of its judges.
    juez3 = await client.access("juez3", "pass-juez3")
    me = await client.call("GET", "/api/me/", token=juez3)
    assert {j["competencia"]["id"] for j in me["jueces"]} == {cid, event["otra"]}
    assert me["juez"]["id"] == me["jueces"][0]["id"]
    liebres = [e for j in me["jueces"] for e in j["equipos"] if e["nombre"] == "Liebres"]
    assert len(liebres) == 1
    # Each creation has its history row in this competition (who, when, from which line).
    history = (await client.call("GET", "/api/competencias/%d/auditoria/" % cid,
                                 token=token))["acciones"]
    created = [h for h in history if h["accion"] == "crear" and h["objeto"] == "juez"]
    assert [h["despues"]["username"] for h in created] == ["juez3", "nueva"]
    # The same roster again changes nothing.
    again = await importar(client, cid, token, ROSTER)
    assert (again["jueces_nuevos"], again["cuentas_existentes"], again["equipos_nuevos"],
            again["equipos_cambiados"]) == (0, 0, 0, 0)
    # An organizer's account is no judge to add; nothing of that roster is written.
    refused = await importar(client, cid, token, ROSTER + "org,Org,Zorros,13\n", status=409)
    assert refused["code"] == "username_taken" and "'org' existe pero no es juez" in \
        refused["detail"]


@pytest.mark.gen_test(timeout=60)
async def test_one_login_times_two_competitions_each_on_its_own_judge(client, event, config):
    cid, otra = event["competencia"], event["otra"]
    token = await client.organizer()
    # juez1 (of the first race) added to the other: its password stays, none is shown; a
    # password given for an existing account is refused rather than silently dropped.
    refused = await client.call("POST", "/api/competencias/%d/jueces/" % otra,
                                {"username": "JUEZ1", "password": "otra-clave-1"}, token, 409)
    assert refused["code"] == "judge_has_password"
    added = await client.call("POST", "/api/competencias/%d/jueces/" % otra,
                              {"username": "JUEZ1"}, token, 201)
    assert added["password"] is None and added["juez"]["cuenta_nueva"] is False
    assert added["juez"]["nombre"] == "Juez Uno" and added["juez"]["username"] == "juez1"
    twice = await client.call("POST", "/api/competencias/%d/jueces/" % otra,
                              {"username": "juez1"}, token, 409)
    assert twice["code"] == "username_taken"
    j1_here, j1_there = event["jueces"][0], added["juez"]["id"]
    team_there = (await client.call("POST", "/api/competencias/%d/equipos/" % otra, {
        "nombre": "Equipo Y", "dorsal": 2, "juez_id": j1_there}, token, 201))["id"]
    await client.race_action(otra, token)

    judge = await client.access("juez1", "pass-juez1")
    me = await client.call("GET", "/api/me/", token=judge)
    # The one that matters now: the race that is running.
    assert me["juez"]["id"] == j1_there and me["juez"]["competencia"]["estado"] == "en_curso"
    assert [j["id"] for j in me["jueces"]] == [j1_there, j1_here]

    # A socket per judge row: each hears its own competition's start, and only that.
    there, hello = await client.judge_socket(j1_there, judge)
    assert hello["data"]["competencia"]["id"] == otra
    start = await next_message(there)
    assert start["type"] == "carrera.iniciada" and start["data"]["competencia_id"] == otra
    here, hello = await client.judge_socket(j1_here, judge)
    assert hello["data"]["competencia"]["id"] == cid and hello["data"]["juez_id"] == j1_here
    assert await nothing_within(here, 0.3)  # its race has not started
    await client.race_action(cid, token)  # now it has: this socket hears it, the other not
    start = await next_message(here)
    assert start["type"] == "carrera.iniciada" and start["data"]["competencia_id"] == cid
    assert await nothing_within(there, 0.3)
    # Another judge's row is not this token's.
    assert await handshake_status(client.ws_url(judge_path(event["jueces"][1], judge))) == 403

    # One token sends for both; each record keeps the judge row of its competition.
    await client.enviar_tiempos(judge, event["equipos"]["a"], 61_000)
    await client.enviar_tiempos(judge, team_there, 62_000)
    assert sorted(stored_rows(config["database"]["path"], "equipo_id, juez_id")) == sorted(
        [(event["equipos"]["a"], j1_here), (team_there, j1_there)])
    # Read-back for either team; a team of a competition it does not time stays refused.
    await client.call("GET", "/api/equipos/%d/registros/" % team_there, token=judge)
    refused = await client.enviar_tiempos(judge, event["equipos"]["x"], 1000, status=403)
    assert refused["code"] == "team_not_assigned"

    # Deactivated in the first race only: its sessions end (as ORGANIZER.md says), it logs in
    # again for the other, and the first race's team and socket are refused to it.
    await client.call("PATCH", "/api/jueces/%d/" % j1_here, {"activo": False}, token)
    judge = await client.access("juez1", "pass-juez1")
    refused = await client.enviar_tiempos(judge, event["equipos"]["a"], 63_000, status=403)
    assert refused["code"] == "inactive_judge"
    read = await client.call("GET", "/api/equipos/%d/registros/" % event["equipos"]["a"],
                             token=judge, status=403)  # (the read-back: the same rule)
    assert read["code"] == "inactive_judge"
    await client.enviar_tiempos(judge, team_there, 64_000)
    assert await handshake_status(client.ws_url(judge_path(j1_here, judge))) == 403
    me = await client.call("GET", "/api/me/", token=judge)
    assert [j["id"] for j in me["jueces"]] == [j1_there]
    there.close()
    here.close()


@pytest.mark.gen_test(timeout=60)
async def test_movil5k_lists_every_competition_and_team_of_the_judge(client, event):
    cid, otra = event["competencia"], event["otra"]
    token = await client.organizer()
    added = await client.call("POST", "/api/competencias/%d/jueces/" % otra,
                              {"username": "juez3"}, token, 409)
    assert added["code"] == "username_taken"  # juez3 judges "otra" already
    added = await client.call("POST", "/api/competencias/%d/jueces/" % cid,
                              {"username": "juez3", "nombre": "Tres aquí"}, token, 201)
    await client.call("POST", "/api/competencias/%d/equipos/" % cid, {
        "nombre": "Equipo Z", "dorsal": 9, "juez_id": added["juez"]["id"]}, token, 201)
    await client.race_action(cid, token)
    app = (await client.call("POST", "/api/login/", {"username": "juez3",
                                                     "password": "pass-juez3"}))["access"]
    me = await client.call("GET", "/api/me/", token=app)
    assert me["id"] == added["juez"]["id"]  # the running race's judge row: its socket's id
    comps = await client.call("GET", "/api/competencias/", token=app)
    assert [c["id"] for c in comps] == [cid, otra]
    assert [c["id"] for c in await client.call("GET", "/api/competencias/?is_running=true",
                                               token=app)] == [cid]
    teams = await client.call("GET", "/api/equipos/", token=app)
    assert sorted((t["competition_id"], t["name"]) for t in teams) == [
        (cid, "Equipo Z"), (otra, "Equipo X")]
    # Its production build polls the competition: the board notes the judge row of *that*
    # competition heard the start.
    await client.call("GET", "/api/competencias/%d/" % cid, token=app)
    board = (await client.call("GET", "/api/competencias/%d/jueces/" % cid,
                               token=token))["jueces"]
    heard = {j["id"]: j["inicio_notificado_en"] for j in board}
    assert heard[added["juez"]["id"]] is not None
    # Its tokens name its judge in each race not over (what a poll marks), not those finished.
    claims = jwt.decode(app, options={"verify_signature": False})
    assert claims["jueces"] == sorted([[cid, added["juez"]["id"]], [otra, event["jueces"][2]]])
    await client.race_action(cid, token, "detener")
    again = (await client.call("POST", "/api/login/", {"username": "juez3",
                                                       "password": "pass-juez3"}))["access"]
    assert jwt.decode(again, options={"verify_signature": False})["jueces"] == [
        [otra, event["jueces"][2]]]


def test_the_command_line_adds_a_judge_to_a_second_competition_and_asks_which(tmp_path):
    conf = LiveServer(tmp_path, tmp_path / "event.db")
    for args in (["competition", "add", "Mañana"], ["competition", "add", "Tarde"],
                 ["judge", "add", "pedro", "--competition", "1", "--password", "clave-larga"]):
        conf.cli(*args)
    second = conf.cli("judge", "add", "PEDRO", "--competition", "2", "--json")
    added = json.loads(second.stdout.strip().splitlines()[-1])
    assert added["competencia_id"] == 2 and added["cuenta_nueva"] is False
    assert "password" not in added  # it keeps the one it has
    given = conf.cli("judge", "add", "pedro", "--competition", "2", "--password",
                     "otra-clave-larga", check=False)
    assert given.returncode == 1 and len(given.stderr.strip().splitlines()) >= 1
    ambiguous = conf.cli("team", "add", "Rápidos", "--dorsal", "1", "--judge", "pedro",
                         check=False)
    assert ambiguous.returncode != 0
    assert "judges competitions 1, 2" in ambiguous.stderr.strip().splitlines()[-1]
    team = conf.cli("team", "add", "Rápidos", "--dorsal", "1", "--judge", "pedro",
                    "--competition", "2", "--json")
    assert json.loads(team.stdout.strip().splitlines()[-1])["competencia_id"] == 2
