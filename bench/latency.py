"""Latency percentiles of the benchmarks (standard library only: the load generator
imports it too)."""

from __future__ import annotations

import statistics


def percentiles(values: list[float]) -> dict:
    """p50, p99, max and mean in ms of ``values`` (seconds)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50_ms": round(pick(0.5) * 1000, 1), "p99_ms": round(pick(0.99) * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1), "mean_ms": round(statistics.fmean(ordered) * 1000, 1)}
