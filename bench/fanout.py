#!/usr/bin/env python3
"""Fan-out benchmark of the live stream: ``python bench/fanout.py`` (``make bench`` runs it).

1. Fan-out: one stream process (gunicorn, one gevent worker, pinned to the server core)
   with 1,000 and then 10,000 open viewers (in another process pinned to the client core,
   ``bench/fanout_viewers.py``): the delivery latency of one board change (from its
   PUBLISH to its arrival on each viewer; p50, p99, max), memory per viewer (the worker's
   RSS growth / viewers), CPU per delivery, and the Redis connections the worker holds.
   The reference, in the same run with the same viewers, the same gunicorn settings and
   the same trigger: ``bench/bare_stream_app.py``, a bare gevent WSGI app writing the
   same bytes to the same number of sockets.
2. End to end: web (2 workers), 2 RQ workers and the stream process with 1,000 viewers
   (1,000 users), submissions at a steady rate (default 500/s) from a load generator in a
   process of its own (``bench/fanout_load.py``, pinned to the client core, reporting its
   CPU); every 0.25 s a probe submission tops the board, timed from its POST to its board
   arriving on every viewer. Action tokens are issued before the timed part (through the
   domain's ``action_tokens.issue``), so the steady load is the submissions alone.

Each part runs ``--runs`` times; the summary holds the medians. Needs REDIS_URL and
DATABASE_URL (``make bench`` provides them); it makes its own database and Redis index and
removes them. Prints the figures and writes them to ``--out`` (default
``bench/results/fanout.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from bench.common import CLIENT_CPUS, SERVER_CPUS, pinned  # noqa: E402
from scoreboard.settings import Settings  # noqa: E402
from tests import processes, services  # noqa: E402
from tests.publisher import Publisher, board_entries  # noqa: E402
from bench.latency import percentiles  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LOGS = Path(tempfile.gettempdir()) / "scoreboard-bench-logs"
TAP = {"name": "tap", "min_delta": 1, "max_delta": 1000, "min_duration_ms": 0}
APPS = {"stream": "web.stream_wsgi:app", "bare": "bench.bare_stream_app:app"}


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def worker_pid(master: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = children(master)
        if found:
            return found[0]
        time.sleep(0.1)
    raise RuntimeError("gunicorn worker not found")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its living descendants."""
    return cpu_seconds(pid) + sum(tree_cpu(c) for c in children(pid))


def postgres_cpu() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                pass
    return total


def redis_connections(r: redis.Redis, name: str) -> int:
    return sum(1 for c in r.client_list() if c.get("name") == name)


def tokens_for(settings: Settings, user_ids: list[int]) -> list[str]:
    now = int(time.time())
    return [jwt.encode({"sub": str(uid), "jti": secrets.token_hex(8), "type": "access", "fresh": False,
                        "iat": now, "nbf": now, "exp": now + 7200, "sid": secrets.token_hex(8), "name": f"u{uid}"},
                       settings.jwt_secret_key, algorithm="HS256") for uid in user_ids]


def start_server(kind: str, env: dict, workers: int = 1, cpus: str | None = None,
                 conf: str = "web/stream_gunicorn_conf.py") -> tuple[processes.Process, str]:
    """gunicorn with the stream process's settings (or the web's), pinned to ``cpus``."""
    port = processes.free_port()
    app = APPS.get(kind, kind)
    argv = pinned([str(processes.BIN / "gunicorn"), "-c", conf, "-b", f"127.0.0.1:{port}", "-w", str(workers), app],
                  cpus)
    proc = processes.Process(kind, argv, env, LOGS)
    base = f"http://127.0.0.1:{port}"
    processes.wait_http(base + "/healthz", proc)
    return proc, base


class Viewers:
    """The viewer process: N streams, reporting arrivals when stopped."""

    def __init__(self, port: int, tokens: list[str], workdir: Path, cpus: str | None = CLIENT_CPUS):
        self.tokens_file = workdir / f"tokens-{len(tokens)}.json"
        self.out_file = workdir / f"arrivals-{len(tokens)}.json"
        self.tokens_file.write_text(json.dumps(tokens))
        self.proc = subprocess.Popen(pinned([sys.executable, str(ROOT / "bench" / "fanout_viewers.py"), str(port),
                                             str(self.tokens_file), str(self.out_file)], cpus),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError(f"viewers did not start: {line}")
        self.ready, self.failed = int(line[1]), int(line[3])
        self.cpu_seconds = 0.0

    def stop(self) -> list:
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        self.cpu_seconds = float(self.proc.stdout.readline().split()[1])
        self.proc.wait(30)
        return json.loads(self.out_file.read_text())


def spy(pid: int, out: Path, rate: int = 250) -> subprocess.Popen:
    """py-spy (requirements-test.txt) sampling ``pid`` until sent SIGINT; raw collapsed stacks."""
    exe = str(processes.BIN / "py-spy") if (processes.BIN / "py-spy").exists() else "py-spy"
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(pinned([exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                                    "--nonblocking", "-o", str(out)], CLIENT_CPUS),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_spies(spies: list[subprocess.Popen]) -> None:
    for s in spies:
        s.send_signal(2)
    for s in spies:
        s.wait(30)


def fanout(kind: str, env: dict, settings: Settings, r: redis.Redis, count: int, changes: int,
           workdir: Path, profile: Path | None = None) -> dict:
    """Open ``count`` viewers on one ``kind`` process (our stream, or the bare reference) and
    time ``changes`` board changes, one at a time."""
    proc, base = start_server(kind, env, cpus=SERVER_CPUS)
    try:
        if kind == "stream":
            requests.get(base + "/readyz", timeout=10)
        else:
            time.sleep(0.5)  # the reference subscribes at its first request (/healthz)
        worker = worker_pid(proc.pid)
        publisher = Publisher(r, settings)
        publisher.publish(board_entries([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]))
        time.sleep(0.5)
        rss_before = rss_kib(worker)
        started = time.monotonic()
        viewers = Viewers(int(base.rsplit(":", 1)[1]), tokens_for(settings, list(range(1, count + 1))), workdir)
        connect_s = time.monotonic() - started
        time.sleep(2)
        rss_after = rss_kib(worker)
        name = f"{settings.redis_prefix}stream:{worker}" if kind == "stream" else f"bare-stream:{worker}"
        connections = redis_connections(r, name)
        published = {}
        spies = []
        if profile is not None:  # samples the worker during the changes
            spies.append(spy(worker, profile / f"{kind}-{count}.txt"))
            time.sleep(1)
        cpu_before = cpu_seconds(worker)
        for i in range(changes):
            t0 = time.monotonic()
            version = publisher.publish(board_entries([1000 + i, 9, 8, 7, 6, 5, 4, 3, 2, 1]))
            published[version] = t0
            time.sleep(0.5 if count <= 1000 else 1.0)  # each change is delivered before the next
        cpu_used = cpu_seconds(worker) - cpu_before
        stop_spies(spies)
        time.sleep(0.5)
        arrivals = viewers.stop()
    finally:
        proc.stop()
    latencies, per_change = [], []
    for version, t0 in published.items():
        got = [arrival - t0 for _, v, _, arrival in arrivals if v == version]
        per_change.append((len(got), round(min(got, default=0) * 1000, 1), round(max(got, default=0) * 1000, 1)))
        latencies += got
    delivered = sum(n for n, _, _ in per_change)
    return {
        "app": kind, "viewers": count, "viewers_connected": viewers.ready, "viewers_failed": viewers.failed,
        "connect_seconds": round(connect_s, 1), "board_changes": changes,
        "deliveries": delivered, "deliveries_expected": viewers.ready * changes,
        "latency": percentiles(latencies),
        "memory_per_viewer_kib": round((rss_after - rss_before) / max(1, viewers.ready), 1),
        "worker_rss_mib": round(rss_after / 1024, 1),
        "cpu_us_per_delivery": round(cpu_used / max(1, delivered) * 1e6, 1),
        "viewer_process_cpu_s": round(viewers.cpu_seconds, 2),
        "redis_connections": connections,
        "per_change": per_change,  # deliveries, first and last arrival (ms after the PUBLISH)
    }


def make_users(database_url: str, count: int) -> list[int]:
    """``count`` users straight into the database (the benchmark is not about registering)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    tag = secrets.token_hex(3)
    with engine.begin() as conn:
        ids = [row[0] for row in conn.execute(
            text("INSERT INTO users (username, password_hash) SELECT 'e2e' || :tag || '_' || g, 'x'"
                 " FROM generate_series(1, :n) g RETURNING id"), {"tag": tag, "n": count})]
    engine.dispose()
    return sorted(ids)


def issue_tokens(r: redis.Redis, settings: Settings, owners: list[tuple[str, int]], delta: int) -> list[list]:
    """One action token per ``(access token, user id)``: ``[access, action token, secret, delta]``."""
    from scoreboard import action_tokens
    from scoreboard.redis_client import Keys

    keys, tap = Keys(settings.redis_prefix), settings.actions.by_name["tap"]
    out = []
    for access, uid in owners:
        record = action_tokens.issue(r, keys, settings, uid, tap)
        out.append([access, record.token, record.secret, delta])
    return out


def end_to_end(env: dict, settings: Settings, r: redis.Redis, database_url: str, viewers_count: int,
               seconds: float, rate: float, workdir: Path, probe_every: float = 0.25, warmup: float = 2.0,
               profile: Path | None = None) -> dict:
    """Submissions through the whole pipeline at ``rate``/s; probes time POST -> board on every viewer."""
    started = []
    try:
        web, base = start_server("web.wsgi:app", env, workers=2, conf="web/gunicorn_conf.py")
        started.append(web)
        started += [processes.start_worker(env, LOGS) for _ in range(2)]
        stream, stream_base = start_server("stream", env)
        started.append(stream)
        users = make_users(database_url, viewers_count + 1)
        probe_user, load_users = users[0], users[1:]
        access = tokens_for(settings, users)
        probe_access, load_access = access[0], access[1:]
        # the probe user tops the board from the start (its first submission, applied before the load)
        first = issue_tokens(r, settings, [(probe_access, probe_user)], 1000)[0]
        total = int(rate * seconds)
        subs = issue_tokens(r, settings, [(load_access[i % len(load_users)], load_users[i % len(load_users)])
                                          for i in range(total)], 1)
        probes = issue_tokens(r, settings, [(probe_access, probe_user)] * int(seconds / probe_every + 1), 1000)
        plan_file, out_file = workdir / "plan.json", workdir / "load.json"
        port = int(base.rsplit(":", 1)[1])
        warm = workdir / "warm.json"
        warm.write_text(json.dumps({"port": port, "rate": 10, "seconds": 0.1, "connections": 1, "warmup": 0,
                                    "probe_every": 1, "probe_start_score": 0, "submissions": [first], "probes": []}))
        subprocess.run([sys.executable, str(ROOT / "bench" / "fanout_load.py"), str(warm), str(out_file)],
                       check=True, stdout=subprocess.DEVNULL)
        viewers = Viewers(int(stream_base.rsplit(":", 1)[1]), load_access, workdir)
        plan_file.write_text(json.dumps({"port": port, "rate": rate, "seconds": seconds, "connections": 64,
                                         "warmup": warmup, "probe_every": probe_every,
                                         "probe_start_score": 1000, "submissions": subs, "probes": probes}))
        server_pids = {"web": web.pid, "workers": [p.pid for p in started[1:3]], "stream": stream.pid,
                       "redis": int(r.info("server")["process_id"])}
        cpu0 = {"web": tree_cpu(web.pid), "workers": sum(tree_cpu(p) for p in server_pids["workers"]),
                "stream": tree_cpu(stream.pid), "redis": cpu_seconds(server_pids["redis"]), "postgres": postgres_cpu()}
        spies = []
        if profile is not None:  # every server process during the load, at a lower rate (7 samplers)
            for name, pid in (("stream", worker_pid(stream.pid)), *(("web", p) for p in children(web.pid)),
                              *(("worker", p) for p in server_pids["workers"])):
                spies.append(spy(pid, profile / f"e2e-{name}-{pid}.txt", rate=100))
        t0 = time.monotonic()
        subprocess.run(pinned([sys.executable, str(ROOT / "bench" / "fanout_load.py"), str(plan_file),
                               str(out_file)], CLIENT_CPUS), check=True, stdout=subprocess.DEVNULL)
        wall = time.monotonic() - t0
        stop_spies(spies)
        cpu1 = {"web": tree_cpu(web.pid), "workers": sum(tree_cpu(p) for p in server_pids["workers"]),
                "stream": tree_cpu(stream.pid), "redis": cpu_seconds(server_pids["redis"]), "postgres": postgres_cpu()}
        time.sleep(2)
        arrivals = viewers.stop()
        load = json.loads(out_file.read_text())
    finally:
        for proc in started:
            proc.stop()
    by_viewer: dict[int, list] = {}
    for viewer, _, first_score, arrival in arrivals:
        by_viewer.setdefault(viewer, []).append((arrival, first_score if first_score is not None else -1))
    latencies, missing = [], 0
    for t_post, expected in load["probes"]:
        for seen in by_viewer.values():
            hit = next((a for a, s in seen if s >= expected and a >= t_post), None)
            if hit is None:
                missing += 1
            else:
                latencies.append(hit - t_post)
    cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu0}
    cpu["load_generator"] = load["cpu_seconds"]
    cpu["viewers"] = round(viewers.cpu_seconds, 2)
    return {"viewers": viewers.ready, "seconds": seconds, "target_rate_per_s": rate,
            "achieved_rate_per_s": load["achieved_rate_per_s"], "max_lag_ms": load["max_lag_ms"],
            "statuses": load["statuses"], "accept_latency": load["accept_latency"],
            "probes": len(load["probes"]), "missing": missing, "latency": percentiles(latencies),
            "cpu_seconds": cpu, "wall_seconds": round(wall, 1),
            "cpu_cores_used": round(sum(cpu.values()) / wall, 2)}


def median_of(runs: list[dict], *path: str) -> float | None:
    values = []
    for run in runs:
        value = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


def summarise(results: dict) -> dict:
    """Medians over the runs: the figures ``bench/run.py`` puts in its table."""
    summary = {}
    for count in sorted({f["viewers"] for f in results["fanout"]}):
        for kind in APPS:
            runs = [f for f in results["fanout"] if f["viewers"] == count and f["app"] == kind]
            if runs:
                summary[f"{kind}_{count}"] = {
                    "runs": len(runs),
                    **{k: median_of(runs, "latency", k) for k in ("p50_ms", "p99_ms", "max_ms")},
                    **{k: median_of(runs, k) for k in ("memory_per_viewer_kib", "cpu_us_per_delivery",
                                                       "redis_connections")},
                    "all_delivered": all(f["deliveries"] == f["deliveries_expected"] for f in runs),
                    "p99_each_run_ms": [f["latency"].get("p99_ms") for f in runs],
                }
        ours, ref = summary.get(f"stream_{count}"), summary.get(f"bare_{count}")
        if ours and ref and ref["p99_ms"]:
            summary[f"ratio_p99_{count}"] = round(ours["p99_ms"] / ref["p99_ms"], 2)
    if results.get("end_to_end"):
        runs = results["end_to_end"]
        summary["end_to_end"] = {
            "runs": len(runs),
            **{k: median_of(runs, "latency", k) for k in ("p50_ms", "p99_ms", "max_ms")},
            "achieved_rate_per_s": median_of(runs, "achieved_rate_per_s"),
            "load_generator_cpu_s": median_of(runs, "cpu_seconds", "load_generator"),
            "cpu_cores_used": median_of(runs, "cpu_cores_used"),
            "missing": sum(r["missing"] for r in runs),
            "p50_each_run_ms": [r["latency"].get("p50_ms") for r in runs],
            "p99_each_run_ms": [r["latency"].get("p99_ms") for r in runs],
        }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--viewers", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--reference", choices=["yes", "no"], default="yes", help="also measure the bare app")
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--e2e-viewers", type=int, default=1000, help="0 skips the end-to-end part")
    parser.add_argument("--e2e-seconds", type=float, default=20)
    parser.add_argument("--e2e-rate", type=float, default=500, help="submissions per second")
    parser.add_argument("--out", type=Path, default=RESULTS / "fanout.json")
    parser.add_argument("--profile", type=Path, help="a directory: py-spy profiles of the stream workers (raw)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < max(args.viewers or [0]) + 1000:
        print(f"the open-files limit ({hard}) is too low for {max(args.viewers)} viewers", file=sys.stderr)
        return 2
    LOGS.mkdir(parents=True, exist_ok=True)
    database_url = services.create_database()
    index = services.RedisIndex()
    try:
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=index.url, SECRET_KEY=secrets.token_urlsafe(48),
                   SCOREBOARD_ENV="test", REDIS_PREFIX=f"sbb{secrets.token_hex(3)}:", RATELIMIT_ENABLED="false",
                   ARGON2_TIME_COST="1", ARGON2_MEMORY_KIB="1024", ACTION_TYPES=json.dumps([TAP]),
                   LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1", STREAM_MAX_PER_USER="100000", PENDING_CAP="0")
        os.environ["DATABASE_URL"] = database_url
        from scoreboard.__main__ import migrate

        migrate()
        settings = Settings.from_env(env)
        r = redis.Redis.from_url(index.url)
        from scoreboard.redis_client import Keys

        r.set(Keys(settings.redis_prefix).board_ready("all-time", "all"), 1)
        results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                               "server_cpus": SERVER_CPUS, "client_cpus": CLIENT_CPUS},
                   "stream": {"board_interval_ms": settings.stream.board_interval_ms},
                   "fanout": [], "end_to_end": []}
        kinds = ["stream", "bare"] if args.reference == "yes" else ["stream"]
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):
                for count in args.viewers:
                    for kind in (kinds if run % 2 == 0 else kinds[::-1]):
                        figures = fanout(kind, env, settings, r, count, args.changes, Path(tmp), args.profile)
                        results["fanout"].append(figures)
                        print(f"run {run + 1} {kind:>6} {count:>6} viewers: latency {figures['latency']}, "
                              f"{figures['memory_per_viewer_kib']} KiB/viewer, "
                              f"{figures['cpu_us_per_delivery']} us CPU/delivery, "
                              f"{figures['redis_connections']} Redis connections, "
                              f"{figures['deliveries']}/{figures['deliveries_expected']} delivered", flush=True)
                if args.e2e_viewers:
                    e2e = end_to_end(env, settings, r, database_url, args.e2e_viewers, args.e2e_seconds,
                                     args.e2e_rate, Path(tmp), profile=args.profile)
                    results["end_to_end"].append(e2e)
                    print(f"run {run + 1} end to end, {e2e['viewers']} viewers, {e2e['achieved_rate_per_s']}/s "
                          f"submissions (target {args.e2e_rate}, max lag {e2e['max_lag_ms']} ms, statuses "
                          f"{e2e['statuses']}): POST -> board {e2e['latency']} ({e2e['missing']} missing); "
                          f"accept {e2e['accept_latency']}; CPU s {e2e['cpu_seconds']}, "
                          f"{e2e['cpu_cores_used']} cores", flush=True)
        results["summary"] = summarise(results)
        print("summary (medians):", json.dumps(results["summary"], indent=1))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {args.out}")
    finally:
        services.drop_database(database_url)
        index.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
