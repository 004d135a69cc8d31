"""Apply stage: queue pre-filled, 2 worker processes, from queued to committed, ranked and
published; against pgbench running the same transaction one submission per transaction
with 8 clients."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import psycopg2
import redis

from bench.common import ROOT, Services, median
from scoreboard import action_tokens, jobspec
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from scoreboard.settings import Settings
from scoreboard.submissions import accept

USERS = 1000


def make_users(url: str) -> list[int]:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("INSERT INTO users (username, password_hash) SELECT 'u' || g, 'x' FROM generate_series(1, %s) g"
                    " ON CONFLICT DO NOTHING", (USERS,))
        cur.execute("SELECT id FROM users ORDER BY id LIMIT %s", (USERS,))
        ids = [row[0] for row in cur.fetchall()]
    conn.close()
    return ids


def prefill(svc: Services, user_ids: list[int], count: int) -> None:
    """Accept ``count`` submissions straight into Redis and enqueue their batches' jobs."""
    from rq import Callback, Queue, Retry

    settings = Settings.from_env(svc.env)
    r = redis.Redis.from_url(svc.redis.url)
    scripts, keys = Scripts(r), Keys(svc.prefix)
    tap = settings.action_types_by_name["tap"]
    queue = Queue(settings.queue_name, connection=r)
    for i in range(count):
        token = action_tokens.issue(r, keys, settings, user_ids[i % len(user_ids)], tap)
        accepted = accept(r, scripts, keys, token, 1 + i % 50, int(time.time() * 1000), settings.batch_max)
        if accepted.new_batch:
            queue.enqueue(jobspec.APPLY_JOB, accepted.batch_id,
                          retry=Retry(max=len(jobspec.APPLY_RETRY_INTERVALS),
                                      interval=list(jobspec.APPLY_RETRY_INTERVALS)),
                          on_failure=Callback(jobspec.APPLY_FAILURE_CALLBACK),
                          **jobspec.apply_job_options(accepted.batch_id, settings.apply_job_timeout, keys.prefix))


def drain(svc: Services, count: int, workers: int = 2) -> dict:
    r = redis.Redis.from_url(svc.redis.url)
    keys = Keys(svc.prefix)
    procs = [svc.worker() for _ in range(workers)]  # they start working as soon as they listen
    started = time.monotonic()
    while r.zcard(keys.batches) and time.monotonic() - started < 300:
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    for proc in procs:
        svc.stop(proc)
    return {"submissions": count, "seconds": round(elapsed, 3), "per_s": count / elapsed}


def pgbench(svc: Services, seconds: int = 8, clients: int = 8) -> dict:
    binary = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    out = subprocess.run([binary, "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f",
                          str(ROOT / "bench" / "apply_txn.sql"), svc.database_url],
                         capture_output=True, text=True, check=True).stdout
    return {"tps": float(re.search(r"tps = ([\d.]+)", out).group(1)), "clients": clients}


def run(runs: int = 3, count: int = 20_000) -> dict:
    svc = Services()
    try:
        ids = make_users(svc.database_url)
        results = []
        for _ in range(runs):
            prefill(svc, ids, count)
            applied = drain(svc, count)
            reference = pgbench(svc)
            results.append({"apply": applied, "reference": reference,
                            "ratio": applied["per_s"] / reference["tps"]})
        return {
            "runs": results,
            "apply_per_s": median([r["apply"] for r in results], "per_s"),
            "reference_tps": median([r["reference"] for r in results], "tps"),
            "ratio": median(results, "ratio"),
        }
    finally:
        svc.close()


if __name__ == "__main__":
    import json

    print(json.dumps({k: v for k, v in run(runs=1, count=10_000).items() if k != "runs"}, indent=2))
