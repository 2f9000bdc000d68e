"""Movil5K, the judges' real app (JhostinTapia/Movil5K at b6a7d20), against Server5K unchanged.

``MovilApp`` below makes Movil5K's requests and reads the answers as its Dart source does
(cited per method, lib/...): the headers of ApiConfig.defaultHeaders, ApiService._handleResponse
(an array becomes {"data": [...]}, the error text is error, else detail, else message), the
retry of _sendWithRetry, the refresh of _isTokenExpiredError/_retryWithRefreshedToken, the
models' fromJson, SyncService's success rule and the words timer_screen._enviarDatos and
_convertirErrorAmigable match. The race-day story runs it beside the integration guide's client
in the same race.
"""

import asyncio
import csv
import datetime as dt
import io
import json
import re
import sqlite3
import time
import uuid

import jwt
import pytest
import tornado.websocket

import models
import identity
import registration
import submissions
import venue_time
from handlers import movil5k
from handlers.errors import ApiError
from handlers.tokens import TokenService
from helpers import SECRET, fetch, next_message, registros

T = dt.timedelta


class ApiException(Exception):
    """services/api_service.dart ApiException: str() is what the app's keyword checks read."""

    def __init__(self, message, status):
        super().__init__(message)
        self.message, self.status = message, status

    def __str__(self):
        return "ApiException: %s (Status: %s)" % (self.message, self.status)


def parse_dart_datetime(text):
    """DateTime.parse of the app's models: with Z or an offset an instant; naive UTC here."""
    assert isinstance(text, str) and text.endswith("Z"), text  # else phone-local time
    return dt.datetime.fromisoformat(text[:-1])


def competencia_from_json(j):
    """models/competencia.dart Competencia.fromJson (a missing or wrong field throws)."""
    assert isinstance(j["id"], int) and isinstance(j["name"], str)
    return {"id": j["id"], "nombre": j["name"], "fechaHora": parse_dart_datetime(j["datetime"]),
            "activa": j.get("is_active", True), "enCurso": j.get("is_running", False),
            "fechaInicio": parse_dart_datetime(j["started_at"]) if j.get("started_at") else None,
            "fechaFin": parse_dart_datetime(j["finished_at"]) if j.get("finished_at") else None}


def juez_from_json(j):
    """models/juez.dart Juez.fromJson."""
    assert isinstance(j["id"], int)
    for key in ("first_name", "last_name", "email", "telefono"):
        assert j.get(key) is None or isinstance(j[key], str), key
    return {"id": j["id"], "nombre": ("%s %s" % (j.get("first_name") or "",
                                                 j.get("last_name") or "")).strip()}


def equipo_from_json(j):
    """models/equipo.dart Equipo.fromJson."""
    for key in ("id", "number", "competition_id"):
        assert isinstance(j[key], int), key
    assert isinstance(j["name"], str) and isinstance(j["competition_name"], str)
    return {"id": j["id"], "nombre": j["name"], "dorsal": j["number"],
            "categoria": j.get("category") or "estudiantes",
            "competenciaId": j["competition_id"]}


def ws_message_from_json(j):
    """services/websocket_service.dart WebSocketMessage.fromJson: (type, payload)."""
    kind = j.get("type") or j.get("tipo")
    data = j.get("data")
    if data is not None and not isinstance(data, dict):
        return None  # the cast throws: the frame is dropped
    if data is None:
        data = {k: v for k, v in j.items() if k not in ("type", "tipo")}
    return kind, data


def convertir_error_amigable(error):
    """screens/timer_screen.dart _convertirErrorAmigable: the judge's message for an error."""
    low = error.lower()
    if "competencia" in low and "no" in low and ("curso" in low or "running" in low):
        return "La competencia ha finalizado."
    if any(w in low for w in ("timeout", "connection", "socket", "network")):
        return "No se pudo conectar con el servidor."
    if "401" in low or "unauthorized" in low or "token" in low:
        return "Tu sesión ha expirado."
    if "404" in low or "not found" in low:
        return "El servidor no pudo procesar la solicitud."
    if "500" in low or "internal server" in low:
        return "El servidor está experimentando problemas."
    if "ya" in low and "registr" in low:
        return "Los registros ya fueron enviados anteriormente."
    clean = re.sub(r"(?i)ApiException:\s*", "", error)
    clean = re.sub(r"(?i)\(Status:\s*\d+\)", "", clean)
    clean = re.sub(r"(?i)Status:\s*\d+", "", clean)
    clean = re.sub(r"(?i)Exception:\s*", "", clean).strip()
    if not clean or len(clean) > 100:
        return "Ocurrió un error inesperado."
    return clean


class MovilApp:
    """One phone running Movil5K, talking to ``base_url``."""

    HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

    def __init__(self, base_url):
        self.base_url = base_url
        self.access = self.refresh = None
        self.requests = []  # (method, path, status) of every HTTP exchange, in order

    async def _send(self, method, path, body=None, auth=True):
        """api_service.dart get/post with _sendWithRetry: up to 3 tries on 429/502/503/504."""
        headers = dict(self.HEADERS)
        if auth and self.access:
            headers["Authorization"] = "Bearer " + self.access
        for attempt in range(3):
            code, _, response = await fetch(method, self.base_url + path, body,
                                            headers=headers)
            self.requests.append((method, path, code))
            if code not in (429, 502, 503, 504) or attempt == 2:
                break
        return self._handle_response(code, response.body)

    @staticmethod
    def _handle_response(code, raw):
        """api_service.dart _handleResponse."""
        if not raw:
            if 200 <= code < 300:
                return {}
            raise ApiException("Error del servidor", code)
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError:
            raise ApiException("Error al procesar respuesta", code) from None
        if 200 <= code < 300:
            return data if isinstance(data, dict) else {"data": data}
        text = (data.get("error") or data.get("detail") or data.get("message")
                or "Error desconocido") if isinstance(data, dict) else "Error desconocido"
        raise ApiException(str(text), code)

    async def request(self, method, path, body=None, auth=True):
        """With the refresh of _isTokenExpiredError / _retryWithRefreshedToken."""
        try:
            return await self._send(method, path, body, auth)
        except ApiException as exc:
            low = exc.message.lower()
            if not (auth and exc.status == 401 and ("token" in low or "unauthorized" in low)):
                raise
            answer = await self._send("POST", "/api/token/refresh/", {"refresh": self.refresh},
                                      auth=False)
            self.access = answer["access"]  # a new "refresh" in it is not kept
            return await self._send(method, path, body, auth)

    async def login(self, username, password):
        """repositories/app_repository.dart login: tokens, /api/me/, the competitions."""
        tokens = await self.request("POST", "/api/login/",
                                    {"username": username, "password": password}, auth=False)
        assert isinstance(tokens["access"], str) and isinstance(tokens["refresh"], str)
        self.access, self.refresh = tokens["access"], tokens["refresh"]
        self.juez = juez_from_json(await self.request("GET", "/api/me/"))
        answer = await self.request("GET", "/api/competencias/")
        items = answer["data"] if isinstance(answer.get("data"), list) else answer.get(
            "results", [])
        self.competencias = [competencia_from_json(c) for c in items]
        return self.juez

    async def equipos(self):
        """equipos_asignados_screen.dart _cargarEquipos -> ApiService.getEquipos."""
        answer = await self.request("GET", "/api/equipos/")
        return [equipo_from_json(e) for e in answer["data"]]

    async def competencia(self, cid):
        """GET /api/competencias/{id}/: on a team screen's open and each poll."""
        return competencia_from_json(await self.request("GET", "/api/competencias/%d/" % cid))

    async def enviar(self, equipo_id, records):
        """sync_service.dart enviarRegistrosPorHttp as timer_screen._enviarDatos reports it:
        ("exito", total) | ("otro_dispositivo", text) | ("error", the judge's message)."""
        payload = [{"id_registro": r["id"], "tiempo": r["tiempo"],
                    **dict(zip(("horas", "minutos", "segundos", "milisegundos"),
                               venue_time.split_tiempo(r["tiempo"])))} for r in records]
        try:
            answer = await self.request("POST", "/api/equipos/%d/registros/" % equipo_id,
                                        {"registros": payload})
        except ApiException as exc:
            mensaje = "Error: %s" % exc
            if "409" in mensaje or "ya tiene" in mensaje or "No se permiten" in mensaje:
                return "otro_dispositivo", mensaje
            return "error", convertir_error_amigable(mensaje)
        if answer.get("exito") is not True:
            return "error", "Error: Exception: %s" % answer.get("error")
        exitosos = answer.get("total_guardados", len(records))
        if exitosos != len(records):
            return "error", "recuento %s de %d" % (exitosos, len(records))
        self.last_answer = answer
        return "exito", exitosos

    async def logout(self):
        """app_repository.dart logout: POST /api/logout/ {refresh}; the answer is ignored."""
        try:
            await self.request("POST", "/api/logout/", {"refresh": self.refresh})
        except ApiException:
            pass

    def socket_url(self):
        """websocket_service.dart _buildWebSocketUri (a ws:// base URL: the dev build)."""
        return "ws" + self.base_url[len("http"):] + "/ws/juez/%d/?token=%s" % (
            self.juez["id"], self.access)


def set_de(tiempos):
    """A team's 15 records as the app keeps them: a UUID v4 each."""
    return [{"id": str(uuid.uuid4()), "tiempo": t} for t in tiempos]


def in_milliseconds(delta):
    """Dart's Duration.inMilliseconds: the microseconds, truncated toward zero."""
    micro = delta // T(microseconds=1)
    return micro // 1000 if micro >= 0 else -(-micro // 1000)


class Cronometro:
    """The clock of one team's screen, as providers/timer_provider.dart keeps it:
    ``_serverStartedAt``, the Stopwatch and ``_tiempoInicioOffset``. ``tiempo(at)`` is
    elapsedMilliseconds at a tap at phone time ``at`` (marcarTiempo). Phone times are the
    test's clock (the app corrects no clock)."""

    def __init__(self):
        self.competencia = self.server_started_at = self.started = None
        self.offset = 0

    def set_competencia(self, comp, now):
        """setCompetencia: the screen opens with GET /api/competencias/{id}/ (parsed); a
        running race gives the server start and starts the stopwatch."""
        self.competencia = comp
        self.server_started_at = (comp["fechaInicio"] if comp["enCurso"] and comp["fechaInicio"]
                                  else None)
        if comp["enCurso"]:
            self.start(now)

    def carrera_iniciada(self, data, now):
        """_handleCarreraIniciada: a socket start (its payload) gives the server start."""
        self.server_started_at = parse_dart_datetime(data["started_at"])
        self.competencia = dict(self.competencia, enCurso=True,
                                fechaInicio=self.server_started_at)
        self.start(now)

    def sondeo(self, comp, now):
        """The 10 s poll of _iniciarMonitoreoCompetencia: the competition is replaced, and
        start() once it runs; the poll never sets the server start."""
        self.competencia = comp
        if comp["enCurso"]:
            self.start(now)

    def start(self, now):
        """start(): the offset from the server start, else from ``datetime`` if the race is
        running and ``datetime`` past, else 0 (each truncated to the millisecond)."""
        if self.started is not None:
            return
        if self.server_started_at is not None:
            self.offset = in_milliseconds(now - self.server_started_at)
        elif self.competencia["enCurso"] and now > self.competencia["fechaHora"]:
            self.offset = in_milliseconds(now - self.competencia["fechaHora"])
        else:
            self.offset = 0
        self.started = now

    def tiempo(self, at):
        """elapsedMilliseconds: now − server start when known, else the Stopwatch's
        (truncated) milliseconds plus the offset."""
        if self.server_started_at is not None:
            return in_milliseconds(at - self.server_started_at)
        return in_milliseconds(at - self.started) + self.offset


def tiempo_por_sondeo(comp_json, noticed, tap):
    """A tap's tiempo on a phone that learnt of the running race from its poll at ``noticed``
    (:class:`Cronometro`)."""
    cronometro = Cronometro()
    cronometro.sondeo(competencia_from_json(comp_json), noticed)
    return cronometro.tiempo(tap)


def arrancaria_solo(comp_json, now, seconds):
    """The auto-start of _iniciarMonitoreoCompetencia: any 1 s tick in the next ``seconds``
    with datetime - now, in whole seconds (truncated), within [-30, 0]."""
    fecha = competencia_from_json(comp_json)["fechaHora"]
    return any(-30 <= int((fecha - (now + T(seconds=s))).total_seconds()) <= 0
               for s in range(seconds))


@pytest.mark.gen_test(timeout=60)
async def test_race_day_with_movil5k_beside_the_guides_app(client, event, config):
    cid, eq = event["competencia"], event["equipos"]
    org = await client.organizer()
    phone = MovilApp(client.base_url)
    # 1. Login, as the app's first screen does: tokens, the judge, its competition, its teams.
    juez = await phone.login("juez1", "pass-juez1")
    assert juez == {"id": event["jueces"][0], "nombre": "Juez Uno"}
    assert [c["id"] for c in phone.competencias] == [cid]
    assert [(e["id"], e["dorsal"], e["competenciaId"]) for e in await phone.equipos()] == [
        (eq["a"], 1, cid), (eq["b"], 2, cid)]
    # The guide's app in the same race, on the same accounts: juez2 with /api/token/.
    guide = await client.login("juez2", "pass-juez2")
    code, me = await client.get("/api/me/", token=guide["access"])
    assert code == 200 and me["juez"]["id"] == event["jueces"][1]
    guide_ws = await tornado.websocket.websocket_connect(client.ws_url(
        "/ws/juez/%d/?token=%s" % (event["jueces"][1], guide["access"])))
    assert json.loads(await guide_ws.read_message())["type"] == "conexion.establecida"

    # 2. The team screen opens before the start: not running, and a datetime the app's own
    # start at datetime cannot reach (it would start the stopwatch by itself).
    before = await client.get("/api/competencias/%d/" % cid)
    assert before[1]["is_running"] is False and before[1]["estado"] == "programada"
    assert not arrancaria_solo(before[1], models.utcnow(), 600)
    # The socket of the dev build: {"tipo": "ping"} is answered with a pong, never an error.
    ws = await tornado.websocket.websocket_connect(phone.socket_url())
    hello = ws_message_from_json(json.loads(await ws.read_message()))
    assert hello[0] == "conexion.establecida"
    ws.write_message(json.dumps({"tipo": "ping"}))
    assert ws_message_from_json(await next_message(ws))[0] == "pong"

    # 3. The start: heard on both generations' sockets, with started_at where the app reads it.
    started = (await client.race_action(cid, org, "iniciar"))["competencia"]
    kind, data = ws_message_from_json(await next_message(ws))
    assert kind == "carrera.iniciada" and data["started_at"] == started["started_at"]
    assert json.loads(await guide_ws.read_message())["data"]["started_at"] == started["started_at"]
    start = parse_dart_datetime(data["started_at"])
    # The polling path (the production build has no socket): the poll that sees it running
    # carries datetime = started_at, so the stopwatch counts from the real start.
    poll = (await client.get("/api/competencias/%d/" % cid))[1]
    assert poll["is_running"] is True and poll["datetime"] == started["started_at"]
    noticed = models.utcnow()
    # (at most 1 ms short: the app truncates its offset and its stopwatch separately)
    assert 19 * 60_000 - 1 <= tiempo_por_sondeo(poll, noticed, start + T(minutes=19)) <= (
        19 * 60_000)
    # A screen opened after the start reads started_at from the same GET (setCompetencia).
    assert competencia_from_json(poll)["fechaInicio"] == start
    # The judges board: juez1 heard it (its socket); a polling phone counts as hearing it.
    code, board = await client.get("/api/competencias/%d/jueces/" % cid, token=org)
    assert all(j["inicio_notificado_en"] for j in board["jueces"][:2])
    # A false start, then the real one while juez1's phone has no socket (the production
    # build): its poll is how it hears the start, and the board says so.
    await client.race_action(cid, org, "reiniciar")
    assert ws_message_from_json(await next_message(ws))[0] == "carrera.cancelada"
    ws.close()
    assert await next_message(ws) is None
    # A screen opened after the false start was reset (setCompetencia: not running).
    por_sondeo = Cronometro()
    por_sondeo.set_competencia(await phone.competencia(cid), models.utcnow())
    pressed = models.utcnow()
    started = (await client.race_action(cid, org, "iniciar"))["competencia"]
    answered = models.utcnow()
    await guide_ws.read_message(), await guide_ws.read_message()
    code, board = await client.get("/api/competencias/%d/jueces/" % cid, token=org)
    heard = {j["id"]: j["inicio_notificado_en"] for j in board["jueces"]}
    assert heard[event["jueces"][0]] is None and heard[event["jueces"][1]] is not None
    polled = await phone.competencia(cid)  # the 10 s poll
    por_sondeo.sondeo(polled, models.utcnow())
    code, board = await client.get("/api/competencias/%d/jueces/" % cid, token=org)
    heard = {j["id"]: j["inicio_notificado_en"] for j in board["jueces"]}
    assert heard[event["jueces"][0]] is not None  # by its poll
    # The real start: the moment the organizer's start was taken (millisecond precision).
    start = parse_dart_datetime(started["started_at"])
    assert pressed - T(milliseconds=1) < start <= answered
    ws = await tornado.websocket.websocket_connect(phone.socket_url())
    hello, again = [ws_message_from_json(await next_message(ws)) for _ in range(2)]
    assert (hello[0], again[0]) == ("conexion.establecida", "carrera.iniciada")  # on reconnect
    # The other two ways the app learns it: the socket's start, a screen opened after it.
    por_socket, abierta = Cronometro(), Cronometro()
    por_socket.set_competencia(competencia_from_json(before[1]), models.utcnow())
    por_socket.carrera_iniciada(again[1], models.utcnow())
    abierta.set_competencia(await phone.competencia(cid), models.utcnow())

    # 4. Team A's 15 (one absent runner: tiempo 0), timed as timer_provider.dart times them on
    # the polling path (the production build's), sent, then sent again (a retry, the
    # auto-sync): the same success both times, stored once. Each tiempo is the tap's time
    # since the real start: exactly on the socket and screen paths, and at most 1 ms short on
    # the polling path (its offset and its stopwatch are each truncated to the millisecond).
    taps = [start + T(minutes=19, seconds=7 * i, microseconds=1_234 * i + 567)
            for i in range(14)]
    for tap in taps:
        real = in_milliseconds(tap - start)
        assert por_socket.tiempo(tap) == abierta.tiempo(tap) == real
        assert real - 1 <= por_sondeo.tiempo(tap) <= real
    set_a = set_de([0] + [por_sondeo.tiempo(tap) for tap in taps])
    assert await phone.enviar(eq["a"], set_a) == ("exito", 15)
    first = phone.last_answer
    assert len(first["created"]) == 15 and first["pendientes_revision"] == 0
    assert await phone.enviar(eq["a"], set_a) == ("exito", 15)
    assert phone.last_answer["duplicates"] == [r["id"] for r in set_a]
    assert phone.last_answer["created"] == []
    code, listed = await client.get("/api/competencias/%d/registros/?equipo_id=%d"
                                    % (cid, eq["a"]), token=org)
    stored = {r["id"]: r["tiempo"] for r in listed["registros"]}
    assert [stored[r["id"]] for r in set_a] == [r["tiempo"] for r in set_a]  # as sent
    assert all(0 <= in_milliseconds(tap - start) - stored[r["id"]] <= 1
               for tap, r in zip(taps, set_a[1:]))
    # The guide's judge sends team C as the guide says, sends it again (its answer was lost),
    # and reads back what the server holds.
    body = {"equipo_id": eq["c"], "registros": registros(15, start_ms=1_150_000, ids=True)}
    code, sent = await client.post("/api/enviar_tiempos/", body, token=guide["access"])
    assert code == 201 and len(sent["created"]) == 15
    code, again = await client.post("/api/enviar_tiempos/", body, token=guide["access"])
    assert code == 201 and again["created"] == [] and again["duplicates"] == sent["created"]
    code, back = await client.get("/api/equipos/%d/registros/" % eq["c"], token=guide["access"])
    assert code == 200 and [r["id"] for r in back["registros"]] == sent["created"]
    assert {(r["protocolo"], r["cuenta"]) for r in back["registros"]} == {("guia", True)}

    # 5. A second phone (the same judge, logged in again) sends a different set for team A:
    # answered as a success, stored, and left for the organizer to review.
    second = MovilApp(client.base_url)
    await second.login("juez1", "pass-juez1")
    set_a2 = set_de([abierta.tiempo(start + T(minutes=16, seconds=5 * i, microseconds=901 * i))
                     for i in range(15)])  # (its screen opened after the start)
    assert await second.enviar(eq["a"], set_a2) == ("exito", 15)
    assert second.last_answer["pendientes_revision"] == 15
    assert await second.enviar(eq["a"], set_a2) == ("exito", 15)  # its retry too
    assert second.last_answer["pendientes_revision"] == 15 and not second.last_answer["created"]
    code, listed = await client.get("/api/competencias/%d/registros/?equipo_id=%d"
                                    % (cid, eq["a"]), token=org)
    by_id = {r["id"]: r for r in listed["registros"]}
    assert len(by_id) == 30
    assert all(by_id[r["id"]]["pendiente"] and by_id[r["id"]]["revision"] == "segundo_envio"
               and not by_id[r["id"]]["cuenta"] for r in set_a2)
    assert by_id[set_a[0]["id"]]["ausente"] and not by_id[set_a[0]["id"]]["cuenta"]
    assert {by_id[r["id"]]["protocolo"] for r in set_a} == {"movil5k"}
    code, results = await client.get("/api/competencias/%d/resultados/" % cid)
    row = next(r for r in results["clasificacion"] if r["equipo_id"] == eq["a"])
    assert row["registros_contados"] == 14 and row["ausentes"] == 1 and row["pendientes"] == 15
    code, c_listed = await client.get("/api/competencias/%d/registros/?equipo_id=%d"
                                      % (cid, eq["c"]), token=org)
    assert {r["protocolo"] for r in c_listed["registros"]} == {"guia"}
    # The organizer accepts one of them: the audit says it came from Movil5K.
    code, _ = await client.post("/api/registros/%s/aceptar/" % set_a2[0]["id"],
                                {"motivo": "el segundo teléfono tenía razón"}, token=org)
    assert code == 200
    code, audit = await client.get("/api/competencias/%d/auditoria/" % cid, token=org)
    assert audit["acciones"][-1]["despues"]["protocolo"] == "movil5k"
    # The CSV exports say so too: the records' protocolo column, the audit's after.
    async def fetch_csv(path):
        code, _, response = await client.request("GET", path, None, org)
        assert code == 200, path
        return list(csv.DictReader(io.StringIO(response.body.decode("utf-8-sig"))))

    exported = await fetch_csv("/api/competencias/%d/registros/?format=csv" % cid)
    protocolos = {row["id"]: (row["protocolo"], row["revision"]) for row in exported}
    assert {protocolos[r["id"]] for r in set_a} == {("movil5k", "")}
    assert {protocolos[r["id"]] for r in set_a2} == {("movil5k", "segundo_envio")}
    assert {protocolos[rid] for rid in sent["created"]} == {("guia", "")}
    audit_rows = await fetch_csv("/api/competencias/%d/auditoria/?format=csv" % cid)
    assert audit_rows[-1]["accion"] == "aceptar"
    assert json.loads(audit_rows[-1]["despues"])["protocolo"] == "movil5k"

    # 6. A judge of another team is refused, in words the app shows as they are (not as
    # "sent from another device", which a 409 would make it say and mark the team sent).
    other = MovilApp(client.base_url)
    await other.login("juez2", "pass-juez2")
    outcome = await other.enviar(eq["b"], set_de(range(60_000, 75_000, 1_000)))
    assert outcome[0] == "error" and "no está asignado" in outcome[1], outcome

    # 7. After the stop a phone's set is still stored (flagged after the end); the socket
    # stays quiet about the stop in Movil5K's words (it would disable the app's send button).
    await client.race_action(cid, org, "detener")
    assert ws_message_from_json(await next_message(ws))[0] == "carrera.finalizada"
    assert await phone.enviar(eq["b"], set_de(range(1_500_000, 1_515_000, 1_000))) == (
        "exito", 15)
    code, board = await client.get("/api/competencias/%d/jueces/" % cid, token=org)
    assert board["registros_tras_final"] == 15
    juez1 = next(j for j in board["jueces"] if j["id"] == event["jueces"][0])
    assert juez1["inicio_implicito_ms"] is None  # Movil5K sends no tap times to infer it from
    after = (await client.get("/api/competencias/%d/" % cid))[1]
    assert after["is_running"] is False and after["datetime"] == started["started_at"]
    # The guide's app hears the stop and reads the results: its team C, 15 counted.
    assert json.loads(await guide_ws.read_message())["type"] == "carrera.finalizada"
    code, results = await client.get("/api/competencias/%d/resultados/" % cid)
    row_c = next(r for r in results["clasificacion"] if r["equipo_id"] == eq["c"])
    assert code == 200 and row_c["registros_contados"] == 15 and row_c["pendientes"] == 0

    # 8. An access token the server refuses ("token" in the 401) is refreshed with the login's
    # refresh token and the request repeated, as many times as it happens.
    for _ in range(2):
        phone.access = phone.access[:-4] + "AAAA"
        assert [e["id"] for e in await phone.equipos()] == [eq["a"], eq["b"]]
    assert ("POST", "/api/token/refresh/", 200) in phone.requests

    # 9. Logout ends that phone's session (refresh and access), not the second phone's.
    access, refresh = phone.access, phone.refresh
    await phone.logout()
    assert phone.requests[-1] == ("POST", "/api/logout/", 200)
    code, answer = await client.post("/api/token/refresh/", {"refresh": refresh})
    assert code == 401 and answer["code"] == "token_revoked"
    assert (await client.get("/api/me/", token=access))[0] == 401
    assert [e["id"] for e in await second.equipos()] == [eq["a"], eq["b"]]
    ws.close()
    guide_ws.close()


def test_datetime_counts_from_the_real_start_late_early_or_unscheduled():
    now = dt.datetime(2025, 11, 22, 8, 0, 0)
    scheduled = models.iso(now + T(minutes=5))
    for fecha in (scheduled, models.iso(now - T(minutes=20)), None):  # ahead, late, none
        comp = {"id": 1, "nombre": "5K", "fecha_hora": fecha, "estado": "programada",
                "started_at": None, "finished_at": None}
        served = movil5k.app_competition(comp, now)
        # Never within the app's auto-start window before the start, whoever polls when:
        # a phone that polled at ``now`` and then lost the network for 12 hours included.
        assert not arrancaria_solo(served, now, 12 * 3600), fecha
        assert served["is_running"] is False
        # The start comes (late or early): the first poll that sees it counts from it.
        for real_start in (now + T(minutes=9), now + T(minutes=2)):
            running = dict(comp, estado="en_curso", started_at=models.iso(real_start))
            served = movil5k.app_competition(running, now)
            for lag_s in (0.3, 9.9, 47):  # noticed on the next poll, or after retries
                noticed = real_start + T(seconds=lag_s)
                assert tiempo_por_sondeo(served, noticed, real_start + T(minutes=20)) == (
                    20 * 60_000)
    far = models.iso(now + T(days=30))
    assert movil5k.app_datetime({"fecha_hora": far, "started_at": None}, now) == far


@pytest.mark.gen_test
async def test_login_refusals_read_as_the_app_shows_them(client, event):
    phone = MovilApp(client.base_url)
    with pytest.raises(ApiException) as wrong:
        await phone.login("juez1", "no-es-la-clave")
    assert wrong.value.status == 401  # "Usuario o contraseña incorrectos"
    with pytest.raises(ApiException) as organizer_login:
        await phone.login("org", "org-pass")
    assert organizer_login.value.status == 403  # "Usuario inactivo. Contacta al administrador"
    # The organizer's own list is what it was; a judge's is Movil5K's array.
    code, answer = await client.get("/api/competencias/", token=await client.organizer())
    assert code == 200 and [c["id"] for c in answer["competencias"]] == [
        event["competencia"], event["otra"]]
    judge = await client.access("juez3", "pass-juez3")
    code, answer = await client.get("/api/competencias/?is_running=true", token=judge)
    assert code == 200 and answer == []
    # A judge sees the races it times, in any state, and nothing of the others.
    org = await client.organizer()
    for action in ("iniciar", "detener"):
        await client.race_action(event["otra"], org, action)
    code, answer = await client.get("/api/competencias/", token=judge)
    assert code == 200 and [(c["id"], c["estado"], c["is_running"]) for c in answer] == [
        (event["otra"], "finalizada", False)]
    code, answer = await client.post("/api/competencias/", {"nombre": "Mía"}, token=judge)
    assert code == 403 and answer["code"] == "organizer_only"
    code, answer = await client.get("/api/competencias/?is_running=maybe", token=judge)
    assert code == 400
    code, answer = await client.get("/api/equipos/?competition_id=x", token=judge)
    assert code == 400


@pytest.mark.gen_test
async def test_a_set_that_is_not_valid_stores_nothing_and_says_so(client, event, config):
    token = await client.access("juez1", "pass-juez1")
    path = "/api/equipos/%d/registros/" % event["equipos"]["a"]
    for body, field in (({"registros": [{"tiempo": 1000}]}, "registros.0.id_registro"),
                        ({"registros": [{"id_registro": str(uuid.uuid4()), "tiempo": -1}]},
                         "registros.0.tiempo"),
                        ({"registros": []}, "registros")):
        code, answer = await client.post(path, body, token=token)
        assert code == 400 and field in answer["errors"], answer
    code, answer = await client.post("/api/equipos/999999/registros/",
                                     {"registros": [{"id_registro": str(uuid.uuid4()),
                                                     "tiempo": 1}]}, token=token)
    assert code == 404
    # The same id again with another tiempo: refused without the words of "sent elsewhere".
    rid = str(uuid.uuid4())
    code, _ = await client.post(path, {"registros": [{"id_registro": rid, "tiempo": 5}]},
                                token=token)
    assert code == 201
    code, answer = await client.post(path, {"registros": [{"id_registro": rid, "tiempo": 6}]},
                                     token=token)
    assert code == 400 and "ya tiene" not in answer["detail"]
    assert convertir_error_amigable("Error: ApiException: %s (Status: 400)" % answer["detail"]
                                    ) == "Error: " + answer["detail"]
    with sqlite3.connect(config["database"]["path"]) as conn:
        assert conn.execute("SELECT tiempo, protocolo FROM registro_tiempo").fetchall() == [
            (5, "movil5k")]


@pytest.mark.gen_test
async def test_a_logout_outlives_a_restart(client, event, config):
    phone = MovilApp(client.base_url)
    await phone.login("juez1", "pass-juez1")
    refresh = phone.refresh
    await phone.logout()
    assert phone.requests[-1] == ("POST", "/api/logout/", 200)
    # Another session of the same judge goes on; its logout with the first session's refresh
    # token (already revoked) still ends its own access token. Another user's refresh: 403.
    again = await client.login("juez1", "pass-juez1")
    code, _ = await client.post("/api/logout/", {"refresh": refresh}, token=again["access"])
    assert code == 200 and (await client.get("/api/me/", token=again["access"]))[0] == 401
    other = await client.login("juez2", "pass-juez2")
    mine = await client.login("juez1", "pass-juez1")
    code, answer = await client.post("/api/logout/", {"refresh": other["refresh"]},
                                     token=mine["access"])
    assert code == 403 and answer["code"] == "not_your_token"
    assert (await client.get("/api/me/", token=mine["access"]))[0] == 200
    # What a restarted server loads (server5k.make_app): those tokens stay refused.
    with models.db.connection_context():
        revoked = identity.revoked_tokens()
    assert len(revoked) == 3
    restarted = TokenService(SECRET, 300, 86400)
    restarted.revoke(revoked)
    with pytest.raises(ApiError) as refused:
        restarted.decode(refresh, "refresh")
    assert refused.value.code == "token_revoked"
    assert restarted.decode((await client.login("juez1", "pass-juez1"))["refresh"], "refresh")


def test_version_4_records_are_the_guides_after_the_migration(tmp_path):
    path = tmp_path / "v4.db"
    models.open_database(path)
    with models.db.connection_context():
        comp = registration.create_competition("Vieja")
        juez = registration.create_judge("j", "clave-larga", comp.id)
        team = registration.create_team("E", 1, juez.id)
        submissions.store_submission(juez.user_id, team.id, registros([42], validated=True))
        models.db.execute_sql("UPDATE registro_tiempo SET protocolo = NULL")
        models.SchemaVersion.update(version=4).execute()
    models.db.close()
    models.open_database(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT protocolo, revision FROM registro_tiempo").fetchall() == [
            ("guia", None)]
        assert (conn.execute("SELECT version FROM schema_version").fetchone()[0]
                == models.SCHEMA_VERSION)


@pytest.mark.gen_test
async def test_a_judges_poll_never_waits_behind_its_addresss_anonymous_turns(client, app, event):
    """The venue's Wi-Fi puts every phone and spectator behind one address: Movil5K's poll
    (with its token) is a judge's request, an anonymous read of the same URL takes its turn."""
    from handlers.limits import Pacer
    app.settings["server5k_limits"].pacer = Pacer(1, max_wait=0.2)  # one a minute, 3 s burst
    path = "/api/competencias/%d/" % event["competencia"]
    token = await client.access("juez1", "pass-juez1")
    for _ in range(5):
        code, _ = await client.get(path, token=token)
        assert code == 200
    codes = [(await client.get(path))[0] for _ in range(3)]
    assert codes[0] == 200 and codes[-1] == 429, codes
    assert (await client.get(path, token=token))[0] == 200
    assert (await client.get(path, token="no-es-un-token"))[0] == 429  # a bad token is no token


@pytest.fixture
def short_access(config):
    """Access tokens of 1 s (the app's are 300 s: the same story, sooner)."""
    config["auth"]["access_token_lifetime_s"] = 1
    return config


@pytest.fixture
def short_session(short_access):
    """Access tokens of 1 s and refresh tokens of 3 s."""
    short_access["auth"]["refresh_token_lifetime_s"] = 3
    return short_access


async def until_expired(*tokens):
    """Wait until every one of ``tokens`` is past its ``exp``."""
    exp = max(jwt.decode(t, options={"verify_signature": False})["exp"] for t in tokens)
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)
    assert time.time() > exp


def heard_start(board):
    return {j["id"]: j["inicio_notificado_en"] for j in board["jueces"]}


@pytest.mark.gen_test(timeout=30)
async def test_an_expired_access_token_still_says_whose_poll_it_is(short_access, client, app,
                                                                   event):
    """Movil5K polls the public competition with the access token of its login; the 200s never
    tell it the token expired (it refreshes only after a 401), so by the start it has. Such a
    poll is still the judge's: the judges board marks it, and it never waits in the anonymous
    queue. A token that no longer holds for any other reason (a new password, a logout, a bad
    signature) is no token; and an expired one authorizes nothing."""
    from handlers.limits import Pacer
    assert app.settings["server5k_tokens"].lifetimes["access"] == 1  # (read after the fixture)
    cid, jueces = event["competencia"], event["jueces"]
    path = "/api/competencias/%d/" % cid
    phone = MovilApp(client.base_url)
    await phone.login("juez1", "pass-juez1")
    revoked = MovilApp(client.base_url)  # juez2's phone: its password is changed below
    await revoked.login("juez2", "pass-juez2")
    gone = MovilApp(client.base_url)  # juez1's other phone, logged out
    await gone.login("juez1", "pass-juez1")
    await gone.logout()
    assert gone.requests[-1] == ("POST", "/api/logout/", 200)
    with models.db.connection_context():
        identity.set_password("juez2", "otra-clave-larga")
    await client.race_action(cid, await client.organizer(), "iniciar")
    await until_expired(phone.access, revoked.access, gone.access)
    code, answer = await client.get("/api/me/", token=phone.access)
    assert code == 401 and answer["code"] == "token_expired"  # it authorizes nothing

    app.settings["server5k_limits"].pacer = Pacer(1, max_wait=0.2)  # one a minute, 3 s burst
    # juez2's expired token of an older generation is anonymous: it takes the address's turn
    # and the board does not mark juez2.
    assert (await client.get(path, token=revoked.access))[0] == 200
    for _ in range(5):  # the expired token of the current generation: never queued
        code, answer = await client.get(path, token=phone.access)
        assert code == 200 and answer["is_running"] is True
    anonymous = [(await client.get(path))[0] for _ in range(2)]
    assert anonymous[-1] == 429, anonymous
    assert (await client.get(path, token=phone.access))[0] == 200
    for token in (revoked.access, gone.access, phone.access[:-4] + "AAAA"):
        assert (await client.get(path, token=token))[0] == 429
    app.settings["server5k_limits"].pacer = Pacer(0)
    code, board = await client.get("/api/competencias/%d/jueces/" % cid,
                                   token=await client.organizer())
    heard = heard_start(board)
    assert heard[jueces[0]] is not None and heard[jueces[1]] is None, heard
    # A restarted server still refuses the logged-out token once expired (make_app keeps the
    # revoked ones a refresh lifetime past their expiry).
    gone_jti = jwt.decode(gone.access, options={"verify_signature": False})["jti"]
    with models.db.connection_context():
        assert gone_jti not in identity.revoked_tokens()
        assert gone_jti in identity.revoked_tokens(86400)


@pytest.mark.gen_test(timeout=30)
async def test_an_expired_access_token_is_refreshed_and_a_lapsed_session_says_so(
        short_session, client, app, event):
    """As the app meets them: its access token expires (401 "El token ha expirado.", with
    "token" in it) and it refreshes with the login's refresh token and repeats the request;
    once the refresh token has expired too, the send fails with "Tu sesión ha expirado", nothing
    stored, and a new login sends it."""
    assert app.settings["server5k_tokens"].lifetimes == {"access": 1, "refresh": 3}
    team = event["equipos"]["a"]
    phone = MovilApp(client.base_url)
    await phone.login("juez1", "pass-juez1")
    await until_expired(phone.access)
    assert [e["id"] for e in await phone.equipos()] == [team, event["equipos"]["b"]]
    assert phone.requests[-3:] == [("GET", "/api/equipos/", 401),
                                   ("POST", "/api/token/refresh/", 200),
                                   ("GET", "/api/equipos/", 200)]
    await until_expired(phone.access, phone.refresh)
    tiempos = set_de(range(1_200_000, 1_215_000, 1_000))
    assert await phone.enviar(team, tiempos) == ("error", "Tu sesión ha expirado.")
    assert phone.requests[-2:] == [("POST", "/api/equipos/%d/registros/" % team, 401),
                                   ("POST", "/api/token/refresh/", 401)]
    with models.db.connection_context():
        assert models.RegistroTiempo.select().count() == 0
    await phone.login("juez1", "pass-juez1")
    assert await phone.enviar(team, tiempos) == ("exito", 15)


@pytest.mark.gen_test
async def test_a_second_set_waits_for_review_only_once_the_team_is_complete(client, event):
    """A team is complete when it holds Movil5K's full set: 15 records standing on it now,
    from either app or typed in or moved in by the organizer, absent runners included, voided
    and pending ones not. Before that, a set counts at once; after, a different set waits."""
    cid, eq = event["competencia"], event["equipos"]
    org = await client.organizer()
    await client.race_action(cid, org, "iniciar")
    phone = MovilApp(client.base_url)
    await phone.login("juez1", "pass-juez1")
    guide = await client.access("juez1", "pass-juez1")  # the same judge on the guide's app

    async def waiting(equipo_id):
        code, listed = await client.get("/api/competencias/%d/registros/?equipo_id=%d"
                                        % (cid, equipo_id), token=org)
        return sum(1 for r in listed["registros"] if r["pendiente"])

    # Team A: three records from the guide's app; Movil5K's 15 then count at once.
    code, sent = await client.post("/api/enviar_tiempos/", {
        "equipo_id": eq["a"], "registros": registros(3, start_ms=1_100_000, ids=True)},
        token=guide)
    assert code == 201
    assert await phone.enviar(eq["a"], set_de(range(1_150_000, 1_165_000, 1_000))) == (
        "exito", 15)
    assert phone.last_answer["pendientes_revision"] == 0 and await waiting(eq["a"]) == 0
    # Team B: a paper time the organizer typed in and a record it moved in from team A; the
    # phone's 15 (two absent runners) count, and make the team complete.
    code, _ = await client.post("/api/competencias/%d/registros/" % cid, {
        "equipo_id": eq["b"], "tiempo": 1_300_000, "motivo": "planilla"}, token=org)
    assert code == 201
    code, _, _ = await client.request("PATCH", "/api/registros/%s/" % sent["created"][0],
                                      {"equipo_id": eq["b"], "motivo": "era del B"}, org)
    assert code == 200
    set_b = set_de([0, 0] + list(range(1_250_000, 1_263_000, 1_000)))
    assert await phone.enviar(eq["b"], set_b) == ("exito", 15)
    assert phone.last_answer["pendientes_revision"] == 0
    assert await phone.enviar(eq["b"], set_b) == ("exito", 15)  # a repeat: the same answer
    assert phone.last_answer["pendientes_revision"] == 0 and await waiting(eq["b"]) == 0
    # A second phone's different set for the complete team: stored, waiting for review.
    second = MovilApp(client.base_url)
    await second.login("juez1", "pass-juez1")
    assert await second.enviar(eq["b"], set_de(range(1_240_000, 1_255_000, 1_000))) == (
        "exito", 15)
    assert second.last_answer["pendientes_revision"] == 15 and await waiting(eq["b"]) == 15
    # The organizer voids four of the phone's records: 13 stand (the 15 waiting do not), so
    # the team is no longer complete and a third set counts at once.
    for record in set_b[:4]:
        code, _ = await client.post("/api/registros/%s/anular/" % record["id"],
                                    {"motivo": "repetidos"}, token=org)
        assert code == 200
    assert await phone.enviar(eq["b"], set_de(range(1_230_000, 1_245_000, 1_000))) == (
        "exito", 15)
    assert phone.last_answer["pendientes_revision"] == 0 and await waiting(eq["b"]) == 15


@pytest.mark.gen_test
async def test_before_the_start_a_set_is_kept_and_flagged(client, event):
    phone = MovilApp(client.base_url)
    await phone.login("juez1", "pass-juez1")
    early = set_de(range(100_000, 115_000, 1_000))
    assert await phone.enviar(event["equipos"]["a"], early) == ("exito", 15)
    code, listed = await client.get("/api/competencias/%d/registros/" % event["competencia"],
                                    token=await client.organizer())
    assert len(listed["registros"]) == 15
    assert all(r["antes_de_salida"] and r["estado_carrera"] == "programada"
               and r["protocolo"] == "movil5k" for r in listed["registros"])


@pytest.mark.gen_test
async def test_every_refusal_a_set_can_meet_reads_right_on_the_phone(client, app, event):
    """What timer_screen._enviarDatos tells the judge for each refusal: never "another device
    sent it" (which marks the team sent: its times would never be sent again), "the race is
    over" or "already sent"; also when a team's or a competition's id, or a wait in seconds,
    holds the digits the app matches (409, 401, 404, 500, 403)."""
    from handlers.limits import RateLimiter
    eq, org = event["equipos"], await client.organizer()
    with models.db.connection_context():  # teams whose ids hold the app's status codes
        for team_id, dorsal in ((1409, 1409), (14010, 14010), (45003, 45003)):
            models.Equipo.create(id=team_id, nombre="Equipo %d" % dorsal, dorsal=dorsal,
                                 juez=event["jueces"][1], competencia=event["competencia"])
    phone = MovilApp(client.base_url)
    await phone.login("juez1", "pass-juez1")
    wrong = ("Los registros ya fueron enviados anteriormente.", "La competencia ha finalizado.",
             "Tu sesión ha expirado.", "El servidor está experimentando problemas.")
    not_assigned = ("error", "Error: Este equipo no está asignado a este juez.")
    outcomes = {
        "another judge's team": await phone.enviar(eq["c"], set_de([61_000])),
        "another judge's team 1409": await phone.enviar(1409, set_de([61_000])),
        "another judge's team 14010": await phone.enviar(14010, set_de([61_000])),
        "another judge's team 45003": await phone.enviar(45003, set_de([61_000])),
        "unknown team": await phone.enviar(999_999, set_de([61_000])),
        "unknown team 4090": await phone.enviar(4090, set_de([61_000])),
        "unknown team 5001": await phone.enviar(5001, set_de([61_000])),
    }
    rid = str(uuid.uuid4())
    assert (await phone.enviar(eq["a"], [{"id": rid, "tiempo": 5}]))[0] == "exito"
    outcomes["id with another tiempo"] = await phone.enviar(eq["a"], [{"id": rid, "tiempo": 6}])
    # Too many sets: the wait is 409 s (a judge's bucket that slow), the text does not say it.
    limits = app.settings["server5k_limits"]
    limits.submissions = RateLimiter(60 / 408.5, clock=lambda: 0.0, burst=1)  # (time stands)
    for expected in (400, 429):  # its one set (empty: refused), then the wait
        code, answer, response = await client.request(
            "POST", "/api/equipos/%d/registros/" % eq["a"], {"registros": []}, phone.access)
        assert code == expected
    assert response.headers["Retry-After"] == "409"
    outcomes["too many sets"] = await phone.enviar(eq["a"], set_de([63_000]))
    limits.submissions = RateLimiter(0)
    code, _, _ = await client.request("PATCH", "/api/jueces/%d/" % event["jueces"][0],
                                      {"activo": False}, org)
    assert code == 200
    outcomes["judge deactivated"] = await phone.enviar(eq["a"], set_de([62_000]))
    unknown = ("error", "El servidor no pudo procesar la solicitud.")  # (its status: 404)
    assert outcomes == {
        "another judge's team": not_assigned, "another judge's team 1409": not_assigned,
        "another judge's team 14010": not_assigned, "another judge's team 45003": not_assigned,
        "unknown team": unknown, "unknown team 4090": unknown, "unknown team 5001": unknown,
        "id with another tiempo": ("error", "Error: Un id de este envío está guardado con "
                                            "otros datos; avise al organizador."),
        "too many sets": ("error", "Error: Demasiadas peticiones seguidas; espere un momento "
                                   "y reintente."),
        "judge deactivated": ("error", "Tu sesión ha expirado."),
    }
    assert phone.requests.count(("POST", "/api/equipos/%d/registros/" % eq["a"], 429)) == 3
    assert not any(text in wrong for _, text in outcomes.values()
                   if text != "Tu sesión ha expirado." or _ != "error")
    # The deactivated judge's phone did not try a refresh (its session is over, not expired).
    assert ("POST", "/api/token/refresh/", 200) not in phone.requests
    # Its poll of a competition that is not there (1409): a 404 that says nothing else.
    code, answer = await client.get("/api/competencias/1409/")
    assert code == 404 and not re.search("[0-9]", answer["detail"]), answer


def test_no_text_to_movil5k_holds_what_the_app_matches():
    """handlers/movil5k.app_error, the words of every refusal the app's handlers answer: a
    409 is a 400; a number holding 401, 403, 404, 409 or 500 never reaches the app, nor the
    phrases it takes for "sent from another device"; other texts are left as they are."""
    cases = [
        (ApiError(409, "id_registro_conflict", "El id_registro 1409 ya existe con otros datos."),
         400, "Un id de este envío está guardado con otros datos; avise al organizador."),
        (ApiError(429, "rate_limited", "Demasiados intentos; espere 403 s."), 429,
         "Demasiadas peticiones seguidas; espere un momento y reintente."),
        (ApiError(400, "something_new", "El dorsal 4010 y el 5000 no valen; el 12 sí."), 400,
         "El dorsal y el no valen; el 12 sí."),
        (ApiError(403, "something_new", "El equipo ya tiene dueño."), 403,
         "El servidor no aceptó la petición (something_new)."),
        (ApiError(401, "token_expired", "El token ha expirado."), 401, "El token ha expirado."),
    ]
    for error, status, text in cases:
        answer = movil5k.app_error(error)
        assert (answer.status_code, answer.code, answer.detail) == (status, error.code, text)
    unchanged = ApiError(401, "token_expired", "El token ha expirado.")
    assert movil5k.app_error(unchanged) is unchanged
    for code, text in movil5k.APP_TEXTS.items():
        assert not re.search("[0-9]", text) and "ya tiene" not in text, code


@pytest.mark.gen_test
async def test_three_absent_runners_and_a_tie_are_five_records(client, event):
    """aplicarPenalizacion gives each absent runner its own id and tiempo 0: different ids are
    different records, whatever their times."""
    phone = MovilApp(client.base_url)
    await phone.login("juez1", "pass-juez1")
    team = event["equipos"]["a"]
    assert await phone.enviar(team, set_de([0, 0, 0, 1_200_000, 1_200_000])) == ("exito", 5)
    assert len(phone.last_answer["created"]) == 5
    code, results = await client.get("/api/competencias/%d/resultados/" % event["competencia"])
    row = next(r for r in results["clasificacion"] if r["equipo_id"] == team)
    assert row["ausentes"] == 3 and row["registros_contados"] == 2
