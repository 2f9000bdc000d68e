"""Spectators' sockets have an inbound budget (handlers/spectators.py): a message over 1 KiB closes
the socket with 1009 unread, a flood of small ones with 4003; a client's occasional small ping
never comes near it, and the judges' start is not held up meanwhile."""

import json

import pytest

from handlers import spectators
from helpers import close_code, next_message, nothing_within


@pytest.mark.gen_test(timeout=30)
async def test_a_large_message_closes_a_spectator_socket_with_1009(client, event):
    ws, _ = await client.spectator(event["competencia"])
    ws.write_message("x" * (60 * 1024))  # the hostile probe's 60 KiB frames
    assert await close_code(ws) == 1009


@pytest.mark.gen_test(timeout=30)
async def test_an_address_that_keeps_flooding_is_refused_spectator_sockets_a_while(
        client, event, app):
    for _ in range(spectators.FLOOD_BURST):
        ws, _ = await client.spectator(event["competencia"])
        ws.write_message("x" * 2048)
        assert await close_code(ws) == 1009
    status = await client.handshake_status("/ws/resultados/%d/" % event["competencia"])
    assert status == 429
    # Another address is not affected; the refusal ends with the address's budget.
    registry = app.settings["server5k_spectators"]
    assert registry.refusal("192.0.2.7") is None
    assert registry.refusal("127.0.0.1").headers["Retry-After"] == "10"


@pytest.mark.gen_test(timeout=30)
async def test_a_flood_of_small_messages_closes_it_with_4003(client, event, app):
    ws, _ = await client.spectator(event["competencia"])
    quiet, _ = await client.spectator(event["competencia"])
    for _ in range(200):  # 200 x 500 characters at once: far past the 8 KiB burst
        ws.write_message(json.dumps({"type": "ping", "data": {"pad": "x" * 480}}))
    assert await close_code(ws) == spectators.CLOSE_TOO_CHATTY == 4003
    # A client's own small pings, now and then, stay well within the budget.
    for _ in range(20):
        quiet.write_message('{"type": "ping", "data": {}}')
    assert await nothing_within(quiet, 0.5)
    # And the flood held up no one: a judge's socket hears the start at once.
    org = await client.access("org", "org-pass")
    judge, _ = await client.judge_socket(event["jueces"][0],
                                         await client.access("juez1", "pass-juez1"))
    code, _ = await client.post("/api/competencias/%d/iniciar/" % event["competencia"],
                                token=org)
    assert code == 200
    assert (await next_message(judge))["type"] == "carrera.iniciada"
    assert (await next_message(quiet))["type"] == "resultados"  # still served
    for sock in (quiet, judge):
        sock.close()
