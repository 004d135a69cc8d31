"""The OpenAPI document tells the whole truth: schemathesis runs every check against the
running web, authenticated (examples, coverage, fuzzing and stateful phases), and what the
document says about action types, text, security, the event stream and links is held
against what the service does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests import invariants
from tests.client import Player
from tests.test_admin import flagged_submission, make_admin
from web import schemas

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "60"))
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


# Requests that fit their schema and are still refused, as the contract says, for what no
# schema can state: a cursor the service did not issue (400 invalid_cursor), a season that
# ends before it starts, in the past, or on a board that has no seasons (422).
ACCEPTED = '["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"'
REFUSALS_NO_SCHEMA_STATES = f"""
[[operations]]
include-path = ["/api/boards/{{board}}", "/api/boards/{{board}}/periods"]
include-method = "GET"
[operations.checks.positive_data_acceptance]
expected-statuses = {ACCEPTED}, "400"]
[[operations]]
include-path = "/api/admin/boards/{{board}}/periods"
include-method = "POST"
[operations.checks.positive_data_acceptance]
expected-statuses = {ACCEPTED}, "422"]
"""

# each security scheme of the document, and what of the login answer it takes
TOKENS = {"bearerAuth": "/access_token", "refreshToken": "/refresh_token", "accessTokenQuery": "/access_token",
          "accessTokenCookie": "/access_token"}


def config(username: str, password: str) -> str:
    """schemathesis.toml: log in as ``username`` for each scheme's token, again after a 401
    (the run logs out); no made-up value beside a real token (a valid header and a garbage
    query token at once is answered by the header, as the contract orders them); read one
    event of the stream; a request refused for its size before the app (414, 431) is a
    refusal too."""
    auth = "".join(f"""[auth.dynamic.openapi.{scheme}]
path = "/api/auth/login"
payload = {{ username = "{username}", password = "{password}" }}
retry_on = [401]
extract_selector = "{selector}"
""" for scheme, selector in TOKENS.items())
    return f"""request-timeout = 15
max-stream-events = 1
[generation]
with-security-parameters = false
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429",
                     "431"]
{auth}{REFUSALS_NO_SCHEMA_STATES}"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_schemathesis_finds_nothing_with_every_check_authenticated(api, db, r, settings, tmp_path):
    admin = make_admin(api, db)
    player = Player(api)
    player.earn(3)
    flagged_submission(player, 2)  # a flag to list and resolve
    invariants.wait_until_settled(r, settings.redis_prefix)
    path = tmp_path / "schemathesis.toml"
    path.write_text(config(admin.username, admin.password))
    argv = [str(SCHEMATHESIS), "--config-file", str(path), "--no-color", "run", f"{api}/api/openapi.json",
            "--checks", "all", "--max-examples", str(EXAMPLES), "--seed", "1", "--workers", "1",
            "--phases", "examples,coverage,fuzzing,stateful", "--suppress-health-check", "all"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=840)  # its cache stays there
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-3000:]
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert tested and int(tested.group(1)) >= 18, done.stdout[-3000:]  # every operation of the document
    invariants.wait_until_settled(r, settings.redis_prefix)
    invariants.check(db, r, settings.redis_prefix)


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def test_the_document_lists_the_configured_action_types(api, settings):
    document = requests.get(f"{api}/api/openapi.json").json()
    action_type = document["components"]["schemas"]["ActionRequest"]["properties"]["action_type"]
    assert action_type["enum"] == list(settings.actions.by_name) and "tap" in action_type["enum"]


def test_every_text_a_request_takes_states_what_it_refuses(api):
    """Each string of a request body or query has an enum, or patterns that refuse what
    ``Strict`` refuses (a NUL character, an unpaired surrogate) and take any other text."""
    document = requests.get(f"{api}/api/openapi.json").json()
    components = document["components"]["schemas"]
    texts = []
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if path == "/api/scoreboard/stream":
                continue  # refuses no text: a malformed last_event_id opens a fresh stream
            if parameter["in"] == "query" and parameter["schema"].get("type") == "string":
                texts.append((f"{method} {path} ?{parameter['name']}", parameter["schema"]))
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body:
            for name, prop in components[body["$ref"].rsplit("/", 1)[1]]["properties"].items():
                if prop.get("type") == "string":
                    texts.append((f"{method} {path} {name}", prop))
    assert len(texts) >= 10
    for label, prop in texts:
        if "enum" in prop:
            continue
        patterns = [prop["pattern"], *(part["pattern"] for part in prop.get("allOf", []))]
        for bad in ("a\x00b", "a\ud800b", "\udc00"):
            assert any(not re.search(p, bad) for p in patterns), (label, bad)
        if patterns[0] in (schemas.NO_NUL_PATTERN,):
            for good in ("a\U0001F600b", "ordinary words", ""):
                assert all(re.search(p, good) for p in patterns), (label, good)


def test_security_is_declared_exactly_where_a_token_is_required(api, db):
    """An operation that answers an anonymous caller 401 declares its token in
    ``security``; one that serves anonymous callers declares none."""
    document = requests.get(f"{api}/api/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    for path, method, operation in operations(document):
        url = api + re.sub(r"\{[^}]+\}", "1", path)
        resp = requests.request(method, url, json={}, timeout=10, stream=True)
        resp.close()
        declared = operation.get("security", [])
        assert (resp.status_code == 401) == (bool(declared) and {} not in declared), (method, path, resp.status_code)
        for requirement in declared:
            assert set(requirement) <= set(schemes), (method, path)


def test_every_link_leads_to_an_operation_and_its_parameters(api):
    document = requests.get(f"{api}/api/openapi.json").json()
    found = 0
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            for name, link in response.get("links", {}).items():
                found += 1
                pointer = link["operationRef"].removeprefix("#/paths/").split("/")
                target_path = pointer[0].replace("~1", "/").replace("~0", "~")
                target = document["paths"][target_path][pointer[1]]
                names = {p["name"] for p in target.get("parameters", []) + document["paths"][target_path].get(
                    "parameters", [])}
                assert set(link.get("parameters", {})) <= names, (method, path, name)
                if "requestBody" in link:
                    body = target["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                    assert set(link["requestBody"]) <= set(document["components"]["schemas"][body]["properties"])
    assert found >= 6
