"""Spreadsheets (issue 20, item 10): Spanish Excel showed each row of the results, history and
records CSVs in one cell (they were comma-separated), and the command line's credentials CSV
had no byte order mark (accents garbled). Each CSV now comes in two flavours: the plain one for
programs (commas, the API's default) and Excel's (``?format=csv&excel=1``, ``--excel``):
``;``-separated, times with a decimal comma, a UTF-8 BOM. The formula guard holds in both."""

import csv
import io

import pytest

import models
import ledger
import ranking
import submissions
from helpers import request_json

BOM = b"\xef\xbb\xbf"
FORMULA_NAME = "=Señal+1 Ñandúes"
REASON = "=cmd|' /C calc'!A0; revisado"


def table(data, excel):
    assert data.startswith(BOM)
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")),
                           delimiter=";" if excel else ","))


def get(server, path, token=None):
    import urllib.request
    request = urllib.request.Request(server.base_url + path)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status, response.headers, response.read()


@pytest.fixture
def race(spawn, event, config):
    """The event with times, a team whose name a spreadsheet would run as a formula, and a
    correction whose reason does too; served by the real server."""
    with models.db.connection_context():
        team = models.Equipo.get_by_id(event["equipos"]["a"])
        team.nombre, team.categoria = FORMULA_NAME, "Veteranos"
        team.save()
        for juez, key, tiempos in ((0, "a", [1_500_000, 1_400_000]), (1, "c", [1_000_500])):
            user_id = models.Juez.get_by_id(event["jueces"][juez]).user_id
            with models.db.atomic():
                submissions.store_submission(user_id, event["equipos"][key], [
                    {"tiempo": t, "timestamp": models.utcnow(), "id_registro": None}
                    for t in tiempos])
    server = spawn(config["database"]["path"]).start()
    status, tokens = request_json("POST", server.base_url + "/api/token/",
                                  {"username": "org", "password": "org-pass"})
    server.token = tokens["access"]
    status, answer = request_json(
        "POST", server.base_url + "/api/equipos/%d/penalizacion/" % event["equipos"]["b"],
        {"ms": 30_000, "motivo": REASON}, token=server.token)
    assert status == 200, answer
    return server


def test_results_csv_for_programs_and_for_excel(race, event):
    path = "/api/competencias/%d/resultados/?format=csv" % event["competencia"]
    status, headers, plain = get(race, path)
    assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
    status, headers, excel = get(race, path + "&excel=1")
    assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
    assert b";" in excel.splitlines()[0] and b"," not in excel.splitlines()[0]
    rows_plain, rows_excel = table(plain, False), table(excel, True)
    assert rows_plain[0] == rows_excel[0] == list(ranking.CSV_COLUMNS)
    column = {name: i for i, name in enumerate(ranking.CSV_COLUMNS)}
    by_team = {row[column["equipo_id"]]: row for row in rows_excel[1:]}
    a = by_team[str(event["equipos"]["a"])]
    assert a[column["equipo"]] == "'" + FORMULA_NAME  # never a formula, accents intact
    assert a[column["tiempo_total"]] == "0:48:20,000"  # a time Spanish Excel reads
    assert a[column["mejor"]] == "0:23:20,000" and a[column["tiempo_total_ms"]] == "2900000"
    assert by_team[str(event["equipos"]["c"])][column["mejor"]] == "0:16:40,500"
    plain_a = {row[column["equipo_id"]]: row for row in rows_plain[1:]}[str(event["equipos"]["a"])]
    assert plain_a[column["tiempo_total"]] == "0:48:20.000"
    for name in ranking.CSV_COLUMNS:  # otherwise the same file
        if name not in ledger.CSV_TIME_COLUMNS + ("actualizado_en",):
            assert [r[column[name]] for r in rows_plain] == [r[column[name]] for r in rows_excel]
    status, _, category = get(race, path + "&excel=1&categoria=Veteranos")
    assert [row[column["equipo"]] for row in table(category, True)[1:]] == ["'" + FORMULA_NAME]
    status, _, again = get(race, path + "&excel=1")  # (kept with the standings: the same file)
    assert again == excel
    status, _, nobody = get(race, path + "&excel=1&categoria=Nadie")
    assert status == 200 and table(nobody, True) == [list(ranking.CSV_COLUMNS)]


def test_history_and_records_csv_for_excel(race, event):
    for query in ("?excel=1", "?format=json&excel=1", "?format=csv&excel=si"):  # wrong: 400
        for path in ("resultados/", "auditoria/", "registros/"):
            status, answer = request_json("GET", race.base_url + "/api/competencias/%d/%s%s" % (
                event["competencia"], path, query), token=race.token)
            assert status == 400 and answer["code"] == "validation_error", (path, answer)
            assert "excel" in answer["errors"]
    base = "/api/competencias/%d/" % event["competencia"]
    _, _, audit = get(race, base + "auditoria/?format=csv&excel=1", race.token)
    rows = table(audit, True)
    assert rows[0] == list(ledger.AUDIT_CSV_COLUMNS)
    penalty = [r for r in rows[1:] if r[3] == "penalizacion"][0]
    assert penalty[6] == "'" + REASON  # the reason's ';' stays inside its cell, no formula
    _, _, plain = get(race, base + "auditoria/?format=csv", race.token)
    assert [r[6] for r in table(plain, False)[1:]] == [r[6] for r in rows[1:]]
    _, _, records = get(race, base + "registros/?format=csv&excel=1", race.token)
    rows = table(records, True)
    assert rows[0] == list(ledger.RECORDS_CSV_COLUMNS)
    assert sorted(int(r[8]) for r in rows[1:]) == [1_000_500, 1_400_000, 1_500_000]


def test_the_command_line_writes_either_flavour(race, event, tmp_path):
    cid = str(event["competencia"])
    for flavour in ((), ("--excel",)):
        target = tmp_path / ("resultados%s.csv" % "".join(flavour))
        race.cli("results", cid, "--csv", str(target), *flavour)
        rows = table(target.read_bytes(), bool(flavour))
        assert rows[0] == list(ranking.CSV_COLUMNS)
        assert "'" + FORMULA_NAME in [row[2] for row in rows]
        audit = tmp_path / ("auditoria%s.csv" % "".join(flavour))
        race.cli("audit", cid, "--csv", str(audit), *flavour,
                 env={"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"})
        assert "'" + REASON in [row[6] for row in table(audit.read_bytes(), bool(flavour))]
    for args in (["results", cid, "--excel"], ["audit", cid, "--excel"]):
        wrong = race.cli(*args, check=False,
                         env={"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"})
        assert wrong.returncode != 0 and "--excel goes with --csv" in wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1


def test_the_credentials_csv_keeps_accents_in_a_spreadsheet(spawn, tmp_path):
    server = spawn(tmp_path / "nuevo.db")
    server.cli("competition", "add", "Con acentos")
    roster = tmp_path / "roster.csv"
    roster.write_text("juez_usuario,juez_nombre,equipo,dorsal\n"
                      "maria,María Ibáñez,Tortugas,1\n", encoding="utf-8")
    server.cli("import", str(roster), "--competition", "1")
    data = (tmp_path / "roster-credenciales.csv").read_bytes()
    assert data.startswith(BOM)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [(r["usuario"], r["nombre"]) for r in rows] == [("maria", "María Ibáñez")]
