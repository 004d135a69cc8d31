"""``make bench``: each stage's figure beside its reference measured in the same run,
the ratio and the target; printed as a table and written as JSON under bench/results/.

    python bench/run.py [--runs 3] [--only apply,accept,fanout,soak,durability] [--soak-minutes 3] [--probe-stalls]

``durability`` (not in the default set) measures accept at each durability level
(``REDIS_MIN_REPLICA_ACKS`` 0/1 with ``appendfsync`` everysec/always; bench/accept.py).

``fanout`` (bench/fanout.py: 1,000 and 10,000 viewers beside the bare gevent reference, and
end to end at 500 submissions/s; ``--runs`` runs, medians) and ``soak`` (bench/soak.py) run
as their own processes and print their own figures too; the fan-out rows come from the
summary that bench/fanout.py writes (bench/results/fanout.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import accept, apply  # noqa: E402
from bench.common import CLIENT_CPUS, CORES, RESULTS, ROOT, SERVER_CPUS, save  # noqa: E402


def fanout_rows(f: dict) -> list[tuple]:
    """The fan-out stage's rows, from bench/fanout.py's summary (medians of its runs)."""
    ours, ref, e2e = f.get("stream_10000"), f.get("bare_10000"), f.get("end_to_end")
    rows = []
    if ours and ref:
        ratio = lambda a, b: round(a / b, 2) if a is not None and b else None  # noqa: E731
        rows.append(("fan-out, 10,000 viewers: p99 (ms)", ours["p99_ms"],
                     "bare gevent WSGI app, same bytes: p99 (ms)", ref["p99_ms"], ratio(ours["p99_ms"], ref["p99_ms"]),
                     "<= 1.2x"))
        rows.append(("fan-out, memory per viewer (KiB)", ours["memory_per_viewer_kib"],
                     "bare gevent WSGI app (KiB)", ref["memory_per_viewer_kib"],
                     ratio(ours["memory_per_viewer_kib"], ref["memory_per_viewer_kib"]), "<= 30 KB (29.3 KiB)"))
        rows.append(("fan-out, Redis connections per process", ours["redis_connections"],
                     "bare gevent WSGI app (subscription only)", ref["redis_connections"],
                     ratio(ours["redis_connections"], ref["redis_connections"]), "1"))
    if e2e:
        rows.append(("end to end, 1,000 viewers, 500/s: p50 (ms)", e2e["p50_ms"], "", None, None,
                     "< 50 ms"))
        rows.append(("end to end, POST -> board: p99 (ms)", e2e["p99_ms"], "", None, None, "< 250 ms"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="apply,accept,fanout,soak")
    parser.add_argument("--soak-minutes", type=float, default=3)
    parser.add_argument("--probe-stalls", action="store_true",
                        help="run bench/stalls.py on the server core during the accept stage's 80%% load")
    args = parser.parse_args()
    stages = set(args.only.split(","))
    rows, results = [], {}
    if "apply" in stages:
        a = results["apply"] = apply.run(runs=args.runs)
        rows.append(("apply, 2 workers, queue pre-filled (subs/s)", a["apply_per_s"],
                     "pgbench same txn, 1 sub/txn, 8 clients (tps)", a["reference_tps"], a["ratio"],
                     ">= 2.5x and >= 10,000/s"))
    if "accept" in stages:
        a = results["accept"] = accept.run(runs=args.runs, probe_stalls=args.probe_stalls)
        rows.append(("accept, full check chain (req/s)", a["accept_rps"], "bare Flask POST (req/s)",
                     a["accept_reference_rps"], a["accept_ratio"], ">= 0.5x"))
        rows.append(("  its libraries alone, no work of ours (req/s)", a["floor_rps"], "bare Flask POST (req/s)",
                     a["accept_reference_rps"], a["floor_ratio"], "(the most accept can reach)"))
        rows.append(("accept p99 at 80% of max (ms)", a["accept_p99_at_80pct_ms"], "", None, None, "< 50 ms"))
        rows.append(("accept p99 at 70% of max (ms)", a["accept_p99_at_70pct_ms"], "", None, None,
                     "(for comparison)"))
        if args.probe_stalls:
            rows.append(("  longest stall of the server core at 80% (ms)", a["stall_max_at_80pct_ms"], "", None,
                         None, "(bench/stalls.py)"))
        rows.append(("GET /api/scoreboard cached (req/s)", a["board_rps"], "bare Flask GET (req/s)",
                     a["board_reference_rps"], a["board_ratio"], ">= 0.8x"))
    if "durability" in stages:
        d = results["durability"] = accept.durability(runs=args.runs)
        reference = next(iter(d["levels"]))
        for name, level in d["levels"].items():
            rows.append((f"accept, {name} (req/s)", level["rps"], f"accept, {reference} (req/s)",
                         d["levels"][reference]["rps"], level["rps_ratio"], "(the cost of the level)"))
            rows.append((f"  p99 at {d['rate']} req/s (ms)", level["p99_ms"], f"{reference} (ms)",
                         d["levels"][reference]["p99_ms"], level["p99_ratio"], ""))
    if "fanout" in stages:
        print("\n== fanout", flush=True)
        out = RESULTS / "fanout.json"
        subprocess.run([sys.executable, "bench/fanout.py", "--runs", str(args.runs), "--out", str(out)], cwd=ROOT,
                       check=True)
        f = results["fanout"] = json.loads(out.read_text())["summary"]
        rows.extend(fanout_rows(f))
    if "soak" in stages:
        print("\n== soak", flush=True)
        subprocess.run([sys.executable, "bench/soak.py", "--minutes", str(args.soak_minutes)], cwd=ROOT, check=True)
    print(f"\n{CORES} cores; server pinned to CPU {SERVER_CPUS}, load generator to CPU {CLIENT_CPUS};"
          f" medians of {args.runs} runs")
    print(f"{'stage':<46} {'figure':>10}  {'reference':<46} {'ref':>9} {'ratio':>6}  target")
    for stage, figure, ref_name, ref, ratio, target in rows:
        print(f"{stage:<46} {figure:>10,.1f}  {ref_name:<46} {ref or 0:>9,.1f} "
              f"{(f'{ratio:.2f}x' if ratio else ''):>6}  {target}")
    path = save("bench", {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": CORES,
                          "runs": args.runs, "table": rows, "results": results, "load": os.getloadavg()})
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
