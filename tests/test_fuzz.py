"""Generated requests against the running service: schemathesis builds valid and invalid
requests for every operation of the OpenAPI document, Hypothesis adds credentials, content
types, headers and unknown paths. Whatever comes, the answer is never a 5xx, every error
has the contract's shape, and a refused request changes nothing in PostgreSQL or Redis."""

from __future__ import annotations

import os
import string

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from scoreboard.redis_client import Keys
from tests import invariants, state
from tests.client import Player
from tests.test_admin import flagged_submission, make_admin

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))

CONTENT_TYPES = [None, "application/json", "application/json; charset=utf-8", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", ""]
PRINTABLE = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=80)
PATH_CHARS = string.ascii_letters + string.digits + "-._~/%20"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def header(response, name: str) -> str:
    """A response header from requests' or schemathesis' response (a dict of lists there)."""
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return ""


def assert_contract_error(response, label):
    assert header(response, "Content-Type").startswith("application/json"), (label, response.text[:300])
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str), label


@pytest.mark.timeout(240)
def test_generated_requests_never_fail_the_server_and_refusals_change_nothing(api, db, r, settings):
    keys = Keys(settings.redis_prefix)
    admin, player = make_admin(api, db), Player(api)
    player.earn(3)
    flagged_submission(player, 2)  # a flag to list, approve or revert
    invariants.wait_until_settled(r, settings.redis_prefix)
    r.set(keys.board_ready("all-time", "all"), 1)
    users = {"admin": admin, "player": player}

    schema = schemathesis.openapi.from_url(f"{api}/api/openapi.json")
    cases = st.one_of(schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE))
    credentials = st.sampled_from(["admin", "player", None, "garbage", "refresh"])
    extra_headers = st.dictionaries(st.sampled_from(["X-Request-ID", "Prefer", "Origin", "Accept", "X-Forwarded-For"]),
                                    PRINTABLE, max_size=2)

    def bearer(who):
        if who in users:
            return users[who].tokens["access_token"]
        if who == "refresh":
            return player.tokens["refresh_token"]
        return who

    def call(send):
        before = state.snapshot(db, r, settings.redis_prefix)
        response, label = send()
        assert response.status_code < 500, (label, response.status_code, response.text[:500])
        if response.status_code >= 400:
            if response.request.method != "HEAD":
                assert_contract_error(response, label)
            after = state.snapshot(db, r, settings.redis_prefix)
            assert after == before, (label, response.status_code, state.diff(before, after))
        else:
            # let anything it accepted settle, so that it cannot move state during the next call
            invariants.wait_until_settled(r, settings.redis_prefix)
            r.set(keys.board_ready("all-time", "all"), 1)
            if label.endswith("POST /api/auth/logout") and response.status_code == 200:
                for user in users.values():
                    user.login()  # keep the shared tokens alive for the next examples

    @hsettings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
               suppress_health_check=list(HealthCheck))
    @given(case=cases, who=credentials, content_type=st.sampled_from(CONTENT_TYPES), headers=extra_headers)
    def documented(case, who, content_type, headers):
        headers = {k: v.strip() or "x" for k, v in headers.items()}
        token = bearer(who)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type is not None and case.method.upper() == "POST":
            headers["Content-Type"] = content_type

        def send():
            label = f"{case.method.upper()} {case.formatted_path} {case.body!r:.200} <- {case.operation.label}"
            # the same request through requests, streamed: the live stream never ends by
            # itself, so its status and headers are all this test reads of a 200
            kwargs = case.as_transport_kwargs(base_url=api, headers=headers)
            response = requests.request(**kwargs, timeout=15, stream=True)
            if header(response, "Content-Type").startswith("text/event-stream"):
                response.close()
            return response, label

        call(send)

    @hsettings(max_examples=max(EXAMPLES // 4, 10), deadline=None, database=None, phases=[Phase.generate],
               suppress_health_check=list(HealthCheck))
    @given(prefix=st.sampled_from(["/api/", "/api/admin/", "/api/score/", "/admin/rq/", "/"]),
           rest=st.text(alphabet=PATH_CHARS, max_size=40), method=st.sampled_from(METHODS),
           who=credentials, body=st.one_of(st.none(), st.binary(max_size=200)))
    def undocumented(prefix, rest, method, who, body):
        headers = {"Authorization": f"Bearer {bearer(who)}"} if bearer(who) else {}

        def send():
            response = requests.request(method, f"{api}{prefix}{rest}", data=body, headers=headers, timeout=15,
                                        stream=True)
            if header(response, "Content-Type").startswith("text/event-stream"):
                response.close()
            return response, f"{method} {prefix}{rest}"

        call(send)

    documented()
    undocumented()
    invariants.check(db, r, settings.redis_prefix)
