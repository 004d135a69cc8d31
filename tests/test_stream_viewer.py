"""web.stream.viewer: one viewer's bounded queue (no servers)."""

from scoreboard.events import EventId, PersonalEvent
from web.stream.viewer import FRAMED_PING, Viewer, frame


def personal(version, seq=1):
    return PersonalEvent.make(EventId(version, seq), 7, "score", b"{}")


def viewer(queue_max=3):
    return Viewer(user_id=7, jti="j", sid="s", expires_at=1e12, queue_max=queue_max)


def test_boards_coalesce_latest_wins_and_never_go_back():
    v = viewer()
    for version in (1, 2, 3):
        v.offer_board(version, b"board%d" % version)
    assert v.take() == b"board3"
    v.offer_board(2, b"board2")  # older than what was written
    v.offer_ping()
    assert v.take() == b": ping\n\n"


def test_personal_events_in_order_before_the_board_and_bounded():
    v = viewer(queue_max=2)
    assert v.offer_personal(personal(1))
    v.offer_board(2, b"B")
    assert v.offer_personal(personal(2))
    assert not v.offer_personal(personal(3)), "full: the hub disconnects this viewer"
    assert v.take() == personal(1).payload + personal(2).payload + b"B"
    assert v.offer_personal(personal(2)) and v.offer_personal(personal(1))  # already written: dropped
    v.finish(b"bye")
    assert v.take() == b"bye" and v.take() is None


def test_chunked_viewer_frames_what_it_writes():
    v = viewer()
    v.chunked = True
    v.offer_personal(personal(1))
    v.offer_board(2, b"B", frame(b"B"))
    assert v.take() == frame(personal(1).payload) + b"1\r\nB\r\n"
    v.offer_ping()
    assert v.take() == FRAMED_PING


def test_abort_drops_everything():
    v = viewer()
    v.offer_personal(personal(1))
    v.offer_board(1, b"B")
    v.abort()
    assert v.take() is None
