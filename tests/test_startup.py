"""Clear start-up errors instead of tracebacks."""

import subprocess
import sys

from tests import processes, services
from tests.processes import ROOT


def run_worker(env, timeout=60):
    return subprocess.run([sys.executable, "-m", "workers"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def run_web(env, timeout=60):
    port = processes.free_port()
    return subprocess.run([str(processes.BIN / "gunicorn"), "-c", "web/gunicorn_conf.py", "-b", f"127.0.0.1:{port}",
                           "web.wsgi:app"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_unreachable_redis_is_a_clear_error(base_env):
    env = {**base_env, "REDIS_URL": f"redis://127.0.0.1:{processes.free_port()}/0", "STARTUP_WAIT": "1"}
    for result in (run_worker(env), run_web(env)):
        assert result.returncode != 0
        assert "cannot start: Redis at 127.0.0.1" in result.stderr and "not reachable" in result.stderr
        assert "Traceback" not in result.stderr


def test_sentinels_that_name_no_primary_are_a_clear_error(base_env):
    env = {**base_env, "REDIS_SENTINELS": f"127.0.0.1:{processes.free_port()}", "REDIS_SENTINEL_MASTER": "main",
           "STARTUP_WAIT": "1"}
    for result in (run_worker(env), run_web(env)):
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "cannot start: Redis at the primary 'main' of the Sentinels 127.0.0.1:" in result.stderr


def test_unreachable_postgresql_is_a_clear_error(base_env):
    env = {**base_env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{processes.free_port()}/x",
           "STARTUP_WAIT": "1"}
    result = run_worker(env)
    assert result.returncode != 0 and "PostgreSQL at 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_behind_the_code_is_a_clear_error(base_env):
    url = services.create_database()
    try:
        result = run_web({**base_env, "DATABASE_URL": url})
        assert result.returncode != 0
        assert "run `python -m scoreboard migrate`" in result.stderr and "Traceback" not in result.stderr
    finally:
        services.drop_database(url)


def test_production_refuses_a_missing_or_weak_secret(base_env):
    for secret in ("", "changeme"):
        env = {**base_env, "SCOREBOARD_ENV": "production", "SECRET_KEY": secret, "STARTUP_WAIT": "1"}
        result = run_worker(env)
        assert result.returncode != 0 and "SECRET_KEY" in result.stderr and "Traceback" not in result.stderr
