"""Servers a test owns (own port, own files), stopped by their PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import redis

from tests.processes import free_port


class OwnRedis:
    """A redis-server with append-only persistence, as the project's own Redis runs."""

    def __init__(self, fsync: str = "everysec"):
        self.dir = tempfile.mkdtemp(prefix="sb-redis-")
        self.port = free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for this test"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--appendonly", "yes",
             "--appendfsync", self.fsync, "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def kill(self) -> None:
        """Stop it the hard way (SIGKILL): what is not yet fsynced is lost."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class OwnPostgres:
    """A PostgreSQL cluster of the test's own, run as the ``postgres`` system user;
    with ``primary``, a streaming replica of it (pg_basebackup)."""

    def __init__(self, primary: "OwnPostgres | None" = None):
        import glob
        import pwd

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        assert bins, "PostgreSQL server binaries are needed for this test"
        self.bin = bins[-1]
        self.user = pwd.getpwnam("postgres")
        self.dir = tempfile.mkdtemp(prefix="sb-pg-")
        os.chmod(self.dir, 0o755)
        os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        if primary is None:
            command = [f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres"]
        else:
            command = [f"{self.bin}/pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                       "-D", self.data, "-R", "-X", "stream"]
        subprocess.run(command, check=True, user=self.user.pw_uid, group=self.user.pw_gid, capture_output=True,
                       cwd=self.dir)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def start(self) -> None:
        import psycopg2

        self.proc = subprocess.Popen(
            [f"{self.bin}/postgres", "-D", self.data, "-p", str(self.port), "-k", self.dir,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            user=self.user.pw_uid, group=self.user.pw_gid, cwd=self.dir,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                psycopg2.connect(self.url, connect_timeout=1).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("own PostgreSQL did not start")

    def stop(self) -> None:
        """Fast shutdown: open transactions roll back, clients are disconnected."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            self.proc.wait(30)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
