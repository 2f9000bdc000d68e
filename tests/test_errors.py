"""Every error is JSON: unknown paths, wrong methods, crashes; CORS; tokens never logged."""

import logging

import pytest

import identity


@pytest.mark.gen_test
@pytest.mark.parametrize("method, url", [("GET", "/api/nada/"), ("POST", "/api/nada/"),
                                         ("GET", "/api/competencias/1/nada/"), ("GET", "/nada")])
async def test_unknown_paths_are_json_404(client, method, url):
    code, answer, response = await client.request(method, url)
    assert code == 404 and answer["code"] == "not_found"
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.gen_test
@pytest.mark.parametrize("method, url", [("GET", "/api/token/"), ("DELETE", "/api/me/"),
                                         ("GET", "/api/enviar_tiempos/"),
                                         ("GET", "/api/competencias/1/iniciar/")])
async def test_wrong_method_is_json_405(client, method, url):
    code, answer, response = await client.request(method, url)
    assert code == 405 and answer["code"] == "method_not_allowed"
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Allow" in response.headers


@pytest.mark.gen_test
@pytest.mark.parametrize("url", ["/api/token/", "/api/enviar_tiempos/", "/api/me/",
                                 "/api/competencias/1/iniciar/", "/api/cualquier/cosa/"])
async def test_cors_preflight(client, url):
    code, _, response = await client.request(
        "OPTIONS", url, headers={"Origin": "http://app.local",
                                 "Access-Control-Request-Method": "POST"})
    assert code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
    assert "OPTIONS" in response.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.gen_test
async def test_actual_responses_carry_cors(client, event):
    code, _, response = await client.request("GET", "/api/competencias/%d/" % event["competencia"],
                                             headers={"Origin": "http://app.local"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    code, _, response = await client.request("POST", "/api/token/", {})
    assert code == 400 and response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.fixture
def listed_cors(config):
    config["server"]["cors_origins"] = ["https://app.example"]
    return config


@pytest.mark.gen_test
async def test_cors_origin_list(listed_cors, client, event):
    url = "/api/competencias/%d/" % event["competencia"]
    _, _, ok = await client.request("GET", url, headers={"Origin": "https://app.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example"
    _, _, other = await client.request("GET", url, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.gen_test
async def test_unexpected_exception_is_json_500_without_traceback(client, event, monkeypatch):
    def explode(*args):
        raise RuntimeError("secret internals")
    monkeypatch.setattr(identity, "me", explode)
    token = await client.access("juez1", "pass-juez1")
    code, answer, response = await client.request("GET", "/api/me/", token=token)
    assert code == 500 and answer == {"detail": "Error interno del servidor.",
                                      "code": "internal_error"}
    assert b"secret internals" not in response.body and b"Traceback" not in response.body


@pytest.mark.gen_test
async def test_tokens_never_reach_the_access_log(client, event, caplog):
    caplog.set_level(logging.INFO)
    tokens = await client.login("juez1", "pass-juez1")
    ws, _ = await client.judge_socket(event["jueces"][0], tokens["access"])
    ws.close()
    await client.get("/api/me/?token=%s" % tokens["access"], token=tokens["access"])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/ws/juez/%d/?token=[redacted]" % event["jueces"][0] in logged
    assert tokens["access"] not in logged and tokens["refresh"] not in logged
    assert "pass-juez1" not in logged
