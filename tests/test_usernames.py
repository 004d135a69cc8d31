"""Usernames: the API, the database and every place a name is shown agree on what a name is.

A name with a trailing newline once passed the pattern check (``$`` matches before a final
newline in Python), reached the top 10 and broke the board's JSON for everyone, because the
board's Lua built JSON by string formatting. These tests hold each class of that fault:
patterns match whole strings, JSON is encoded, and PostgreSQL refuses what the API refuses.
"""

import json
from datetime import datetime, timezone

import marshmallow as ma
import psycopg2
import pytest
import requests
from alembic import command
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from scoreboard import ranking
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from tests import services
from tests.client import Player
from tests.sse import Stream
from tests.test_admin import make_admin
from tests.test_migrations import config
from web import schemas


def _regex_validators():
    for name in dir(schemas):
        cls = getattr(schemas, name)
        if isinstance(cls, type) and issubclass(cls, ma.Schema) and cls is not ma.Schema:
            for field_name, field in cls().fields.items():
                for validator in field.validators:
                    if isinstance(validator, ma.validate.Regexp):
                        yield f"{name}.{field_name}", validator


def test_every_pattern_in_the_schemas_matches_the_whole_string():
    found = dict(_regex_validators())
    assert "Credentials.username" in found and "SubmissionRequest.signature" in found
    for where, validator in found.items():
        assert isinstance(validator, schemas.FullMatch), f"{where} uses re.match, which lets a trailing newline through"


@pytest.mark.parametrize("value", ["alice\n", "alice\r\n", "\nalice", "al\nce", "a" * 32 + "\n", "alice\x00"])
def test_a_username_with_anything_around_it_is_refused(value):
    with pytest.raises(ma.ValidationError):
        schemas.Credentials().load({"username": value, "password": "long enough"})
    with pytest.raises(ma.ValidationError):
        schemas.SubmissionRequest().load({"action_token": "t", "score_delta": 1, "completed_at": 1,
                                           "signature": "a" * 64 + "\n"})


def test_register_refuses_a_trailing_newline_with_422_and_stores_nothing(api, db):
    for name in ("tail\n", "x" * 32 + "\n"):
        resp = requests.post(f"{api}/api/auth/register", json={"username": name, "password": "long enough"})
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["code"] == "invalid_request"
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM users")
        assert cur.fetchone()[0] == 0


def test_names_are_one_name_regardless_of_case(api):
    alice = Player(api, username="Alice")
    taken = requests.post(f"{api}/api/auth/register", json={"username": "aLICE", "password": "long enough"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "username_taken"
    login = requests.post(f"{api}/api/auth/login", json={"username": "ALICE", "password": alice.password})
    assert login.status_code == 200, login.text
    me = requests.get(f"{api}/api/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert me.json()["id"] == alice.id and me.json()["username"] == "Alice"


def test_postgresql_refuses_what_the_api_refuses(db):
    with db.cursor() as cur:
        for bad in ("tail\n", "ab", "x" * 33, "has space", "quote\"", "é" * 4):
            with pytest.raises((psycopg2.errors.CheckViolation, psycopg2.errors.StringDataRightTruncation)):
                cur.execute("INSERT INTO users (username, password_hash) VALUES (%s, 'x')", (bad,))
        cur.execute("INSERT INTO users (username, password_hash) VALUES ('Casey', 'x')")
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("INSERT INTO users (username, password_hash) VALUES ('casey', 'x')")
        cur.execute("SELECT id FROM users WHERE username = 'Casey'")
        uid = cur.fetchone()[0]
        with pytest.raises(psycopg2.errors.CheckViolation):
            cur.execute("INSERT INTO score_flags (user_id, history_id, submission_id, action_id, score_change,"
                        " rules, state) VALUES (%s, 1, 's', 'a', 1, '{}', 'maybe')", (uid,))
        with pytest.raises(psycopg2.errors.CheckViolation):
            cur.execute("INSERT INTO score_history (user_id, score_change, new_score, reason)"
                        " VALUES (%s, 1, 1, 'gift')", (uid,))
        cur.execute("DELETE FROM users WHERE id = %s", (uid,))


def test_the_migration_renames_rows_that_break_the_rules_and_keeps_them_apart():
    url = services.create_database()
    try:
        cfg = config(url)
        command.upgrade(cfg, "0003")
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in ("Alice", "alice", "ALICE", "tail\n", "tail_", "a b", "ok"):
                cur.execute("INSERT INTO users (username, password_hash) VALUES (%s, 'x')", (name,))
        command.upgrade(cfg, "head")
        with conn.cursor() as cur:
            cur.execute("SELECT id, username FROM users ORDER BY id")
            names = dict(cur.fetchall())
        assert names[1] == "Alice"  # the oldest of the case duplicates keeps its name
        assert len({n.lower() for n in names.values()}) == len(names)
        assert all(schemas.FullMatch(schemas.USERNAME_PATTERN)(n) for n in names.values())
        assert names[5] == "tail_" and names[4] == "tail_-4"  # the clean form, then made unique
        assert names[6] == "a_b" and names[7] == "ok_"
        command.downgrade(cfg, "0003")
        command.upgrade(cfg, "head")
        conn.close()
    finally:
        services.drop_database(url)


# Names the API might be sent: valid ones with every character class, and near misses.
NAMES = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.-]{3,32}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.-]{3,32}", fullmatch=True).map(lambda n: n + "\n"),
    st.text(st.sampled_from('abc."\\/<>&\'\n\r\t\u2028é-_'), min_size=3, max_size=33),
)


@pytest.mark.slow
def test_any_name_the_api_accepts_survives_the_board_the_stream_and_the_admin_api(api, db):
    admin = make_admin(api, db)
    seen = set()

    @hyp_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(NAMES)
    def check(name):
        resp = requests.post(f"{api}/api/auth/register", json={"username": name, "password": "long enough"})
        if name.lower() in seen:
            assert resp.status_code == 409, resp.text
            return
        if resp.status_code != 201:
            assert resp.status_code == 422, resp.text
            assert schemas.FullMatch(schemas.USERNAME_PATTERN).regex.fullmatch(name) is None
            return
        seen.add(name.lower())
        player = Player.registered(api, name, "long enough")
        assert player.id == resp.json()["id"]
        player.earn(1000)  # 'tap' at its maximum: the top of the board, since every other player is banned
        board = requests.get(f"{api}/api/scoreboard")
        assert board.json()["entries"][0] == {"rank": 1, "user_id": player.id, "username": name, "score": 1000}
        stream = Stream(api, player.tokens["access_token"])
        try:
            first = stream.until(lambda e: e.event == "scoreboard")
            assert first.json()["entries"][0]["username"] == name
        finally:
            stream.close()
        banned = admin.http.post(f"{api}/api/admin/users/{player.id}/ban")
        assert banned.status_code == 200 and banned.json()["username"] == name
        assert json.loads(requests.get(f"{api}/api/scoreboard").text)["entries"] == []

    check()
    assert seen, "no example reached the board"


@pytest.mark.parametrize("name", ['quo"te', "back\\slash", "new\nline", "tab\t", "</script>", "\u2028", "é😀", "\x01"])
def test_the_board_scripts_encode_whatever_text_a_name_holds(name, r, settings):
    """Defence in depth behind the constraints: the Lua that builds the board's JSON and
    the personal results encodes text, whatever a row or a hash holds."""
    keys = Keys(f"{settings.redis_prefix}names:")
    scripts = Scripts(r)
    r.delete(keys.board_ranking("all-time", "all"), keys.board_guard("all-time", "all", 7), keys.usernames)
    ranking_member = ranking.member(7, datetime.now(timezone.utc))
    scripts.rebuild(keys=[keys.usernames], args=[keys.board_base("all-time", "all"), 7, 1, 50, ranking_member, name])
    r.set(keys.board_ready("all-time", "all"), 1)
    reply = ranking.refresh(scripts, keys, "all-time", "all", 5, force=True)
    for body in (reply[1], reply[2]):
        assert json.loads(body)["entries"] == [{"rank": 1, "user_id": 7, "username": name, "score": 50}]
        assert json.loads(body)["board"] == "all-time"
