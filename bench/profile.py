#!/usr/bin/env python3
"""Profile one gunicorn web worker under wrk load with py-spy (not part of ``make bench``).

    python bench/profile.py accept|floor|board|apply [--seconds 8] [--limiter] [--out /tmp/profile-raw.txt]

accept, floor (bench/floor_app.py: the submit route's libraries alone; FLOOR_LAYERS picks
them) and board: the same stack as the accept benchmark (fresh database and Redis
index, one gevent worker pinned to the server core) driven by wrk; apply: one RQ worker
draining a queue pre-filled as in the apply benchmark. The process is sampled with
``py-spy record --format raw`` (collapsed stacks); prints the functions with the most
samples, self and cumulative. Needs ``pip install py-spy``.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.accept import RATE_LIMITS, prepare_bodies  # noqa: E402
from bench.common import Services, pinned, CLIENT_CPUS, ROOT  # noqa: E402


def worker_pid(master: int) -> int:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return int(out[0])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarise(raw: Path, top: int) -> str:
    own, total, samples = collections.Counter(), collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples", "-- self"]
    lines += [f"{100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["-- cumulative"]
    lines += [f"{100 * n / samples:5.1f}%  {f}" for f, n in total.most_common(top * 2)]
    return "\n".join(lines)


def profile_apply(svc: Services, out: str, count: int = 20_000) -> None:
    import redis

    from bench.apply import make_users, prefill
    from scoreboard.redis_client import Keys

    prefill(svc, make_users(svc.database_url), count)
    r, keys = redis.Redis.from_url(svc.redis.url), Keys(svc.prefix)
    spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "--rate", "500", "--output", out,
                            "--nonblocking", "--", sys.executable, "-m", "workers"], cwd=ROOT, env=svc.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    started = time.monotonic()
    while r.zcard(keys.batches) and time.monotonic() - started < 300:
        time.sleep(0.05)
    print(f"{count} submissions applied in {time.monotonic() - started:.2f} s by one worker (start-up included)")
    worker = subprocess.run(["pgrep", "-P", str(spy.pid)], capture_output=True, text=True).stdout.split()
    for pid in worker:
        os.kill(int(pid), signal.SIGTERM)
    spy.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["accept", "floor", "board", "apply"])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "profile-raw.txt"))
    parser.add_argument("--limiter", action="store_true", help="rate limiter on, as in the accept benchmark")
    args = parser.parse_args()
    svc = Services()
    if args.limiter:
        svc.env.update(RATE_LIMITS)
    try:
        if args.what == "apply":
            profile_apply(svc, args.out)
            print(summarise(Path(args.out), args.top))
            return 0
        base = svc.web()
        if args.what == "floor":
            wargs = [prepare_bodies(svc, base, 40_000), "0", "2"]
            base = svc.web(app="bench.floor_app:app")
        pid = worker_pid(svc.procs[-1].pid)
        if args.what == "floor":
            script = "wrk_bodies.lua"
        elif args.what == "accept":
            script, wargs = "wrk_bodies.lua", [prepare_bodies(svc, base, 40_000), "0", "2"]
        else:
            script, wargs = "wrk_simple.lua", ["GET", "/api/scoreboard"]
        spy = subprocess.Popen(pinned(["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "500",
                                       "--duration", str(args.seconds), "--output", args.out, "--nonblocking"],
                                      CLIENT_CPUS), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        wrk = subprocess.run(pinned(["wrk", "-t", "2", "-c", "64", "-d", f"{args.seconds}s", "-s",
                                     str(ROOT / "bench" / script), base, "--", *wargs], CLIENT_CPUS),
                             capture_output=True, text=True)
        busy = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        spy.wait()
        print(f"server worker busy {100 * busy:.0f}% of one core")
        print(wrk.stdout.split("Requests/sec:")[1].splitlines()[0].strip(), "req/s")
        print(summarise(Path(args.out), args.top))
    finally:
        svc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
