"""Tokens out of URLs: ``POST /api/ws-ticket/`` gives a single-use, 30-second ticket that the judge
socket accepts as ``?ticket=``; ``?token=`` keeps working; logs never show either value."""

import logging

import pytest

from handlers.tokens import WsTickets
from helpers import next_message


async def ticket_for(client, token):
    code, payload = await client.post("/api/ws-ticket/", token=token)
    assert code == 200, payload
    assert payload["expires_in"] == 30 and len(payload["ticket"]) >= 32
    return payload["ticket"]


@pytest.mark.gen_test
async def test_ticket_opens_the_judge_socket_once_and_the_start_arrives(client, event, caplog):
    caplog.set_level(logging.DEBUG)
    juez1 = await client.login("juez1", "pass-juez1")
    org = await client.access("org", "org-pass")
    ticket = await ticket_for(client, juez1["access"])
    ws, hello = await client.judge_socket(event["jueces"][0], ticket=ticket)
    assert hello["data"]["juez_id"] == event["jueces"][0]
    code, _ = await client.post("/api/competencias/%d/iniciar/" % event["competencia"], token=org)
    assert code == 200
    assert (await next_message(ws))["type"] == "carrera.iniciada"
    # Single use: the same ticket again is refused at the handshake.
    assert await client.handshake_status(
        "/ws/juez/%d/?ticket=%s" % (event["jueces"][0], ticket)) == 401
    # ?token= keeps working for apps written against the guide.
    ws2, _ = await client.judge_socket(event["jueces"][0], juez1["access"])
    assert (await next_message(ws2))["type"] == "carrera.iniciada"
    ws.close()
    ws2.close()
    # Neither the ticket nor the tokens appear in any log line (access log included).
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/ws/juez/" in text and "ticket=[redacted]" in text and "token=[redacted]" in text
    for secret in (ticket, juez1["access"], juez1["refresh"], org, "pass-juez1", "org-pass"):
        assert secret not in text


@pytest.mark.gen_test
async def test_ticket_is_bound_to_its_judge_and_spent_by_a_wrong_try(client, event):
    ticket = await ticket_for(client, await client.access("juez1", "pass-juez1"))
    assert await client.handshake_status(
        "/ws/juez/%d/?ticket=%s" % (event["jueces"][1], ticket)) == 403
    assert await client.handshake_status(
        "/ws/juez/%d/?ticket=%s" % (event["jueces"][0], ticket)) == 401


@pytest.mark.gen_test
async def test_expired_and_made_up_tickets_are_refused(client, event, app):
    now = [1000.0]
    app.settings["server5k_tickets"] = WsTickets(clock=lambda: now[0])
    token = await client.access("juez1", "pass-juez1")
    old, fresh = await ticket_for(client, token), None
    now[0] += 29.9
    fresh = await ticket_for(client, token)
    now[0] += 0.2  # old is now 30.1 s old, fresh 0.2 s
    path = "/ws/juez/%d/?ticket=%%s" % event["jueces"][0]
    assert await client.handshake_status(path % old) == 401
    assert await client.handshake_status(path % "made-up-ticket") == 401
    assert await client.handshake_status("/ws/juez/%d/?ticket=" % event["jueces"][0]) == 401
    ws, _ = await client.judge_socket(event["jueces"][0], ticket=fresh)
    ws.close()


@pytest.mark.gen_test
async def test_ticket_endpoint_needs_an_active_judge_access_token(client, event):
    tokens = await client.login("juez1", "pass-juez1")
    assert (await client.post("/api/ws-ticket/"))[0] == 401
    assert (await client.post("/api/ws-ticket/", token=tokens["refresh"]))[0] == 401
    code, payload = await client.post("/api/ws-ticket/", token=await client.access("org", "org-pass"))
    assert (code, payload["code"]) == (403, "not_a_judge")
    assert (await client.get("/api/ws-ticket/", token=tokens["access"]))[0] == 405
