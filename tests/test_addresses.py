"""The addresses phones can use (issue 20, item 13): with ``server.host: 0.0.0.0`` the start-up
log named ``http://127.0.0.1:...``, an address no phone can open. It now says where it listens
and lists ``server.public_url`` and each of the laptop's non-loopback IPv4 addresses, and the
judges board (organizer-only) carries the same list for the console's race screen."""

import ipaddress
import subprocess

import addresses
from helpers import request_json

PUBLIC_URL = "http://carrera.example:8000"


def kernel_addresses():
    """The machine's IPv4 addresses other than loopback, as ``ip`` lists them (a second source,
    independent of the code under test)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "up"], capture_output=True,
                         text=True, check=True).stdout
    found = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [a for a in found if not ipaddress.ip_address(a).is_loopback
            and not ipaddress.ip_address(a).is_link_local]


def test_every_interface_address_and_the_public_url_are_logged_and_served(spawn, event, config):
    expected_addresses = kernel_addresses()
    assert expected_addresses, "this machine has no network address other than loopback"
    server = spawn(config["database"]["path"],
                   server={"host": "0.0.0.0", "public_url": PUBLIC_URL}).start()
    urls = [PUBLIC_URL] + ["http://%s:%d" % (a, server.port) for a in expected_addresses]
    log = server.log()
    assert "listening on http://127.0.0.1" not in log
    assert "listening on every interface, port %d" % server.port in log
    assert "phones can reach it at: " + ", ".join(urls) in log
    status, token = request_json("POST", server.base_url + "/api/token/",
                                 {"username": "org", "password": "org-pass"})
    assert status == 200
    board_path = "/api/competencias/%d/jueces/" % event["competencia"]
    status, board = request_json("GET", server.base_url + board_path, token=token["access"])
    assert status == 200 and board["direcciones"] == urls
    # Judges do not get the board (nor the addresses).
    status, judge = request_json("POST", server.base_url + "/api/token/",
                                 {"username": "juez1", "password": "pass-juez1"})
    status, answer = request_json("GET", server.base_url + board_path, token=judge["access"])
    assert status == 403 and answer["code"] == "organizer_only"


def test_only_loopback_means_no_address_for_phones(spawn, event, config):
    server = spawn(config["database"]["path"]).start()  # host 127.0.0.1
    assert "listening on http://127.0.0.1:%d" % server.port in server.log()
    assert "only this machine can reach it" in server.log()
    status, token = request_json("POST", server.base_url + "/api/token/",
                                 {"username": "org", "password": "org-pass"})
    status, board = request_json("GET", server.base_url + "/api/competencias/%d/jueces/"
                                 % event["competencia"], token=token["access"])
    assert status == 200 and board["direcciones"] == []


def test_phone_urls_by_host():
    base = {"port": 8000, "public_url": None, "tls_cert": None}
    mine = ["http://%s:8000" % a for a in kernel_addresses()]
    assert addresses.phone_urls(dict(base, host="0.0.0.0")) == mine
    assert addresses.phone_urls(dict(base, host="::")) == mine
    assert addresses.phone_urls(dict(base, host="127.0.0.1")) == []
    assert addresses.phone_urls(dict(base, host="localhost")) == []
    assert addresses.phone_urls(dict(base, host="10.1.2.3", tls_cert="c.pem")) == [
        "https://10.1.2.3:8000"]
    assert addresses.phone_urls(dict(base, host="127.0.0.1", public_url=PUBLIC_URL)) == [
        PUBLIC_URL]
