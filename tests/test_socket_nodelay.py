"""Judge sockets send small messages at once (TCP_NODELAY), so Nagle never holds a pong or a
start notice back until the phone acknowledges the previous message."""

import socket

import pytest


@pytest.mark.gen_test
async def test_judge_sockets_disable_nagle(app, client, event):
    token = await client.access("juez1", "pass-juez1")
    ws, _ = await client.judge_socket(event["jueces"][0], token)
    (server_side,) = app.settings["server5k_hub"]._by_juez[event["jueces"][0]]
    raw = server_side.ws_connection.stream.socket
    assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    ws.close()
