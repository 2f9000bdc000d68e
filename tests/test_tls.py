"""TLS built in: with server.tls_cert/tls_key the same process serves HTTPS and WSS, and the CLI
talks to it over HTTPS (pinned to that certificate). The certificate is made by the test."""

import asyncio
import datetime as dt
import ipaddress
import json
import ssl

import tornado.httpclient
import tornado.websocket
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers import fetch, next_message


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "server5k.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


def test_https_wss_and_cli_on_one_tls_port(spawn, event, config, tmp_path):
    cert, key = self_signed(tmp_path)
    server = spawn(config["database"]["path"], server={"tls_cert": cert, "tls_key": key}).start()
    assert server.base_url.startswith("https://")
    trusted = ssl.create_default_context(cafile=cert)  # verifies the chain and 127.0.0.1

    async def phones():
        # A client that does not trust the certificate is refused: this really is TLS.
        try:
            await fetch("GET", server.base_url + "/api/openapi.json")
            raise AssertionError("an untrusted certificate was accepted")
        except (ConnectionError, ssl.SSLError):
            pass
        # Plain HTTP on the TLS port gets no API answer.
        try:
            code, _, _ = await fetch("GET", "http://127.0.0.1:%d/api/competencias/%d/" % (
                server.port, event["competencia"]))
            assert code != 200
        except ConnectionError:
            pass
        code, tokens, _ = await fetch("POST", server.base_url + "/api/token/",
                                      {"username": "juez1", "password": "pass-juez1"},
                                      ssl_options=trusted)
        assert code == 200, tokens
        code, ticket, _ = await fetch("POST", server.base_url + "/api/ws-ticket/",
                                      token=tokens["access"], ssl_options=trusted)
        assert code == 200, ticket
        ws = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(
            "%s/ws/juez/%d/?ticket=%s" % (server.ws_base, event["jueces"][0], ticket["ticket"]),
            ssl_options=trusted))
        assert (await next_message(ws))["type"] == "conexion.establecida"
        return ws, tokens

    async def organizer_and_race(ws, tokens):
        # The organizer's CLI over HTTPS, pinned to the server's certificate from the config.
        org = {"SERVER5K_USER": "org", "SERVER5K_PASSWORD": "org-pass"}
        status = await asyncio.to_thread(server.cli, "race", "status", str(event["competencia"]),
                                         env=org)
        assert status.returncode == 0, status.stderr
        assert "judges connected: 1 of 2" in status.stdout
        start = await asyncio.to_thread(server.cli, "race", "start", str(event["competencia"]),
                                        "--json", env=org)
        assert start.returncode == 0, start.stderr
        answer = json.loads(start.stdout)
        assert answer["notificados"] == 1
        event_msg = await next_message(ws)
        assert event_msg["type"] == "carrera.iniciada"
        assert event_msg["data"]["started_at"] == answer["competencia"]["started_at"]
        ws.close()
        code, result, _ = await fetch("POST", server.base_url + "/api/enviar_tiempos/", {
            "equipo_id": event["equipos"]["a"],
            "registros": [{"timestamp": "2025-11-11T12:00:00Z", "tiempo": 1500000}]},
            token=tokens["access"], ssl_options=trusted)
        assert code == 201, result

    async def main():
        await organizer_and_race(*await phones())

    asyncio.run(main())
