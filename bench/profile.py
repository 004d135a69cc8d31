#!/usr/bin/env python3
"""Profile one gunicorn web worker under wrk load with py-spy (not part of ``make bench``).

    python bench/profile.py accept|board [--seconds 8] [--out /tmp/profile.txt]

Starts the same stack as the accept benchmark (fresh database and Redis index, one
gevent worker pinned to the server core), drives it with wrk, samples the worker with
``py-spy record --format raw`` (collapsed stacks) and prints the functions with the
most samples, self and cumulative. Needs ``pip install py-spy``.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.accept import prepare_bodies  # noqa: E402
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["accept", "board"])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "profile-raw.txt"))
    args = parser.parse_args()
    svc = Services()
    try:
        base = svc.web()
        pid = worker_pid(svc.procs[-1].pid)
        if args.what == "accept":
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
