"""Issue 20, the newcomer's event replayed end to end against the real server in a subprocess:
a Spanish Excel roster (Windows-1252, ``;``) through the console's API, judges' phones on
their sockets, ties and absent runners, a +20 s start adjustment, a ``kill -9`` and a restart
mid-race, paper times and penalties typed as in the console. The standings must be right and
no judge may show a false late-start alarm."""

import asyncio
import datetime as dt
import json
import signal
import uuid

import models
import venue_time
from helpers import ORGANIZER, fetch, judge_path, judge_socket, next_message, registros

ROSTER = ("Juez Usuario;Juez Nombre;Equipo;Dorsal;Categoría\r\n"
          "marta;Marta Ibáñez;Los Peñascos;1;Educación Infantil\r\n"
          "marta;Marta Ibáñez;Águilas;2;Educación Primaria\r\n"
          "jose;José Núñez;Cigüeñas;3;Educación Infantil\r\n"
          "jose;José Núñez;Linces;4;Educación Primaria\r\n"
          "lucia;Lucía Peña;Halcones;5;Educación Infantil\r\n"
          "lucia;Lucía Peña;Zorros;6;Educación Primaria\r\n").encode("cp1252")
# What each judge's phone sends for its teams: its stopwatch started as it heard the start.
SENT = {"Los Peñascos": [65_000, 65_000, 0, 0, 0],  # two runners tied, three absent
        "Águilas": [70_000, 72_000], "Cigüeñas": [66_000, 0], "Linces": [80_000],
        "Halcones": [64_000, 90_000]}


class Event:
    def __init__(self, server):
        self.server = server
        self.tokens = {}

    async def call(self, method, path, body=None, who=ORGANIZER[0], status=200, **kw):
        code, answer, _ = await fetch(method, self.server.base_url + path, body,
                                      self.tokens.get(who), **kw)
        assert code == status, (path, code, answer)
        return answer

    async def login(self, username, password):
        answer = await self.call("POST", "/api/token/", {"username": username,
                                                         "password": password}, who=None)
        self.tokens[username] = answer["access"]

    async def phones(self, judges):
        """Each judge's phone connects its socket: (socket, what it heard first)."""
        sockets = {}
        for username, juez_id in judges.items():
            ws, hello = await judge_socket(self.server.ws_base + judge_path(
                juez_id, self.tokens[username]))
            sockets[username] = ws
        return sockets

    async def board(self):
        return {j["username"]: j for j in (await self.call(
            "GET", "/api/competencias/1/jueces/"))["jueces"]}


def no_false_alarm(board, heard_by):
    for username, judge in board.items():
        assert judge["alerta"] is False, judge
        assert 0 <= judge["retraso_inicio_ms"] < 2000, judge
        assert judge["inicio_notificado_en"] == heard_by[username], judge
        assert judge["inicio_implicito_ms"] in (0, None), judge


async def replay(server):
    event = Event(server)
    await event.login(*ORGANIZER)
    # The roster, as the console sends it: the file's bytes, a preview, then the import.
    for query in ("?dry_run=1", ""):
        imported = await event.call("POST", "/api/competencias/1/importar/" + query,
                                    headers={"Content-Type": "text/csv"}, raw=ROSTER)
    assert imported["jueces_nuevos"] == 3 and imported["equipos_nuevos"] == 6
    judges = {c["username"]: c["juez_id"] for c in imported["credenciales"]}
    for credential in imported["credenciales"]:
        await event.login(credential["username"], credential["password"])
    me = {u: (await event.call("GET", "/api/me/", who=u))["juez"] for u in judges}
    assert me["marta"]["nombre"] == "Marta Ibáñez"
    team_of = {t["nombre"]: (u, t["id"]) for u in me for t in me[u]["equipos"]}
    assert sorted(team_of) == sorted(list(SENT) + ["Zorros"])

    # The phones connect; the start reaches every one of them.
    sockets = await event.phones(judges)
    started = (await event.call("POST", "/api/competencias/1/iniciar/"))["competencia"]
    for ws in sockets.values():
        assert (await next_message(ws))["type"] == "carrera.iniciada"
    given = venue_time.parse_timestamp(started["started_at"])

    # Their times: ties and absents each with an id of its own.
    bodies = {}
    for name, tiempos in SENT.items():
        username, equipo_id = team_of[name]
        bodies[name] = {"equipo_id": equipo_id, "registros": [
            dict(r, id_registro=str(uuid.uuid4())) for r in registros(
                tiempos, at=given + dt.timedelta(milliseconds=max(tiempos)), every_s=0)]}
        for record, tiempo in zip(bodies[name]["registros"], tiempos):  # as each finished
            record["timestamp"] = models.iso(given + dt.timedelta(milliseconds=tiempo or 1))
        answer = await event.call("POST", "/api/enviar_tiempos/", bodies[name], who=username,
                                  status=201)
        assert answer["created"] == [r["id_registro"] for r in bodies[name]["registros"]]

    # The starter fired 20 s before the console's button: one adjustment, nobody is late.
    await event.call("POST", "/api/competencias/1/ajustar_tiempos/", {
        "delta_ms": venue_time.parse_duration("+20s", signed=True), "motivo": "salida real antes"})
    before = await event.board()
    heard_by = {u: j["inicio_notificado_en"] for u, j in before.items()}
    no_false_alarm(before, heard_by)

    # kill -9 mid-race, then the server again: the phones reconnect and hear the start again.
    for ws in sockets.values():
        ws.close()
    server.signal(signal.SIGKILL)
    server.wait()
    server.start()
    sockets = await event.phones(judges)
    for ws in sockets.values():
        assert (await next_message(ws))["type"] == "carrera.iniciada"
    # A phone that never heard its answers retries: duplicates, under its own ids.
    username, _ = team_of["Los Peñascos"]
    again = await event.call("POST", "/api/enviar_tiempos/", bodies["Los Peñascos"],
                             who=username, status=201)
    assert again["created"] == [] and again["duplicates"] == [
        r["id_registro"] for r in bodies["Los Peñascos"]["registros"]]

    # Paper times and a penalty, typed as in the console (its parser is the server's).
    for name, typed in (("Zorros", "1:02.5"), ("Linces", "1:30")):
        await event.call("POST", "/api/competencias/1/registros/", {
            "equipo_id": team_of[name][1], "tiempo": venue_time.parse_duration(typed),
            "motivo": "hoja de papel"}, status=201)
    await event.call("POST", "/api/equipos/%d/penalizacion/" % team_of["Halcones"][1], {
        "ms": venue_time.parse_duration("30s", signed=True), "motivo": "atajo"})
    no_false_alarm(await event.board(), heard_by)
    await event.call("POST", "/api/competencias/1/detener/")
    for ws in sockets.values():
        ws.close()
    return await event.call("GET", "/api/competencias/1/resultados/", who=None)


def test_the_newcomers_event_replayed(spawn, tmp_path):
    server = spawn(tmp_path / "event.db", race={"impossible_time_tolerance_ms": 3_600_000,
                                                "timezone": "Europe/Madrid"})
    server.organize("5K Solidario del Colegio")
    server.start()
    result = asyncio.run(replay(server))
    rows = [(r["posicion"], r["equipo"], r["categoria"], r["posicion_categoria"],
             r["registros_contados"], r["ausentes"], r["tiempo_total_ms"])
            for r in result["clasificacion"]]
    print(json.dumps(rows, ensure_ascii=False))
    assert rows == [
        # app times +20 s each, paper times as typed, Halcones' 30 s penalty in its total
        (1, "Los Peñascos", "Educación Infantil", 1, 2, 3, 85_000 + 85_000),
        (2, "Águilas", "Educación Primaria", 1, 2, 0, 90_000 + 92_000),
        (3, "Linces", "Educación Primaria", 2, 2, 0, 100_000 + 90_000),
        (4, "Halcones", "Educación Infantil", 2, 2, 0, 84_000 + 110_000 + 30_000),
        (5, "Zorros", "Educación Primaria", 3, 1, 0, 62_500),
        (6, "Cigüeñas", "Educación Infantil", 3, 1, 1, 86_000)]
    assert result["registros_tras_final"] == 0
