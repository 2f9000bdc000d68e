"""Verified tokens are remembered by their exact text, and still expire on time."""

import pytest

from handlers import tokens as tokens_module
from handlers.errors import ApiError
from handlers.tokens import TokenService

SECRET = "cache-secret-" + "c" * 40
JUDGE = {"user": {"id": 7}, "juez_id": 3}


def test_a_remembered_token_still_expires(monkeypatch):
    service = TokenService(SECRET, 60, 3600)
    token = service.issue("access", JUDGE)
    assert service.decode(token, "access")["juez_id"] == 3
    assert service.decode(token, "access")["juez_id"] == 3  # from memory
    real_time = tokens_module.time.time
    monkeypatch.setattr(tokens_module.time, "time", lambda: real_time() + 61)
    with pytest.raises(ApiError) as caught:
        service.decode(token, "access")
    assert (caught.value.status_code, caught.value.code) == (401, "token_expired")


def test_a_remembered_token_keeps_its_type():
    service = TokenService(SECRET, 60, 3600)
    access = service.issue("access", JUDGE)
    service.decode(access, "access")
    with pytest.raises(ApiError) as caught:
        service.decode(access, "refresh")
    assert caught.value.code == "wrong_token_type"


def test_a_tampered_copy_of_a_remembered_token_is_refused():
    service = TokenService(SECRET, 60, 3600)
    token = service.issue("access", JUDGE)
    service.decode(token, "access")
    head, payload, signature = token.split(".")
    forged = ".".join([head, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])
    with pytest.raises(ApiError) as caught:
        service.decode(forged, "access")
    assert caught.value.code == "token_not_valid"
    other = TokenService("another-secret-" + "o" * 40, 60, 3600)
    with pytest.raises(ApiError):
        other.decode(token, "access")  # memory is per service (per secret)


def test_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(tokens_module, "VERIFIED_CACHE_SIZE", 5)
    service = TokenService(SECRET, 60, 3600)
    for n in range(12):
        service.decode(service.issue("access", {"user": {"id": n + 1}}), "access")
    assert len(service._verified) <= 5
