"""A password changed closes the judge's open sockets at once, whoever changed it: ``judge passwd``
goes through the running server's API (which closes them), and a change written to the database
by another process is noticed within about a second, not at the next session sweep: the server
reads a cheap mark of the accounts every 0.5 s (handlers/sessions.py SocketGuard.watch)."""

import asyncio
import time

import pytest

import models
import identity
from helpers import close_code, judge_socket, login, wait_for_async


@pytest.mark.gen_test(timeout=30)
async def test_the_watch_sweeps_as_soon_as_the_accounts_mark_moves(client, event, app):
    j1 = event["jueces"][0]
    ws, _ = await client.judge_socket(j1, await client.access("juez1", "pass-juez1"))
    other, _ = await client.judge_socket(event["jueces"][1],
                                         await client.access("juez2", "pass-juez2"))
    guard = app.settings["server5k_guard"]
    assert await guard.watch() == 0  # the first look only learns the mark
    assert await guard.watch() == 0  # nothing moved
    with models.db.connection_context():  # as `judge passwd` does, from its own process
        identity.set_password("juez1", "otra-clave-1")
    assert await guard.watch() == 1
    assert await close_code(ws, 10) == 1008
    await wait_for_async(lambda: app.settings["server5k_hub"].sockets_of(j1) == 0)
    assert await guard.watch() == 0  # juez2's socket is still good
    with models.db.connection_context():  # a judge deactivated by another process
        models.Juez.update(is_active=False).where(
            models.Juez.id == event["jueces"][1]).execute()
    assert await guard.watch() == 1
    assert await close_code(other, 10) == 1008


def test_judge_passwd_from_the_command_line_closes_the_sockets_within_a_second(spawn, tmp_path):
    srv = spawn(tmp_path / "event.db", server={"ws_ping_interval_s": 60})  # no sweep meanwhile
    srv.cli("competition", "add", "5K")
    srv.cli("organizer", "add", "ana", "--password", "clave-de-ana")
    srv.cli("judge", "add", "maria", "--competition", "1", "--password", "clave-de-maria")
    srv.cli("judge", "add", "jose", "--competition", "1", "--password", "clave-de-jose")
    srv.start()

    async def story():
        sockets = {}
        for name in ("maria", "jose"):
            access = (await login(srv.base_url, name, "clave-de-" + name))["access"]
            juez_id = 1 if name == "maria" else 2
            sockets[name], _ = await judge_socket(
                "%s/ws/juez/%d/?token=%s" % (srv.ws_base, juez_id, access))
        changed = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: srv.cli("judge", "passwd", "maria", "--password", "clave-nueva-1",
                                env={"SERVER5K_USER": "ana", "SERVER5K_PASSWORD": "clave-de-ana"}))
        assert await close_code(sockets["maria"], 5) == 1008
        took = time.monotonic() - changed
        sockets["jose"].write_message('{"type": "ping", "data": {}}')  # untouched
        assert '"pong"' in await asyncio.wait_for(sockets["jose"].read_message(), 5)
        sockets["jose"].close()
        return took

    took = asyncio.run(story())
    # The CLI's own run (a Python start-up and a password hash) is most of it; the 60 s sweep
    # never came into it.
    assert took < 5, took
