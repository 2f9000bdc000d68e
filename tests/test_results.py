"""Results on race day: the standings API (JSON and CSV), the public pages, the spectators'
live socket (kept apart from the judges'), and ``server5k.py results``."""

import asyncio
import csv
import io
import json
import re

import pytest
import tornado.httpclient
import tornado.websocket

import models
import ranking
import registration
import submissions
import server5k
from helpers import next_message, nothing_within, run_cli, wait_for_async
from handlers import spectators as spectators_module


def rows_by_dorsal(result):
    return {row["dorsal"]: row for row in result["clasificacion"]}


# -- the standings API ------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_results_are_public_and_follow_the_submissions(client, event):
    cid, eq = event["competencia"], event["equipos"]
    token1 = await client.access("juez1", "pass-juez1")
    token2 = await client.access("juez2", "pass-juez2")
    await client.enviar_tiempos(token1, eq["a"], 1_500_000, 1_400_000, every_s=60)   # before the start
    code, org = await client.login("org", "org-pass"), None
    org = code["access"]
    code, body = await client.post("/api/competencias/%d/iniciar/" % cid, token=org)
    assert code == 200, body
    await client.enviar_tiempos(token1, eq["b"], 1_300_000, minute=5, every_s=60)
    await client.enviar_tiempos(token2, eq["c"], 1_000_000, 1_100_000, minute=10, every_s=60)

    code, result = await client.get("/api/competencias/%d/resultados/" % cid)  # no token
    assert code == 200, result
    assert result["competencia"]["id"] == cid
    assert result["competencia"]["estado"] == "en_curso"
    assert result["competencia"]["started_at"].endswith("Z")
    assert result["registros_por_equipo"] == 15
    assert result["server_time"].endswith("Z")
    assert [(r["posicion"], r["dorsal"]) for r in result["clasificacion"]] == [
        (1, 3), (2, 1), (3, 2)]
    rows = rows_by_dorsal(result)
    assert rows[3] == {
        "posicion": 1, "equipo_id": eq["c"], "equipo": "Equipo C", "dorsal": 3,
        "estado": "ok", "registros_contados": 2, "registros_recibidos": 2,
        "tiempo_total_ms": 2_100_000, "tiempo_total": "0:35:00.000", "penalizacion_ms": 0,
        "mejor_ms": 1_000_000, "mejor": "0:16:40.000", "promedio_ms": 1_050_000,
        "promedio": "0:17:30.000", "antes_de_salida": 0, "ausentes": 0, "pendientes": 0,
        "categoria": None, "posicion_categoria": None, "puntos": None, "puestos": []}
    assert result["regla"]["tipo"] == "suma" and result["categorias"] == []
    assert rows[1]["antes_de_salida"] == 2  # flagged...
    assert rows[1]["registros_contados"] == 2  # ...and counted
    assert rows[2]["antes_de_salida"] == 0
    # The other competition's team is not in these standings.
    assert eq["x"] not in [r["equipo_id"] for r in result["clasificacion"]]


@pytest.mark.gen_test
async def test_records_scored_per_team_comes_from_the_config(config, event):
    # A second app on the same database with N = 1 (the fixture's app uses the default 15).
    config["race"]["records_scored_per_team"] = 1
    app = server5k.make_app(config)
    try:
        with models.db.connection_context():
            user_id = models.Juez.get_by_id(event["jueces"][0]).user_id
        await asyncio.wrap_future(app.settings["server5k_store"].write(
            submissions.store_submission, user_id, event["equipos"]["a"], [
                {"tiempo": 2000, "timestamp": models.utcnow(), "id_registro": None},
                {"tiempo": 1000, "timestamp": models.utcnow(), "id_registro": None}]))
        from handlers.standings import compute
        snapshot = await asyncio.wrap_future(app.settings["server5k_store"].read_public(
            compute, event["competencia"]))
    finally:
        server5k.close_app(app)
    row = rows_by_dorsal(json.loads(snapshot.json("now")))[1]
    assert (row["registros_contados"], row["registros_recibidos"], row["tiempo_total_ms"]) == (
        1, 2, 1000)


@pytest.mark.gen_test
async def test_results_csv_has_a_header_and_the_same_rows_as_json(client, event):
    cid, eq = event["competencia"], event["equipos"]
    token = await client.access("juez1", "pass-juez1")
    await client.enviar_tiempos(token, eq["a"], 1_234_567, every_s=60)
    code, result = await client.get("/api/competencias/%d/resultados/" % cid)
    assert code == 200
    response = await client.http.fetch(
        client.base_url + "/api/competencias/%d/resultados/?format=csv" % cid, raise_error=False)
    assert response.code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="resultados-competencia-%d.csv"' % cid)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    text = response.body.decode("utf-8")
    assert text.startswith("\ufeff")  # spreadsheets then read the accents right
    table = list(csv.DictReader(io.StringIO(text[1:])))
    assert list(table[0].keys()) == list(ranking.CSV_COLUMNS)
    assert len(table) == len(result["clasificacion"]) == 3
    for line, row in zip(table, result["clasificacion"]):
        for column in ranking.CSV_COLUMNS:
            if column not in row:
                continue
            value = row[column]
            expected = ("" if value is None else " ".join(map(str, value))
                        if isinstance(value, list) else str(value))
            assert line[column] == expected, column
    # The rule in words, provisional or official, and the local time, on every row.
    assert {line["regla"] for line in table} == {result["regla"]["texto"]}
    assert {line["resultados"] for line in table} == {"provisionales"}
    assert all(re.fullmatch(r"[0-9-]{10}T[0-9:]{8}[+-][0-9]{2}:[0-9]{2}", line["actualizado_en"])
               for line in table)
    assert table[0]["tiempo_total"] == "0:20:34.567"
    assert table[0]["posicion"] == "1"
    assert table[1]["posicion"] == ""


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/api/competencias/999/resultados/",
                                  "/api/competencias/999/resultados/?format=csv",
                                  "/api/competencias/abc/resultados/",
                                  "/api/competencias/0/resultados/"])
async def test_unknown_competition_is_a_json_404(client, event, path):
    code, body, response = await client.request("GET", path)
    assert code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert body["code"] in ("competition_not_found", "not_found")
    assert body["detail"]


@pytest.mark.gen_test
@pytest.mark.parametrize("fmt", ["xml", "", "CSV", "html"])
async def test_unknown_format_is_a_json_400(client, event, fmt):
    code, body, response = await client.request(
        "GET", "/api/competencias/%d/resultados/?format=%s" % (event["competencia"], fmt))
    assert code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert body["code"] == "invalid_format"
    assert "format" in body["errors"]


@pytest.mark.gen_test
async def test_results_answer_preflight_and_refuse_writes(client, event):
    path = "/api/competencias/%d/resultados/" % event["competencia"]
    code, body, response = await client.request("OPTIONS", path)
    assert code == 204
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    code, body = await client.post(path, {})
    assert code == 405
    assert body["code"] == "method_not_allowed"


@pytest.mark.gen_test
async def test_an_organizers_standings_read_never_waits_behind_anonymous_turns(client, app,
                                                                               event):
    """Issue 21: the console reads the standings with its token; its address's anonymous turns
    (a venue's Wi-Fi puts the console and the spectators behind one) never hold it back."""
    from handlers.limits import Pacer
    path = "/api/competencias/%d/resultados/" % event["competencia"]
    token = await client.access("org", "org-pass")  # logins take turns of their own
    app.settings["server5k_limits"].pacer = Pacer(1, max_wait=0.2)  # one a minute, 3 s burst
    codes = [(await client.get(path))[0] for _ in range(5)]
    assert codes[0] == 200 and codes[-1] == 429, codes
    code, body = await client.get(path, token=token)
    assert code == 200 and [r["dorsal"] for r in body["clasificacion"]]
    assert (await client.get(path, token="no-es-un-token"))[0] == 429  # a bad token is no token


@pytest.mark.gen_test
async def test_unknown_api_paths_stay_json_404(client, event):
    for path in ("/api/nada/", "/api/competencias/1/resultados/extra/"):
        code, body, response = await client.request("GET", path)
        assert code == 404
        assert response.headers["Content-Type"].startswith("application/json")
        assert body["code"] == "not_found"


# -- the pages ------------------------------------------------------------------------------------
async def fetch_page(client, path):
    response = await client.http.fetch(client.base_url + path, raise_error=False)
    return response, response.body.decode("utf-8")


@pytest.mark.gen_test
async def test_index_lists_competitions_with_links(client, event):
    with models.db.connection_context():
        registration.create_competition('<script>alert("x")</script> & Cía')
    response, html = await fetch_page(client, "/")
    assert response.code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert '<html lang="es">' in html
    assert 'href="/competencias/%d/"' % event["competencia"] in html
    assert 'href="/competencias/%d/"' % event["otra"] in html
    assert "Carrera de prueba" in html and "Otra carrera" in html
    assert "Programada" in html
    # Names are escaped: organizers type them, the page must not run them.
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Cía" in html


@pytest.mark.gen_test
async def test_competition_page_is_html_with_its_script(client, event):
    cid = event["competencia"]
    response, html = await fetch_page(client, "/competencias/%d/" % cid)
    assert response.code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'data-competencia="%d"' % cid in html
    assert "Carrera de prueba" in html
    assert 'id="clasificacion"' in html and 'id="reloj"' in html
    assert 'id="aviso-conexion"' in html
    for name in ("resultados.js", "resultados.css"):
        start = html.index("/static/%s?v=" % name)
        url = html[start:html.index('"', start)]
        asset, body = await fetch_page(client, url)
        assert asset.code == 200, url
    assert "/ws/resultados/" in body or "/ws/resultados/" in (
        await fetch_page(client, "/static/resultados.js"))[1]
    # No fetches from the internet: every src/href is local (the QR code is a data: URI).
    links = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert links and all(link.startswith(("/", "data:")) for link in links), links


@pytest.mark.gen_test
async def test_the_page_has_a_qr_code_of_its_public_address(client, event, config):
    cid = event["competencia"]
    response, html = await fetch_page(client, "/competencias/%d/" % cid)
    here = "%s/competencias/%d/" % (client.base_url, cid)  # no public_url: the request's
    assert '<span id="qr-url">%s</span>' % here in html
    qr = re.search(r'<img src="(data:image/svg\+xml[^"]+)" alt="Código QR de los resultados: '
                   r'([^"]+)"', html)
    assert qr and qr.group(2) == here
    from handlers.pages import qr_data_uri
    assert qr.group(1) == qr_data_uri(here).replace("&", "&amp;").replace("'", "&#x27;")
    config["server"]["public_url"] = "http://resultados.example:8000"
    response, html = await fetch_page(client, "/competencias/%d/" % cid)
    assert '<span id="qr-url">http://resultados.example:8000/competencias/%d/</span>' % cid in html
    assert "img-src 'self' data:" in response.headers["Content-Security-Policy"]


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/competencias/999/", "/competencias/0/"])
async def test_unknown_competition_page_is_an_html_404(client, event, path):
    response, html = await fetch_page(client, path)
    assert response.code == 404
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "No encontrado" in html
    assert "Traceback" not in html


# -- the spectators' socket ------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_spectator_gets_standings_after_a_submission_and_after_start_and_stop(client, event):
    cid, eq = event["competencia"], event["equipos"]
    ws, first = await client.spectator(cid)
    assert first["competencia"]["estado"] == "programada"
    assert all(r["posicion"] is None for r in first["clasificacion"])

    token = await client.access("juez2", "pass-juez2")
    await client.enviar_tiempos(token, eq["c"], 1_000_000, every_s=60)
    update = await next_message(ws)
    assert update["type"] == "resultados"
    assert rows_by_dorsal(update["data"])[3]["posicion"] == 1
    assert rows_by_dorsal(update["data"])[3]["tiempo_total"] == "0:16:40.000"

    org = await client.access("org", "org-pass")
    code, body = await client.post("/api/competencias/%d/iniciar/" % cid, token=org)
    assert code == 200
    update = await next_message(ws)
    assert update["data"]["competencia"]["estado"] == "en_curso"
    assert update["data"]["competencia"]["started_at"] == body["competencia"]["started_at"]

    code, body = await client.post("/api/competencias/%d/detener/" % cid, token=org)
    assert code == 200
    update = await next_message(ws)
    assert update["data"]["competencia"]["estado"] == "finalizada"
    ws.close()


@pytest.mark.gen_test
async def test_spectator_is_told_of_a_false_start_reset(client, event):
    cid = event["competencia"]
    org = await client.access("org", "org-pass")
    await client.post("/api/competencias/%d/iniciar/" % cid, token=org)
    ws, first = await client.spectator(cid)
    assert first["competencia"]["estado"] == "en_curso"
    code, _ = await client.post("/api/competencias/%d/reiniciar/" % cid, token=org)
    assert code == 200
    update = await next_message(ws)
    assert update["data"]["competencia"]["estado"] == "programada"
    assert update["data"]["competencia"]["started_at"] is None
    ws.close()


@pytest.mark.gen_test
async def test_spectators_only_hear_about_their_competition(client, event):
    ws, _ = await client.spectator(event["competencia"])
    org = await client.access("org", "org-pass")
    code, _ = await client.post("/api/competencias/%d/iniciar/" % event["otra"], token=org)
    assert code == 200
    token = await client.access("juez3", "pass-juez3")
    await client.enviar_tiempos(token, event["equipos"]["x"], 1000, every_s=60)
    assert await nothing_within(ws, 0.6)
    ws.close()


@pytest.mark.gen_test
async def test_a_burst_of_changes_is_one_query_and_one_message(client, app, event):
    cid = event["competencia"]
    sockets = [(await client.spectator(cid))[0] for _ in range(3)]
    hub = app.settings["server5k_hub"]
    for _ in range(100):  # a hundred accepted submissions in one loop iteration
        hub.records_stored(cid, event["equipos"]["a"], 1)
    for ws in sockets:
        msg = await next_message(ws)
        assert msg["type"] == "resultados"
    for ws in sockets:
        assert await nothing_within(ws, 0.6)
        ws.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_spectator_that_stops_reading_never_holds_up_the_others(client, app, event,
                                                                      monkeypatch):
    cid = event["competencia"]
    # No bytes-a-second budget here: at 8 MB/s the 100 pushes would take longer than the ping
    # timeout, which would close the spectator that does not read (tested elsewhere).
    monkeypatch.setattr(spectators_module, "PUSH_BYTES_PER_S", float("inf"))
    with models.db.connection_context():  # ~350 KB of standings per message
        models.Equipo.insert_many([{"competencia": cid, "nombre": "Equipo lento %04d" % n,
                                    "dorsal": 100 + n} for n in range(1000)]).execute()
    spectators = app.settings["server5k_spectators"]
    standings = app.settings["server5k_standings"]
    standings.min_interval = 0  # one push per change, so the flood is as big as it can be
    standings.busy_share = 1
    hub = app.settings["server5k_hub"]
    slow, _ = await client.spectator(cid)  # ...and then never reads again
    fast, _ = await client.spectator(cid)
    pushes, held_back = 100, 0
    for _ in range(pushes):
        hub.records_stored(cid, event["equipos"]["a"], 1)
        assert (await next_message(fast, timeout=30))["type"] == "resultados"
        stuck = [s for s in spectators.registry.of(cid)
                 if s._in_flight is not None and not s._in_flight.done()]
        held_back = max(held_back, len(stuck))
    # The fast spectator got every push; the slow one has one message in flight and at most
    # one waiting (the newest), instead of 35 MB queued in the server for it.
    assert held_back == 1
    # Once it reads again it catches up with the latest standings, skipping the stale ones.
    received = 0
    while True:
        try:
            msg = await asyncio.wait_for(slow.read_message(), 2)
        except asyncio.TimeoutError:
            break
        assert json.loads(msg)["type"] == "resultados"
        received += 1
    assert 0 < received < pushes
    slow.close()
    fast.close()


@pytest.mark.gen_test
async def test_a_late_spectator_gets_the_current_standings_at_once(client, event):
    cid, eq = event["competencia"], event["equipos"]
    token = await client.access("juez1", "pass-juez1")
    await client.enviar_tiempos(token, eq["b"], 1_111_111, every_s=60)
    first_ws, first = await client.spectator(cid)
    late_ws, late = await client.spectator(cid)  # served from the cached snapshot
    assert late == first
    assert rows_by_dorsal(late)[2]["mejor_ms"] == 1_111_111
    first_ws.close()
    late_ws.close()


@pytest.mark.gen_test
async def test_spectator_messages_never_reach_judges(client, event):
    cid = event["competencia"]
    token = await client.access("juez1", "pass-juez1")
    judge, _ = await client.judge_socket(event["jueces"][0], token)
    ws, _ = await client.spectator(cid)
    fake_start = {"type": "carrera.iniciada", "data": {"competencia_id": cid}}
    for text in (json.dumps(fake_start), json.dumps({"type": "ping", "data": {}}), "not json",
                 json.dumps({"type": "resultados", "data": {}})):
        await ws.write_message(text)
    # Judges hear nothing, and the spectator gets no answer (no pong, no error)...
    assert await nothing_within(judge, 0.6)
    assert await nothing_within(ws, 0.1)
    # ...but both sockets are still alive: the judge's ping works, the spectator gets updates.
    await judge.write_message(json.dumps({"type": "ping", "data": {"n": 1}}))
    pong = await next_message(judge)
    assert pong["type"] == "pong" and pong["data"]["n"] == 1
    await client.enviar_tiempos(token, event["equipos"]["a"], 5000, every_s=60)
    assert (await next_message(ws))["type"] == "resultados"
    assert await nothing_within(judge, 0.3)  # a submission is no judge event either
    judge.close()
    ws.close()


@pytest.mark.gen_test
async def test_spectators_are_a_separate_registry(client, app, event):
    spectators = app.settings["server5k_spectators"]
    hub = app.settings["server5k_hub"]
    ws, _ = await client.spectator(event["competencia"])
    assert spectators.count(event["competencia"]) == 1
    assert hub.socket_count() == 0  # the judges' registry does not know it
    org = await client.access("org", "org-pass")
    code, body = await client.post("/api/competencias/%d/iniciar/" % event["competencia"],
                                   token=org)
    assert body["notificados"] == 0  # spectators are not counted as notified judges
    ws.close()
    await wait_for_async(lambda: spectators.count() == 0, timeout=2,
                         what="the closed spectator socket to leave its registry")
    assert spectators.count() == 0


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/ws/resultados/999/", "/ws/resultados/0/"])
async def test_spectator_socket_of_unknown_competition_is_refused(client, event, path):
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await tornado.websocket.websocket_connect(client.ws_url(path))
    assert info.value.code == 404


@pytest.mark.gen_test
async def test_spectator_socket_without_upgrade_is_a_json_400(client, event):
    code, body, _ = await client.request("GET", "/ws/resultados/%d/" % event["competencia"])
    assert code == 400
    assert body["code"] == "websocket_expected"


# -- the command line ------------------------------------------------------------------------------
@pytest.fixture
def cli(config, event, tmp_path):
    """``server5k.py --config FILE ...`` run in-process against the event database."""
    path = tmp_path / "config.yaml"
    path.write_text("database:\n  path: %s\n" % config["database"]["path"])
    with models.db.connection_context():
        for juez, team, tiempos in ((0, "a", [1_500_000, 1_400_000]), (1, "c", [1_000_000])):
            user_id = models.Juez.get_by_id(event["jueces"][juez]).user_id
            with models.db.atomic():
                submissions.store_submission(user_id, event["equipos"][team], [
                    {"tiempo": t, "timestamp": models.utcnow(), "id_registro": None}
                    for t in tiempos])

    def run(*argv):
        return run_cli(path, *argv, in_process=True, check=False)
    return run


def test_cli_results_prints_a_table(cli, event):
    result = cli("results", str(event["competencia"]))
    assert result.returncode == 0
    out = result.stdout.splitlines()
    assert out[0].startswith("competition %d Carrera de prueba: programada" % event["competencia"])
    assert out[1].startswith("rule: suma, best 15 count. Suma de los 15 mejores tiempos")
    assert re.fullmatch(r"results provisional at 20[0-9-]{8}T[0-9:]{8}[+-][0-9]{2}:[0-9]{2}",
                        out[2])
    assert out[3].split() == ["pos", "dorsal", "equipo", "counted", "total", "best", "mean",
                              "early"]
    body = [line.split() for line in out[5:]]
    # Two finishers beat one faster finisher.
    assert body[0] == ["1", "1", "Equipo", "A", "2", "0:48:20.000", "0:23:20.000",
                       "0:24:10.000", "2"]
    assert body[1] == ["2", "3", "Equipo", "C", "1", "0:16:40.000", "0:16:40.000",
                       "0:16:40.000", "1"]
    assert body[2] == ["-", "2", "Equipo", "B", "0", "-", "-", "-"]
    assert "early" in out[-1]  # records before the start are pointed out


def test_cli_results_csv_writes_the_api_file(cli, event, tmp_path):
    target = tmp_path / "resultados.csv"
    result = cli("results", str(event["competencia"]), "--csv", str(target))
    assert result.returncode == 0
    assert "3 teams written" in result.stdout
    with models.db.connection_context():
        expected = ranking.ranking_csv(ranking.ranking(event["competencia"], 15))
    assert target.read_bytes() == expected.encode("utf-8")
    table = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert table[0] == list(ranking.CSV_COLUMNS)
    assert [row[1] for row in table[1:]] == ["1", "3", "2"]


def test_cli_results_json(cli, event):
    run = cli("results", str(event["competencia"]), "--json")
    assert run.returncode == 0
    result = json.loads(run.stdout)
    assert [r["dorsal"] for r in result["clasificacion"]] == [1, 3, 2]


def test_cli_results_of_unknown_competition_fails_clearly(cli):
    result = cli("results", "999")
    assert result.returncode == 1
    err = result.stderr
    assert err.strip() == "server5k: error: La competencia 999 no existe."
