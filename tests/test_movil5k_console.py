"""The organizer's console shows which app sent each record (the guide's or Movil5K), and a
second phone's set waiting for review, in the browser (headless Chromium)."""

import uuid

from playwright.sync_api import expect

from helpers import DESKTOP, ORGANIZER, registros, request_json, sign_in

WAIT_MS = 10_000


def test_the_console_shows_each_records_protocol_and_a_second_set_to_review(browser, spawn,
                                                                              tmp_path):
    server = spawn(tmp_path / "event.db").organize()
    server.start()
    base = server.base_url

    def call(method, path, body=None, token=None, status=None):
        code, answer = request_json(method, base + path, body, token=token)
        assert status is None or code == status, (path, code, answer)
        return answer

    org = call("POST", "/api/token/", {"username": ORGANIZER[0], "password": ORGANIZER[1]},
               status=200)["access"]
    juez = call("POST", "/api/competencias/1/jueces/",
                {"username": "maria", "password": "clave-de-maria"}, org, 201)["juez"]
    team = call("POST", "/api/competencias/1/equipos/",
                {"nombre": "Tortugas", "dorsal": 1, "juez_id": juez["id"]}, org, 201)
    call("POST", "/api/competencias/1/iniciar/", None, org, 200)
    # Movil5K's first phone, its second phone, and the guide's app: all the same judge.
    phone = call("POST", "/api/login/", {"username": "maria", "password": "clave-de-maria"},
                 status=200)["access"]
    full_set = [str(uuid.uuid4()) for _ in range(15)]  # the team's 15, complete
    first, second = full_set[0], str(uuid.uuid4())
    path = "/api/equipos/%d/registros/" % team["id"]
    assert call("POST", path, {"registros": [{"id_registro": rid, "tiempo": 1_190_000 + i}
                                             for i, rid in enumerate(full_set)]},
                phone, 201)["pendientes_revision"] == 0
    assert call("POST", path, {"registros": [{"id_registro": second, "tiempo": 1_180_000}]},
                phone, 201)["pendientes_revision"] == 1
    guide = call("POST", "/api/enviar_tiempos/", {
        "equipo_id": team["id"], "registros": registros([1_200_000], ids=True)}, phone,
        201)["created"][0]

    page = browser.new_page(viewport=DESKTOP, locale="es-ES")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base + "/organizador/")
    sign_in(page)
    page.get_by_role("link", name="5K del Puerto").click()
    page.get_by_role("navigation").get_by_role("link", name="Registros").click()
    cards = page.locator("#registros [data-registro]")
    expect(cards).to_have_count(17, timeout=WAIT_MS)

    def card(rid):
        return page.locator('#registros [data-registro="%s"]' % rid)

    expect(card(first)).to_contain_text("Movil5K")
    expect(card(first)).not_to_contain_text("segundo envío")
    expect(card(second)).to_contain_text("Movil5K")
    expect(card(second)).to_contain_text("segundo envío: revisar")
    expect(card(second).get_by_role("button", name="Aceptar")).to_be_visible()
    expect(card(guide)).to_contain_text("app (guía)")
    assert errors == []
