"""Race day in one story, and the suite's table of contents.

A judge logs in and learns who it is, opens its socket, the organizer checks who is connected and
starts the race, the judge hears the start, sends its times (and retries them), and the standings
rank its team. The in-process app is real (a real SQLite file, real HTTP and WebSocket clients:
the fixtures in conftest.py); each step names the test file that covers its area in depth.
Shared helpers (clients, sockets, record builder, CLI runner, waits) are in helpers.py.

Around the day, outside the story: test_config.py (config.yaml and the secret), test_errors.py
(JSON errors everywhere, CORS), test_openapi.py (the API description, schemathesis), test_tls.py
(HTTPS and WSS), test_logs.py (no secret in any log line), test_backup.py (a copy while judges
submit), test_simulate.py (the organizer's rehearsal), test_serve.py, test_socket_nodelay.py and
test_token_cache.py (serving details), test_bench_smoke.py (the benchmark still runs). The
organizer's side: test_corrections.py (fixing mistakes, the history), test_accounts.py (the roster
and accounts, locking a judge out), test_console.py and test_console_browser.py (the console).
"""

import pytest

from helpers import next_message, registros


@pytest.mark.gen_test(timeout=30)
async def test_race_day(client, event):
    cid = event["competencia"]

    # 1. The judge's phone logs in (test_auth.py: tokens and their claims; test_security.py:
    #    forged and wrong tokens; test_limits.py: password guessing).
    tokens = await client.login("juez1", "pass-juez1")
    assert tokens["access"] and tokens["refresh"]

    # 2. It asks who it is: its judge id, its competition and its teams (test_auth.py).
    code, me = await client.get("/api/me/", token=tokens["access"])
    assert code == 200, me
    juez = me["juez"]
    assert juez["id"] == event["jueces"][0] and juez["competencia"]["id"] == cid
    equipo = juez["equipos"][0]
    assert equipo["id"] == event["equipos"]["a"]

    # 3. It opens its socket and is greeted (test_sockets.py: who hears what, exactly once;
    #    test_tickets.py: ?ticket= instead of the token in the URL; test_hostile.py: bad input).
    ws, hello = await client.judge_socket(juez["id"], tokens["access"])
    assert hello["type"] == "conexion.establecida"
    assert hello["data"]["juez_id"] == juez["id"]
    assert hello["data"]["competencia"]["estado"] == "programada"

    # 4. The organizer checks who is connected before firing the start (test_races.py).
    organizer = await client.access("org", "org-pass")
    code, jueces = await client.get("/api/competencias/%d/jueces/" % cid, token=organizer)
    assert code == 200, jueces
    connected = {j["id"]: j["conectado"] for j in jueces["jueces"]}
    assert connected == {event["jueces"][0]: True, event["jueces"][1]: False}

    # 5. The organizer starts the race (test_races.py: start, stop, false start and their
    #    conflicts; test_cli.py and test_guide.py: the same from the command line).
    started = await client.race_action(cid, organizer)
    assert started["competencia"]["estado"] == "en_curso" and started["notificados"] == 1

    # 6. The judge hears it, with the server's start time (test_sockets.py).
    message = await next_message(ws)
    assert message["type"] == "carrera.iniciada"
    assert message["data"]["started_at"] == started["competencia"]["started_at"]

    # 7. The judge sends its team's 15 times: stored durably, all created (test_times.py:
    #    validation and what is stored; test_writer.py: submissions sharing a commit;
    #    test_crash.py and test_shutdown.py: a kill or a stop loses nothing answered;
    #    test_properties.py: no input ever gets a 500).
    body = {"equipo_id": equipo["id"], "registros": registros(15, start_ms=1_200_000, ids=True)}
    code, answer = await client.post("/api/enviar_tiempos/", body, tokens["access"])
    assert code == 201, answer
    sent = [r["id_registro"] for r in body["registros"]]
    assert answer == {"created": sent, "duplicates": [], "ignored": 0}

    # 8. The phone got no answer (say) and sends the same again: all duplicates, still 201
    #    (test_times.py, test_models.py: idempotent by id and by content).
    code, again = await client.post("/api/enviar_tiempos/", body, tokens["access"])
    assert code == 201, again
    assert again == {"created": [], "duplicates": sent, "ignored": 0}

    # 9. The public standings rank the team (test_results.py: JSON, CSV, pages and the live
    #    spectators' socket; test_ranking.py: the ranking rule; test_browser.py: the live page).
    code, results = await client.get("/api/competencias/%d/resultados/" % cid)
    assert code == 200, results
    first = results["clasificacion"][0]
    assert (first["posicion"], first["equipo_id"]) == (1, equipo["id"])
    assert first["registros_contados"] == 15
    assert first["tiempo_total_ms"] == sum(r["tiempo"] for r in body["registros"])
    assert first["antes_de_salida"] == 0
    assert all(row["posicion"] is None for row in results["clasificacion"][1:])
    ws.close()
