"""The ranking rule, on a real SQLite file, without a server.

Every branch of ranking.ranking: best N counted, more counted finishers first, lower total next,
shared positions (1, 2, 2, 4), teams without records last and unranked, records that arrived
before the start flagged and still counted, and the CSV export of the same rows. Then the
event's own rule (suma, promedio, puntos with a hand-worked cross-country example), the
minimum of finishers, statuses and penalties under each rule, and categories.
"""

import csv
import datetime as dt
import io
import uuid

import pytest

import models
import ledger
import race_control
import race_defaults
import ranking
import registration
import scoring
import venue_time

T0 = dt.datetime(2026, 12, 6, 9, 0, 0)


@pytest.fixture
def race(tmp_path):
    """One competition with five teams (dorsales 1-5) and one team in another competition."""
    models.open_database(tmp_path / "ranking.db")
    with models.db.connection_context():
        comp = registration.create_competition("Ranking 5K")
        other = registration.create_competition("Otra")
        juez = registration.create_judge("juez", "pass-juez", comp.id)
        otro_juez = registration.create_judge("otro", "pass-juez", other.id)
        teams = {n: registration.create_team("Equipo %d" % n, n, juez.id).id for n in range(1, 6)}
        teams["otra"] = registration.create_team("Equipo de otra", 1, otro_juez.id).id
        yield {"id": comp.id, "otra": other.id, "juez": juez.id, "otro_juez": otro_juez.id,
               "equipos": teams}


def add(race, team, *tiempos, received_at=None, estado=models.ESTADO_EN_CURSO, juez=None,
        **fields):
    """Store records of ``team`` as they arrived; returns their UUIDs (text)."""
    ids = []
    for tiempo in tiempos:
        h, m, s, ms = venue_time.split_tiempo(tiempo)
        ids.append(str(models.RegistroTiempo.create(
            id_registro=uuid.uuid4(), equipo=race["equipos"][team], juez=juez or race["juez"],
            tiempo=tiempo, horas=h, minutos=m, segundos=s, milisegundos=ms,
            timestamp=T0, received_at=received_at or T0 + dt.timedelta(minutes=30),
            estado_carrera=estado, **fields).id_registro))
    return ids


def start(race, at=T0):
    models.Competencia.update(started_at=at, finished_at=None).where(
        models.Competencia.id == race["id"]).execute()


def by_dorsal(result):
    return {row["dorsal"]: row for row in result["clasificacion"]}


def order(result):
    return [(row["posicion"], row["dorsal"]) for row in result["clasificacion"]]


def test_no_records_every_team_listed_unranked_by_dorsal(race):
    result = ranking.ranking(race["id"], 15)
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
        "ausentes": 0, "pendientes": 0, "categoria": None, "posicion_categoria": None,
        "puntos": None, "puestos": [],
    }
    assert result["regla"] == {"tipo": "suma", "contados": 15, "minimo": 1,
                               "texto": scoring.rule_text("suma", 15, 1)}
    assert result["categorias"] == []


def test_competition_without_teams_has_empty_standings(race):
    empty = registration.create_competition("Sin equipos")
    assert ranking.ranking(empty.id)["clasificacion"] == []


def test_unknown_competition_is_not_found(race):
    with pytest.raises(models.NotFound):
        ranking.ranking(9999)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_scored_per_team_must_be_a_positive_integer(race, bad):
    with pytest.raises(ValueError):
        ranking.ranking(race["id"], bad)


def test_best_n_times_are_counted(race):
    start(race)
    # Five records, three counted: the three lowest whatever order they arrived in.
    add(race, 1, 1_500_000, 1_200_000, 1_900_000, 1_100_000, 1_300_000)
    row = by_dorsal(ranking.ranking(race["id"], 3))[1]
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
    rows = by_dorsal(ranking.ranking(race["id"]))
    assert rows[1]["promedio_ms"] == 1001
    assert rows[2]["promedio_ms"] == 1000
    assert rows[3]["promedio_ms"] == 1001


def test_more_counted_finishers_rank_ahead_of_a_faster_partial_team(race):
    start(race)
    add(race, 1, 900_000, 910_000)               # two fast finishers (partial team)
    add(race, 2, 1_500_000, 1_600_000, 1_700_000)  # three slow ones
    add(race, 3, 1_000_000)                       # one
    result = ranking.ranking(race["id"], 3)
    assert order(result) == [(1, 2), (2, 1), (3, 3), (None, 4), (None, 5)]


def test_a_team_beyond_n_is_not_ahead_of_a_full_team_with_a_lower_total(race):
    start(race)
    add(race, 1, 1000, 2000, 3000, 4000)  # four records, three counted: 6000
    add(race, 2, 1500, 1500, 1500)        # 4500
    assert order(ranking.ranking(race["id"], 3))[:2] == [(1, 2), (2, 1)]


def test_lower_total_wins_among_equal_counts(race):
    start(race)
    add(race, 1, 3000, 3000)
    add(race, 2, 1000, 4000)  # total 5000 < 6000, although its worst time is worse
    add(race, 3, 2000, 2000)
    assert order(ranking.ranking(race["id"], 2))[:3] == [(1, 3), (2, 2), (3, 1)]


def test_equal_totals_share_a_position_and_the_next_one_skips(race):
    start(race)
    add(race, 5, 1000, 2000)      # 3000: first
    add(race, 3, 1500, 2500)      # 4000: shared second
    add(race, 1, 2000, 2000)      # 4000: shared second (same total, other split)
    add(race, 2, 2100, 2000)      # 4100: fourth, not third
    result = ranking.ranking(race["id"], 2)
    assert order(result) == [(1, 5), (2, 1), (2, 3), (4, 2), (None, 4)]


def test_equal_totals_with_different_counts_do_not_tie(race):
    start(race)
    add(race, 1, 2000, 2000)
    add(race, 2, 4000)
    assert order(ranking.ranking(race["id"], 2))[:2] == [(1, 1), (2, 2)]


def test_tie_at_the_top(race):
    start(race)
    add(race, 2, 5)
    add(race, 4, 5)
    add(race, 1, 6)
    assert order(ranking.ranking(race["id"], 1)) == [
        (1, 2), (1, 4), (3, 1), (None, 3), (None, 5)]


def test_a_zero_time_is_an_absent_runner_never_a_finish(race):
    # Issue 12: a tiempo of 0 used to rank as the team's best time.
    start(race)
    add(race, 2, 0, 0)
    add(race, 4, 0, 600_000)
    add(race, 1, 700_000)
    result = ranking.ranking(race["id"], 15)
    assert order(result) == [(1, 4), (2, 1), (None, 2), (None, 3), (None, 5)]
    rows = by_dorsal(result)
    assert rows[2]["registros_contados"] == 0 and rows[2]["ausentes"] == 2
    assert rows[4]["registros_contados"] == 1 and rows[4]["ausentes"] == 1
    assert rows[4]["mejor_ms"] == 600_000


def test_other_competitions_records_do_not_count(race):
    start(race)
    add(race, "otra", 1000, juez=race["otro_juez"])
    result = ranking.ranking(race["id"])
    assert all(row["registros_recibidos"] == 0 for row in result["clasificacion"])
    assert race["equipos"]["otra"] not in [r["equipo_id"] for r in result["clasificacion"]]
    other = ranking.ranking(race["otra"])
    assert [(r["posicion"], r["tiempo_total_ms"]) for r in other["clasificacion"]] == [(1, 1000)]


def test_before_the_start_everything_is_flagged_and_still_counted(race):
    # The race was never started on the server (the organizer forgot; judges started by hand).
    add(race, 1, 1000, 2000, estado=models.ESTADO_PROGRAMADA)
    row = by_dorsal(ranking.ranking(race["id"]))[1]
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
    rows = by_dorsal(ranking.ranking(race["id"]))
    assert rows[1]["antes_de_salida"] == 1
    assert rows[1]["registros_contados"] == 3  # flagged, not dropped
    assert rows[1]["tiempo_total_ms"] == 6000
    assert rows[2]["antes_de_salida"] == 0


def test_records_of_a_false_start_are_flagged_after_the_real_start(race):
    # Received while the first (false) start was running, then a forced reset and a new start.
    add(race, 1, 1000, received_at=T0 + dt.timedelta(minutes=1), estado=models.ESTADO_EN_CURSO)
    start(race, T0 + dt.timedelta(minutes=10))
    add(race, 1, 2000, received_at=T0 + dt.timedelta(minutes=40))
    assert by_dorsal(ranking.ranking(race["id"]))[1]["antes_de_salida"] == 1


def test_a_record_stored_while_scheduled_is_flagged_even_if_the_clock_stepped_back(race):
    start(race, T0)
    add(race, 1, 1000, received_at=T0 + dt.timedelta(seconds=1),
        estado=models.ESTADO_PROGRAMADA)
    assert by_dorsal(ranking.ranking(race["id"]))[1]["antes_de_salida"] == 1


def test_records_after_a_stop_are_not_early(race):
    start(race, T0)
    models.Competencia.update(finished_at=T0 + dt.timedelta(hours=1)).execute()
    add(race, 1, 1000, received_at=T0 + dt.timedelta(hours=3), estado=models.ESTADO_FINALIZADA)
    result = ranking.ranking(race["id"])
    assert result["competencia"]["estado"] == "finalizada"
    assert by_dorsal(result)[1]["antes_de_salida"] == 0


def test_arrived_before_start_rule():
    rule = ledger.arrived_before_start
    assert rule(T0, models.ESTADO_EN_CURSO, None)
    assert rule(T0 - dt.timedelta(milliseconds=1), models.ESTADO_EN_CURSO, T0)
    assert not rule(T0, models.ESTADO_EN_CURSO, T0)
    assert not rule(T0 + dt.timedelta(hours=1), models.ESTADO_FINALIZADA, T0)
    assert rule(T0 + dt.timedelta(hours=1), models.ESTADO_PROGRAMADA, T0)


def read_csv(text):
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_csv_has_a_header_and_the_same_rows(race, monkeypatch):
    start(race)
    add(race, 2, 1_234_567, 1_000_000)
    result = ranking.ranking(race["id"], 15)
    monkeypatch.setitem(race_defaults.DEFAULTS, "zona", race_defaults.zone_named("Europe/Madrid"))
    rows = read_csv(ranking.ranking_csv(result, now=T0))
    assert rows[0] == list(ranking.CSV_COLUMNS)
    assert rows[0] == ["posicion", "dorsal", "equipo", "equipo_id", "estado",
                       "registros_contados", "registros_recibidos", "tiempo_total",
                       "tiempo_total_ms", "penalizacion_ms", "mejor", "mejor_ms", "promedio",
                       "promedio_ms", "antes_de_salida", "ausentes", "pendientes", "categoria",
                       "posicion_categoria", "puntos", "puestos", "regla", "resultados",
                       "actualizado_en"]
    assert len(rows) == 1 + 5
    # Same on every row: the rule in words, provisional or official, the local time of it.
    common = [result["regla"]["texto"], "provisionales", "2026-12-06T10:00:00+01:00"]
    assert result["regla"]["texto"].startswith("Suma de los 15 mejores tiempos")
    assert rows[1] == ["1", "2", "Equipo 2", str(race["equipos"][2]), "ok", "2", "2",
                       "0:37:14.567", "2234567", "0", "0:16:40.000", "1000000", "0:18:37.284",
                       "1117284", "0", "0", "0", "", "", "", ""] + common
    # Unranked teams: empty cells, not "None".
    assert rows[2] == ["", "1", "Equipo 1", str(race["equipos"][1]), "ok", "0", "0", "", "",
                       "0", "", "", "", "", "0", "0", "0", "", "", "", ""] + common


def test_csv_keeps_accents_and_defuses_formulas(race):
    models.Equipo.update(nombre="=HYPERLINK(\"http://x\")").where(
        models.Equipo.id == race["equipos"][1]).execute()
    models.Equipo.update(nombre="Los Ñandúes, \"rápidos\"").where(
        models.Equipo.id == race["equipos"][2]).execute()
    rows = read_csv(ranking.ranking_csv(ranking.ranking(race["id"])))
    names = [row[2] for row in rows[1:]]
    assert names[0] == "'=HYPERLINK(\"http://x\")"
    assert names[1] == "Los Ñandúes, \"rápidos\""


# -- the event's own rule --------------------------------------------------------------------------
def rule(race, tipo, contados=None, minimo=1):
    models.Competencia.update(regla=tipo, contados=contados, minimo=minimo).where(
        models.Competencia.id == race["id"]).execute()


def summary(result):
    """(posicion, dorsal, puntos, puestos) per team, in order."""
    return [(r["posicion"], r["dorsal"], r["puntos"], r["puestos"])
            for r in result["clasificacion"]]


def test_cross_country_hand_worked(race):
    """Puntos, N = 3 scoring, M = 3 to be ranked, two displacers (worked out by hand).

    Team 1: 100 140 150 165 220 230    Team 2: 130 135 145    Team 3: 110 120 170 180 250
    Team 4: 90 95 (two finishers: short, not placed)    Team 5: 80 85 95 (disqualified)

    Placed, in time order, at most N + 2 = 5 per team (team 1's sixth, 230, is not placed):
      100 T1 1 | 110 T3 2 | 120 T3 3 | 130 T2 4 | 135 T2 5 | 140 T1 6 | 145 T2 7 | 150 T1 8
      165 T1 9 | 170 T3 10 | 180 T3 11 | 220 T1 12 | 250 T3 13
    Team 1 scores 1 + 6 + 8 = 15, team 3 2 + 3 + 10 = 15, team 2 4 + 5 + 7 = 16. Team 1's
    fourth runner (a displacer, 9) pushed team 3's third to 10: without displacers team 3
    would have won with 14. The tie 15-15 goes to the better fourth runner: team 1's 9th
    place beats team 3's 11th. Team 4's 90 and 95 would have been 1st and 2nd; team 5's
    even earlier: neither takes a place.
    """
    start(race)
    rule(race, "puntos", contados=3, minimo=3)
    add(race, 1, 100, 140, 150, 165, 220, 230)
    add(race, 2, 130, 135, 145)
    add(race, 3, 110, 120, 170, 180, 250)
    add(race, 4, 90, 95)
    add(race, 5, 80, 85, 95)
    race_control.set_team_status(None, race["equipos"][5], "dsq", "cortó camino")
    result = ranking.ranking(race["id"])
    assert result["regla"]["tipo"] == "puntos"
    assert result["regla"]["contados"] == 3 and result["regla"]["minimo"] == 3
    assert summary(result) == [
        (1, 1, 15, [1, 6, 8, 9, 12]),
        (2, 3, 15, [2, 3, 10, 11, 13]),
        (3, 2, 16, [4, 5, 7]),
        (None, 4, None, []),   # short: listed unranked, after every ranked team
        (None, 5, None, []),   # dsq
    ]
    rows = by_dorsal(result)
    assert rows[1]["registros_contados"] == 3 and rows[1]["tiempo_total_ms"] == 390
    assert rows[4]["registros_contados"] == 2 and rows[4]["estado"] == "ok"
    assert rows[5]["estado"] == "dsq"
    assert "cross" in result["regla"]["texto"] and "4.º" in result["regla"]["texto"]
    assert "al menos 3 llegadas" in result["regla"]["texto"]


def test_cross_country_tie_without_a_next_runner_is_shared_and_a_penalty_delays_runners(race):
    start(race)
    rule(race, "puntos", contados=2, minimo=2)
    add(race, 1, 100, 200)   # places 1 and 4: 5
    add(race, 2, 150, 160)   # places 2 and 3: 5; nobody has a third runner
    assert summary(ranking.ranking(race["id"]))[:2] == [(1, 1, 5, [1, 4]), (1, 2, 5, [2, 3])]
    # A penalty delays every runner of the team: 200 and 300 are now 3rd and 4th.
    race_control.set_team_penalty(None, race["equipos"][1], 100, "salida adelantada")
    assert summary(ranking.ranking(race["id"]))[:2] == [(1, 2, 3, [1, 2]), (2, 1, 7, [3, 4])]


def test_cross_country_a_team_with_a_next_runner_beats_one_without(race):
    start(race)
    rule(race, "puntos", contados=2, minimo=2)
    add(race, 1, 100, 400)        # 1 + 4 = 5, no third runner
    add(race, 2, 200, 300, 500)   # 2 + 3 = 5, third runner 5th
    assert summary(ranking.ranking(race["id"]))[:2] == [(1, 2, 5, [2, 3, 5]), (2, 1, 5, [1, 4])]


def test_cross_country_equal_times_share_a_place(race):
    start(race)
    rule(race, "puntos", contados=1, minimo=1)
    add(race, 1, 100)
    add(race, 2, 100)
    add(race, 3, 120)
    assert summary(ranking.ranking(race["id"]))[:3] == [
        (1, 1, 1, [1]), (1, 2, 1, [1]), (3, 3, 3, [3])]


def test_cross_country_with_fewer_required_than_counted_more_scorers_rank_first(race):
    start(race)
    rule(race, "puntos", contados=3, minimo=2)
    add(race, 1, 100, 110)         # 1 + 2 = 3 points, but only two scorers
    add(race, 2, 120, 130, 140)    # 3 + 4 + 5 = 12 points, three scorers
    assert summary(ranking.ranking(race["id"]))[:2] == [(1, 2, 12, [3, 4, 5]), (2, 1, 3, [1, 2])]


def test_only_finishers_are_placed_voided_absent_and_pending_are_not(race):
    start(race)
    rule(race, "puntos", contados=2, minimo=2)
    voided = add(race, 1, 50)[0]
    add(race, 1, 0)                               # absent
    add(race, 1, 60, oficial_al_recibir=True)     # pending (arrived while official)
    add(race, 1, 300, 400)
    add(race, 2, 100, 200)
    race_control.void_record(None, voided, "toque por error")
    rows = by_dorsal(ranking.ranking(race["id"]))
    assert rows[1]["puestos"] == [3, 4] and rows[2]["puestos"] == [1, 2]
    assert (rows[1]["ausentes"], rows[1]["pendientes"]) == (1, 1)
    # One voided: team 1 has a single finisher left, short of the minimum.
    race_control.void_record(None, add(race, 2, 500)[0], "duplicado")
    race_control.void_record(None, ledger.competition_records(race["id"], race["equipos"][1])[
        "registros"][-1]["id"], "duplicado")
    rows = by_dorsal(ranking.ranking(race["id"]))
    assert rows[1]["posicion"] is None and rows[1]["puestos"] == []
    assert rows[2]["puestos"] == [1, 2]


def test_promedio_ranks_by_the_mean_whatever_the_number_of_finishers(race):
    start(race)
    rule(race, "promedio", contados=3, minimo=2)
    add(race, 1, 100, 100, 100)   # mean 100, three finishers
    add(race, 2, 90, 95)          # mean 92.5 -> 93, two finishers
    add(race, 3, 80)              # one finisher: short of the minimum
    result = ranking.ranking(race["id"])
    assert order(result)[:3] == [(1, 2), (2, 1), (None, 3)]
    assert by_dorsal(result)[2]["promedio_ms"] == 93
    assert result["regla"]["texto"].startswith("Media de los 3 mejores tiempos")
    # Under suma the same times rank the team with more finishers first.
    rule(race, "suma", contados=3, minimo=2)
    assert order(ranking.ranking(race["id"]))[:3] == [(1, 1), (2, 2), (None, 3)]


def test_promedio_penalty_is_added_to_the_mean_and_equal_means_share(race):
    start(race)
    rule(race, "promedio", contados=2)
    add(race, 1, 100, 100)
    add(race, 2, 90, 110)         # the same mean: shared
    add(race, 3, 150)
    assert order(ranking.ranking(race["id"]))[:3] == [(1, 1), (1, 2), (3, 3)]
    race_control.set_team_penalty(None, race["equipos"][2], 60, "dorsal mal puesto")
    result = ranking.ranking(race["id"])
    assert order(result)[:3] == [(1, 1), (2, 3), (3, 2)]   # 100 < 150 < 100 + 60
    assert by_dorsal(result)[2]["promedio_ms"] == 100      # the runners' mean, as shown
    assert by_dorsal(result)[2]["tiempo_total_ms"] == 260  # the total keeps the penalty


@pytest.mark.parametrize("tipo", scoring.REGLAS)
def test_every_rule_lists_short_then_empty_then_dnf_dns_dsq_unranked(race, tipo):
    start(race)
    rule(race, tipo, contados=2, minimo=2)
    add(race, 1, 500)                # one finisher: short
    add(race, 2, 300, 400)           # ranked
    add(race, 3, 100, 200)           # fast, but did not finish as a team
    add(race, 5, 50, 60)             # fast, but disqualified
    race_control.set_team_status(None, race["equipos"][3], "dnf", "se retiró")
    race_control.set_team_status(None, race["equipos"][5], "dsq", "cortó camino")
    assert order(ranking.ranking(race["id"])) == [(1, 2), (None, 1), (None, 4), (None, 3),
                                                  (None, 5)]


def test_short_teams_are_listed_by_more_finishers_then_total(race):
    start(race)
    rule(race, "suma", contados=4, minimo=4)
    add(race, 1, 100)
    add(race, 2, 300, 300)
    add(race, 3, 200, 200)
    add(race, 4, 10, 10, 10, 10)
    assert order(ranking.ranking(race["id"])) == [(1, 4), (None, 3), (None, 2), (None, 1),
                                                  (None, 5)]


def test_the_competition_count_applies_unless_one_is_given(race, monkeypatch):
    monkeypatch.setitem(race_defaults.DEFAULTS, "contados", 15)
    start(race)
    add(race, 1, 100, 200, 300)
    assert ranking.ranking(race["id"])["registros_por_equipo"] == 15
    rule(race, "suma", contados=2)
    result = ranking.ranking(race["id"])
    assert result["registros_por_equipo"] == 2 and result["regla"]["contados"] == 2
    assert by_dorsal(result)[1]["tiempo_total_ms"] == 300
    # The records list says the same: the third does not count.
    assert [r["cuenta"] for r in ledger.competition_records(race["id"])["registros"]] == [
        True, True, False]
    assert by_dorsal(ranking.ranking(race["id"], 3))[1]["tiempo_total_ms"] == 600


def test_categories_rank_within_themselves(race):
    start(race)
    for dorsal, categoria in ((1, "Veteranos"), (2, "Abierta"), (3, "Veteranos"),
                              (4, "Abierta"), (5, None)):
        models.Equipo.update(categoria=categoria).where(
            models.Equipo.id == race["equipos"][dorsal]).execute()
    add(race, 5, 100)
    add(race, 1, 200)
    add(race, 3, 200)     # tied with team 1: both second overall, both first veterans
    add(race, 2, 400)
    result = ranking.ranking(race["id"])
    assert result["categorias"] == ["Abierta", "Veteranos"]
    assert [(r["dorsal"], r["posicion"], r["categoria"], r["posicion_categoria"])
            for r in result["clasificacion"]] == [
        (5, 1, None, None), (1, 2, "Veteranos", 1), (3, 2, "Veteranos", 1),
        (2, 4, "Abierta", 1), (4, None, "Abierta", None)]
    veteranos = ranking.only_category(result, "Veteranos")
    assert veteranos["categoria"] == "Veteranos"
    assert [r["dorsal"] for r in veteranos["clasificacion"]] == [1, 3]
    assert len(result["clasificacion"]) == 5  # the filter copies, the full result stays
    assert ranking.only_category(result, "Nadie")["clasificacion"] == []


def test_rule_words():
    assert scoring.rule_text("suma", 1, 1).startswith("Suma del mejor tiempo de cada equipo")
    assert "al menos" not in scoring.rule_text("promedio", 4, 1)
    puntos = scoring.rule_text("puntos", 5, 5)
    assert "los 5 primeros" in puntos and "6.º" in puntos and "al menos 5 llegadas" in puntos
