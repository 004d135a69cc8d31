"""Viewers for ``bench/fanout.py``, in a process of their own: N event streams on plain
non-blocking sockets and one epoll loop, recording when each board event arrives on
each connection.

    python bench/fanout_viewers.py PORT TOKENS_FILE OUT_FILE

Prints ``ready <n> failed <m>`` once every stream has shown its first board, then reads
until a line ``stop`` on stdin, writes ``[[viewer, version, first entry's score, arrival],
...]`` (arrival in ``time.monotonic()`` seconds, comparable across processes on one
machine) to OUT_FILE, prints ``done <cpu seconds used>``.

The same viewers measure our stream process and the bare reference
(``bench/bare_stream_app.py``), so whatever they cost is the same on both sides. They
are one epoll loop rather than a greenlet each: the arrival time of every socket in one
``epoll.poll`` batch is the time that poll returned (the bytes were in the kernel by
then), so the viewers' own Python work does not add to the figures as long as they
keep up with the server, which they do with a core of their own.
"""

from __future__ import annotations

import json
import re
import resource
import select
import socket
import sys
import time

BOARD = re.compile(rb'event: scoreboard\nid: (\d+)\ndata: \{"entries":\[(?:\{"rank":\d+,"user_id":\d+,'
                   rb'"username":"[^"]*","score":(-?\d+))?')
CONNECTING_MAX = 200  # streams opened but not yet showing their first board


def raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Streams:
    def __init__(self, port: int):
        self.port = port
        self.poll = select.epoll()
        self.socks: dict[int, socket.socket] = {}
        self.index: dict[int, int] = {}
        self.tail: dict[int, bytes] = {}
        self.seen: dict[int, set] = {}
        self.records: list = []
        self.showing = 0  # streams that have shown their first board
        self.failed = 0
        self.stop = False

    def open(self, i: int, token: str) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.sendall(f"GET /api/scoreboard/stream HTTP/1.1\r\nHost: bench\r\n"
                         f"Authorization: Bearer {token}\r\n\r\n".encode())
        except OSError:
            self.failed += 1
            return
        sock.setblocking(False)
        fd = sock.fileno()
        self.socks[fd], self.index[fd], self.tail[fd], self.seen[fd] = sock, i, b"", set()
        self.poll.register(fd, select.EPOLLIN)

    def close(self, fd: int) -> None:
        sock = self.socks.pop(fd)
        self.poll.unregister(fd)
        sock.close()
        if not self.seen[fd]:
            self.failed += 1

    def step(self, timeout: float) -> None:
        events = self.poll.poll(timeout, 4096)
        arrival = time.monotonic()
        for fd, _ in events:
            if fd == 0:
                if sys.stdin.readline().strip() in ("stop", ""):
                    self.stop = True
                continue
            sock = self.socks.get(fd)
            if sock is None:
                continue
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self.close(fd)
                continue
            buffer = self.tail[fd] + data
            self.tail[fd] = buffer[-600:]
            for match in BOARD.finditer(buffer):
                version = int(match.group(1))
                seen = self.seen[fd]
                if version not in seen:
                    seen.add(version)
                    score = int(match.group(2)) if match.group(2) is not None else None
                    self.records.append((self.index[fd], version, score, arrival))
                    if len(seen) == 1:
                        self.showing += 1


def main() -> int:
    port, tokens_file, out_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    raise_open_files()
    with open(tokens_file) as fh:
        tokens = json.load(fh)
    streams = Streams(port)
    for i, token in enumerate(tokens):
        streams.open(i, token)
        while i + 1 - streams.showing - streams.failed > CONNECTING_MAX:
            streams.step(0.01)
    deadline = time.monotonic() + 120
    while streams.showing + streams.failed < len(tokens) and time.monotonic() < deadline:
        streams.step(0.05)
    print(f"ready {streams.showing} failed {len(tokens) - streams.showing}", flush=True)
    streams.poll.register(0, select.EPOLLIN)
    cpu_before = time.process_time()
    while not streams.stop:
        streams.step(1.0)
    cpu = time.process_time() - cpu_before
    with open(out_file, "w") as fh:
        json.dump(streams.records, fh)
    print(f"done {cpu:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
