#!/usr/bin/env python3
"""Fan-out benchmark of the live stream: ``python bench/fanout.py`` (``make bench`` runs it).

1. One stream process (gunicorn, one gevent worker) with 1,000 and then 10,000 open
   viewers (in another process, ``bench/fanout_viewers.py``): the delivery latency of
   one board change (from its PUBLISH to its arrival on each viewer; p50, p99, max),
   memory per viewer (the worker's RSS growth / viewers), CPU per delivery, and the
   Redis connections the stream process holds.
2. End to end, under a steady submission load through the real pipeline (web, RQ
   workers, stream): from a submission's POST to each viewer receiving the board it
   changed.

Needs REDIS_URL and DATABASE_URL (``make bench`` provides them); it makes its own
database and Redis index and removes them. Prints the figures and writes them to
``bench/results/fanout.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from scoreboard.settings import Settings  # noqa: E402
from tests import processes, services  # noqa: E402
from tests.client import Player  # noqa: E402
from tests.publisher import Publisher, board_entries  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LOGS = Path(tempfile.gettempdir()) / "scoreboard-bench-logs"
TAP = {"name": "tap", "min_delta": 1, "max_delta": 1000, "min_duration_ms": 0}


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50_ms": round(pick(0.5) * 1000, 1), "p99_ms": round(pick(0.99) * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1), "mean_ms": round(statistics.fmean(ordered) * 1000, 1)}


def worker_pid(master: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn worker not found")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_connections(r: redis.Redis, name: str) -> int:
    return sum(1 for c in r.client_list() if c.get("name") == name)


def tokens_for(settings: Settings, count: int, first_user: int = 1) -> list[str]:
    now = int(time.time())
    return [jwt.encode({"sub": str(first_user + i), "jti": secrets.token_hex(8), "type": "access", "fresh": False,
                        "iat": now, "nbf": now, "exp": now + 7200, "sid": secrets.token_hex(8)},
                       settings.jwt_secret_key, algorithm="HS256") for i in range(count)]


class Viewers:
    """The viewer process: N streams, reporting arrivals when stopped."""

    def __init__(self, port: int, tokens: list[str], workdir: Path):
        self.tokens_file = workdir / f"tokens-{len(tokens)}.json"
        self.out_file = workdir / f"arrivals-{len(tokens)}.json"
        self.tokens_file.write_text(json.dumps(tokens))
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fanout_viewers.py"), str(port),
                                      str(self.tokens_file), str(self.out_file)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError(f"viewers did not start: {line}")
        self.ready, self.failed = int(line[1]), int(line[3])

    def stop(self) -> list:
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()
        self.proc.wait(30)
        return json.loads(self.out_file.read_text())


def fanout(env: dict, settings: Settings, r: redis.Redis, count: int, changes: int, workdir: Path) -> dict:
    """Open ``count`` viewers on one stream process and time ``changes`` board changes."""
    proc, base = processes.start_stream(env, LOGS)
    try:
        requests.get(base + "/readyz", timeout=10)
        worker = worker_pid(proc.pid)
        publisher = Publisher(r, settings)
        publisher.publish(board_entries([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]))
        time.sleep(0.5)
        rss_before = rss_kib(worker)
        started = time.monotonic()
        viewers = Viewers(int(base.rsplit(":", 1)[1]), tokens_for(settings, count), workdir)
        connect_s = time.monotonic() - started
        time.sleep(2)
        rss_after = rss_kib(worker)
        connections = redis_connections(r, f"{settings.redis_prefix}stream:{worker}")
        published = {}
        cpu_before = cpu_seconds(worker)
        for i in range(changes):
            t0 = time.monotonic()
            version = publisher.publish(board_entries([1000 + i, 9, 8, 7, 6, 5, 4, 3, 2, 1]))
            published[version] = t0
            time.sleep(1.0 if count <= 1000 else 2.0)  # each change is delivered before the next
        cpu_used = cpu_seconds(worker) - cpu_before
        time.sleep(1)
        arrivals = viewers.stop()
    finally:
        proc.stop()
    latencies, per_change = [], []
    for version, t0 in published.items():
        got = [arrival - t0 for _, v, _, arrival in arrivals if v == version]
        per_change.append(len(got))
        latencies += got
    delivered = sum(per_change)
    return {
        "viewers": count, "viewers_connected": viewers.ready, "viewers_failed": viewers.failed,
        "connect_seconds": round(connect_s, 1), "board_changes": changes,
        "deliveries": delivered, "deliveries_expected": viewers.ready * changes,
        "latency": percentiles(latencies),
        "memory_per_viewer_kib": round((rss_after - rss_before) / max(1, viewers.ready), 1),
        "worker_rss_mib": round(rss_after / 1024, 1),
        "cpu_us_per_delivery": round(cpu_used / max(1, delivered) * 1e6, 1),
        "redis_connections": connections,
    }


def end_to_end(env: dict, r: redis.Redis, viewers_count: int, seconds: float, rate: float, workdir: Path) -> dict:
    """Submissions through the whole pipeline at ``rate``/s; probes time POST -> board on every viewer."""
    started = []
    try:
        web, base = processes.start_web(env, LOGS, workers=2)
        started.append(web)
        started += [processes.start_worker(env, LOGS) for _ in range(2)]
        stream, stream_base = processes.start_stream(env, LOGS)
        started.append(stream)
        probe = Player(base)
        load = [Player(base) for _ in range(8)]
        probe.earn(1)
        viewers = Viewers(int(stream_base.rsplit(":", 1)[1]),
                          [p.tokens["access_token"] for p in load] * (viewers_count // len(load)), workdir)
        stop = threading.Event()
        submitted = [0]

        def background(player: Player, period: float) -> None:
            while not stop.is_set():
                began = time.monotonic()
                r = player.submit(player.start(), 1)
                submitted[0] += r.status_code == 202
                stop.wait(max(0.0, period - (time.monotonic() - began)))

        period = len(load) / max(rate - 2, 1)
        threads = [threading.Thread(target=background, args=(p, period), daemon=True) for p in load]
        for t in threads:
            t.start()
        probes = []  # (t_post, expected score)
        score = 1
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            action = probe.start()
            score += 1000
            t_post = time.monotonic()
            r = probe.submit(action, 1000)
            if r.status_code == 202:
                probes.append((t_post, score))
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(10)
        time.sleep(2)
        arrivals = viewers.stop()
    finally:
        for proc in started:
            proc.stop()
    by_viewer: dict[int, list] = {}
    for viewer, _, first_score, arrival in arrivals:
        by_viewer.setdefault(viewer, []).append((arrival, first_score if first_score is not None else -1))
    latencies, missing = [], 0
    for t_post, expected in probes:
        for seen in by_viewer.values():
            hit = next((a for a, s in seen if s >= expected and a >= t_post), None)
            if hit is None:
                missing += 1
            else:
                latencies.append(hit - t_post)
    return {"viewers": viewers.ready, "seconds": seconds, "target_rate_per_s": rate,
            "submissions": submitted[0] + len(probes), "probes": len(probes), "missing": missing,
            "latency": percentiles(latencies)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--e2e-viewers", type=int, default=1000)
    parser.add_argument("--e2e-seconds", type=float, default=20)
    parser.add_argument("--e2e-rate", type=float, default=50, help="submissions per second")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < max(args.viewers) + 1000:
        print(f"the open-files limit ({hard}) is too low for {max(args.viewers)} viewers", file=sys.stderr)
        return 2
    LOGS.mkdir(parents=True, exist_ok=True)
    database_url = services.create_database()
    index = services.RedisIndex()
    try:
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=index.url, SECRET_KEY=secrets.token_urlsafe(48),
                   SCOREBOARD_ENV="test", REDIS_PREFIX=f"sbb{secrets.token_hex(3)}:", RATELIMIT_ENABLED="false",
                   ARGON2_TIME_COST="1", ARGON2_MEMORY_KIB="1024", ACTION_TYPES=json.dumps([TAP]),
                   LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1", STREAM_MAX_PER_USER="100000")
        os.environ["DATABASE_URL"] = database_url
        from scoreboard.__main__ import migrate

        migrate()
        settings = Settings.from_env(env)
        r = redis.Redis.from_url(index.url)
        r.set(f"{settings.redis_prefix}rank:ready", 1)
        results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                   "stream": {"board_interval_ms": settings.stream_board_interval_ms}, "fanout": []}
        with tempfile.TemporaryDirectory() as tmp:
            for count in args.viewers:
                figures = fanout(env, settings, r, count, args.changes, Path(tmp))
                results["fanout"].append(figures)
                print(f"fan-out {count:>6} viewers: latency {figures['latency']}, "
                      f"{figures['memory_per_viewer_kib']} KiB/viewer, {figures['cpu_us_per_delivery']} us CPU/delivery, "
                      f"{figures['redis_connections']} Redis connections, "
                      f"{figures['deliveries']}/{figures['deliveries_expected']} delivered", flush=True)
            e2e = end_to_end(env, r, args.e2e_viewers, args.e2e_seconds, args.e2e_rate, Path(tmp))
            results["end_to_end"] = e2e
            print(f"end to end, {e2e['viewers']} viewers, ~{args.e2e_rate}/s submissions: POST -> board "
                  f"{e2e['latency']} ({e2e['missing']} missing)", flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "fanout.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {RESULTS / 'fanout.json'}")
    finally:
        services.drop_database(database_url)
        index.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
