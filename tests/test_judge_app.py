"""The judge app below the browser (the browser itself: test_judge_browser.py): its page with a
strict Content-Security-Policy and no inline script, the files its service worker keeps on the
phone, its manifest and icons, and the organizer's link and QR code for each judge."""

import json
import re

import pytest

import models
import registration


@pytest.mark.gen_test
async def test_the_judge_page_sends_a_strict_csp_and_runs_no_inline_script(client, event):
    html, response, scripts = await client.strict_page("/juez/")
    # The helpers the pages share (static/comun.js), then the app's own scripts; none inline.
    assert len(scripts) == 3
    assert re.search(r'src="/static/comun\.js\?v=[0-9a-f]+"', scripts[0][0])
    assert re.search(r'src="/static/juez/lectura\.js\?v=[0-9a-f]+"', scripts[1][0])
    assert re.search(r'src="/static/juez/juez\.js\?v=[0-9a-f]+"', scripts[2][0])
    assert 'data-maximo="15"' in html  # race.records_scored_per_team: "N de 15"
    for label in ("Usuario", "Contraseña", "Entrar", "Salir", "Sin conexión"):
        assert label in html
    script = ""
    for tag in scripts[1:]:
        code, text, _ = await client.request("GET", re.search(r'src="([^"]+)"', tag[0])[1])
        assert code == 200
        script += text
    # Values are written as text, tokens never go into a URL.
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                   "new Function", "?token="):
        assert unsafe not in script, unsafe
    for promise in ("indexedDB", "crypto.randomUUID", "getRandomValues", "performance.now()",
                    "'/api/ws-ticket/'", "?ticket=", "wakeLock", "vibrate", "'online'"):
        assert promise in script, promise


@pytest.mark.gen_test
async def test_the_service_worker_keeps_the_app_and_nothing_of_the_api(client, event):
    code, text, response = await client.request("GET", "/juez/sw.js")
    assert code == 200 and response.headers["Content-Type"].startswith("text/javascript")
    assert response.headers["Cache-Control"] == "no-cache"
    files = json.loads(re.search(r"var APP_FILES = (\[.*?\]);", text)[1])
    version = json.loads(re.search(r"var VERSION = (\".*?\");", text)[1])
    assert len(files) == 8 and len(version) == 24  # the app's seven and the pages' shared helpers
    assert all(re.fullmatch(r"/static/(juez/)?[\w.-]+\?v=[0-9a-f]{16}", f) for f in files)
    assert "/api/" not in text
    # The page's own links are the very files the worker keeps.
    _, html, _ = await client.request("GET", "/juez/")
    for path in re.findall(r'(?:href|src)="(/static/[^"]+)"', html):
        assert path.replace("&amp;", "&") in files, path
    answers = {}
    for path in files:
        response = await client.http.fetch(client.base_url + path, raise_error=False)
        assert response.code == 200, path
        answers[path.split("?")[0]] = (response.headers["Content-Type"], response.body)
    kind, body = answers["/static/juez/manifest.webmanifest"]
    manifest = json.loads(body)
    assert kind.startswith("application/manifest+json")
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == (
        "/juez/", "/juez/", "standalone")
    sizes = {i["sizes"] for i in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for name in ("icono-192.png", "icono-512.png"):
        kind, body = answers["/static/juez/" + name]
        assert kind == "image/png" and body.startswith(b"\x89PNG\r\n\x1a\n")
    # A new version of any file is a new worker (its text changes with their hashes).
    code, again, _ = await client.request("GET", "/juez/sw.js")
    assert again == text


@pytest.mark.gen_test
async def test_the_organizer_gets_each_judges_link_and_qr_code(client, event):
    org = await client.access("org", "org-pass")
    juez = event["jueces"][0]
    code, link = await client.get("/api/jueces/%d/enlace/" % juez, token=org)
    assert code == 200, link
    assert link["url"] == client.base_url + "/juez/?usuario=juez1"
    assert link["qr"].startswith("data:image/svg+xml")
    assert (link["seguro"], link["aviso"]) == (True, None)  # 127.0.0.1: a secure context
    assert "pass-juez1" not in json.dumps(link)

    # On a venue LAN over plain http: the link says what the phones will not do.
    code, link, _ = await client.request("GET", "/api/jueces/%d/enlace/" % juez, token=org,
                                         headers={"Host": "192.168.1.20:8000"})
    assert link["url"] == "http://192.168.1.20:8000/juez/?usuario=juez1"
    assert link["seguro"] is False and "HTTPS" in link["aviso"]

    # A username is quoted in the link, whatever it holds.
    with models.db.connection_context():
        odd = registration.create_judge("ana&b=1 #x", "pass-odd-123", event["competencia"]).id
    code, link = await client.get("/api/jueces/%d/enlace/" % odd, token=org)
    assert link["url"].endswith("/juez/?usuario=ana%26b%3D1%20%23x")

    # Organizers only; an unknown judge is a 404.
    judge = await client.access("juez1", "pass-juez1")
    code, answer = await client.get("/api/jueces/%d/enlace/" % juez, token=judge)
    assert (code, answer["code"]) == (403, "organizer_only")
    code, answer = await client.get("/api/jueces/%d/enlace/" % juez)
    assert code == 401
    for unknown in (999, 0, 999_999_999_999_999_999):
        code, answer = await client.get("/api/jueces/%d/enlace/" % unknown, token=org)
        assert (code, answer["code"]) == (404, "judge_not_found")
