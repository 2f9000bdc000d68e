"""Rate limits (config ``limits.*``): a password-guessing loop is stopped per (address, username)
while the real judge still logs in from another address; submissions are limited per judge;
0 disables a limit. Answers are 429 JSON with ``Retry-After``."""

import sqlite3
import uuid

import pytest

from helpers import fetch


@pytest.fixture
def config(config, request):
    config["limits"].update(getattr(request, "param", {}))
    return config


async def token_attempt(base_url, username, password, source="127.0.0.1", headers=None):
    code, payload, response = await fetch(
        "POST", base_url + "/api/token/", {"username": username, "password": password},
        network_interface=source, headers=headers)
    return code, payload, response


def submission(equipo):
    return {"equipo_id": equipo, "registros": [{"timestamp": "2025-11-11T12:00:00Z",
                                                 "tiempo": 1000, "id_registro": str(uuid.uuid4())}]}


def assert_rate_limited(code, payload, response):
    assert code == 429, payload
    assert payload["code"] == "rate_limited" and payload["detail"]
    assert response.headers["Content-Type"].startswith("application/json")
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("config", [{"login_per_minute": 5}], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_password_guessing_is_stopped_but_the_judge_logs_in_from_elsewhere(
        http_server, base_url, config):
    for guess in range(5):
        code, payload, _ = await token_attempt(base_url, "juez1", "guess%d" % guess)
        assert code == 401, payload
    assert_rate_limited(*await token_attempt(base_url, "JUEZ1", "guess5"))  # case-insensitive key
    # Spoofed forwarding headers do not buy a fresh bucket (no proxy is trusted).
    assert_rate_limited(*await token_attempt(base_url, "juez1", "guess6",
                                             headers={"X-Real-IP": "10.9.8.7",
                                                      "X-Forwarded-For": "10.9.8.7"}))
    # Even the right password is refused from the guessing address for now...
    assert_rate_limited(*await token_attempt(base_url, "juez1", "pass1"))
    # ...but the real judge's phone, on another address, logs in.
    code, payload, _ = await token_attempt(base_url, "juez1", "pass1", source="127.0.0.2")
    assert code == 200 and payload["access"], payload
    # And other users on the guessing address are not locked out by it.
    code, payload, _ = await token_attempt(base_url, "juez2", "pass2")
    assert code == 200, payload


@pytest.mark.parametrize("config", [{"login_per_minute": 0, "login_lockout_failures": 0,
                                     "login_per_address_per_minute": 0}], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_login_limit_zero_disables_it(http_server, base_url, config):
    for guess in range(25):  # more than the default 20
        code, payload, _ = await token_attempt(base_url, "juez1", "guess%d" % guess)
        assert code == 401, payload
    code, payload, _ = await token_attempt(base_url, "juez1", "pass1")
    assert code == 200, payload


@pytest.mark.parametrize("config", [{"submissions_per_minute": 3}], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_submissions_are_limited_per_judge(http_server, base_url, client, event, config):
    juez1, juez2 = await client.access("juez1", "pass1"), await client.access("juez2", "pass2")
    url = base_url + "/api/enviar_tiempos/"
    for _ in range(3):
        code, payload, _ = await fetch("POST", url, submission(event["equipos"]["a"]), token=juez1)
        assert code == 201, payload
    refused = submission(event["equipos"]["a"])
    assert_rate_limited(*await fetch("POST", url, refused, token=juez1))
    with sqlite3.connect(config["database"]["path"]) as conn:  # nothing of it was stored
        assert conn.execute("SELECT COUNT(*) FROM registro_tiempo WHERE id_registro = ?", (
            uuid.UUID(refused["registros"][0]["id_registro"]).hex,)).fetchone() == (0,)
    code, payload, _ = await fetch("POST", url, submission(event["equipos"]["c"]), token=juez2)
    assert code == 201, payload  # another judge is not affected
    # A fresh login does not reset the judge's budget.
    again = await client.access("juez1", "pass1")
    assert_rate_limited(*await fetch("POST", url, refused, token=again))


@pytest.mark.parametrize("config", [{"submissions_per_minute": 0}], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_submission_limit_zero_disables_it(http_server, base_url, client, event, config):
    token = await client.access("juez1", "pass1")
    for _ in range(125):  # more than the default 120
        code, payload, _ = await fetch("POST", base_url + "/api/enviar_tiempos/",
                                       submission(event["equipos"]["a"]), token=token)
        assert code == 201, payload
