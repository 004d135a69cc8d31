"""Pipeline over HTTP: the figures of the whole path, measured against real processes.

Starts its own stack (gunicorn web with gevent workers, 2 RQ workers) on a fresh
database and Redis index, prepares users and signed submissions, then, for several
runs, posts them from a separate load-generator process and listens on Redis pub/sub
for each submission's applied event. Prints submissions accepted/s and applied/s, and
the accept and accept-to-applied latency percentiles (median of the runs), and writes
the same as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoreboard.__main__ import migrate  # noqa: E402
from tests import processes, services  # noqa: E402
from tests.client import Player, sign  # noqa: E402

LOG_DIR = Path("/tmp/scoreboard-bench-logs")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def post_all(args) -> list[tuple[str, float, float, int]]:
    """Load generator (own process): post prepared bodies from threads; (job, t0, t1, status)."""
    base, jobs, threads = args
    out: list = []
    lock = threading.Lock()
    chunks = [jobs[i::threads] for i in range(threads)]

    def worker(chunk):
        http = requests.Session()
        mine = []
        for token, body in chunk:
            t0 = time.time()
            resp = http.post(f"{base}/api/score/update", data=body,
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            t1 = time.time()
            job = resp.json().get("job_id", "") if resp.status_code == 202 else ""
            mine.append((job, t0, t1, resp.status_code))
        with lock:
            out.extend(mine)

    ts = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def prepare(base: str, players: list[Player], count: int) -> list[tuple[str, str]]:
    jobs = []
    for i in range(count):
        p = players[i % len(players)]
        action = p.start("tap")
        completed = int(time.time() * 1000)
        body = {"action_token": action["action_token"], "score_delta": 1 + i % 50, "completed_at": completed,
                "signature": sign(action["secret"], action["action_token"], 1 + i % 50, completed)}
        jobs.append((p.tokens["access_token"], json.dumps(body)))
    return jobs


def one_run(base: str, r: redis.Redis, prefix: str, players, count: int, threads: int) -> dict:
    jobs = prepare(base, players, count)
    applied_at: dict[str, float] = {}
    pubsub = r.pubsub()
    pubsub.subscribe(f"{prefix}events")
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            msg = pubsub.get_message(timeout=0.2)
            if msg and msg["type"] == "message":
                now = time.time()
                for event in json.loads(msg["data"]).get("personal", []):
                    applied_at[event["data"]["job_id"]] = now

    listener = threading.Thread(target=listen)
    listener.start()
    with multiprocessing.Pool(1) as pool:
        posted = pool.map(post_all, [(base, jobs, threads)])[0]
    accepted = [p for p in posted if p[3] == 202]
    deadline = time.time() + 120
    while time.time() < deadline and not all(p[0] in applied_at for p in accepted):
        time.sleep(0.05)
    stop.set()
    listener.join()
    pubsub.close()
    start = min(p[1] for p in posted)
    accept_end = max(p[2] for p in posted)
    applied_times = [applied_at[p[0]] for p in accepted if p[0] in applied_at]
    return {
        "submissions": count,
        "accepted": len(accepted),
        "applied": len(applied_times),
        "errors": len(posted) - len(accepted),
        "accepted_per_s": len(accepted) / (accept_end - start),
        "applied_per_s": len(applied_times) / (max(applied_times) - start) if applied_times else 0.0,
        "accept_p50_ms": percentile([(p[2] - p[1]) * 1000 for p in posted], 50),
        "accept_p99_ms": percentile([(p[2] - p[1]) * 1000 for p in posted], 99),
        "applied_p50_ms": percentile([(applied_at[p[0]] - p[1]) * 1000 for p in accepted if p[0] in applied_at], 50),
        "applied_p99_ms": percentile([(applied_at[p[0]] - p[1]) * 1000 for p in accepted if p[0] in applied_at], 99),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--submissions", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()

    LOG_DIR.mkdir(exist_ok=True)
    database_url = services.create_database()
    index = services.RedisIndex()
    prefix = f"bench{secrets.token_hex(3)}:"
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=index.url, SECRET_KEY=secrets.token_urlsafe(48),
               SCOREBOARD_ENV="test", REDIS_PREFIX=prefix, RATELIMIT_ENABLED="false", ARGON2_TIME_COST="1",
               ARGON2_MEMORY_KIB="1024", LOG_LEVEL="WARNING",
               ACTION_TYPES=json.dumps([{"name": "tap", "min_delta": 1, "max_delta": 1000, "min_duration_ms": 0}]))
    os.environ["DATABASE_URL"] = database_url
    migrate()
    procs = []
    try:
        web, base = processes.start_web(env, LOG_DIR, workers=int(env.get("WEB_CONCURRENCY", 2)))
        procs.append(web)
        procs += [processes.start_worker(env, LOG_DIR) for _ in range(2)]
        players = [Player(base) for _ in range(args.users)]
        r = redis.Redis.from_url(index.url)
        one_run(base, r, prefix, players, 200, args.threads)  # warm-up
        runs = [one_run(base, r, prefix, players, args.submissions, args.threads) for _ in range(args.runs)]
    finally:
        for p in procs:
            p.stop()
        index.release()
        services.drop_database(database_url)

    keys = [k for k in runs[0] if k not in ("submissions",)]
    summary = {k: statistics.median(run[k] for run in runs) for k in keys}
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": os.cpu_count(),
              "runs": runs, "median": summary, "settings": vars(args)}
    print(f"pipeline over HTTP: {args.runs} runs of {args.submissions} submissions, {args.threads} client threads,"
          f" {os.cpu_count()} cores; medians:")
    for k, v in summary.items():
        print(f"  {k:>16}: {v:,.1f}")
    out = ROOT / "bench" / "results" / f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
