"""Apply stage: queue pre-filled, 2 worker processes, from queued to committed, ranked and
published; against pgbench running the same transaction one submission per transaction
with 8 clients.

The workers are started first and the clock starts when they all listen and the queue is
filled, in one transaction, with the jobs of submissions accepted beforehand: their
start-up (about 0.4 s each, most of it imports) is not apply throughput."""

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
from scoreboard.submissions import Submissions

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


def prefill(svc: Services, user_ids: list[int], count: int, enqueue: bool = True) -> list[str]:
    """Accept ``count`` submissions straight into Redis; return their batches' ids, and
    enqueue the batches' jobs unless told not to (``enqueue_all`` does it later)."""
    settings = Settings.from_env(svc.env)
    r = redis.Redis.from_url(svc.redis.url)
    scripts, keys = Scripts(r), Keys(svc.prefix)
    submissions = Submissions(r, scripts, keys)
    tap = settings.actions.by_name["tap"]
    batches = []
    for i in range(count):
        token = action_tokens.issue(r, keys, settings, user_ids[i % len(user_ids)], tap)
        accepted = submissions.accept(token, 1 + i % 50, int(time.time() * 1000), settings.batching.max_size)
        if accepted.new_batch:
            batches.append(accepted.batch_id)
    if enqueue:
        enqueue_all(svc, batches)
    return batches


def enqueue_all(svc: Services, batch_ids: list[str]) -> None:
    """The batches' apply jobs, as the web enqueues them, all in one Redis transaction."""
    from rq import Callback, Queue, Retry

    settings = Settings.from_env(svc.env)
    queue = Queue(settings.batching.queue, connection=redis.Redis.from_url(svc.redis.url))
    jobs = []
    for batch_id in batch_ids:
        options = jobspec.apply_job_options(batch_id, settings.batching.job_timeout, svc.prefix)
        options["timeout"] = options.pop("job_timeout")
        jobs.append(Queue.prepare_data(
            jobspec.APPLY_JOB, (batch_id,), on_failure=Callback(jobspec.APPLY_FAILURE_CALLBACK),
            retry=Retry(max=len(jobspec.APPLY_RETRY_INTERVALS), interval=list(jobspec.APPLY_RETRY_INTERVALS)),
            **options))
    queue.enqueue_many(jobs)  # its own MULTI/EXEC: the workers find the queue full at once


def drain(svc: Services, batch_ids: list[str], count: int, workers: int = 2) -> dict:
    """Start the workers, wait until they all listen, then fill the queue in one
    transaction and time it from there until the last batch is applied (published)."""
    from rq import Queue, Worker

    r = redis.Redis.from_url(svc.redis.url)
    keys = Keys(svc.prefix)
    queue = Queue(Settings.from_env(svc.env).batching.queue, connection=r)
    launched = time.monotonic()
    procs = [svc.worker() for _ in range(workers)]
    while sum(w.get_state() == "idle" for w in Worker.all(queue=queue)) < workers:
        if time.monotonic() - launched > 120:
            raise RuntimeError("the workers did not start listening")
        time.sleep(0.02)
    ready = time.monotonic()
    enqueue_all(svc, batch_ids)
    while r.zcard(keys.batches) and time.monotonic() - ready < 300:
        time.sleep(0.01)
    elapsed = time.monotonic() - ready
    for proc in procs:
        svc.stop(proc)
    return {"submissions": count, "seconds": round(elapsed, 3), "per_s": count / elapsed,
            "worker_start_s": round(ready - launched, 2)}


def pgbench(svc: Services, seconds: int = 8, clients: int = 8) -> dict:
    binary = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    out = subprocess.run([binary, "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f",
                          str(ROOT / "bench" / "apply_txn.sql"), svc.database_url],
                         capture_output=True, text=True, check=True).stdout
    return {"tps": float(re.search(r"tps = ([\d.]+)", out).group(1)), "clients": clients}


def run(runs: int = 3, count: int = 20_000) -> dict:
    """Each run on a fresh database and Redis index: a run's history (the apply's and
    pgbench's rows, the same users) would otherwise lengthen the next run's anomaly reads."""
    results = []
    for _ in range(runs):
        svc = Services()
        try:
            batches = prefill(svc, make_users(svc.database_url), count, enqueue=False)
            applied = drain(svc, batches, count)
            reference = pgbench(svc)
        finally:
            svc.close()
        results.append({"apply": applied, "reference": reference, "ratio": applied["per_s"] / reference["tps"]})
    return {
            "runs": results,
            "apply_per_s": median([r["apply"] for r in results], "per_s"),
            "reference_tps": median([r["reference"] for r in results], "tps"),
            "ratio": median(results, "ratio"),
        }


if __name__ == "__main__":
    import json

    print(json.dumps({k: v for k, v in run(runs=1, count=10_000).items() if k != "runs"}, indent=2))
