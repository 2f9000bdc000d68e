"""Venue Wi-Fi, proven (issue 15): the short version of ``bench/venue.py`` in real namespaces.

Every acknowledged record is stored exactly once and every judge whose link came back hears
the start, through 10 % loss, a blackhole across the start, the link down at the start, a
judge on a 1 kbit/s link and a reconnect storm. Needs root, ``ip``, ``nft`` and ``tc``; skips,
saying which is missing, only where the namespaces cannot be built.

The first tests need none of that: they check the two things the harness added to the
rehearsal client (a judge's own source address; staying connected after the start).
"""

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rehearsal
from helpers import fetch, wait_for_async

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import netlab  # noqa: E402

# The CI subset, in two runs side by side (a run's namespaces are its own, so they cannot
# collide): the slow judge mostly waits on its 1 kbit/s link while the others run.
SEQUENTIAL = ["loss10", "blackhole30", "linkdown5", "storm500"]
ALONGSIDE = ["slowjudge"]


# ------------------------------------------------------------------------------------------------
# The rehearsal client's additions (no namespaces needed)
# ------------------------------------------------------------------------------------------------
@pytest.mark.gen_test(timeout=60)
async def test_a_persistent_judge_connects_from_its_address_and_reconnects_after_the_start(
        app, http_server, base_url):
    hub = app.settings["server5k_hub"]
    http = rehearsal.make_http()
    judge = rehearsal.VirtualJudge(base_url, "juez1", "pass-juez1", http=http,
                                   local_addr="127.0.0.2", persistent=True)
    plain = rehearsal.VirtualJudge(base_url, "juez2", "pass-juez2", http=http)
    try:
        for j in (judge, plain):
            await j.login()
            await j.learn()
            await j.connect_with_retry()
        sockets = {s.juez_id: s for group in hub._by_juez.values() for s in group}
        assert sockets[judge.juez_id].request.remote_ip == "127.0.0.2"
        assert sockets[plain.juez_id].request.remote_ip == "127.0.0.1"
        org = (await fetch("POST", base_url + "/api/token/",
                           {"username": "org", "password": "org-pass"}))[1]["access"]
        code, answer, _ = await fetch("POST", base_url + "/api/competencias/%d/iniciar/"
                                      % judge.competencia_id, token=org)
        assert code == 200, answer
        await wait_for_async(lambda: judge.started.is_set() and plain.started.is_set(),
                             what="both judges told of the start")
        # The server drops every socket (a restart, a dead Wi-Fi): only the persistent judge
        # comes back once the race is running.
        first = judge.socket
        hub.close_all(1001, "test")
        await wait_for_async(lambda: judge.socket is not first and not judge.socket.closed,
                             what="the persistent judge back")
        await asyncio.sleep(1.0)
        assert hub.sockets_of(judge.juez_id) == 1
        assert hub.sockets_of(plain.juez_id) == 0
        assert judge.messages["conexion.establecida"] == 2
    finally:
        judge.close()
        plain.close()
        http.close()


def test_open_socket_without_local_addr_still_works_as_before():
    async def go():
        # Nothing listens on port 9 of 127.0.0.3: refused, from the address we asked for or not.
        for local in (None, "127.0.0.4"):
            with pytest.raises(OSError):
                await rehearsal.open_socket("ws://127.0.0.3:9/ws/", lambda text: None,
                                            timeout=2, local_addr=local)
    asyncio.run(go())


# ------------------------------------------------------------------------------------------------
# The venue scenarios, short
# ------------------------------------------------------------------------------------------------
REASON = None if sys.platform != "linux" else netlab.unavailable()
needs_lab = pytest.mark.skipif(sys.platform != "linux" or REASON is not None,
                               reason="venue network lab: %s" % (REASON or "Linux only"))


@pytest.fixture(scope="module")
def venue(tmp_path_factory):
    """Run the short scenarios once (two venue.py processes side by side): {name: figures}."""
    out = tmp_path_factory.mktemp("venue")
    runs = []
    for name, scenarios in (("seq", SEQUENTIAL), ("alongside", ALONGSIDE)):
        path = out / ("%s.json" % name)
        log = open(out / ("%s.log" % name), "w")
        runs.append((path, log, subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "venue.py"), "--short", "--scenario",
             ",".join(scenarios), "--json", str(path)],
            cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT)))
    results = {}
    for path, log, process in runs:
        try:
            process.wait(400)
        except subprocess.TimeoutExpired:
            process.terminate()  # venue.py tears its lab down on SIGTERM
            process.wait(60)
        log.close()
        assert path.exists(), Path(log.name).read_text()[-4000:]
        for result in json.loads(path.read_text())["results"]:
            result["_log"] = log.name
            results[result["scenario"]] = result
    return results


@needs_lab
@pytest.mark.parametrize("scenario", SEQUENTIAL + ALONGSIDE)
def test_no_acknowledged_record_lost_or_doubled_and_every_judge_hears_the_start(venue, scenario):
    result = venue.get(scenario)
    assert result is not None, "scenario did not run"
    assert "error" not in result, result["error"] + "\n" + Path(result["_log"]).read_text()[-4000:]
    records = result["records"]
    assert records["acknowledged"] == records["sent"] > 0, records
    assert records["lost"] == 0, records
    assert records["duplicated"] == 0, records
    assert result["told_of_start"] == result["judges"], result["not_told"]
    assert result["server_exit"] == 0  # and it stopped cleanly after all that


@needs_lab
def test_the_labs_are_gone(venue):
    assert venue  # the runs are over
    leftovers = [name for name in netlab.lab_namespaces() if not netlab._owner_alive(name)]
    assert leftovers == []
