"""The OpenAPI description: served at /api/openapi.json, covers every REST route, and a
schemathesis run against the live server finds no server error and no off-schema answer."""

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tornado.web
import yaml

from handlers.routes import ID, RID, ROUTES
from helpers import ROOT, login

SPEC = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8"))
METHODS = ("get", "post", "put", "patch", "delete")


def described_paths(pattern):
    """The concrete OpenAPI paths a route regex serves (routes.ID is the id)."""
    alternatives = re.search(r"\(([a-z|]+)\)", pattern)
    paths = [pattern]
    if alternatives:
        paths = [pattern.replace(alternatives.group(0), word)
                 for word in alternatives.group(1).split("|")]
    return [p.replace(ID, "{id}", 1).replace(ID, "{eid}").replace(RID, "{rid}").replace("\\", "")
            for p in paths]


def test_every_rest_route_and_method_is_described_with_its_errors():
    for pattern, handler, *_ in ROUTES:
        if not isinstance(pattern, str) or not pattern.startswith("/api/"):
            continue  # (the first route matches oversized requests, not a path)
        for path in described_paths(pattern):
            assert path in SPEC["paths"], "%s (%s) is not in docs/openapi.yaml" % (
                path, handler.__name__)
            described = {m for m in SPEC["paths"][path] if m in METHODS}
            served = {m for m in METHODS
                      if getattr(handler, m) is not getattr(tornado.web.RequestHandler, m)}
            assert described == served, (path, described, served)
            for method in described:
                responses = SPEC["paths"][path][method]["responses"]
                assert "405" in responses, (path, method)
                if "requestBody" in SPEC["paths"][path][method]:
                    assert {"400", "413"} <= set(responses), (path, method)
                if SPEC["paths"][path][method].get("security"):
                    assert "401" in responses, (path, method)
    # PROTOCOL.md's results endpoint is described too.
    assert "/api/competencias/{id}/resultados/" in SPEC["paths"]


@pytest.mark.gen_test
async def test_the_description_is_served_as_json(client):
    code, served = await client.get("/api/openapi.json")
    assert code == 200
    assert served == SPEC
    assert served["openapi"].startswith("3.")


def schemathesis(server, token, tmp_path, *extra):
    argv = [str(Path(sys.executable).parent / "schemathesis"), "run",
            server.base_url + "/api/openapi.json",
            "--checks", "not_a_server_error,response_schema_conformance,"
                        "content_type_conformance,status_code_conformance",
            "--phases", "examples,coverage,fuzzing", "--max-examples", "15", "--workers", "1",
            "--request-timeout", "10", "--suppress-health-check", "all",
            "--generation-deterministic",
            "-H", "Authorization: Bearer " + token, *extra]
    return subprocess.run(argv, cwd=str(tmp_path), capture_output=True, text=True, timeout=600,
                          env=dict(server.env(), NO_COLOR="1", SCHEMATHESIS_HOOKS=""))


def test_schemathesis_finds_no_server_error_and_no_off_schema_answer(spawn, event, config,
                                                                    tmp_path):
    server = spawn(config["database"]["path"]).start()

    async def tokens():
        return [(await login(server.base_url, u, p))["access"]
                for u, p in (("org", "org-pass"), ("juez1", "pass-juez1"))]

    organizer, judge = asyncio.run(tokens())
    # As a judge: the judge's operations, fuzzed deeper. Then as the organizer: every operation
    # (after the judge's run: the organizer's may deactivate judges and change their passwords).
    for token, extra in ((judge, ("--include-path-regex", "^/api/(enviar_tiempos|ws-ticket|me)/")),
                         (organizer, ())):
        run = schemathesis(server, token, tmp_path, *extra)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "passed" in run.stdout
    assert "Uncaught exception" not in server.log()
    assert json.loads(json.dumps(SPEC))  # the YAML is plain JSON data
