"""A stall probe: sleeps 2 ms at a time and records every wake-up that came late.

    python bench/stalls.py OUT_FILE     (pinned to a core by its caller; stop it with SIGTERM)

A process that does nothing but sleep should wake on time. When it wakes more than
``LATE_MS`` late, the core it is pinned to was not available to it (another process held
it, or the virtual machine was not running): the server pinned to the same core was
stalled as long. Writes ``{"stalls": [[monotonic time, ms late], ...], "max_ms": ...,
"wakeups": ...}`` on SIGTERM. ``time.monotonic()`` is the system-wide monotonic clock, so
the times line up with the load generator's.
"""

from __future__ import annotations

import json
import signal
import sys
import time

SLEEP_S = 0.002
LATE_MS = 10.0


def main() -> int:
    stalls: list[list[float]] = []
    worst, wakeups = 0.0, 0
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    while running[0]:
        before = time.monotonic()
        time.sleep(SLEEP_S)
        late = (time.monotonic() - before - SLEEP_S) * 1000
        wakeups += 1
        worst = max(worst, late)
        if late > LATE_MS:
            stalls.append([round(before, 4), round(late, 1)])
    with open(sys.argv[1], "w") as fh:
        json.dump({"stalls": stalls, "max_ms": round(worst, 1), "wakeups": wakeups}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
