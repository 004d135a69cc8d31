"""``make bench``: each stage's figure beside its reference measured in the same run,
the ratio and the target; printed as a table and written as JSON under bench/results/.

    python bench/run.py [--runs 3] [--only apply,accept,fanout,soak] [--soak-minutes 3]

``fanout`` (bench/fanout.py: 1,000 and 10,000 viewers, end to end) and ``soak``
(bench/soak.py) run as their own processes and print their own figures too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import accept, apply  # noqa: E402
from bench.common import CLIENT_CPUS, CORES, ROOT, SERVER_CPUS, save  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="apply,accept,fanout,soak")
    parser.add_argument("--soak-minutes", type=float, default=3)
    args = parser.parse_args()
    stages = set(args.only.split(","))
    rows, results = [], {}
    if "apply" in stages:
        a = results["apply"] = apply.run(runs=args.runs)
        rows.append(("apply, 2 workers, queue pre-filled (subs/s)", a["apply_per_s"],
                     "pgbench same txn, 1 sub/txn, 8 clients (tps)", a["reference_tps"], a["ratio"],
                     ">= 2.5x and >= 10,000/s"))
    if "accept" in stages:
        a = results["accept"] = accept.run(runs=args.runs)
        rows.append(("accept, full check chain (req/s)", a["accept_rps"], "bare Flask POST (req/s)",
                     a["accept_reference_rps"], a["accept_ratio"], ">= 0.5x"))
        rows.append(("accept p99 at 80% of max (ms)", a["accept_p99_at_80pct_ms"], "", None, None, "< 50 ms"))
        rows.append(("GET /api/scoreboard cached (req/s)", a["board_rps"], "bare Flask GET (req/s)",
                     a["board_reference_rps"], a["board_ratio"], ">= 0.8x"))
    for name, argv in (("fanout", ["bench/fanout.py"]),
                       ("soak", ["bench/soak.py", "--minutes", str(args.soak_minutes)])):
        if name in stages:
            print(f"\n== {name}", flush=True)
            subprocess.run([sys.executable, *argv], cwd=ROOT, check=True)
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
