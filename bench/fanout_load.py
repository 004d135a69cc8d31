"""The load generator of the end-to-end part of ``bench/fanout.py``, in a process of its own
(pinned to the client core by its caller): submissions at a steady rate over keep-alive
HTTP/1.1 connections, and every ``probe_every`` seconds a probe submission of one user
whose new score tops the board.

    python bench/fanout_load.py PLAN_FILE OUT_FILE

PLAN_FILE (JSON): ``port``, ``rate`` (submissions/s), ``seconds``, ``connections``,
``warmup`` (seconds before the first probe), ``probe_every``, ``probe_start_score`` (the
probe user's score before the run), ``submissions`` (a list of ``[access token, action
token, secret, delta]``, pre-issued, at least rate * seconds) and ``probes`` (the same, for
the probe user). Submission ``i`` is due at ``start + i / rate``
(open loop: a slow answer does not slow the schedule; the lag behind it is reported).

Writes to OUT_FILE: the probes (``[POST time, expected top score]``, ``time.monotonic()``),
status counts, the 20 slowest submissions ([due s after the start, latency ms]), accept latency
(from the time a submission was due, or posted if sooner, to its
202) percentiles, the achieved rate, the largest
lag behind the schedule, the start (``time.monotonic()``, from which the due times count)
and this process's CPU seconds; prints ``done``.
"""

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import gevent  # noqa: E402
from latency import percentiles  # noqa: E402  (run as a script: bench/ is on sys.path)


def sign(secret: str, token: str, delta: int, completed_at: int) -> str:
    key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    return hmac.new(key, f"{token}.{delta}.{completed_at}".encode(), hashlib.sha256).hexdigest()


class Http:
    """One keep-alive connection; POST a JSON body, read the status and body."""

    def __init__(self, port: int):
        self.port = port
        self.sock = None
        self.buffer = b""

    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def post(self, path: str, token: str, body: bytes) -> int:
        if self.sock is None:
            self.connect()
        self.sock.sendall(b"POST %s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n"
                          b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                          % (path.encode(), token.encode(), len(body), body))
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            self.buffer = rest
            self._read()
            rest = self.buffer
        self.buffer = rest[length:]
        return status

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self.sock.close()
            self.sock = None
            raise ConnectionError("closed")
        self.buffer += data


def main() -> int:
    plan = json.load(open(sys.argv[1]))
    out_file = sys.argv[2]
    rate, seconds = plan["rate"], plan["seconds"]
    total = int(rate * seconds)
    subs, probes_in = plan["submissions"], plan["probes"]
    probe_every = plan["probe_every"]
    next_index = [0]
    statuses: Counter = Counter()
    accept_latency: list[float] = []
    slow: list[tuple[float, float]] = []  # (latency, due time after the start)
    probes: list = []
    lag = [0.0]
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    connections = [Http(plan["port"]) for _ in range(plan["connections"])]
    for http in connections:  # opened before the clock starts, as a client's pool would be
        http.connect()
    start = time.monotonic() + 0.2

    # probe k replaces the submission due at warm-up + k * probe_every
    probe_at = {}
    for k, probe in enumerate(probes_in):
        i = int((plan["warmup"] + k * probe_every) * rate)
        if i >= total:
            break
        probe_at[i] = probe

    def connection(http: Http) -> None:
        while True:
            i = next_index[0]
            if i >= total:
                return
            next_index[0] += 1
            due = start + i / rate
            wait = due - time.monotonic()
            if wait > 0:
                gevent.sleep(wait)
            else:
                lag[0] = max(lag[0], -wait)
            probe = i in probe_at
            access, action, secret, delta = probe_at[i] if probe else subs[i]
            completed = time.time_ns() // 1_000_000
            body = json.dumps({"action_token": action, "score_delta": delta, "completed_at": completed,
                               "signature": sign(secret, action, delta, completed)}).encode()
            t_post = time.monotonic()
            try:
                status = http.post("/api/score/update", access, body)
            except OSError:
                status = 0
            statuses[status] += 1
            if status == 202:  # from when it was due: waiting for a free connection counts too
                accept_latency.append(time.monotonic() - min(due, t_post))
                slow.append((accept_latency[-1], due - start))
                if probe:
                    probes.append((t_post, delta))

    workers = [gevent.spawn(connection, http) for http in connections]
    gevent.joinall(workers)
    elapsed = time.monotonic() - start
    probes.sort()  # 0.25 s apart, so applied in the order posted: each one's expected top score
    score, expected = plan["probe_start_score"], []
    for t_post, delta in probes:
        score += delta
        expected.append((t_post, score))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    with open(out_file, "w") as fh:
        json.dump({"probes": expected, "statuses": {str(k): v for k, v in statuses.items()},
                   "accept_latency": percentiles(accept_latency), "sent": total,
                   "slowest": [[round(at, 3), round(lat * 1000, 1)] for lat, at in sorted(slow)[-20:]],
                   "achieved_rate_per_s": round(total / elapsed, 1), "max_lag_ms": round(lag[0] * 1000, 1),
                   "cpu_seconds": round(cpu, 2), "seconds": round(elapsed, 2), "started_at": start}, fh)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
