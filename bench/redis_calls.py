#!/usr/bin/env python3
"""CPU per Redis command of the installed redis-py under gevent, as the web uses it.

    python bench/redis_calls.py [REDIS_URL]

64 greenlets in one process each run HGETALL, EVALSHA and a 2-command pipeline in a
loop (the shape of a submission's round trips); prints the CPU time per call and calls/s,
three times. Run it with another virtualenv's Python to compare redis-py versions.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402

GREENLETS, LOOPS = 64, 300


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/15"
    r = redis.Redis.from_url(url, socket_connect_timeout=5, socket_keepalive=True, health_check_interval=30)
    r.hset("bench:redis_calls:h", mapping={"a": 1, "b": 2, "c": 3})
    sha = r.script_load("return 1")

    def work():
        for _ in range(LOOPS):
            r.hgetall("bench:redis_calls:h")
            r.evalsha(sha, 0)
            with r.pipeline(transaction=False) as pipe:
                pipe.exists("bench:redis_calls:k")
                pipe.sismember("bench:redis_calls:s", "x")
                pipe.execute()

    calls = GREENLETS * LOOPS * 3
    for _ in range(3):
        cpu, wall = time.process_time(), time.perf_counter()
        gevent.joinall([gevent.spawn(work) for _ in range(GREENLETS)])
        print(f"redis-py {redis.__version__}: {(time.process_time() - cpu) / calls * 1e6:.1f} µs CPU per call,"
              f" {calls / (time.perf_counter() - wall):,.0f} calls/s")
    r.delete("bench:redis_calls:h")


if __name__ == "__main__":
    main()
