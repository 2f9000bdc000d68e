"""Public reads are cacheable by any HTTP cache; nothing else is.

The results (JSON, CSV, one category), a team's public records and the public pages answer with
an ``ETag`` and ``Cache-Control: public, max-age=1, stale-while-revalidate=...``; the same
``If-None-Match`` gets ``304`` without the standings being computed again, also after they are
computed again unchanged; a change gives a new validator. The results' validator is weak (each
JSON answer has its own ``server_time``); a team's records and the pages have strong ones.
Organizer and judge answers, and every error, say ``no-store``."""

import re

import pytest

from handlers import standings as standings_module
from handlers.services import PUBLIC_CACHE_CONTROL
from helpers import registros


def public(response, weak=False):
    etag = response.headers.get("ETag")
    assert etag and etag.endswith('"'), etag
    assert etag.startswith('W/"' if weak else '"'), etag
    assert response.headers["Cache-Control"] == PUBLIC_CACHE_CONTROL
    assert "stale-while-revalidate=" in PUBLIC_CACHE_CONTROL
    return etag


async def get(client, path, **headers):
    return await client.request("GET", path, headers=headers or None)


@pytest.fixture
def computations(app, monkeypatch):
    """How many times the standings are computed (jobs handed to the standings' worker)."""
    count = [0]
    store = app.settings["server5k_store"]
    original = store.compute

    def counted(fn, *args):
        if fn is standings_module.compute:
            count[0] += 1
        return original(fn, *args)

    monkeypatch.setattr(store, "compute", counted)
    return count


@pytest.mark.gen_test
async def test_results_answer_304_without_computing_again(client, event, computations):
    cid, eq = event["competencia"], event["equipos"]
    base = "/api/competencias/%d/resultados/" % cid
    variants = [base, base + "?format=csv", base + "?categoria=Abierta"]
    etags = {}
    for path in variants:
        code, _, response = await get(client, path)
        assert code == 200
        etags[path] = public(response, weak=True)
    assert len(set(etags.values())) == 1  # one validator per standings, made with them
    computed = computations[0]
    assert computed >= 1

    for path in variants:
        code, body, response = await get(client, path, **{"If-None-Match": etags[path]})
        assert code == 304, body
        assert not response.body
        assert response.headers["ETag"] == etags[path]
        assert response.headers["Cache-Control"] == PUBLIC_CACHE_CONTROL
        # A list of validators, the strong form of ours (RFC 9110: If-None-Match compares
        # weakly) and * match too.
        code, _, _ = await get(client, path, **{"If-None-Match": '"x", ' + etags[path][2:]})
        assert code == 304
        code, _, _ = await get(client, path, **{"If-None-Match": '*'})
        assert code == 304
    code, _, _ = await get(client, base, **{"If-None-Match": '"something-else"'})
    assert code == 200
    assert computations[0] == computed, "a conditional request computed the standings again"

    # A submission changes the standings: a new validator, and the old one gets the new body.
    token = await client.access("juez1", "pass-juez1")
    code, body = await client.post("/api/enviar_tiempos/", {
        "equipo_id": eq["a"], "registros": registros([1_200_000])}, token=token)
    assert code == 201, body
    code, result, response = await get(client, base, **{"If-None-Match": etags[base]})
    assert code == 200
    assert public(response, weak=True) != etags[base]
    assert result["clasificacion"][0]["equipo_id"] == eq["a"]


@pytest.mark.gen_test
async def test_standings_computed_again_unchanged_keep_their_validators(app, client, event,
                                                                        computations):
    """The standings are computed again every Standings.max_age seconds (and after a change
    that moves nothing): the same data keeps every validator, so a polling page and a cache
    revalidating get 304, and the CSV keeps its bytes (actualizado_en is when the standings
    were first computed as they are)."""
    cid, eq = event["competencia"], event["equipos"]
    standings = app.settings["server5k_standings"]
    base = "/api/competencias/%d/resultados/" % cid
    paths = [base, base + "?format=csv", base + "?categoria=Abierta",
             "/api/competencias/%d/equipos/%d/" % (cid, eq["a"]),
             "/competencias/%d/equipos/%d/" % (cid, eq["a"])]
    first = {}
    for path in paths:
        code, _, response = await get(client, path)
        assert code == 200, path
        first[path] = response
    csv_before = first[paths[1]].body
    assert re.search(rb"[0-9-]{10}T[0-9:]{8}[+-][0-9]{2}:[0-9]{2}", csv_before)

    async def computed_again():
        # What max_age brings about (a computation without a change notice), made to happen
        # now: a real computation in the standings' worker, then the same requests.
        before = computations[0]
        fresh = await standings.refresh(cid)
        assert computations[0] == before + 1
        assert standings.current(cid) is fresh
        for path in paths:
            etag = first[path].headers["ETag"]
            code, body, response = await get(client, path, **{"If-None-Match": etag})
            assert code == 304, (path, body)
            assert response.headers["ETag"] == etag

    await computed_again()
    # Past max_age: the next request waits for a computation of its own, which says the same.
    standings.max_age = 0.0
    before = computations[0]
    code, _, response = await get(client, paths[1])
    assert code == 200 and computations[0] > before
    assert response.body == csv_before  # the same bytes: the same actualizado_en
    standings.max_age = standings_module.MAX_AGE_S
    await computed_again()

    # A new time changes them: the results and the team's records answer 200 again.
    token = await client.access("juez1", "pass-juez1")
    code, body = await client.post("/api/enviar_tiempos/", {
        "equipo_id": eq["a"], "registros": registros([1_250_000])}, token=token)
    assert code == 201, body
    for path in paths:  # (a category's answers too: one validator for all the standings)
        code, _, response = await get(client, path,
                                      **{"If-None-Match": first[path].headers["ETag"]})
        assert code == 200, path


@pytest.mark.gen_test
async def test_team_detail_and_public_pages_are_cacheable(client, event, computations):
    cid, eq = event["competencia"], event["equipos"]
    paths = ["/api/competencias/%d/equipos/%d/" % (cid, eq["a"]), "/",
             "/competencias/%d/" % cid, "/competencias/%d/equipos/%d/" % (cid, eq["a"])]
    etags = {}
    for path in paths:
        code, _, response = await get(client, path)
        assert code == 200, path
        etags[path] = public(response)
    assert len(set(etags.values())) == len(paths)  # a JSON answer and a page never share one
    computed = computations[0]
    for path in paths:
        code, _, response = await get(client, path, **{"If-None-Match": etags[path]})
        assert code == 304, path
        assert not response.body
    assert computations[0] == computed

    # A new time for the team: its records and page get a new validator.
    token = await client.access("juez1", "pass-juez1")
    code, body = await client.post("/api/enviar_tiempos/", {
        "equipo_id": eq["a"], "registros": registros([1_300_000])}, token=token)
    assert code == 201, body
    for path in paths[0], paths[3]:
        code, _, response = await get(client, path, **{"If-None-Match": etags[path]})
        assert code == 200, path
        assert public(response) != etags[path]
    # The race starts: the competition's page and the list say so.
    await client.race_action(cid, await client.organizer())
    for path in paths[1], paths[2]:
        code, _, response = await get(client, path, **{"If-None-Match": etags[path]})
        assert code == 200, path
        assert public(response) != etags[path]


@pytest.mark.gen_test
async def test_private_and_error_answers_are_never_cacheable(client, event):
    cid, eq = event["competencia"], event["equipos"]
    org = await client.access("org", "org-pass")
    judge = await client.access("juez1", "pass-juez1")
    answers = [
        await client.request("GET", "/api/competencias/%d/registros/" % cid, token=org),
        await client.request("GET", "/api/competencias/%d/jueces/" % cid, token=org),
        await client.request("GET", "/api/competencias/%d/auditoria/" % cid, token=org),
        await client.request("GET", "/api/competencias/%d/" % cid, token=org),
        await client.request("GET", "/api/me/", token=judge),
        await client.request("GET", "/api/equipos/%d/registros/" % eq["a"], token=judge),
        await client.request("POST", "/api/token/", {"username": "juez1",
                                                     "password": "pass-juez1"}),
        # Errors of the public reads (after a validator may have been set), and of the rest.
        await client.request("GET", "/api/competencias/999/resultados/"),
        await client.request("GET", "/api/competencias/%d/resultados/?format=xml" % cid),
        await client.request("GET", "/api/competencias/%d/equipos/999/" % cid),
        await client.request("GET", "/api/competencias/999/equipos/%d/" % eq["a"]),
        await client.request("GET", "/competencias/999/"),
        await client.request("GET", "/competencias/%d/equipos/999/" % cid),
        await client.request("GET", "/api/competencias/%d/registros/" % cid),  # 401
        await client.request("GET", "/no/such/page/"),
        await client.request("GET", "/static/no-such-file.js"),
        await client.request("GET", "/organizador/"),
    ]
    for code, body, response in answers:
        assert response.headers.get("Cache-Control") == "no-store", (
            response.effective_url, code, response.headers.get("Cache-Control"))
        assert "ETag" not in response.headers, response.effective_url
    assert [a[0] for a in answers[:7]] == [200] * 7
    assert [a[0] for a in answers[7:]] == [404, 400, 404, 404, 404, 404, 401, 404, 404, 200]
