"""Tokens, tickets and passwords never appear in any log line: a whole race-day flow against the
real server with debug logging on (failed and successful logins, refresh, sockets with ?token= and
?ticket=, refused handshakes, submissions, the CLI's race commands), then every line is searched."""

import asyncio
import json
import signal

from helpers import fetch, handshake_status, judge_socket, login, next_message


def test_no_secret_in_any_log_line(spawn, event, config):
    server = spawn(config["database"]["path"], verbose=True).start()
    secrets_seen = {"pass-juez1", "pass-juez2", "org-pass", "wrong-password-123"}
    outputs = []

    async def flow():
        base = server.base_url
        for _ in range(3):  # a judge mistyping, then a guess from an attacker
            code, _, _ = await fetch("POST", base + "/api/token/",
                                     {"username": "juez1", "password": "wrong-password-123"})
            assert code == 401
        tokens = await login(base, "juez1", "pass-juez1")
        tokens2 = await login(base, "juez2", "pass-juez2")
        code, refreshed, _ = await fetch("POST", base + "/api/token/refresh/",
                                         {"refresh": tokens["refresh"]})
        assert code == 200
        secrets_seen.update([tokens["access"], tokens["refresh"], tokens2["access"],
                             tokens2["refresh"], refreshed["access"]])
        ws1, _ = await judge_socket("%s/ws/juez/%d/?token=%s" % (
            server.ws_base, event["jueces"][0], tokens["access"]))
        code, ticket, _ = await fetch("POST", base + "/api/ws-ticket/", token=tokens2["access"])
        secrets_seen.add(ticket["ticket"])
        ws2, _ = await judge_socket("%s/ws/juez/%d/?ticket=%s" % (
            server.ws_base, event["jueces"][1], ticket["ticket"]))
        # Refused handshakes are logged too: a reused ticket, a token on the wrong judge, a bad one.
        for path in ("/ws/juez/%d/?ticket=%s" % (event["jueces"][1], ticket["ticket"]),
                     "/ws/juez/%d/?token=%s" % (event["jueces"][1], tokens["access"]),
                     "/ws/juez/%d/?foo=1&token=%s&x=2" % (event["jueces"][0],
                                                          tokens["refresh"])):
            await handshake_status(server.ws_base + path)
        code, _, _ = await fetch("GET", base + "/api/me/", token=tokens["access"] + "x")
        assert code == 401
        return ws1, ws2, tokens

    async def after_start(ws1, ws2, tokens):
        for ws in (ws1, ws2):
            assert (await next_message(ws))["type"] == "carrera.iniciada"
            ws.close()
        code, _, _ = await fetch("POST", server.base_url + "/api/enviar_tiempos/", {
            "equipo_id": event["equipos"]["a"],
            "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1200000}]},
            token=tokens["access"])
        assert code == 201

    async def main():
        ws1, ws2, tokens = await flow()
        cid = str(event["competencia"])
        org_env = {"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"}
        for args, env in ((("race", "status", cid), org_env),
                          (("race", "start", cid, "--user", "org", "--password", "org-pass"), {}),
                          (("race", "status", cid, "--json"), org_env),
                          (("race", "stop", cid, "--user", "org", "--password", "wrong-password-123"),
                           {})):
            result = await asyncio.to_thread(server.cli, *args, env=env, check=False)
            outputs.append(result.stdout + result.stderr)
        assert "login as org failed" in outputs[-1]
        await after_start(ws1, ws2, tokens)

    asyncio.run(main())
    server.signal(signal.SIGTERM)  # and its shutdown lines; also flushes everything
    assert server.wait(30) == 0

    log = server.log()
    # The log really covers the flow (so the search below means something).
    for expected in ("401 POST /api/token/", "101 GET /ws/juez/", "token=[redacted]",
                     "ticket=[redacted]", "201 POST /api/enviar_tiempos/", "DEBUG",
                     "POST /api/competencias/%s/iniciar/" % event["competencia"]):
        assert expected in log, expected
    for text in [log] + outputs:
        for secret in secrets_seen:
            assert secret not in text, "a secret leaked into the logs or CLI output"
    # Not even a recognisable piece of a JWT (its signature is the secret part).
    for token in [s for s in secrets_seen if s.count(".") == 2]:
        assert token.rsplit(".", 1)[1] not in log
    assert json.dumps(outputs)  # keep the CLI output for the failure message
