"""Accept stage: HTTP POST to queued, with the full check chain, against a bare Flask
endpoint on the same gunicorn and gevent settings; and the board read (cached) against
the bare app's GET. Both servers get one gunicorn worker on the server core."""

from __future__ import annotations

import tempfile
import time

import redis

from bench.common import Services, median, wrk
from scoreboard import action_tokens
from scoreboard.redis_client import Keys
from scoreboard.settings import Settings
from tests.client import Player, sign

USERS = 50
# The full check chain includes the rate limit: on, with the production shape (a
# per-second and a per-minute window, each its own Redis counter), never reached; the
# players' registrations and logins must not be limited either.
RATE_LIMITS = {"RATELIMIT_ENABLED": "true", "RATE_LIMIT_SUBMIT": "1000000 per second;60000000 per minute",
               "RATE_LIMIT_LOGIN": "1000000 per minute", "RATE_LIMIT_REGISTER": "1000000 per minute"}


def prepare_bodies(svc: Services, base: str, count: int) -> str:
    """A file of "jwt<TAB>body" lines, each with its own fresh action token."""
    players = [Player(base) for _ in range(USERS)]
    settings = Settings.from_env(svc.env)
    r = redis.Redis.from_url(svc.redis.url)
    keys = Keys(svc.prefix)
    tap = settings.action_types_by_name["tap"]
    path = tempfile.mktemp(prefix="sb-bodies-", suffix=".txt")
    import json

    with open(path, "w") as fh:
        for i in range(count):
            p = players[i % USERS]
            token = action_tokens.issue(r, keys, settings, p.id, tap)
            done = int(time.time() * 1000)
            body = {"action_token": token.token, "score_delta": 5, "completed_at": done,
                    "signature": sign(token.secret, token.token, 5, done)}
            fh.write(f"{p.tokens['access_token']}\t{json.dumps(body)}\n")
    return path


def paced(rps_target: float, connections: int, latency_ms: float) -> str:
    """wrk delay (ms) per request per connection that gives about ``rps_target`` in all."""
    return str(max(0, int(connections * 1000 / rps_target - latency_ms)))


def run(runs: int = 3, seconds: int = 8) -> dict:
    svc = Services()
    svc.env.update(RATE_LIMITS)
    try:
        base = svc.web()
        bare = svc.web(app="bench.bare_app:app")
        results = []
        for _ in range(runs):
            bodies = prepare_bodies(svc, base, 40_000)
            ref = wrk(bare, "wrk_simple.lua", ["POST", "/api/score/update"], seconds=seconds)
            full = wrk(base, "wrk_bodies.lua", [bodies, "0", "2"], seconds=seconds)
            bodies = prepare_bodies(svc, base, 40_000)
            at80 = wrk(base, "wrk_bodies.lua", [bodies, paced(0.8 * full["rps"], 32, full["p50_ms"] / 2), "2"],
                       connections=32, seconds=seconds)
            board_ref = wrk(bare, "wrk_simple.lua", ["GET", "/api/scoreboard"], seconds=seconds)
            board = wrk(base, "wrk_simple.lua", ["GET", "/api/scoreboard"], seconds=seconds)
            results.append({"reference": ref, "accept": full, "accept_at_80pct": at80, "board_reference": board_ref,
                            "board": board})
        return {
            "runs": results,
            "accept_rps": median([r["accept"] for r in results], "rps"),
            "accept_reference_rps": median([r["reference"] for r in results], "rps"),
            "accept_ratio": median([{"x": r["accept"]["rps"] / r["reference"]["rps"]} for r in results], "x"),
            "accept_p99_at_80pct_ms": median([r["accept_at_80pct"] for r in results], "p99_ms"),
            "accept_rps_at_80pct": median([r["accept_at_80pct"] for r in results], "rps"),
            "accept_errors": sum(r["accept"]["errors"] + r["accept_at_80pct"]["errors"] for r in results),
            "board_rps": median([r["board"] for r in results], "rps"),
            "board_reference_rps": median([r["board_reference"] for r in results], "rps"),
            "board_ratio": median([{"x": r["board"]["rps"] / r["board_reference"]["rps"]} for r in results], "x"),
        }
    finally:
        svc.close()


if __name__ == "__main__":
    import json

    print(json.dumps({k: v for k, v in run(runs=1, seconds=5).items() if k != "runs"}, indent=2))
