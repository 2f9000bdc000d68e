"""TLS built in: with server.tls_cert/tls_key the same process serves HTTPS and WSS, and the CLI
talks to it over HTTPS (pinned to that certificate). The certificate is made by the test."""

import asyncio
import json
import ssl

import tornado.httpclient
import tornado.websocket
from bench.proxy import self_signed  # (the certificate the nginx tests put in front, too)
from helpers import fetch, next_message


def test_https_wss_and_cli_on_one_tls_port(spawn, event, config, tmp_path):
    cert, key = self_signed(tmp_path)
    server = spawn(config["database"]["path"], server={"tls_cert": cert, "tls_key": key}).start()
    assert server.base_url.startswith("https://")
    trusted = ssl.create_default_context(cafile=cert)  # verifies the chain and 127.0.0.1

    async def phones():
        # A client that does not trust the certificate is refused: this really is TLS.
        try:
            await fetch("GET", server.base_url + "/api/openapi.json")
            raise AssertionError("an untrusted certificate was accepted")
        except (ConnectionError, ssl.SSLError):
            pass
        # Plain HTTP on the TLS port gets no API answer.
        try:
            code, _, _ = await fetch("GET", "http://127.0.0.1:%d/api/competencias/%d/" % (
                server.port, event["competencia"]))
            assert code != 200
        except ConnectionError:
            pass
        code, tokens, _ = await fetch("POST", server.base_url + "/api/token/",
                                      {"username": "juez1", "password": "pass-juez1"},
                                      ssl_options=trusted)
        assert code == 200, tokens
        code, ticket, _ = await fetch("POST", server.base_url + "/api/ws-ticket/",
                                      token=tokens["access"], ssl_options=trusted)
        assert code == 200, ticket
        ws = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(
            "%s/ws/juez/%d/?ticket=%s" % (server.ws_base, event["jueces"][0], ticket["ticket"]),
            ssl_options=trusted))
        assert (await next_message(ws))["type"] == "conexion.establecida"
        return ws, tokens

    async def organizer_and_race(ws, tokens):
        # The organizer's CLI over HTTPS, pinned to the server's certificate from the config.
        org = {"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"}
        status = await asyncio.to_thread(server.cli, "race", "status", str(event["competencia"]),
                                         env=org)
        assert status.returncode == 0, status.stderr
        assert "judges connected: 1 of 2" in status.stdout
        start = await asyncio.to_thread(server.cli, "race", "start", str(event["competencia"]),
                                        "--json", env=org)
        assert start.returncode == 0, start.stderr
        answer = json.loads(start.stdout)
        assert answer["notificados"] == 1
        event_msg = await next_message(ws)
        assert event_msg["type"] == "carrera.iniciada"
        assert event_msg["data"]["started_at"] == answer["competencia"]["started_at"]
        ws.close()
        code, result, _ = await fetch("POST", server.base_url + "/api/enviar_tiempos/", {
            "equipo_id": event["equipos"]["a"],
            "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1500000}]},
            token=tokens["access"], ssl_options=trusted)
        assert code == 201, result

    async def main():
        await organizer_and_race(*await phones())

    asyncio.run(main())
