"""Nobody in who shouldn't be: forged, foreign-key, expired and wrong-type tokens, judges on
organizer endpoints and on other judges' sockets, inactive judges and users."""

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest

import models
from helpers import SECRET, judge_path


def b64(obj):
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hmac_token(alg, digest, c, secret=SECRET):
    """A JWT signed by hand with HMAC-``digest`` (PyJWT warns about short keys for SHA-384/512)."""
    signing_input = "%s.%s" % (b64({"alg": alg, "typ": "JWT"}), b64(c))
    signature = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return "%s.%s" % (signing_input, b64(signature))


def claims(user_id, token_type="access", **extra):
    now = int(time.time())
    return dict({"token_type": token_type, "iat": now, "exp": now + 300,
                 "jti": uuid.uuid4().hex, "user_id": user_id}, **extra)


def forged_tokens(user_id, juez_id):
    """Tokens that must all be refused, each with what they try."""
    c = claims(user_id, juez_id=juez_id)
    return {
        "alg none": "%s.%s." % (b64({"alg": "none", "typ": "JWT"}), b64(c)),
        "alg None": "%s.%s." % (b64({"alg": "None", "typ": "JWT"}), b64(c)),
        "HS512 same secret": hmac_token("HS512", hashlib.sha512, c),
        "HS384 same secret": hmac_token("HS384", hashlib.sha384, c),
        "HS256 header, SHA-512 signature": hmac_token("HS256", hashlib.sha512, c),
        "RS256-shaped": "%s.%s.%s" % (b64({"alg": "RS256", "typ": "JWT"}), b64(c),
                                      b64(b"\x01" * 256)),
        "another key": jwt.encode(c, "another-secret-" + "z" * 40, algorithm="HS256"),
        "expired": jwt.encode(dict(c, iat=int(time.time()) - 900, exp=int(time.time()) - 600),
                              SECRET, algorithm="HS256"),
        "no user_id": jwt.encode({k: v for k, v in c.items() if k != "user_id"}, SECRET,
                                 algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in c.items() if k != "exp"}, SECRET,
                             algorithm="HS256"),
        "user_id as text": jwt.encode(dict(c, user_id=str(user_id)), SECRET, algorithm="HS256"),
        "refresh as access": jwt.encode(dict(c, token_type="refresh"), SECRET, algorithm="HS256"),
        "tampered payload": None,  # filled in below from a real token
        "garbage": "not.a.token",
    }


def judge_user_id(username):
    with models.db.connection_context():
        return models.User.get(models.User.username_key == username).id


@pytest.mark.gen_test(timeout=30)
async def test_forged_and_wrong_tokens_are_401_everywhere(client, event):
    real = await client.login("juez1", "pass-juez1")
    user_id, juez_id = judge_user_id("juez1"), event["jueces"][0]
    tokens = forged_tokens(user_id, juez_id)
    header, payload, signature = real["access"].split(".")
    tokens["tampered payload"] = "%s.%s.%s" % (header, b64(claims(user_id + 1)), signature)
    body = {"equipo_id": event["equipos"]["a"],
            "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1}]}
    for what, token in tokens.items():
        for method, path, data in (("GET", "/api/me/", None),
                                   ("POST", "/api/enviar_tiempos/", body),
                                   ("POST", "/api/ws-ticket/", None)):
            code, answer, _ = await client.request(method, path, data, token=token)
            assert code == 401, (what, path, answer)
            assert answer["code"] in ("token_not_valid", "token_expired", "wrong_token_type")
        assert await client.handshake_status(judge_path(juez_id, token)) == 401, what
    # Control: the same hand-made construction with HS256 and the real key is accepted, so the
    # refusals above are about the algorithm, key, claims or type, not the test's encoding.
    control = hmac_token("HS256", hashlib.sha256, claims(user_id, juez_id=juez_id))
    assert (await client.get("/api/me/", token=control))[0] == 200
    # Nothing was stored by any of them.
    with models.db.connection_context():
        assert models.RegistroTiempo.select().count() == 0


@pytest.mark.gen_test
async def test_token_types_are_not_interchangeable(client, event):
    tokens = await client.login("juez1", "pass-juez1")
    code, answer = await client.post("/api/token/refresh/", {"refresh": tokens["access"]})
    assert (code, answer["code"]) == (401, "wrong_token_type")
    code, answer = await client.get("/api/me/", token=tokens["refresh"])
    assert (code, answer["code"]) == (401, "wrong_token_type")
    assert await client.handshake_status(judge_path(event["jueces"][0], tokens["refresh"])) == 401
    expired = jwt.encode(claims(judge_user_id("juez1"), "refresh", exp=int(time.time()) - 1),
                         SECRET, algorithm="HS256")
    code, answer = await client.post("/api/token/refresh/", {"refresh": expired})
    assert (code, answer["code"]) == (401, "token_expired")
    assert (await client.post("/api/token/refresh/", {"refresh": tokens["refresh"]}))[0] == 200


@pytest.mark.gen_test
async def test_a_judge_cannot_act_as_organizer_or_as_another_judge(client, event):
    token = await client.access("juez1", "pass-juez1")
    cid = event["competencia"]
    for action in ("iniciar", "detener", "reiniciar"):
        code, answer = await client.post("/api/competencias/%d/%s/" % (cid, action), token=token)
        assert (code, answer["code"]) == (403, "organizer_only"), action
    code, answer = await client.get("/api/competencias/%d/jueces/" % cid, token=token)
    assert (code, answer["code"]) == (403, "organizer_only")
    assert await client.handshake_status(
        judge_path(event["jueces"][1], token)) == 403  # same race, other judge
    assert await client.handshake_status(
        judge_path(event["jueces"][2], token)) == 403  # other race
    code, answer = await client.post("/api/enviar_tiempos/", {
        "equipo_id": event["equipos"]["c"],
        "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1}]}, token=token)
    assert (code, answer["code"]) == (403, "team_not_assigned")
    with models.db.connection_context():
        assert models.Competencia.get_by_id(cid).started_at is None


@pytest.mark.gen_test
async def test_an_inactive_judge_with_a_valid_token_is_refused_403(client, event):
    token = await client.access("juez1", "pass-juez1")
    with models.db.connection_context():
        models.Juez.update(is_active=False).where(models.Juez.id == event["jueces"][0]).execute()
    code, answer = await client.post("/api/enviar_tiempos/", {
        "equipo_id": event["equipos"]["a"],
        "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1}]}, token=token)
    assert (code, answer["code"]) == (403, "inactive_judge")
    code, answer = await client.post("/api/ws-ticket/", token=token)
    assert (code, answer["code"]) == (403, "inactive_judge")
    assert await client.handshake_status(judge_path(event["jueces"][0], token)) == 403
    with models.db.connection_context():
        assert models.RegistroTiempo.select().count() == 0


@pytest.mark.gen_test
async def test_a_deactivated_judge_cannot_log_in_nor_refresh(client, event):
    """Deactivated in the database without its tokens revoked (the API's deactivation revokes
    them too): a login and a refresh are refused as an inactive user's are."""
    tokens = await client.login("juez1", "pass-juez1")
    with models.db.connection_context():
        models.Juez.update(is_active=False).where(models.Juez.id == event["jueces"][0]).execute()
    code, refused = await client.post("/api/token/", {"username": "juez1",
                                                      "password": "pass-juez1"})
    assert (code, refused["code"]) == (401, "invalid_credentials")
    # A wrong password answers the same: the answer does not tell a deactivated judge apart.
    assert await client.post("/api/token/", {"username": "juez1", "password": "mala"}) == (
        401, refused)
    code, answer = await client.post("/api/token/refresh/", {"refresh": tokens["refresh"]})
    assert (code, answer["code"]) == (401, "user_inactive")
    # Another judge and the organizer are untouched.
    assert "access" in await client.login("juez2", "pass-juez2")
    with models.db.connection_context():
        models.Juez.update(is_active=True).where(models.Juez.id == event["jueces"][0]).execute()
    assert "access" in await client.login("juez1", "pass-juez1")


@pytest.mark.gen_test
async def test_an_inactive_user_is_refused_401_even_with_valid_tokens(client, event):
    tokens = await client.login("juez1", "pass-juez1")
    with models.db.connection_context():
        models.User.update(is_active=False).where(models.User.username_key == "juez1").execute()
    assert (await client.get("/api/me/", token=tokens["access"]))[0] == 401
    assert (await client.post("/api/token/refresh/", {"refresh": tokens["refresh"]}))[0] == 401
    assert (await client.post("/api/token/", {"username": "juez1", "password": "pass-juez1"}))[0] == 401
    assert (await client.post("/api/ws-ticket/", token=tokens["access"]))[0] == 401
    code, _ = await client.post("/api/enviar_tiempos/", {
        "equipo_id": event["equipos"]["a"],
        "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1}]}, token=tokens["access"])
    assert code == 401
    assert await client.handshake_status(judge_path(event["jueces"][0], tokens["access"])) == 401
