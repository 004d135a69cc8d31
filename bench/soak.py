"""Soak: a fixed submission rate for several minutes with viewers connected; memory of
each process at start and end, errors, and the pipeline's invariants at the end.

    python bench/soak.py [--minutes 3] [--rate 100] [--viewers 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg2  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from bench.common import LOG_DIR, Services, save  # noqa: E402
from tests import invariants, processes  # noqa: E402
from tests.client import Player  # noqa: E402
from tests.sse import Stream  # noqa: E402
from tests.streams import rss_kib, worker_pids  # noqa: E402


def memory(procs: dict[str, processes.Process]) -> dict[str, int]:
    """RSS in KiB of each process (a gunicorn master and its workers summed)."""
    out = {}
    for name, proc in procs.items():
        pids = [proc.pid, *worker_pids(proc.pid)]
        out[name] = sum(rss_kib(pid) for pid in pids if Path(f"/proc/{pid}/status").exists())
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--rate", type=float, default=100, help="submissions per second")
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    svc = Services(STREAM_MAX_PER_USER=str(args.viewers))
    try:
        base = svc.web(workers=2, cpus=None)
        stream_proc, stream_base = processes.start_stream(svc.env, LOG_DIR)
        svc.procs.append(stream_proc)
        workers = [svc.worker() for _ in range(2)]
        scheduler = processes.start_scheduler(svc.env, LOG_DIR)
        svc.procs.append(scheduler)
        procs = {"web": svc.procs[0], "stream": stream_proc, "worker-1": workers[0], "worker-2": workers[1],
                 "scheduler": scheduler}
        players = [Player(base) for _ in range(args.users)]
        viewers = [Stream(stream_base, players[i % len(players)].tokens["access_token"])
                   for i in range(args.viewers)]
        time.sleep(2)
        start_memory = memory(procs)
        accepted, errors, latencies = set(), {}, []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.minutes * 60
        per_thread = args.rate / 10

        def client(n: int) -> None:
            http = requests.Session()
            i = 0
            next_at = time.monotonic()
            while time.monotonic() < stop_at:
                p = players[(n + 10 * i) % len(players)]
                i += 1
                try:
                    action = http.post(f"{base}/api/actions", json={"action_type": "tap"},
                                       headers={"Authorization": f"Bearer {p.tokens['access_token']}"}).json()
                    t0 = time.monotonic()
                    resp = http.post(f"{base}/api/score/update", json=p.body(action, 1),
                                     headers={"Authorization": f"Bearer {p.tokens['access_token']}"})
                    code = resp.status_code
                    with lock:
                        latencies.append(time.monotonic() - t0)
                        if code == 202:
                            accepted.add(action["action_token"])
                except requests.RequestException as exc:
                    code = type(exc).__name__
                if code != 202:
                    with lock:
                        errors[str(code)] = errors.get(str(code), 0) + 1
                next_at += 1 / per_thread
                time.sleep(max(0.0, next_at - time.monotonic()))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        r = redis.Redis.from_url(svc.redis.url)
        invariants.wait_until_settled(r, svc.prefix, timeout=120)
        end_memory = memory(procs)
        db = psycopg2.connect(svc.database_url)
        db.autocommit = True
        invariants.check(db, r, svc.prefix, accepted)
        db.close()
        open_viewers = sum(1 for v in viewers if not v.ended.is_set())
        for v in viewers:
            v.close()
        latencies.sort()
        result = {
            "minutes": args.minutes, "rate": args.rate, "viewers": args.viewers, "accepted": len(accepted),
            "errors": errors, "viewers_still_open": open_viewers,
            "accept_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
            "accept_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
            "memory_kib_start": start_memory, "memory_kib_end": end_memory, "invariants": "hold",
        }
    finally:
        svc.close()
    print(json.dumps(result, indent=2))
    print(f"written to {save('soak', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
