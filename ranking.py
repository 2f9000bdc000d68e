"""The standings: the ranking rule applied to the ledger (reader threads, the standings
worker, the command line) and its CSV.
"""

from collections import defaultdict

import ledger
import models
import race_defaults
import scoring
import venue_time


def ranking(competencia_id, scored_per_team=race_defaults.COMPETITION_RULE):
    """The standings of a competition: ``{"competencia", "regla", "registros_por_equipo",
    "categorias", "registros_tras_final", "clasificacion"}``.

    The competition's rule (``regla``: ``tipo``, ``contados`` N, ``minimo`` M; documented for
    organizers in the README) applies to the records with every correction applied
    (:func:`competition_state`). A team's finishers are its records that are not voided,
    absent (``tiempo`` 0) or pending, of a team whose estado is ok; its best N count.

    * ``suma``: teams with more counted finishers rank ahead, then the lower total of the
      counted times plus the team's penalty;
    * ``promedio``: the lower mean of the counted times (half up to the ms) plus the penalty;
    * ``puntos``: the best N + 2 finishers of every team that has at least M are placed in time
      order (a penalty delays each runner of its team; equal times share a place); a team scores
      the sum of its best N places (``puntos``; the next two only displace), more scoring
      runners first, lowest sum wins, and a tie goes to the better (N+1)th place (a team
      that has one beats a team that has none);
    * equal scores share a position and the next one skips: 1, 2, 2, 4;
    * teams with fewer than M finishers, then teams without any, then teams whose estado is
      dnf, dns or dsq, follow every ranked team with ``posicion`` null; the first kind ordered
      by more finishers then lower total, the others by dorsal.

    Each team also has its ``categoria`` and ``posicion_categoria``, its position among the
    ranked teams of its category (the general order, filtered: :func:`only_category`); null
    without a category or a position. Teams that share a position are listed by dorsal.
    Records that arrived before the start count like any other, because a finish time is never
    thrown away silently; ``antes_de_salida`` says how many a team has.

    ``scored_per_team``, when given, is N instead of the competition's own.
    """
    if scored_per_team is not race_defaults.COMPETITION_RULE and (
            not models.is_int(scored_per_team) or scored_per_team < 1):
        raise ValueError("scored_per_team must be a positive integer")
    state = ledger.competition_state(competencia_id, scored_per_team)
    comp = state["competencia"]
    regla = scoring.competition_rule(comp, state["contados"])
    tipo, n, minimo = regla["tipo"], regla["contados"], regla["minimo"]
    teams = list(models.Equipo.select(models.Equipo.id, models.Equipo.nombre, models.Equipo.dorsal,
                                      models.Equipo.categoria)
                 .where(models.Equipo.competencia == comp.id).tuples())
    kept, early, absent, pending = (defaultdict(int), defaultdict(int), defaultdict(int),
                                    defaultdict(int))
    for record in state["records"]:
        if record.anulado:
            continue
        team = record.equipo_id
        kept[team] += 1
        early[team] += record.antes_de_salida
        absent[team] += record.ausente
        pending[team] += record.pendiente
    finishers = {team: [r.tiempo for r in records]
                 for team, records in state["finishers"].items()}
    penalties = {team: state["equipos"][team]["penalizacion_ms"] for team, _, _, _ in teams}
    places = _places(finishers, penalties, n, minimo) if tipo == "puntos" else {}
    rows, keys = [], {}
    for equipo_id, nombre, dorsal, categoria in teams:
        done = finishers.get(equipo_id, ())
        times = done[:n]
        team = state["equipos"][equipo_id]
        penalty = team["penalizacion_ms"]
        total = sum(times) + penalty if times else None
        mean = (sum(times) + len(times) // 2) // len(times) if times else None  # half up
        puestos = places.get(equipo_id, [])
        points = sum(puestos[:n]) if puestos else None
        if team["estado"] != "ok":
            key = (3 + ("dnf", "dns", "dsq").index(team["estado"]),)
        elif not done:
            key = (2,)
        elif len(done) < minimo:
            key = (1, -len(times), total)
        elif tipo == "promedio":
            key = (0, mean + penalty)
        elif tipo == "puntos":
            key = (0, -min(len(puestos), n), points,
                   puestos[n] if len(puestos) > n else float("inf"))
        else:
            key = (0, -len(times), total)
        keys[equipo_id] = key
        rows.append({
            "posicion": None,
            "posicion_categoria": None,
            "equipo_id": equipo_id,
            "equipo": nombre,
            "dorsal": dorsal,
            "categoria": categoria,
            "estado": team["estado"],
            "registros_contados": len(times),
            "registros_recibidos": kept[equipo_id],
            "tiempo_total_ms": total,
            "tiempo_total": venue_time.format_ms(total),
            "penalizacion_ms": penalty,
            "mejor_ms": times[0] if times else None,
            "mejor": venue_time.format_ms(times[0]) if times else None,
            "promedio_ms": mean,
            "promedio": venue_time.format_ms(mean),
            "puntos": points,
            "puestos": puestos,
            "antes_de_salida": early[equipo_id],
            "ausentes": absent[equipo_id],
            "pendientes": pending[equipo_id],
        })
    rows.sort(key=lambda r: keys[r["equipo_id"]] + (r["dorsal"],))
    previous = {}  # category (None: the general standings) -> (its last key, its position)
    counted = defaultdict(int)
    for index, row in enumerate(rows):
        key = keys[row["equipo_id"]]
        if key[0] != 0:
            break
        for category, field in ((None, "posicion"), (row["categoria"], "posicion_categoria")):
            if field == "posicion_categoria" and category is None:
                continue
            counted[category] += 1
            last_key, last_position = previous.get(category, (None, None))
            row[field] = last_position if key == last_key else counted[category]
            previous[category] = (key, row[field])
    finished = models.db_text(comp.finished_at)
    # (a paper time is typed in whenever the organizer can: it never "arrived after the end")
    late = sum(1 for r in state["records"] if finished is not None and r.received_at > finished
               and r.origen != models.ORIGEN_MANUAL)
    return {"competencia": comp.to_dict(), "regla": regla, "registros_por_equipo": n,
            "categorias": sorted({c for _, _, _, c in teams if c}, key=str.casefold),
            "registros_tras_final": late, "clasificacion": rows}


def _places(finishers, penalties, n, minimo):
    """Cross-country places: {equipo_id: [place, ...]} of the best ``n`` + DESPLAZADORES
    finishers of each team with at least ``minimo``, in time order (penalty added to each
    runner of its team); equal times share a place and the next one skips."""
    placed = sorted((tiempo + penalties.get(team, 0), team)
                    for team, times in finishers.items() if len(times) >= minimo
                    for tiempo in times[:n + scoring.DESPLAZADORES])
    places = defaultdict(list)
    place, previous = 0, None
    for index, (tiempo, team) in enumerate(placed, 1):
        if tiempo != previous:
            place, previous = index, tiempo
        places[team].append(place)
    return places


def only_category(result, categoria):
    """A :func:`ranking` result with only the teams of one category (a cheap filter: the rows
    and their positions are the full result's). Adds ``"categoria"``."""
    return dict(result, categoria=categoria,
                clasificacion=[r for r in result["clasificacion"] if r["categoria"] == categoria])


# The CSV export's columns, in order: the ranking rows' keys (a spreadsheet gets both the
# readable h:mm:ss.mmm text and the exact milliseconds).
# The last three are the same on every row: the rule in words, provisional or official, and
# the local time (with its offset) of the standings.
CSV_COLUMNS = ("posicion", "dorsal", "equipo", "equipo_id", "estado", "registros_contados",
               "registros_recibidos", "tiempo_total", "tiempo_total_ms", "penalizacion_ms",
               "mejor", "mejor_ms", "promedio", "promedio_ms", "antes_de_salida", "ausentes",
               "pendientes", "categoria", "posicion_categoria", "puntos", "puestos", "regla",
               "resultados", "actualizado_en")


def ranking_csv(result, now=None, excel=False):
    """A :func:`ranking` result as CSV text: a header row, then one row per team. ``now``
    (naive UTC, default now) is the time the standings are of; ``excel``: the flavour a
    Spanish spreadsheet opens in columns (:func:`ledger.csv_text`)."""
    common = {"regla": result["regla"]["texto"],
              "resultados": "oficiales" if result["competencia"]["oficial"] else "provisionales",
              "actualizado_en": venue_time.local_iso(now or models.utcnow())}
    return ledger.csv_text(CSV_COLUMNS, (
        [" ".join(map(str, row["puestos"])) if c == "puestos" else common[c] if c in common
         else row[c] for c in CSV_COLUMNS] for row in result["clasificacion"]),
        excel=excel, decimal_columns=ledger.CSV_TIME_COLUMNS)
