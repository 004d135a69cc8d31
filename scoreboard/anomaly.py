"""Anomaly rules: each a small named function that flags a submission, never refuses it.

A rule takes what the batch knows of one submission (an ``Observation``) and the
configured ``Thresholds``, and returns the figures that made it fire, or None. The
figures are stored with the flag, so that a reviewer sees why it fired.

The observations are filled in by ``scoreboard.anomaly_context`` with set-based queries
inside the batch transaction; the rules themselves do no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from scoreboard.action_types import ActionType

# Scale of the median absolute deviation that makes it estimate a normal distribution's
# standard deviation (the modified z-score of Iglewicz and Hoaglin).
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class History:
    """The user's recent submissions of one action type, summarised robustly.

    Attributes:
        samples: how many recent deltas the figures come from.
        median: their median.
        mad: their median absolute deviation from the median.
    """

    samples: int
    median: float
    mad: float


@dataclass(frozen=True)
class Observation:
    """What the rules see of one submission.

    Attributes:
        score_delta: the points submitted.
        duration_ms: how long the action took as the server saw it: the submission's
            ``accepted_at`` minus the token's ``issued_at``, both the server's clock. The
            client's ``completed_at`` is not used: dated into the future within the
            allowed clock skew, it would make any action look slow enough.
        action_type: the token's action type.
        recent_submissions: the user's submissions in the rate window before this one.
        history: the user's recent deltas of this action type (None: no history).
        score_before: the user's score before this submission.
        score_after: the user's score after it.
        ranked_users: how many users are on the board (others than this one).
        top_score: the score at the last rank of the top (e.g. the 10th); None when fewer.
        far_score: the score at the "far below" rank (e.g. the 100th); None when fewer.
    """

    score_delta: int
    duration_ms: int
    action_type: ActionType
    recent_submissions: int = 0
    history: History | None = None
    score_before: int = 0
    score_after: int = 0
    top_score: int | None = None
    far_score: int | None = None


@dataclass(frozen=True)
class Thresholds:
    """The configured threshold of each rule (``Settings.anomaly``, from ``ANOMALY_*``).

    Attributes:
        rate_window: seconds over which the submission rate is counted.
        rate_count: submissions within ``rate_window`` that count as near the rate limit.
        zscore: robust z-score above which a delta is far above the user's history.
        zscore_min_samples: fewest recent deltas of the type before the z-score is used.
        zscore_history: how many of the user's recent submissions are looked at.
        jump_top: the top that a jump lands in (10: the board's top 10).
        jump_from_rank: a jump starts "far below" beneath this rank.
    """

    rate_window: int = 60
    rate_count: int = 480
    zscore: float = 3.5
    zscore_min_samples: int = 10
    zscore_history: int = 50
    jump_top: int = 10
    jump_from_rank: int = 100


Rule = Callable[[Observation, Thresholds], "dict | None"]


def too_fast(obs: Observation, limits: Thresholds) -> dict | None:
    """Completed faster than the action type's fastest humanly possible time (a type
    without one, ``min_duration_ms`` 0, is never too fast, even when two web instances'
    clocks put the acceptance a little before the issue)."""
    if obs.action_type.min_duration_ms > 0 and obs.duration_ms < obs.action_type.min_duration_ms:
        return {"duration_ms": obs.duration_ms, "min_duration_ms": obs.action_type.min_duration_ms}
    return None


def near_rate_limit(obs: Observation, limits: Thresholds) -> dict | None:
    """The user submits at a rate close to the submission rate limit (a script's pace)."""
    count = obs.recent_submissions + 1
    if count >= limits.rate_count:
        return {"submissions": count, "window_s": limits.rate_window, "threshold": limits.rate_count}
    return None


def robust_zscore(value: float, history: History) -> float:
    """The modified z-score of ``value``: its distance from the median in scaled MADs.

    The scale is at least one point, so a user who always earned the same delta is not
    flagged for earning one point more.
    """
    scale = max(history.mad * MAD_TO_SIGMA, 1.0)
    return (value - history.median) / scale


def far_above_history(obs: Observation, limits: Thresholds) -> dict | None:
    """A positive delta far above what the user usually earns for this action type."""
    history = obs.history
    if obs.score_delta <= 0 or history is None or history.samples < limits.zscore_min_samples:
        return None
    z = robust_zscore(obs.score_delta, history)
    if z > limits.zscore:
        return {"zscore": round(z, 2), "median": history.median, "mad": history.mad,
                "samples": history.samples, "threshold": limits.zscore}
    return None


def jump_into_top(obs: Observation, limits: Thresholds) -> dict | None:
    """From beneath the ``jump_from_rank``-th place straight into the top ``jump_top``."""
    if obs.far_score is None or obs.score_delta <= 0:
        return None
    was_far_below = obs.score_before < obs.far_score
    lands_in_top = obs.top_score is None or obs.score_after >= obs.top_score
    if was_far_below and lands_in_top:
        return {"score_before": obs.score_before, "score_after": obs.score_after,
                "below_score": obs.far_score, "top_score": obs.top_score,
                "from_rank": limits.jump_from_rank, "top": limits.jump_top}
    return None


RULES: tuple[tuple[str, Rule], ...] = (
    ("too_fast", too_fast),
    ("near_rate_limit", near_rate_limit),
    ("far_above_history", far_above_history),
    ("jump_into_top", jump_into_top),
)

RULE_NAMES: tuple[str, ...] = tuple(name for name, _ in RULES)


def evaluate(obs: Observation, limits: Thresholds | None = None,
             rules: tuple[tuple[str, Rule], ...] = RULES) -> dict:
    """Run every rule; return ``{rule name: figures}`` for those that fired."""
    limits = limits or Thresholds()
    fired = {}
    for name, rule in rules:
        figures = rule(obs, limits)
        if figures is not None:
            fired[name] = figures
    return fired
