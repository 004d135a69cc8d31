"""Accept stage: HTTP POST to queued, with the full check chain, against a bare Flask
endpoint on the same gunicorn and gevent settings, and beside the floor of the libraries
the route is built on (bench/floor_app.py); and the board read (cached) against the bare
app's GET. Every server gets one gunicorn worker on the server core.

``durability``: the same accept at each durability level (``REDIS_MIN_REPLICA_ACKS`` 0 or 1,
``appendfsync everysec`` or ``always``) on a Redis primary with one replica of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench.common import CLIENT_CPUS, ROOT, SERVER_CPUS, Services, median, pinned, wrk
from bench.fanout import issue_tokens
from scoreboard import action_tokens
from scoreboard.redis_client import Keys
from scoreboard.settings import Settings
from tests.client import Player, sign
from tests.own_servers import OwnRedis

USERS = 50
# The full check chain includes the rate limit: on, with the production shape (a
# per-second and a per-minute window, each its own Redis counter), never reached; the
# players' registrations and logins must not be limited either.
RATE_LIMITS = {"RATELIMIT_ENABLED": "true", "RATE_LIMIT_SUBMIT": "1000000 per second;60000000 per minute",
               "RATE_LIMIT_LOGIN": "1000000 per minute", "RATE_LIMIT_REGISTER": "1000000 per minute"}


def prepare_bodies(svc: Services, base: str, count: int, players: list[Player] | None = None) -> str:
    """A file of "jwt<TAB>body" lines, each with its own fresh action token."""
    players = players or [Player(base) for _ in range(USERS)]
    settings = Settings.from_env(svc.env)
    r = redis.Redis.from_url(svc.redis.url)
    keys = Keys(svc.prefix)
    tap = settings.actions.by_name["tap"]
    path = tempfile.mktemp(prefix="sb-bodies-", suffix=".txt")
    with open(path, "w") as fh:
        for i in range(count):
            p = players[i % USERS]
            token = action_tokens.issue(r, keys, settings, p.id, tap)
            done = int(time.time() * 1000)
            body = {"action_token": token.token, "score_delta": 5, "completed_at": done,
                    "signature": sign(token.secret, token.token, 5, done)}
            fh.write(f"{p.tokens['access_token']}\t{json.dumps(body)}\n")
    return path


def open_loop(svc: Services, base: str, players: list[Player], rate: float, seconds: int,
              probe_stalls: bool = False) -> dict:
    """Submissions due at a steady ``rate`` whatever the answers' pace (open loop: wrk's
    closed loop cannot hold a rate below the maximum), from ``bench/fanout_load.py``
    pinned to the client core; latency from each one's due time. With ``probe_stalls``, the
    stall probe (``bench/stalls.py``) on the server core records when that core was taken
    from the server: ``stalls`` are [s after the start, ms], to line up with ``slowest``."""
    settings = Settings.from_env(svc.env)
    r = redis.Redis.from_url(svc.redis.url)
    owners = [(players[i % len(players)].tokens["access_token"], players[i % len(players)].id)
              for i in range(int(rate * seconds) + 1)]
    subs = issue_tokens(r, settings, owners, 5)
    with tempfile.TemporaryDirectory(prefix="sb-accept-") as tmp:
        plan, out, probed = Path(tmp) / "plan.json", Path(tmp) / "out.json", Path(tmp) / "stalls.json"
        plan.write_text(json.dumps({"port": int(base.rsplit(":", 1)[1]), "rate": rate, "seconds": seconds,
                                    "connections": 64, "warmup": seconds + 1, "probe_every": 1,
                                    "probe_start_score": 0, "submissions": subs, "probes": []}))
        probe = subprocess.Popen(pinned([sys.executable, str(ROOT / "bench" / "stalls.py"), str(probed)],
                                        SERVER_CPUS)) if probe_stalls else None
        try:
            subprocess.run(pinned([sys.executable, str(ROOT / "bench" / "fanout_load.py"), str(plan), str(out)],
                                  CLIENT_CPUS), check=True, stdout=subprocess.DEVNULL)
        finally:
            if probe:
                probe.terminate()
                probe.wait(10)
        load = json.loads(out.read_text())
        start = load["started_at"]
        stalls = [[round(at - start, 3), ms] for at, ms in json.loads(probed.read_text())["stalls"]
                  if start <= at <= start + load["seconds"]] if probe else []
    return {"rps": load["achieved_rate_per_s"], "target_rps": round(rate, 1),
            "p50_ms": load["accept_latency"]["p50_ms"], "p99_ms": load["accept_latency"]["p99_ms"],
            "errors": load["sent"] - load["statuses"].get("202", 0), "max_lag_ms": load["max_lag_ms"],
            "slowest": load["slowest"], "stalls": stalls, "stall_max_ms": max((ms for _, ms in stalls), default=0.0),
            "client_cpu_s": load["cpu_seconds"], "seconds": seconds}


def run(runs: int = 3, seconds: int = 8, probe_stalls: bool = False) -> dict:
    svc = Services()
    svc.env.update(RATE_LIMITS)
    try:
        base = svc.web()
        bare = svc.web(app="bench.bare_app:app")
        floor = svc.web(app="bench.floor_app:app")
        results = []
        players = [Player(base) for _ in range(USERS)]
        for _ in range(runs):
            bodies = prepare_bodies(svc, base, 40_000, players)
            ref = wrk(bare, "wrk_simple.lua", ["POST", "/api/score/update"], seconds=seconds)
            full = wrk(base, "wrk_bodies.lua", [bodies, "0", "2"], seconds=seconds)
            libraries = wrk(floor, "wrk_bodies.lua", [bodies, "0", "2"], seconds=seconds)
            at70 = open_loop(svc, base, players, 0.7 * full["rps"], seconds)
            at80 = open_loop(svc, base, players, 0.8 * full["rps"], seconds, probe_stalls)
            board_ref = wrk(bare, "wrk_simple.lua", ["GET", "/api/scoreboard"], seconds=seconds)
            board = wrk(base, "wrk_simple.lua", ["GET", "/api/scoreboard"], seconds=seconds)
            results.append({"reference": ref, "accept": full, "floor": libraries, "accept_at_70pct": at70,
                            "accept_at_80pct": at80, "board_reference": board_ref, "board": board})
        return {
            "runs": results,
            "accept_rps": median([r["accept"] for r in results], "rps"),
            "accept_reference_rps": median([r["reference"] for r in results], "rps"),
            "accept_ratio": median([{"x": r["accept"]["rps"] / r["reference"]["rps"]} for r in results], "x"),
            "floor_rps": median([r["floor"] for r in results], "rps"),
            "floor_ratio": median([{"x": r["floor"]["rps"] / r["reference"]["rps"]} for r in results], "x"),
            "accept_p99_at_80pct_ms": median([r["accept_at_80pct"] for r in results], "p99_ms"),
            "accept_p99_at_70pct_ms": median([r["accept_at_70pct"] for r in results], "p99_ms"),
            "stall_max_at_80pct_ms": median([r["accept_at_80pct"] for r in results], "stall_max_ms")
            if probe_stalls else None,
            "accept_rps_at_80pct": median([r["accept_at_80pct"] for r in results], "rps"),
            "accept_errors": sum(r["accept"]["errors"] + r["accept_at_70pct"]["errors"] + r["accept_at_80pct"]["errors"]
                                 for r in results),
            "board_rps": median([r["board"] for r in results], "rps"),
            "board_reference_rps": median([r["board_reference"] for r in results], "rps"),
            "board_ratio": median([{"x": r["board"]["rps"] / r["board_reference"]["rps"]} for r in results], "x"),
        }
    finally:
        svc.close()


if __name__ == "__main__":
    print(json.dumps({k: v for k, v in run(runs=1, seconds=5).items() if k != "runs"}, indent=2))


# (REDIS_MIN_REPLICA_ACKS, appendfsync) of each durability level; the first is the reference.
DURABILITY_LEVELS = ((0, "everysec"), (1, "everysec"), (0, "always"), (1, "always"))


def durability(runs: int = 3, seconds: int = 8) -> dict:
    """Accept at each durability level: the most requests/s (wrk) and the p99 at one offered
    rate for all (open loop, half the reference level's first maximum).

    One Redis primary with append-only persistence and one replica, both with the level's
    ``appendfsync`` (``CONFIG SET``), and one web server per ``REDIS_MIN_REPLICA_ACKS``; each
    run measures every level in turn, so that what else the machine does weighs on all alike.
    """
    primary = OwnRedis()
    replica = OwnRedis(replica_of=primary)
    svc = Services(redis_server=primary)
    svc.env.update(RATE_LIMITS)
    samples: dict[tuple, list] = {level: [] for level in DURABILITY_LEVELS}
    rate = None
    try:
        bases = {acks: svc.web(env={"REDIS_MIN_REPLICA_ACKS": str(acks)}) for acks in sorted({a for a, _ in samples})}
        players = [Player(bases[0]) for _ in range(USERS)]
        for base in bases.values():  # warm up (not counted)
            wrk(base, "wrk_bodies.lua", [prepare_bodies(svc, base, 10_000, players), "0", "2"], seconds=2)
        for _ in range(runs):
            for acks, fsync in DURABILITY_LEVELS:
                for server in (primary, replica):
                    server.client().config_set("appendfsync", fsync)
                base = bases[acks]
                full = wrk(base, "wrk_bodies.lua", [prepare_bodies(svc, base, 40_000, players), "0", "2"],
                           seconds=seconds)
                rate = rate or round(0.5 * full["rps"])
                samples[(acks, fsync)].append({"accept": full, "at_rate": open_loop(svc, base, players, rate, seconds)})
    finally:
        svc.close()
        replica.close()
        primary.close()
    levels = {
        f"acks={acks} {fsync}": {
            "runs": results,
            "rps": median([r["accept"] for r in results], "rps"),
            "p99_ms": median([r["at_rate"] for r in results], "p99_ms"),
            "errors": sum(r["accept"]["errors"] + r["at_rate"]["errors"] for r in results),
        }
        for (acks, fsync), results in samples.items()
    }
    reference = next(iter(levels.values()))
    for level in levels.values():
        level["rps_ratio"] = round(level["rps"] / reference["rps"], 2)
        level["p99_ratio"] = round(level["p99_ms"] / reference["p99_ms"], 2)
    return {"rate": rate, "levels": levels}
