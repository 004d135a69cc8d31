"""Anomaly rules: each a small named function that flags a submission, never refuses it.

A rule takes the submission and what the batch knows of the user, and returns the
figures that made it fire, or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from scoreboard.action_types import ActionType


@dataclass(frozen=True)
class Observation:
    """What the rules see of one submission."""

    score_delta: int
    duration_ms: int
    action_type: ActionType


Rule = Callable[[Observation], dict | None]


def too_fast(obs: Observation) -> dict | None:
    """Completed faster than the action type's fastest humanly possible time."""
    if obs.duration_ms < obs.action_type.min_duration_ms:
        return {"duration_ms": obs.duration_ms, "min_duration_ms": obs.action_type.min_duration_ms}
    return None


RULES: tuple[tuple[str, Rule], ...] = (("too_fast", too_fast),)


def evaluate(obs: Observation, rules: tuple[tuple[str, Rule], ...] = RULES) -> dict:
    """Run every rule; return ``{rule name: figures}`` for those that fired."""
    fired = {}
    for name, rule in rules:
        figures = rule(obs)
        if figures is not None:
            fired[name] = figures
    return fired
