"""Shared pieces of the benchmarks: a stack of real processes on fresh services, wrk
runs pinned away from the server, medians."""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoreboard.__main__ import migrate  # noqa: E402
from tests import processes, services  # noqa: E402

LOG_DIR = Path("/tmp/scoreboard-bench-logs")
RESULTS = ROOT / "bench" / "results"
TAP = {"name": "tap", "min_delta": 1, "max_delta": 1000, "min_duration_ms": 0}
CORES = os.cpu_count() or 1
# With two or more cores the server gets core 0 and the load generator the last core.
SERVER_CPUS = "0" if CORES >= 2 else None
CLIENT_CPUS = str(CORES - 1) if CORES >= 2 else None


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus and shutil.which("taskset") else argv


class Services:
    """A fresh database (migrated) and Redis index (or ``redis_server``, a Redis of the
    caller's own, with its ``url``), and the environment of the processes."""

    def __init__(self, redis_server=None, **extra: str):
        LOG_DIR.mkdir(exist_ok=True)
        self.database_url = services.create_database()
        self.redis = redis_server or services.RedisIndex()
        self._own_index = redis_server is None
        self.prefix = f"bench{secrets.token_hex(3)}:"
        self.env = dict(
            os.environ, DATABASE_URL=self.database_url, REDIS_URL=self.redis.url,
            SECRET_KEY=secrets.token_urlsafe(48), SCOREBOARD_ENV="test", REDIS_PREFIX=self.prefix,
            RATELIMIT_ENABLED="false", ARGON2_TIME_COST="1", ARGON2_MEMORY_KIB="1024", LOG_LEVEL="WARNING",
            PENDING_CAP="0", ACTION_TYPES=json.dumps([TAP]), **extra,
        )
        saved = os.environ.get("DATABASE_URL")
        os.environ["DATABASE_URL"] = self.database_url
        migrate()
        if saved is not None:
            os.environ["DATABASE_URL"] = saved
        self.procs: list[processes.Process] = []

    def web(self, app: str = "web.wsgi:app", workers: int = 1, cpus: str | None = SERVER_CPUS,
            env: dict | None = None) -> str:
        """Start a web server (``env``: variables that differ from ``self.env``); its base URL."""
        port = processes.free_port()
        argv = pinned([str(processes.BIN / "gunicorn"), "-c", "web/gunicorn_conf.py", "-b", f"127.0.0.1:{port}",
                       "-w", str(workers), app], cpus)
        proc = processes.Process("web", argv, {**self.env, **(env or {})}, LOG_DIR)
        self.procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        processes.wait_http(base + "/healthz", proc)
        return base

    def worker(self) -> processes.Process:
        proc = processes.start_worker(self.env, LOG_DIR)
        self.procs.append(proc)
        return proc

    def stop(self, proc: processes.Process) -> None:
        proc.stop()
        self.procs.remove(proc)

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()
        if self._own_index:
            self.redis.release()
        services.drop_database(self.database_url)


def wrk(base: str, script: str, args: list[str], connections: int = 64, seconds: int = 8,
        threads: int = 2) -> dict:
    """Run wrk (pinned to the client core); requests/s, latency percentiles, errors, CPU used."""
    argv = pinned(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                   "-s", str(ROOT / "bench" / script), base, "--", *args], CLIENT_CPUS)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def latency(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency(50),
        "p99_ms": latency(99),
        "errors": (int(non2xx.group(1)) if non2xx else 0)
        + (sum(int(x) for x in socket_errors.groups()) if socket_errors else 0),
        "client_cpu_s": round(cpu, 2),
        "seconds": seconds,
    }


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
