"""Each process imports what it runs: the stream process talks to Redis only, so the API's
libraries (RQ, SQLAlchemy, flask-smorest, Flask-Limiter, argon2) never load there."""

import json
import subprocess
import sys

from tests.processes import ROOT

API_ONLY = ("rq", "sqlalchemy", "flask_smorest", "flask_limiter", "argon2", "webargs", "psycopg2", "alembic")


def loaded_by(module: str, env: dict) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_stream_process_loads_none_of_the_api_libraries(base_env):
    loaded = loaded_by("web.stream_wsgi", base_env)
    assert "flask" in loaded and "redis" in loaded  # what it does run
    assert not loaded & set(API_ONLY), sorted(loaded & set(API_ONLY))


def test_the_stream_start_up_check_loads_none_of_them_either(base_env):
    code = ("import sys, json; from scoreboard.settings import Settings; from scoreboard.startup import check;"
            " check(Settings.from_env(), wait=5, database=False); print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base_env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert not set(json.loads(done.stdout.splitlines()[-1])) & set(API_ONLY)


def test_the_api_process_does_load_them(base_env):
    """The check above can fail: the same probe sees the API's libraries in the web process."""
    assert {"rq", "sqlalchemy", "flask_smorest", "flask_limiter", "argon2"} <= loaded_by("web.wsgi", base_env)
