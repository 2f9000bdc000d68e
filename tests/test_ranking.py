"""The ranking rule, on a real SQLite file, without a server.

Every branch of models.ranking: best N counted, more counted finishers first, lower total next,
shared positions (1, 2, 2, 4), teams without records last and unranked, records that arrived
before the start flagged and still counted, and the CSV export of the same rows.
"""

import csv
import datetime as dt
import io
import uuid

import pytest

import models

T0 = dt.datetime(2026, 12, 6, 9, 0, 0)


@pytest.fixture
def race(tmp_path):
    """One competition with five teams (dorsales 1-5) and one team in another competition."""
    models.open_database(tmp_path / "ranking.db")
    with models.db.connection_context():
        comp = models.create_competition("Ranking 5K")
        other = models.create_competition("Otra")
        juez = models.create_judge("juez", "pass-juez", comp.id)
        otro_juez = models.create_judge("otro", "pass-juez", other.id)
        teams = {n: models.create_team("Equipo %d" % n, n, juez.id).id for n in range(1, 6)}
        teams["otra"] = models.create_team("Equipo de otra", 1, otro_juez.id).id
        yield {"id": comp.id, "otra": other.id, "juez": juez.id, "otro_juez": otro_juez.id,
               "equipos": teams}


def add(race, team, *tiempos, received_at=None, estado=models.ESTADO_EN_CURSO, juez=None):
    for tiempo in tiempos:
        h, m, s, ms = models.split_tiempo(tiempo)
        models.RegistroTiempo.create(
            id_registro=uuid.uuid4(), equipo=race["equipos"][team], juez=juez or race["juez"],
            tiempo=tiempo, horas=h, minutos=m, segundos=s, milisegundos=ms,
            timestamp=T0, received_at=received_at or T0 + dt.timedelta(minutes=30),
            estado_carrera=estado)


def start(race, at=T0):
    models.Competencia.update(started_at=at, finished_at=None).where(
        models.Competencia.id == race["id"]).execute()


def by_dorsal(result):
    return {row["dorsal"]: row for row in result["clasificacion"]}


def order(result):
    return [(row["posicion"], row["dorsal"]) for row in result["clasificacion"]]


def test_no_records_every_team_listed_unranked_by_dorsal(race):
    result = models.ranking(race["id"], 15)
    assert result["competencia"]["id"] == race["id"]
    assert result["competencia"]["estado"] == "programada"
    assert result["registros_por_equipo"] == 15
    assert order(result) == [(None, 1), (None, 2), (None, 3), (None, 4), (None, 5)]
    row = result["clasificacion"][0]
    assert row == {
        "posicion": None, "equipo_id": race["equipos"][1], "equipo": "Equipo 1", "dorsal": 1,
        "estado": "ok", "registros_contados": 0, "registros_recibidos": 0,
        "tiempo_total_ms": None, "tiempo_total": None, "penalizacion_ms": 0, "mejor_ms": None,
        "mejor": None, "promedio_ms": None, "promedio": None, "antes_de_salida": 0,
        "ausentes": 0, "pendientes": 0,
    }


def test_competition_without_teams_has_empty_standings(race):
    empty = models.create_competition("Sin equipos")
    assert models.ranking(empty.id)["clasificacion"] == []


def test_unknown_competition_is_not_found(race):
    with pytest.raises(models.NotFound):
        models.ranking(9999)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_scored_per_team_must_be_a_positive_integer(race, bad):
    with pytest.raises(ValueError):
        models.ranking(race["id"], bad)


def test_best_n_times_are_counted(race):
    start(race)
    # Five records, three counted: the three lowest whatever order they arrived in.
    add(race, 1, 1_500_000, 1_200_000, 1_900_000, 1_100_000, 1_300_000)
    row = by_dorsal(models.ranking(race["id"], 3))[1]
    assert row["registros_contados"] == 3
    assert row["registros_recibidos"] == 5
    assert row["tiempo_total_ms"] == 1_100_000 + 1_200_000 + 1_300_000
    assert row["tiempo_total"] == "1:00:00.000"
    assert row["mejor_ms"] == 1_100_000
    assert row["mejor"] == "0:18:20.000"
    assert row["promedio_ms"] == 1_200_000
    assert row["promedio"] == "0:20:00.000"
    assert row["posicion"] == 1


def test_mean_rounds_half_up_to_the_millisecond(race):
    start(race)
    add(race, 1, 1000, 1001)  # 1000.5 -> 1001
    add(race, 2, 1000, 1000, 1001)  # 1000.33 -> 1000
    add(race, 3, 1000, 1001, 1001)  # 1000.67 -> 1001
    rows = by_dorsal(models.ranking(race["id"]))
    assert rows[1]["promedio_ms"] == 1001
    assert rows[2]["promedio_ms"] == 1000
    assert rows[3]["promedio_ms"] == 1001


def test_more_counted_finishers_rank_ahead_of_a_faster_partial_team(race):
    start(race)
    add(race, 1, 900_000, 910_000)               # two fast finishers (partial team)
    add(race, 2, 1_500_000, 1_600_000, 1_700_000)  # three slow ones
    add(race, 3, 1_000_000)                       # one
    result = models.ranking(race["id"], 3)
    assert order(result) == [(1, 2), (2, 1), (3, 3), (None, 4), (None, 5)]


def test_a_team_beyond_n_is_not_ahead_of_a_full_team_with_a_lower_total(race):
    start(race)
    add(race, 1, 1000, 2000, 3000, 4000)  # four records, three counted: 6000
    add(race, 2, 1500, 1500, 1500)        # 4500
    assert order(models.ranking(race["id"], 3))[:2] == [(1, 2), (2, 1)]


def test_lower_total_wins_among_equal_counts(race):
    start(race)
    add(race, 1, 3000, 3000)
    add(race, 2, 1000, 4000)  # total 5000 < 6000, although its worst time is worse
    add(race, 3, 2000, 2000)
    assert order(models.ranking(race["id"], 2))[:3] == [(1, 3), (2, 2), (3, 1)]


def test_equal_totals_share_a_position_and_the_next_one_skips(race):
    start(race)
    add(race, 5, 1000, 2000)      # 3000: first
    add(race, 3, 1500, 2500)      # 4000: shared second
    add(race, 1, 2000, 2000)      # 4000: shared second (same total, other split)
    add(race, 2, 2100, 2000)      # 4100: fourth, not third
    result = models.ranking(race["id"], 2)
    assert order(result) == [(1, 5), (2, 1), (2, 3), (4, 2), (None, 4)]


def test_equal_totals_with_different_counts_do_not_tie(race):
    start(race)
    add(race, 1, 2000, 2000)
    add(race, 2, 4000)
    assert order(models.ranking(race["id"], 2))[:2] == [(1, 1), (2, 2)]


def test_tie_at_the_top(race):
    start(race)
    add(race, 2, 5)
    add(race, 4, 5)
    add(race, 1, 6)
    assert order(models.ranking(race["id"], 1)) == [
        (1, 2), (1, 4), (3, 1), (None, 3), (None, 5)]


def test_a_zero_time_is_an_absent_runner_never_a_finish(race):
    # Issue 12: a tiempo of 0 used to rank as the team's best time.
    start(race)
    add(race, 2, 0, 0)
    add(race, 4, 0, 600_000)
    add(race, 1, 700_000)
    result = models.ranking(race["id"], 15)
    assert order(result) == [(1, 4), (2, 1), (None, 2), (None, 3), (None, 5)]
    rows = by_dorsal(result)
    assert rows[2]["registros_contados"] == 0 and rows[2]["ausentes"] == 2
    assert rows[4]["registros_contados"] == 1 and rows[4]["ausentes"] == 1
    assert rows[4]["mejor_ms"] == 600_000


def test_other_competitions_records_do_not_count(race):
    start(race)
    add(race, "otra", 1000, juez=race["otro_juez"])
    result = models.ranking(race["id"])
    assert all(row["registros_recibidos"] == 0 for row in result["clasificacion"])
    assert race["equipos"]["otra"] not in [r["equipo_id"] for r in result["clasificacion"]]
    other = models.ranking(race["otra"])
    assert [(r["posicion"], r["tiempo_total_ms"]) for r in other["clasificacion"]] == [(1, 1000)]


def test_before_the_start_everything_is_flagged_and_still_counted(race):
    # The race was never started on the server (the organizer forgot; judges started by hand).
    add(race, 1, 1000, 2000, estado=models.ESTADO_PROGRAMADA)
    row = by_dorsal(models.ranking(race["id"]))[1]
    assert row["antes_de_salida"] == 2
    assert row["registros_contados"] == 2
    assert row["tiempo_total_ms"] == 3000
    assert row["posicion"] == 1


def test_records_received_before_started_at_are_flagged(race):
    start(race, T0)
    add(race, 1, 1000, received_at=T0 - dt.timedelta(minutes=5),
        estado=models.ESTADO_PROGRAMADA)
    add(race, 1, 2000, 3000, received_at=T0 + dt.timedelta(minutes=20))
    add(race, 2, 1500, received_at=T0 + dt.timedelta(minutes=20))
    rows = by_dorsal(models.ranking(race["id"]))
    assert rows[1]["antes_de_salida"] == 1
    assert rows[1]["registros_contados"] == 3  # flagged, not dropped
    assert rows[1]["tiempo_total_ms"] == 6000
    assert rows[2]["antes_de_salida"] == 0


def test_records_of_a_false_start_are_flagged_after_the_real_start(race):
    # Received while the first (false) start was running, then a forced reset and a new start.
    add(race, 1, 1000, received_at=T0 + dt.timedelta(minutes=1), estado=models.ESTADO_EN_CURSO)
    start(race, T0 + dt.timedelta(minutes=10))
    add(race, 1, 2000, received_at=T0 + dt.timedelta(minutes=40))
    assert by_dorsal(models.ranking(race["id"]))[1]["antes_de_salida"] == 1


def test_a_record_stored_while_scheduled_is_flagged_even_if_the_clock_stepped_back(race):
    start(race, T0)
    add(race, 1, 1000, received_at=T0 + dt.timedelta(seconds=1),
        estado=models.ESTADO_PROGRAMADA)
    assert by_dorsal(models.ranking(race["id"]))[1]["antes_de_salida"] == 1


def test_records_after_a_stop_are_not_early(race):
    start(race, T0)
    models.Competencia.update(finished_at=T0 + dt.timedelta(hours=1)).execute()
    add(race, 1, 1000, received_at=T0 + dt.timedelta(hours=3), estado=models.ESTADO_FINALIZADA)
    result = models.ranking(race["id"])
    assert result["competencia"]["estado"] == "finalizada"
    assert by_dorsal(result)[1]["antes_de_salida"] == 0


def test_arrived_before_start_rule():
    rule = models.arrived_before_start
    assert rule(T0, models.ESTADO_EN_CURSO, None)
    assert rule(T0 - dt.timedelta(milliseconds=1), models.ESTADO_EN_CURSO, T0)
    assert not rule(T0, models.ESTADO_EN_CURSO, T0)
    assert not rule(T0 + dt.timedelta(hours=1), models.ESTADO_FINALIZADA, T0)
    assert rule(T0 + dt.timedelta(hours=1), models.ESTADO_PROGRAMADA, T0)


def read_csv(text):
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_csv_has_a_header_and_the_same_rows(race):
    start(race)
    add(race, 2, 1_234_567, 1_000_000)
    result = models.ranking(race["id"], 15)
    rows = read_csv(models.ranking_csv(result))
    assert rows[0] == list(models.CSV_COLUMNS)
    assert rows[0] == ["posicion", "dorsal", "equipo", "equipo_id", "estado",
                       "registros_contados", "registros_recibidos", "tiempo_total",
                       "tiempo_total_ms", "penalizacion_ms", "mejor", "mejor_ms", "promedio",
                       "promedio_ms", "antes_de_salida", "ausentes", "pendientes"]
    assert len(rows) == 1 + 5
    assert rows[1] == ["1", "2", "Equipo 2", str(race["equipos"][2]), "ok", "2", "2",
                       "0:37:14.567", "2234567", "0", "0:16:40.000", "1000000", "0:18:37.284",
                       "1117284", "0", "0", "0"]
    # Unranked teams: empty cells, not "None".
    assert rows[2] == ["", "1", "Equipo 1", str(race["equipos"][1]), "ok", "0", "0", "", "",
                       "0", "", "", "", "", "0", "0", "0"]


def test_csv_keeps_accents_and_defuses_formulas(race):
    models.Equipo.update(nombre="=HYPERLINK(\"http://x\")").where(
        models.Equipo.id == race["equipos"][1]).execute()
    models.Equipo.update(nombre="Los Ñandúes, \"rápidos\"").where(
        models.Equipo.id == race["equipos"][2]).execute()
    rows = read_csv(models.ranking_csv(models.ranking(race["id"])))
    names = [row[2] for row in rows[1:]]
    assert names[0] == "'=HYPERLINK(\"http://x\")"
    assert names[1] == "Los Ñandúes, \"rápidos\""
