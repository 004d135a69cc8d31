"""The stream processes as operators run them: several at once, slow viewers, restarts,
SIGTERM, and a lost Redis subscription."""

from __future__ import annotations

import signal
import socket
import time

from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.sse import Stream
from tests.streams import (Publisher, board_entries, live, rss_kib, stream_env, stream_environment,  # noqa: F401
                           stream_server, worker_pids)


def test_two_stream_processes_both_deliver_every_event(live, stream_server, stream_env):
    second, base2 = processes.start_stream(stream_env, LOG_DIR)
    p = Player(live)
    streams = [Stream(stream_server.base, p.tokens["access_token"]), Stream(base2, p.tokens["access_token"])]
    try:
        for s in streams:
            assert s.status == 200
            s.next(), s.next()
        result = p.earn(8)
        for s in streams:
            assert s.until(lambda e: e.event == "score").json()["job_id"] == result["job_id"]
            assert s.until(lambda e: e.event == "scoreboard").json()["entries"][0]["score"] == 8
    finally:
        for s in streams:
            s.close()
        second.stop()


def _stalled_viewer(base: str, token: str) -> socket.socket:
    """A viewer that opens a stream and then reads nothing (a tiny receive buffer)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /api/scoreboard/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
                 .encode())
    return sock


def _until_closed(sock: socket.socket, timeout: float) -> bool:
    """Read what the server had sent; True once it has closed the connection."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 16):
                return True
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True
    return False


def test_a_stuck_viewer_neither_delays_others_nor_grows_memory(live, stream_server, r, settings):
    slow_player, fast_player = Player(live), Player(live)
    fast = Stream(stream_server.base, fast_player.tokens["access_token"])
    slow = _stalled_viewer(stream_server.base, slow_player.tokens["access_token"])
    publisher = Publisher(r, settings)
    (worker,) = worker_pids(stream_server.proc.pid)
    try:
        fast.next(), fast.next()
        padding = "x" * 4000
        for i in range(20):  # warm up, then measure
            publisher.publish(board_entries([i]), [(slow_player.id, "score", {"job_id": f"w{i}", "pad": padding})])
        fast.until(lambda e: e.event == "scoreboard" and e.json()["entries"][0]["score"] == 19)
        baseline = rss_kib(worker)
        peak, lags = baseline, []
        for i in range(600):  # ~2.4 MB of events the slow viewer never reads
            version = publisher.publish(board_entries([1000 + i]),
                                        [(slow_player.id, "score", {"job_id": f"j{i}", "pad": padding})])
            if i % 100 == 99:
                sent = time.monotonic()
                shown = fast.until(lambda e: e.event == "scoreboard" and int(e.id) >= version, timeout=10)
                lags.append(shown.at - sent)
                peak = max(peak, rss_kib(worker))
        assert len(lags) == 6  # the fast viewer saw the latest board every time, while the slow one was stuck
        assert peak - baseline < 30 * 1024, f"stream process grew by {peak - baseline} KiB"
        assert _until_closed(slow, timeout=15), "the stuck viewer was never disconnected"
        assert not fast.ended.is_set()
    finally:
        slow.close()
        fast.close()


def test_graceful_shutdown_tells_viewers_to_reconnect(live, base_env):
    proc, base = processes.start_stream(stream_environment(base_env, GRACEFUL_TIMEOUT=8), LOG_DIR)
    try:
        viewers = [Stream(base, Player(live).tokens["access_token"]) for _ in range(3)]
        for s in viewers:
            s.next(), s.next()
        stopping = time.monotonic()
        proc.kill(signal.SIGTERM)
        for s in viewers:
            rest = [e for e in s.wait_end(timeout=8) if e.event != ":"]
            assert rest[-1].event == "reconnect" and rest[-1].json() == {"reason": "shutdown"}
            assert rest[-1].retry and rest[-1].retry > 0
        proc.proc.wait(timeout=8)
        assert time.monotonic() - stopping < 8
        assert proc.proc.returncode == 0
        assert "graceful timeout" not in proc.output().lower()
    finally:
        proc.stop()


def test_restarted_stream_process_serves_reconnects(live, base_env):
    env = stream_environment(base_env)
    port = processes.free_port()
    proc, base = processes.start_stream(env, LOG_DIR, port=port)
    p = Player(live)
    try:
        s = Stream(base, p.tokens["access_token"])
        s.next(), s.next()
        p.earn(2)
        last = s.until(lambda e: e.event == "score").id
        proc.stop()
        assert s.wait_end(timeout=5) is not None
        job = p.earn(3)["job_id"]  # while no stream process runs
        proc, base = processes.start_stream(env, LOG_DIR, port=port)
        again = Stream(base, p.tokens["access_token"], last_event_id=last)
        assert again.status == 200
        again.next()
        assert again.next().json()["entries"][0]["score"] == 5
        assert again.next().json()["job_id"] == job  # replayed from the capped stream
        again.close()
    finally:
        proc.stop()


def test_lost_subscription_catches_up_from_redis(live, stream_server, r, settings):
    p = Player(live)
    s = Stream(stream_server.base, p.tokens["access_token"])
    try:
        s.next(), s.next()
        (worker,) = worker_pids(stream_server.proc.pid)
        name = f"{settings.redis_prefix}stream:{worker}"
        killed = 0
        for client in r.client_list():
            if client.get("name") == name and int(client.get("sub", 0)) > 0:
                r.client_kill_filter(_id=client["id"])
                killed += 1
        assert killed == 1
        job = p.earn(5)["job_id"]  # published while the process may not be subscribed
        assert s.until(lambda e: e.event == "score", timeout=10).json()["job_id"] == job
        assert s.until(lambda e: e.event == "scoreboard", timeout=10).json()["entries"][0]["score"] == 5
    finally:
        s.close()
