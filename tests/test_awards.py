"""Standings for the awards (issue 14), through the server and the command line: the organizer
picks the event's rule (each change in the history, the live page follows at once), teams
carry categories from the roster or the CLI, the results filter by category, and every time a
person reads is the venue's local time while the wire keeps UTC with ``Z``.

The rules themselves are pinned in tests/test_ranking.py; the page in tests/test_browser.py.
"""

import csv
import datetime as dt
import io
import json
import re

import pytest
import tornado.websocket

import models
import race_defaults
import scoring
import submissions
import venue_time
from helpers import next_message, registros, run_cli

MADRID = "Europe/Madrid"
LOCAL = re.compile(r"[0-9-]{10}T[0-9:]{8}[+-][0-9]{2}:[0-9]{2}")


@pytest.fixture
def madrid(monkeypatch):
    """The venue is in Madrid (race.timezone), whatever this machine's zone."""
    monkeypatch.setitem(race_defaults.DEFAULTS, "zona", race_defaults.zone_named(MADRID))


async def set_rule(client, cid, token, status=200, **body):
    code, answer, _ = await client.request("PATCH", "/api/competencias/%d/" % cid, body,
                                           token=token)
    assert code == status, answer
    return answer


def set_categories(event, **by_team):
    with models.db.connection_context():
        for team, categoria in by_team.items():
            models.Equipo.update(categoria=categoria).where(
                models.Equipo.id == event["equipos"][team]).execute()


# -- the rule, chosen by the organizer ------------------------------------------------------------
@pytest.mark.gen_test
async def test_the_organizer_sets_the_rule_and_it_is_in_the_history(client, event):
    cid, eq = event["competencia"], event["equipos"]
    org = await client.organizer()
    judge = await client.access("juez1", "pass-juez1")
    await client.enviar_tiempos(judge, eq["a"], 100, 200, 900)
    await client.enviar_tiempos(judge, eq["b"], 300, 310)
    answer = await set_rule(client, cid, org, regla={"tipo": "promedio", "contados": 2},
                            motivo="reglamento publicado")
    assert answer["regla"] == {"tipo": "promedio", "contados": 2, "minimo": 1,
                               "texto": scoring.rule_text("promedio", 2, 1)}
    assert answer["competencia"]["id"] == cid and "regla" not in answer["competencia"]
    code, result = await client.get("/api/competencias/%d/resultados/" % cid)
    assert result["regla"] == answer["regla"] and result["registros_por_equipo"] == 2
    assert [(r["posicion"], r["dorsal"], r["promedio_ms"]) for r in result["clasificacion"]] == [
        (1, 1, 150), (2, 2, 305), (None, 3, None)]
    # Partial: only the minimum changes; null contados goes back to the server's count.
    answer = await set_rule(client, cid, org, regla={"minimo": 3, "contados": None})
    assert answer["regla"]["tipo"] == "promedio" and answer["regla"]["minimo"] == 3
    assert answer["regla"]["contados"] == 15
    # The same rule again changes nothing and writes no history.
    await set_rule(client, cid, org, regla={"tipo": "promedio"})
    code, log = await client.get("/api/competencias/%d/auditoria/" % cid, token=org)
    rules = [a for a in log["acciones"] if a["accion"] == "regla"]
    assert [(a["usuario"], a["motivo"], a["antes"], a["despues"]) for a in rules] == [
        ("org", "reglamento publicado", {"tipo": "suma", "contados": None, "minimo": 1},
         {"tipo": "promedio", "contados": 2, "minimo": 1}),
        ("org", None, {"tipo": "promedio", "contados": 2, "minimo": 1},
         {"tipo": "promedio", "contados": None, "minimo": 3})]


@pytest.mark.gen_test
async def test_a_rule_change_reaches_the_live_page_at_once(client, event):
    cid, eq = event["competencia"], event["equipos"]
    org = await client.organizer()
    await client.enviar_tiempos(await client.access("juez1", "pass-juez1"), eq["a"], 100, 200)
    ws = await tornado.websocket.websocket_connect(client.ws_url("/ws/resultados/%d/" % cid))
    assert (await next_message(ws))["type"] == "conexion.establecida"
    assert (await next_message(ws))["data"]["regla"]["tipo"] == "suma"
    await set_rule(client, cid, org, regla={"tipo": "puntos", "contados": 1})
    pushed = await next_message(ws)
    assert pushed["type"] == "resultados"
    assert pushed["data"]["regla"]["tipo"] == "puntos"
    assert pushed["data"]["clasificacion"][0]["puntos"] == 1
    ws.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("body, field", [
    ({"regla": {"tipo": "relevos"}}, "regla.tipo"),
    ({"regla": {"contados": 0}}, "regla.contados"),
    ({"regla": {"contados": 2.5}}, "regla.contados"),
    ({"regla": {"minimo": None}}, "regla.minimo"),
    ({"regla": {"minimo": True}}, "regla.minimo"),
    ({"regla": {"tipos": "suma"}}, "regla.tipos"),
    ({"regla": "suma"}, "regla"),
    ({"fecha_hora": "mañana"}, "fecha_hora"),
    ({"estado": "finalizada"}, "estado"),  # (nombre and oculta are changes of their own)
    ({"nombre": ""}, "nombre"),
    ({"regla": {"tipo": "puntos"}, "motivo": ""}, "motivo"),
])
async def test_bad_rule_changes_are_refused_and_write_nothing(client, event, body, field):
    cid = event["competencia"]
    answer = await set_rule(client, cid, await client.organizer(), status=400, **body)
    assert answer["code"] == "validation_error" and field in answer["errors"], answer
    code, result = await client.get("/api/competencias/%d/resultados/" % cid)
    assert result["regla"]["tipo"] == "suma"


@pytest.mark.gen_test
async def test_only_an_organizer_changes_the_rule_and_not_on_official_results(client, event):
    cid = event["competencia"]
    judge = await client.access("juez1", "pass-juez1")
    answer = await set_rule(client, cid, judge, status=403, regla={"tipo": "puntos"})
    assert answer["code"] == "organizer_only"
    code, answer, _ = await client.request("PATCH", "/api/competencias/%d/" % cid,
                                           {"regla": {"tipo": "puntos"}})
    assert code == 401
    org = await client.organizer()
    await set_rule(client, 999, org, status=404, regla={"tipo": "puntos"})
    for action in ("iniciar", "detener", "oficializar"):
        code, body = await client.post("/api/competencias/%d/%s/" % (cid, action), token=org)
        assert code == 200, body
    answer = await set_rule(client, cid, org, status=409, regla={"tipo": "puntos"})
    assert answer["code"] == "results_official"


# -- local time ------------------------------------------------------------------------------------
def test_dates_without_an_offset_are_the_venues_local_time(madrid):
    parse = venue_time.parse_local_timestamp
    assert parse("2026-12-06T09:00") == dt.datetime(2026, 12, 6, 8, 0)       # winter, +01:00
    assert parse("2026-07-05T09:00:00") == dt.datetime(2026, 7, 5, 7, 0)     # summer, +02:00
    assert parse("2026-12-06T09:00:00Z") == dt.datetime(2026, 12, 6, 9, 0)   # as given
    assert parse("2026-12-06T09:00:00-05:00") == dt.datetime(2026, 12, 6, 14, 0)
    # The hour the clocks go back happens twice: the first one is taken.
    assert parse("2026-10-25T02:30") == dt.datetime(2026, 10, 25, 0, 30)
    assert venue_time.local_iso(dt.datetime(2026, 12, 6, 8, 0)) == "2026-12-06T09:00:00+01:00"
    assert venue_time.local_iso(dt.datetime(2026, 7, 5, 7, 0, 0, 999)) == "2026-07-05T09:00:00+02:00"
    for bad in ("mañana", "", "2026-13-01T09:00", None):
        with pytest.raises(ValueError):
            parse(bad)
    # A judge's app keeps PROTOCOL.md's rule: naive is UTC.
    assert venue_time.parse_timestamp("2026-12-06T09:00:00") == dt.datetime(2026, 12, 6, 9, 0)


def test_the_machine_zone_is_the_default(monkeypatch):
    monkeypatch.setenv("TZ", "America/Bogota")
    assert race_defaults.machine_zone().key == "America/Bogota"
    monkeypatch.setenv("TZ", ":Asia/Tokyo")
    assert race_defaults.machine_zone().key == "Asia/Tokyo"
    monkeypatch.setenv("TZ", "Nowhere/Atlantis")
    assert race_defaults.machine_zone().key  # then /etc/localtime, /etc/timezone, or the offset
    monkeypatch.setitem(race_defaults.DEFAULTS, "zona", None)
    monkeypatch.setenv("TZ", "America/Bogota")
    race_defaults.configure(timezone=None)
    assert race_defaults.zone().key == "America/Bogota"
    race_defaults.configure(timezone=MADRID)
    assert race_defaults.zone().key == MADRID
    with pytest.raises(ValueError):
        race_defaults.zone_named("Mars/Olympus_Mons")


@pytest.mark.gen_test
async def test_organizer_dates_are_local_and_the_wire_keeps_utc(client, event, madrid):
    cid, eq = event["competencia"], event["equipos"]
    org = await client.organizer()
    answer = await set_rule(client, cid, org, fecha_hora="2026-12-06T09:30")
    assert answer["competencia"]["fecha_hora"] == "2026-12-06T08:30:00.000Z"
    code, comp = await client.get("/api/competencias/%d/" % cid)
    assert comp["fecha_hora"] == "2026-12-06T08:30:00.000Z"
    # People read it in the venue's time: the list of competitions and the results page.
    for path, text in (("/", "6 dic 2026, 09:30 (UTC+01:00)"), (
            "/competencias/%d/" % cid, "Salida prevista: 6 dic 2026, 09:30 (UTC+01:00)")):
        page = await client.http.fetch(client.base_url + path)
        assert text in page.body.decode(), path
    answer = await set_rule(client, cid, org, fecha_hora=None)
    assert answer["competencia"]["fecha_hora"] is None
    code, log = await client.get("/api/competencias/%d/auditoria/" % cid, token=org)
    assert [a["despues"] for a in log["acciones"] if a["accion"] == "programar"] == [
        {"fecha_hora": "2026-12-06T08:30:00.000Z"}, {"fecha_hora": None}]
    # A paper time's timestamp typed without an offset is local time too.
    code, record = await client.post("/api/competencias/%d/registros/" % cid, {
        "equipo_id": eq["a"], "tiempo": 1_000, "timestamp": "2026-12-06T09:45:00",
        "motivo": "hoja de papel"}, token=org)
    assert code == 201 and record["timestamp"] == "2026-12-06T08:45:00.000Z"


# -- categories ------------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_results_of_one_category_are_the_same_rows_filtered(client, event):
    cid, eq = event["competencia"], event["equipos"]
    set_categories(event, a="Veteranos", b="Abierta", c="Veteranos")
    await client.enviar_tiempos(await client.access("juez1", "pass-juez1"), eq["a"], 300)
    await client.enviar_tiempos(await client.access("juez1", "pass-juez1"), eq["b"], 100)
    await client.enviar_tiempos(await client.access("juez2", "pass-juez2"), eq["c"], 200)
    code, every = await client.get("/api/competencias/%d/resultados/" % cid)
    assert every["categorias"] == ["Abierta", "Veteranos"]
    assert [(r["dorsal"], r["posicion"], r["categoria"], r["posicion_categoria"])
            for r in every["clasificacion"]] == [
        (2, 1, "Abierta", 1), (3, 2, "Veteranos", 1), (1, 3, "Veteranos", 2)]
    code, vets = await client.get("/api/competencias/%d/resultados/?categoria=Veteranos" % cid)
    assert code == 200 and vets["categoria"] == "Veteranos"
    assert vets["clasificacion"] == [r for r in every["clasificacion"]
                                     if r["categoria"] == "Veteranos"]
    code, none = await client.get("/api/competencias/%d/resultados/?categoria=Nadie" % cid)
    assert code == 200 and none["clasificacion"] == []
    code, bad = await client.get("/api/competencias/%d/resultados/?categoria=%s" % (cid, "x" * 101))
    assert code == 400 and bad["code"] == "validation_error"
    response = await client.http.fetch(
        client.base_url + "/api/competencias/%d/resultados/?format=csv&categoria=Veteranos" % cid)
    table = list(csv.DictReader(io.StringIO(response.body.decode("utf-8-sig"))))
    assert [(r["dorsal"], r["categoria"], r["posicion_categoria"]) for r in table] == [
        ("3", "Veteranos", "1"), ("1", "Veteranos", "2")]
    assert LOCAL.fullmatch(table[0]["actualizado_en"])


# -- the command line ------------------------------------------------------------------------------
@pytest.fixture
def live(spawn, event, config):
    """The real server on the event's database, in Madrid, and its command line as ``org``."""
    server = spawn(config["database"]["path"], race={"timezone": MADRID}).start()

    def cli(*args, check=True):
        return server.cli(*args, env={"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"},
                          check=check)
    server.org_cli = cli
    return server


def test_cli_competition_set_talks_to_the_running_server(live, event):
    cid = str(event["competencia"])
    out = live.org_cli("competition", "set", cid, "--scoring", "puntos", "--counted", "5",
                       "--min-finishers", "5", "--date", "2026-12-06T09:00",
                       "--reason", "reglamento del cross").stdout
    assert "puntos, best 5 count, 5 finishers to rank" in out
    assert "scheduled start 2026-12-06T09:00:00+01:00" in out
    assert "Por puestos, como en cross" in out
    answer = json.loads(live.org_cli("competition", "set", cid, "--counted", "4",
                                     "--json").stdout)
    assert answer["regla"]["contados"] == 4 and answer["regla"]["tipo"] == "puntos"
    assert answer["competencia"]["fecha_hora"] == "2026-12-06T08:00:00.000Z"  # the wire: UTC
    listing = live.cli("competition", "list").stdout
    assert "2026-12-06T09:00:00+01:00" in listing
    audit = live.org_cli("audit", cid).stdout
    assert "regla" in audit and "reglamento del cross" in audit
    assert re.search(r"  20[0-9-]{8}T[0-9:]{8}\+0[12]:00  regla", audit)  # local, with offset
    for bad in (["--counted", "0"], ["--min-finishers", "-1"], ["--date", "mañana"], []):
        result = live.org_cli("competition", "set", cid, *bad, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, bad
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    zero = live.org_cli("competition", "set", cid, "--counted", "0", check=False)
    assert "competition set failed (400 validation_error)" in zero.stderr
    assert "regla.contados: Un entero de 1 a 1000" in zero.stderr
    refused = live.org_cli("competition", "set", cid, "--scoring", "relevos", check=False)
    assert refused.returncode == 2 and "invalid choice: 'relevos'" in refused.stderr


def test_cli_results_by_category_with_the_rule_and_local_times(live, event, config):
    set_categories(event, a="Veteranos", b="Abierta", c="Veteranos")
    with models.db.connection_context():
        for juez, team, tiempos in ((0, "a", [300, 400]), (0, "b", [100, 150]), (1, "c", [200])):
            user_id = models.Juez.get_by_id(event["jueces"][juez]).user_id
            submissions.store_submission(user_id, event["equipos"][team], registros(
                tiempos, validated=True))
    cid = str(event["competencia"])
    live.org_cli("competition", "set", cid, "--scoring", "puntos", "--counted", "1")
    live.org_cli("race", "start", cid)
    out = live.cli("results", cid).stdout.splitlines()
    assert re.search(r"en_curso since 20[0-9-]{8}T[0-9:]{8}\+01:00", out[0]), out[0]
    assert out[1].startswith("rule: puntos, best 1 count. Por puestos")
    assert re.fullmatch(r"results provisional at 20[0-9-]{8}T[0-9:]{8}\+01:00", out[2])
    assert out[3].split() == ["pos", "cat.pos", "categoria", "dorsal", "equipo", "counted",
                              "total", "best", "mean", "points", "places", "early"]
    # pos, cat.pos, categoria, dorsal, "Equipo X", ... points, places..., early
    assert [line.split()[:4] + line.split()[10:] for line in out[5:8]] == [
        ["1", "1", "Abierta", "2", "1", "1", "2", "2"],
        ["2", "1", "Veteranos", "3", "3", "3", "1"],
        ["3", "2", "Veteranos", "1", "4", "4", "5", "2"]]
    vets = live.cli("results", cid, "--category", "Veteranos").stdout.splitlines()
    assert vets[2].endswith("; category Veteranos")
    assert vets[3].split()[:3] == ["pos", "overall", "dorsal"]
    assert [line.split()[:3] for line in vets[5:7]] == [["1", "2", "3"], ["2", "3", "1"]]
    target = live.config_path.parent / "vets.csv"
    live.cli("results", cid, "--category", "Veteranos", "--csv", str(target))
    table = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert [r["posicion_categoria"] for r in table] == ["1", "2"]
    assert table[0]["regla"].startswith("Por puestos") and "+01:00" in table[0]["actualizado_en"]
    unknown = live.cli("results", cid, "--category", "Juveniles", check=False)
    assert unknown.returncode == 1
    assert "no category 'Juveniles' (its categories: Abierta, Veteranos)" in unknown.stderr


def test_cli_competition_add_takes_a_local_date(tmp_path):
    path = tmp_path / "madrid.yaml"
    path.write_text("database:\n  path: %s\nrace:\n  timezone: %s\n" % (tmp_path / "e.db", MADRID))
    created = json.loads(run_cli(path, "competition", "add", "Cross", "--date",
                                 "2026-12-06T10:15", "--json").stdout)
    assert created["fecha_hora"] == "2026-12-06T09:15:00.000Z"
    out = run_cli(path, "competition", "add", "Otra", "--date", "2026-07-05T10:15").stdout
    assert "start 2026-07-05T10:15:00+02:00" in out


def test_the_roster_brings_categories(tmp_path, event, config):
    path = tmp_path / "cli.yaml"
    path.write_text("database:\n  path: %s\n" % config["database"]["path"])
    roster = tmp_path / "roster.csv"
    # As a Spanish spreadsheet saves it: ';', and the header with its accent.
    roster.write_text("juez_usuario;juez_nombre;equipo;dorsal;Categoría\n"
                      "maria;María;Tortugas;11; Veteranos \n"
                      "maria;María;Liebres;12;\n", encoding="utf-8")
    run_cli(path, "import", str(roster), "--competition", str(event["competencia"]))
    teams = {t["dorsal"]: t for t in json.loads(run_cli(
        path, "team", "list", "--competition", str(event["competencia"]), "--json").stdout)}
    assert teams[11]["categoria"] == "Veteranos" and teams[12]["categoria"] is None
    long_roster = tmp_path / "long.csv"
    long_roster.write_text("juez_usuario,juez_nombre,equipo,dorsal,categoria\n"
                           "maria,María,Gacelas,13,%s\n" % ("x" * 101), encoding="utf-8")
    result = run_cli(path, "import", str(long_roster), "--competition",
                     str(event["competencia"]), check=False)
    assert result.returncode == 1 and "línea 2: la categoría tiene más de 100" in result.stderr
