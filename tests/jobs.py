"""Jobs for the tests, importable by the real worker processes (they run from the repo root)."""

from rq import get_current_job


def fail_until(marker: str) -> str:
    """Fail until the Redis key ``marker`` exists: a failed job that a requeue can fix."""
    if not get_current_job().connection.exists(marker):
        raise RuntimeError(f"{marker} is not there yet")
    return "done"
