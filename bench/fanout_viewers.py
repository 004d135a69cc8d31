"""Viewers for ``bench/fanout.py``, in a process of their own: N event streams on raw gevent
sockets, recording when each board event arrives on each connection.

    python bench/fanout_viewers.py PORT TOKENS_FILE OUT_FILE

Prints ``ready <n>`` once every stream has shown its first board, then reads stdin until
a line ``stop``, writes ``[[viewer, version, first entry's score, arrival], ...]`` (arrival
in ``time.monotonic()`` seconds, comparable across processes on one machine) to OUT_FILE
and prints ``done``.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

BOARD = re.compile(rb'event: scoreboard\nid: (\d+)\ndata: \{"entries":\[(?:\{"rank":\d+,"user_id":\d+,'
                   rb'"username":"[^"]*","score":(-?\d+))?')


def raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def viewer(index: int, port: int, token: str, records: list, first: list, stop: Event) -> None:
    try:
        watch(index, port, token, records, first, stop)
    except OSError:
        first[1] += 1


def watch(index: int, port: int, token: str, records: list, first: list, stop: Event) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET /api/scoreboard/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n"
                 .encode())
    tail = b""
    seen = set()
    while not stop.is_set():
        data = sock.recv(65536)
        if not data:
            break
        arrival = time.monotonic()
        buffer = tail + data
        for match in BOARD.finditer(buffer):
            version = int(match.group(1))
            if version not in seen:
                seen.add(version)
                score = int(match.group(2)) if match.group(2) is not None else None
                records.append((index, version, score, arrival))
                if len(seen) == 1:
                    first[0] += 1
        tail = buffer[-600:]
    sock.close()


def main() -> int:
    port, tokens_file, out_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    raise_open_files()
    tokens = json.load(open(tokens_file))
    records: list = []
    first = [0, 0]  # streams that showed a board, streams that failed
    stop = Event()
    greenlets = []
    for i, token in enumerate(tokens):  # at most 200 connecting at a time
        greenlets.append(gevent.spawn(viewer, i, port, token, records, first, stop))
        gevent.sleep(0)
        while len(greenlets) - first[0] - first[1] > 200:
            gevent.sleep(0.01)
    deadline = time.monotonic() + 120
    while first[0] + first[1] < len(tokens) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    print(f"ready {first[0]} failed {first[1]}", flush=True)
    gevent.get_hub().threadpool.spawn(sys.stdin.readline).get()
    stop.set()
    with open(out_file, "w") as fh:
        json.dump(records, fh)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
