"""Tokens: login, refresh, /api/me/, and every way a token can be wrong."""

import time

import jwt
import pytest

import models
from helpers import SECRET


@pytest.mark.gen_test
async def test_login_gives_access_and_refresh_with_pinned_claims(client, event):
    tokens = await client.login("JUEZ1", "pass-juez1")  # usernames are case-insensitive
    access = jwt.decode(tokens["access"], SECRET, algorithms=["HS256"])
    refresh = jwt.decode(tokens["refresh"], SECRET, algorithms=["HS256"])
    assert jwt.get_unverified_header(tokens["access"])["alg"] == "HS256"
    assert access["token_type"] == "access" and refresh["token_type"] == "refresh"
    assert access["juez_id"] == event["jueces"][0]
    assert access["exp"] - access["iat"] == 300
    assert refresh["exp"] - refresh["iat"] == 86400
    assert access["jti"] != refresh["jti"]


@pytest.mark.gen_test
@pytest.mark.parametrize("body", [
    {"username": "juez1", "password": "wrong"},
    {"username": "nadie", "password": "pass-juez1"},
])
async def test_bad_credentials_are_401(client, body):
    code, answer = await client.post("/api/token/", body)
    assert code == 401 and answer["code"] == "invalid_credentials"


@pytest.mark.gen_test
async def test_inactive_user_cannot_log_in(client):
    with models.db.connection_context():
        models.User.update(is_active=False).where(models.User.username_key == "juez1").execute()
    code, answer = await client.post("/api/token/", {"username": "juez1", "password": "pass-juez1"})
    assert code == 401


@pytest.mark.gen_test
@pytest.mark.parametrize("body", [{}, {"username": "juez1"}, {"username": 1, "password": "x"},
                                  {"username": "juez1", "password": ""}])
async def test_login_missing_fields_are_400(client, body):
    code, answer = await client.post("/api/token/", body)
    assert code == 400 and answer["code"] == "validation_error" and answer["errors"]


@pytest.mark.gen_test
async def test_refresh_gives_a_new_access_token(client):
    tokens = await client.login("juez1", "pass-juez1")
    code, answer = await client.post("/api/token/refresh/", {"refresh": tokens["refresh"]})
    assert code == 200 and set(answer) == {"access"}
    code, me = await client.get("/api/me/", token=answer["access"])
    assert code == 200 and me["user"]["username"] == "juez1"


@pytest.mark.gen_test
async def test_access_token_is_not_a_refresh_token(client):
    tokens = await client.login("juez1", "pass-juez1")
    code, answer = await client.post("/api/token/refresh/", {"refresh": tokens["access"]})
    assert code == 401 and answer["code"] == "wrong_token_type"


@pytest.mark.gen_test
async def test_refresh_token_is_not_an_access_token(client):
    tokens = await client.login("juez1", "pass-juez1")
    code, answer = await client.get("/api/me/", token=tokens["refresh"])
    assert code == 401 and answer["code"] == "wrong_token_type"


def forge(claims, key=SECRET, algorithm="HS256"):
    now = int(time.time())
    base = {"token_type": "access", "iat": now, "exp": now + 3600, "jti": "x", "user_id": 2}
    base.update(claims)
    return jwt.encode(base, key, algorithm=algorithm)


@pytest.mark.gen_test
@pytest.mark.parametrize("token, code", [
    ("garbage", "token_not_valid"),
    (forge({}, key="another-key-" + "y" * 60), "token_not_valid"),
    (forge({"exp": int(time.time()) - 10}), "token_expired"),
    (forge({}, algorithm="HS512"), "token_not_valid"),
    (forge({"token_type": "magic"}), "wrong_token_type"),
    (forge({"user_id": "2"}), "token_not_valid"),
    (forge({"user_id": 99999}), "user_inactive"),
])
async def test_bad_tokens_are_401(client, token, code):
    status, answer = await client.get("/api/me/", token=token)
    assert status == 401 and answer["code"] == code


@pytest.mark.gen_test
async def test_unsigned_alg_none_token_is_refused(client):
    token = jwt.encode({"token_type": "access", "iat": 1, "exp": 2**40, "jti": "x",
                        "user_id": 2}, None, algorithm="none")
    status, answer = await client.get("/api/me/", token=token)
    assert status == 401 and answer["code"] == "token_not_valid"


@pytest.mark.gen_test
async def test_missing_or_malformed_authorization_header(client):
    status, answer = await client.get("/api/me/")
    assert status == 401 and answer["code"] == "not_authenticated"
    status, answer = await client.get("/api/me/", headers={"Authorization": "Token abc"})
    assert status == 401 and answer["code"] == "bad_authorization_header"


@pytest.mark.gen_test
async def test_me_tells_a_judge_its_id_competition_and_teams(client, event):
    token = await client.access("juez1", "pass-juez1")
    status, me = await client.get("/api/me/", token=token)
    assert status == 200
    assert me["user"] == {"id": me["user"]["id"], "username": "juez1", "organizador": False}
    juez = me["juez"]
    assert juez["id"] == event["jueces"][0] and juez["nombre"] == "Juez Uno"
    assert juez["competencia"]["id"] == event["competencia"]
    assert juez["competencia"]["estado"] == "programada"
    assert [e["dorsal"] for e in juez["equipos"]] == [1, 2]
    assert set(juez["equipos"][0]) == {"id", "nombre", "dorsal"}


@pytest.mark.gen_test
async def test_me_for_an_organizer_has_no_judge(client):
    token = await client.access("org", "org-pass")
    status, me = await client.get("/api/me/", token=token)
    assert status == 200 and me["user"]["organizador"] is True and me["juez"] is None


@pytest.mark.gen_test
async def test_token_of_a_user_deactivated_later_stops_working(client):
    token = await client.access("juez1", "pass-juez1")
    with models.db.connection_context():
        models.User.update(is_active=False).where(models.User.username_key == "juez1").execute()
    status, answer = await client.get("/api/me/", token=token)
    assert status == 401 and answer["code"] == "user_inactive"


@pytest.fixture
def rotating_config(config):
    config["auth"]["rotate_refresh_tokens"] = True
    return config


@pytest.mark.gen_test
async def test_refresh_rotation_when_configured(rotating_config, client):
    tokens = await client.login("juez1", "pass-juez1")
    code, answer = await client.post("/api/token/refresh/", {"refresh": tokens["refresh"]})
    assert code == 200 and set(answer) == {"access", "refresh"}
    assert answer["refresh"] != tokens["refresh"]
    # The old refresh token still works: a phone whose answer got lost can retry.
    code, _ = await client.post("/api/token/refresh/", {"refresh": tokens["refresh"]})
    assert code == 200
