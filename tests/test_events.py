"""scoreboard.events: event ids, SSE encoding, messages and the replay window (no servers)."""

import orjson
import pytest

from scoreboard.events import ZERO, EventId, PersonalEvent, ReplayWindow, after_board, parse_event_id, \
    parse_message, sse


@pytest.mark.parametrize("raw, expected", [
    ("17", EventId(17, 0)), ("17-3", EventId(17, 3)), (b"5-0", EventId(5, 0)), (" 9-2 ", EventId(9, 2)),
    ("", None), ("x", None), ("1-", None), ("-1", None), ("1-2-3", None), ("1.5", None), (None, None), ("9" * 60, None),
    ("\xb2", None), ("1-\xb2", None), ("\u0661\u0662", None),  # digits to str.isdigit(), not to int() or to us
])
def test_parse_event_id(raw, expected):
    assert parse_event_id(raw) == expected


def test_ids_order_boards_before_their_personal_events():
    assert EventId(5, 0) < EventId(5, 1) < after_board(5) < EventId(6, 0)
    assert str(EventId(5, 2)) == "5-2"


def test_sse_encoding():
    assert sse("scoreboard", b'{"a":1}', "7") == b'event: scoreboard\nid: 7\ndata: {"a":1}\n\n'
    assert sse(data=b"one\ntwo", retry_ms=300) == b"retry: 300\ndata: one\ndata: two\n\n"


def test_parse_message_shapes():
    m = parse_message(orjson.dumps({"version": 9, "boards": {"all-time": {"entries": []}, "daily": {"entries": [1]}},
                                    "closed": [{"board": "daily", "period": "2026-11-29"}], "personal": [
        {"id": "9-1", "user_id": 4, "event": "score", "data": {"job_id": "j"}}]}))
    assert m.version == 9 and orjson.loads(m.board) == {"entries": []}
    assert {k: orjson.loads(v) for k, v in m.boards.items()} == {"all-time": {"entries": []}, "daily": {"entries": [1]}}
    assert [(board, orjson.loads(data)["period"]) for board, data in m.closed] == [("daily", "2026-11-29")]
    assert m.personal[0].id == EventId(9, 1) and m.personal[0].user_id == 4
    assert m.personal[0].payload == b'event: score\nid: 9-1\ndata: {"job_id":"j"}\n\n'
    assert parse_message(b'{"version": 3, "boards": {}, "personal": []}').board is None
    assert parse_message(b'{"logout": {"sid": "s", "jti": "j"}}').logout == {"sid": "s", "jti": "j"}
    for bad in (b"[]", b'{"version": "x"}', b'{"logout": 1}'):
        with pytest.raises((ValueError, KeyError, TypeError)):
            parse_message(bad)


def _event(version, seq, user):
    return PersonalEvent.make(EventId(version, seq), user, "score", b"{}")


def test_replay_window_per_user_and_bounded():
    window = ReplayWindow(size=4)
    for version, seq, user in [(1, 1, 7), (1, 2, 8), (2, 1, 7), (3, 1, 7)]:
        assert window.append(_event(version, seq, user))
    assert not window.append(_event(2, 5, 7)), "older than the newest: refused"
    assert [e.id for e in window.since(7, EventId(1, 1))] == [EventId(2, 1), EventId(3, 1)]
    assert [e.id for e in window.since(7, EventId(2, 0))] == [EventId(2, 1), EventId(3, 1)]
    assert window.since(8, ZERO) == [window.since(8, ZERO)[0]] and window.since(9, ZERO) == []
    window.append(_event(4, 1, 9))  # drops (1, 1)
    assert window.floor == EventId(1, 1)
    assert window.since(7, ZERO) is None, "events after 0 may be lost now"
    assert [e.id for e in window.since(7, EventId(1, 1))] == [EventId(2, 1), EventId(3, 1)]
    assert len(window) == 4
