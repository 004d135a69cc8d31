"""The service's real processes (gunicorn, workers, scheduler) started for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process with its output in a log file; stopped by its PID."""

    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}-{time.time_ns()}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to the process group, SIGKILL after ``timeout``; also when the leader is
        already dead (a worker killed by a test leaves its forked children behind)."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)
        self._log.close()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


def _start_gunicorn(name: str, conf: str, app: str, env: dict, log_dir: Path, workers: int,
                    port: int | None) -> tuple[Process, str]:
    port = port or free_port()
    proc = Process(
        name,
        [str(BIN / "gunicorn"), "-c", conf, "-b", f"127.0.0.1:{port}", "-w", str(workers), app],
        env,
        log_dir,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc)
    return proc, base


def start_web(env: dict, log_dir: Path, workers: int = 2, port: int | None = None) -> tuple[Process, str]:
    """The API process, as the Procfile runs it."""
    return _start_gunicorn("web", "web/gunicorn_conf.py", "web.wsgi:app", env, log_dir, workers, port)


def start_stream(env: dict, log_dir: Path, port: int | None = None, workers: int = 1) -> tuple[Process, str]:
    """The stream process, as the Procfile runs it (its own gunicorn config)."""
    return _start_gunicorn("stream", "web/stream_gunicorn_conf.py", "web.stream_wsgi:app", env, log_dir, workers,
                           port)


def start_worker(env: dict, log_dir: Path, timeout: float = 30) -> Process:
    """Start ``python -m workers`` and wait until it listens on its queues."""
    from rq import Worker

    proc = Process("worker", [sys.executable, "-m", "workers"], env, log_dir)
    connection = redis_of(env)
    deadline = time.monotonic() + timeout
    while not any(w.pid == proc.pid for w in Worker.all(connection=connection)):
        if not proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start:\n{proc.output()[-3000:]}")
        time.sleep(0.05)
    connection.close()
    return proc


def redis_of(env: dict):
    """A client of the Redis the processes of ``env`` use (its primary, behind Sentinels)."""
    from scoreboard.redis_client import make_redis
    from scoreboard.settings import Settings

    return make_redis(Settings.from_env(env))


def start_scheduler(env: dict, log_dir: Path) -> Process:
    return Process("scheduler", [sys.executable, "-m", "scheduler"], env, log_dir)


def wait_http(url: str, proc: Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.output()[-3000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout}s:\n{proc.output()[-3000:]}")


def worker_of_started_job(workers: list[Process], connection, queue: str, waiting_on_lock=None,
                          timeout: float = 30) -> Process:
    """The worker (of ``workers``) running a job of ``queue`` now.

    Args:
        connection: the workers' Redis.
        waiting_on_lock: a psycopg2 connection (autocommit): only once a session of the
            database waits on a lock (the job is stuck in its transaction, or its query).
    """
    from rq import Worker
    from rq.job import Job
    from rq.registry import StartedJobRegistry

    registry = StartedJobRegistry(queue, connection=connection)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if waiting_on_lock is not None:
            with waiting_on_lock.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND datname = current_database()")
                if not cur.fetchone()[0]:
                    time.sleep(0.05)
                    continue
        for job_id in registry.get_job_ids():
            job = Job.fetch(job_id, connection=connection)
            worker = job.worker_name and Worker.find_by_key(Worker.redis_worker_namespace_prefix + job.worker_name,
                                                            connection=connection)
            found = worker and next((w for w in workers if w.pid == worker.pid), None)
            if found:
                return found
        time.sleep(0.05)
    raise AssertionError(f"no worker ran a job of {queue} within {timeout}s")
