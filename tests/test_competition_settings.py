"""What a browser is enough for (issue 20, item 11), on the API the console uses: renaming a
competition and hiding a test competition from the public index, through the same
``PATCH /api/competencias/{id}/`` that sets the scoring rule, each change in the history."""

import json

import pytest

from helpers import request_json


async def patch(client, cid, token, body, status=200):
    code, answer, _ = await client.request("PATCH", "/api/competencias/%d/" % cid, body,
                                           token=token)
    assert code == status, answer
    return answer


async def index(client):
    code, page, _ = await client.request("GET", "/")
    assert code == 200
    return page if isinstance(page, str) else page.decode()


@pytest.mark.gen_test
async def test_rename_and_hide_a_competition_with_their_history(client, event):
    cid = event["competencia"]
    org = await client.access("org", "org-pass")
    assert "Carrera de prueba" in await index(client)
    answer = await patch(client, cid, org, {"nombre": "  5K del Puerto  ",
                                             "motivo": "nombre del cartel"})
    assert answer["competencia"]["nombre"] == "5K del Puerto"
    assert answer["competencia"]["oculta"] is False
    answer = await patch(client, cid, org, {"oculta": True})
    assert answer["competencia"]["oculta"] is True
    page = await index(client)
    assert "5K del Puerto" not in page and "Otra carrera" in page  # only the hidden one leaves
    # Its own pages still open by their address; the organizer still lists it.
    code, comp = await client.get("/api/competencias/%d/" % cid)
    assert code == 200 and comp["nombre"] == "5K del Puerto" and comp["oculta"] is True
    code, results = await client.get("/api/competencias/%d/resultados/" % cid)
    assert code == 200 and results["competencia"]["nombre"] == "5K del Puerto"
    code, listing = await client.get("/api/competencias/", token=org)
    assert [c["oculta"] for c in listing["competencias"] if c["id"] == cid] == [True]
    await patch(client, cid, org, {"oculta": True})  # no change: no history entry
    await patch(client, cid, org, {"oculta": False})
    assert "5K del Puerto" in await index(client)
    code, audit = await client.get("/api/competencias/%d/auditoria/" % cid, token=org)
    changes = [(a["accion"], a["motivo"], a["antes"], a["despues"]) for a in audit["acciones"]]
    assert changes == [
        ("renombrar", "nombre del cartel", {"nombre": "Carrera de prueba"},
         {"nombre": "5K del Puerto"}),
        ("ocultar", None, {"oculta": False}, {"oculta": True}),
        ("mostrar", None, {"oculta": True}, {"oculta": False})]


@pytest.mark.gen_test
async def test_wrong_changes_are_refused_whole_and_clearly(client, event):
    cid = event["competencia"]
    org = await client.access("org", "org-pass")
    for body, field in (({"nombre": "   "}, "nombre"), ({"nombre": 7}, "nombre"),
                        ({"nombre": "x" * 201}, "nombre"), ({"oculta": "si"}, "oculta"),
                        ({"oculta": 1}, "oculta"), ({"publica": False}, "publica"),
                        ({"nombre": "Nuevo", "oculta": "no"}, "oculta")):
        answer = await patch(client, cid, org, body, status=400)
        assert answer["code"] == "validation_error" and field in answer["errors"], body
    code, comp = await client.get("/api/competencias/%d/" % cid)
    assert comp["nombre"] == "Carrera de prueba" and comp["oculta"] is False  # nothing applied
    judge = await client.access("juez1", "pass-juez1")
    answer = await patch(client, cid, judge, {"oculta": True}, status=403)
    assert answer["code"] == "organizer_only"
    await patch(client, 999, org, {"nombre": "x"}, status=404)


def test_the_command_line_renames_and_hides(spawn, event, config):
    server = spawn(config["database"]["path"]).start()
    env = {"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"}
    cid = str(event["competencia"])
    out = server.cli("competition", "set", cid, "--name", "Prueba del martes", "--hide",
                     env=env).stdout
    assert "Prueba del martes (hidden from the public index)" in out
    answer = json.loads(server.cli("competition", "set", cid, "--show", "--json",
                                   env=env).stdout)
    assert answer["competencia"]["oculta"] is False
    both = server.cli("competition", "set", cid, "--hide", "--show", env=env, check=False)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    status, comp = request_json("GET", server.base_url + "/api/competencias/%s/" % cid)
    assert comp["nombre"] == "Prueba del martes"
