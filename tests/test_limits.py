"""Rate limits (config ``limits.*``): a password-guessing loop is stopped per (address, username)
while the real judge still logs in from another address; submissions are limited per judge;
0 disables a limit. Answers are 429 JSON with ``Retry-After``."""

import asyncio
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
    assert_rate_limited(*await token_attempt(base_url, "juez1", "pass-juez1"))
    # ...but the real judge's phone, on another address, logs in.
    code, payload, _ = await token_attempt(base_url, "juez1", "pass-juez1", source="127.0.0.2")
    assert code == 200 and payload["access"], payload
    # And other users on the guessing address are not locked out by it.
    code, payload, _ = await token_attempt(base_url, "juez2", "pass-juez2")
    assert code == 200, payload


@pytest.mark.parametrize("config", [{"login_per_minute": 4}], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_organizer_logins_fall_under_the_same_limit(http_server, base_url, event, config):
    # The console signs in at /api/token/ like any app: the same bucket per address and name.
    for guess in range(4):
        code, payload, _ = await token_attempt(base_url, "org", "guess%d" % guess)
        assert code == 401, payload
    assert_rate_limited(*await token_attempt(base_url, "ORG", "org-pass"))
    code, payload, _ = await token_attempt(base_url, "org", "org-pass", source="127.0.0.2")
    assert code == 200, payload


@pytest.mark.parametrize("config", [{"login_per_minute": 0, "login_lockout_failures": 0,
                                     "login_per_address_per_minute": 0}], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_login_limit_zero_disables_it(http_server, base_url, config):
    for guess in range(25):  # more than the default 20
        code, payload, _ = await token_attempt(base_url, "juez1", "guess%d" % guess)
        assert code == 401, payload
    code, payload, _ = await token_attempt(base_url, "juez1", "pass-juez1")
    assert code == 200, payload


@pytest.mark.parametrize("config", [{"submissions_per_minute": 3}], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_submissions_are_limited_per_judge(http_server, base_url, client, event, config):
    juez1, juez2 = await client.access("juez1", "pass-juez1"), await client.access("juez2", "pass-juez2")
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
    again = await client.access("juez1", "pass-juez1")
    assert_rate_limited(*await fetch("POST", url, refused, token=again))


@pytest.mark.parametrize("config", [{"submissions_per_minute": 0}], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_submission_limit_zero_disables_it(http_server, base_url, client, event, config):
    token = await client.access("juez1", "pass-juez1")
    for _ in range(125):  # more than the default 120
        code, payload, _ = await fetch("POST", base_url + "/api/enviar_tiempos/",
                                       submission(event["equipos"]["a"]), token=token)
        assert code == 201, payload


# -- logins: per address across usernames, lockouts a stranger cannot turn against a judge -----
class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def guard(clock, **kw):
    from handlers.limits import LoginGuard
    settings = dict(per_minute=20, per_address_per_minute=60, lockout_failures=5, lockout_s=30)
    settings.update(kw)
    return LoginGuard(clock=clock, **settings)


def test_a_lockout_locks_the_guessing_address_only_and_grows():
    clock = Clock()
    g = guard(clock)
    for _ in range(5):
        assert g.check("10.0.0.66", "juez1") == 0
        g.failed("10.0.0.66", "juez1")
    assert g.check("10.0.0.66", "juez1") == 30  # locked: refused before any hashing
    assert g.check("10.0.0.7", "juez1") == 0    # the judge's phone elsewhere: checked
    g.succeeded("10.0.0.7", "juez1")
    assert g.check("10.0.0.66", "juez2") == 0   # other users on the guessing address: fine
    clock.now += 31
    assert g.check("10.0.0.66", "juez1") == 0   # served its time...
    g.failed("10.0.0.66", "juez1")
    assert g.check("10.0.0.66", "juez1") == 60  # ...and the next failure doubles it
    clock.now += 61
    assert g.check("10.0.0.66", "juez1") == 0
    g.succeeded("10.0.0.66", "juez1")           # a success clears it
    g.failed("10.0.0.66", "juez1")
    assert g.check("10.0.0.66", "juez1") == 0


def test_guessing_one_username_from_many_addresses_locks_each_after_one_failure():
    from handlers.limits import USERNAME_FAILURES
    clock = Clock()
    g = guard(clock)
    for n in range(USERNAME_FAILURES - 1):
        address = "10.1.0.%d" % n
        assert g.check(address, "juez1") == 0
        g.failed(address, "juez1")
        assert g.check(address, "juez1") == 0  # (each one failed once: not locked yet)
    assert g.check("10.1.0.99", "juez1") == 0
    g.failed("10.1.0.99", "juez1")  # the USERNAME_FAILURES-th failure: it is being guessed
    assert g.check("10.1.0.99", "juez1") > 0
    # From now on a new address is locked after its first failure...
    assert g.check("10.2.0.1", "juez1") == 0
    g.failed("10.2.0.1", "juez1")
    assert g.check("10.2.0.1", "juez1") > 0
    # ...but one that has not failed is never refused before its password is checked.
    assert g.check("10.2.0.2", "juez1") == 0
    g.succeeded("10.2.0.2", "juez1")
    assert g.check("10.1.0.3", "juez2") == 0  # other usernames are not affected


def test_the_per_address_limit_counts_failures_not_judges_behind_one_nat():
    clock = Clock()
    g = guard(clock, per_address_per_minute=60)
    for n in range(200):  # 200 judges logging in at once behind one venue NAT
        assert g.check("10.0.0.1", "juez%d" % n) == 0
        g.succeeded("10.0.0.1", "juez%d" % n)
    for n in range(10):   # made-up usernames: each one counted (a burst of 10 s worth)...
        assert g.check("10.0.0.1", "nadie%d" % n) == 0
        g.failed("10.0.0.1", "nadie%d" % n)
    assert g.check("10.0.0.1", "nadie-mas") > 0  # ...and the next refused without hashing
    clock.now += 1
    assert g.check("10.0.0.1", "nadie-mas") == 0  # then one a second (60 a minute)
    g.failed("10.0.0.1", "nadie-mas")
    assert g.address_wait("10.0.0.1") > 0
    assert g.check("10.0.0.2", "nadie-mas") == 0
    clock.now += 60
    assert g.check("10.0.0.1", "juez1") == 0  # a minute later it has its budget again


def test_tables_of_the_limits_stay_bounded():
    from handlers.limits import Pacer, RateLimiter
    clock = Clock()
    limiter = RateLimiter(10, clock=clock, max_keys=100)
    for n in range(1000):
        limiter.hit("k%d" % n)
        clock.now += 0.001
    assert len(limiter._buckets) <= 100
    g = guard(clock, per_address_per_minute=0, per_minute=0)
    g._max_keys = 100
    for n in range(1000):
        g.failed("10.9.%d.%d" % (n // 256, n % 256), "x%d" % n)
    assert len(g._failures) <= 100
    pacer = Pacer(600, clock=clock, max_keys=100)
    for n in range(1000):
        pacer.turn(("public", "10.8.%d.%d" % (n // 256, n % 256)))
    assert len(pacer._next) <= 100


def test_the_pacer_lets_a_burst_through_then_spaces_requests_out():
    from handlers.limits import BURST_S, Pacer
    clock = Clock()
    pacer = Pacer(60, max_wait=5.0, clock=clock)  # one a second
    key = ("public", "10.0.0.1")
    burst = [pacer.turn(key) for _ in range(BURST_S + 1)]
    assert burst == [0.0] * (BURST_S + 1)
    assert [pacer.turn(key) for _ in range(5)] == [1.0, 2.0, 3.0, 4.0, 5.0]  # wait their turn
    assert pacer.turn(key) is None               # more than max_wait away: no turn
    assert pacer.turn(("public", "10.0.0.2")) == 0.0  # another address
    assert pacer.turn(("login", "10.0.0.1")) == 0.0   # logins take turns of their own
    clock.now += 100
    assert pacer.turn(key) == 0.0
    assert Pacer(0).turn(key) == 0.0             # 0 is off


# -- the attack, end to end: a stranger cannot keep a judge out ---------------------------------
@pytest.fixture
def few_username_failures(monkeypatch):
    import handlers.limits
    monkeypatch.setattr(handlers.limits, "USERNAME_FAILURES", 3)


@pytest.mark.gen_test(timeout=60)
async def test_a_stranger_failing_logins_never_keeps_the_judge_out(http_server, base_url,
                                                                   config):
    # A stranger on 127.0.0.2 tries juez1's password until locked out...
    for guess in range(5):
        code, payload, _ = await token_attempt(base_url, "juez1", "guess%d" % guess,
                                               source="127.0.0.2")
        assert code == 401, payload
    assert_rate_limited(*await token_attempt(base_url, "juez1", "pass-juez1", source="127.0.0.2"))
    # ...the judge's phone, on its own address, logs in.
    code, payload, _ = await token_attempt(base_url, "juez1", "pass-juez1", source="127.0.0.1")
    assert code == 200, payload


@pytest.mark.gen_test(timeout=60)
async def test_strangers_on_many_addresses_never_keep_the_judge_out(
        few_username_failures, http_server, base_url, config):
    # Strangers on many addresses (3 failures are "many" here) guess juez2: each new one is
    # then locked after one failure, and the judge, who has not failed from its address, still
    # gets in.
    for n in (3, 4, 5):
        code, _, _ = await token_attempt(base_url, "juez2", "guess", source="127.0.0.%d" % n)
        assert code == 401
    code, _, _ = await token_attempt(base_url, "juez2", "guess", source="127.0.0.6")
    assert code == 401
    assert_rate_limited(*await token_attempt(base_url, "juez2", "pass-juez2", source="127.0.0.6"))
    code, payload, _ = await token_attempt(base_url, "juez2", "pass-juez2", source="127.0.0.7")
    assert code == 200, payload


@pytest.mark.parametrize("config", [{"login_per_address_per_minute": 10}], indirect=True)
@pytest.mark.gen_test(timeout=60)
async def test_a_random_username_flood_is_refused_before_hashing(http_server, base_url, config,
                                                                 monkeypatch):
    import identity
    hashed = []
    authenticate = identity.authenticate
    monkeypatch.setattr(identity, "authenticate", lambda u, p: hashed.append(u) or
                        authenticate(u, p))
    codes = []
    for n in range(30):
        code, _, _ = await token_attempt(base_url, "nadie-%d" % n, "x")
        codes.append(code)
    assert codes == [401] * 5 + [429] * 25  # (a burst of 10 s worth, at least 5)
    assert len(hashed) == 5
    code, _, _ = await token_attempt(base_url, "juez1", "pass-juez1", source="127.0.0.2")
    assert code == 200


@pytest.fixture
def nat_judges(event, monkeypatch):
    """200 more judges, with cheap password hashes so that logging them all in stays quick (the
    hashes say their own cost: verifying them is as cheap)."""
    import models
    import identity
    import registration
    monkeypatch.setattr(identity, "SCRYPT_N", 2 ** 4)
    with models.db.connection_context():
        for n in range(200):
            registration.create_judge("nat%d" % n, "clave-nat-%d" % n, event["competencia"])
    return ["nat%d" % n for n in range(200)]


@pytest.mark.gen_test(timeout=120)
async def test_200_judges_behind_one_nat_all_log_in_within_a_minute(nat_judges, http_server,
                                                                    base_url, config):
    gate = asyncio.Semaphore(20)

    async def login(username, password):
        async with gate:
            return (await token_attempt(base_url, username, password))[0]

    # Every judge at once, and among them strangers mistyping (as many failures as the
    # address may have): the judges all get in.
    answers = await asyncio.gather(*(login(u, "clave-" + u.replace("nat", "nat-"))
                                     for u in nat_judges),
                                   *(login("nadie%d" % n, "mal") for n in range(10)))
    assert answers == [200] * 200 + [401] * 10


# -- the client address: forwarded headers only from trusted proxies ------------------------------
def test_client_address_believes_only_trusted_proxies():
    from types import SimpleNamespace
    from handlers.access import client_address, trusted_networks
    trusted = trusted_networks(["127.0.0.1", "10.0.0.0/8"])

    def request(peer, **headers):
        return SimpleNamespace(remote_ip=peer, headers=headers)

    forwarded = {"X-Forwarded-For": "6.6.6.6, 192.0.2.7, 10.1.2.3"}
    assert client_address(request("127.0.0.1", **forwarded), trusted) == "192.0.2.7"
    assert client_address(request("203.0.113.9", **forwarded), trusted) == "203.0.113.9"
    assert client_address(request("127.0.0.1", **forwarded), ()) == "127.0.0.1"
    assert client_address(request("127.0.0.1", **{"X-Real-IP": "192.0.2.8"}), trusted) == (
        "192.0.2.8")
    assert client_address(request("127.0.0.1", **{"X-Forwarded-For": "nonsense"}), trusted) == (
        "127.0.0.1")
    assert client_address(request("::ffff:127.0.0.1", **forwarded), trusted) == "192.0.2.7"
    assert client_address(request("127.0.0.1"), trusted) == "127.0.0.1"


@pytest.fixture
def behind_proxy(config):
    config["server"]["trusted_proxies"] = ["127.0.0.1"]
    return config


@pytest.mark.gen_test(timeout=60)
async def test_behind_a_trusted_proxy_each_client_has_its_own_limits(behind_proxy, http_server,
                                                                     base_url):
    def via(client_ip):
        return {"X-Forwarded-For": client_ip}

    for guess in range(5):  # a stranger behind the proxy
        code, _, _ = await token_attempt(base_url, "juez1", "g%d" % guess,
                                         headers=via("198.51.100.66"))
        assert code == 401
    assert_rate_limited(*await token_attempt(base_url, "juez1", "pass-juez1",
                                             headers=via("198.51.100.66")))
    code, _, _ = await token_attempt(base_url, "juez1", "pass-juez1", headers=via("198.51.100.7"))
    assert code == 200  # the judge, behind the same proxy, is a client of its own
    # An untrusted peer's header is ignored: it is the address it connects from.
    for guess in range(5):
        await token_attempt(base_url, "juez2", "g%d" % guess, source="127.0.0.2",
                            headers=via("198.51.100.%d" % guess))
    assert_rate_limited(*await token_attempt(base_url, "juez2", "pass-juez2", source="127.0.0.2",
                                             headers=via("198.51.100.99")))
