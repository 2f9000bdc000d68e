"""Public reads are cacheable by any HTTP cache; nothing else is.

The results (JSON, CSV, one category), a team's public records and the public pages answer with
a strong ``ETag`` and ``Cache-Control: public, max-age=1, stale-while-revalidate=...``; the same
``If-None-Match`` gets ``304`` without the standings being computed again; a change gives a new
validator. Organizer and judge answers, and every error, say ``no-store``."""

import pytest

from handlers import standings as standings_module
from handlers.services import PUBLIC_CACHE_CONTROL
from helpers import registros


def public(response):
    etag = response.headers.get("ETag")
    assert etag and etag.startswith('"') and etag.endswith('"'), etag  # strong: no W/
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
        etags[path] = public(response)
    assert len(set(etags.values())) == 1  # one validator per standings, made with them
    computed = computations[0]
    assert computed >= 1

    for path in variants:
        code, body, response = await get(client, path, **{"If-None-Match": etags[path]})
        assert code == 304, body
        assert not response.body
        assert response.headers["ETag"] == etags[path]
        assert response.headers["Cache-Control"] == PUBLIC_CACHE_CONTROL
        # A list of validators, a weak form of ours (RFC 9110: weak comparison) and * match too.
        code, _, _ = await get(client, path, **{"If-None-Match": '"x", W/' + etags[path]})
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
    assert public(response) != etags[base]
    assert result["clasificacion"][0]["equipo_id"] == eq["a"]


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
