"""The anomaly rules, one by one, as pure functions; and their thresholds' configuration."""

import dataclasses

import pytest

from scoreboard import anomaly
from scoreboard.action_types import ActionType
from scoreboard.anomaly import History, Observation, Thresholds
from scoreboard.settings import Settings, near_limit_count

LEVEL = ActionType("level_complete", 10, 1000, 5_000)
LIMITS = Thresholds(rate_window=60, rate_count=10, zscore=3.5, zscore_min_samples=5, zscore_history=50,
                    jump_top=10, jump_from_rank=100)


def obs(**changes) -> Observation:
    base = Observation(score_delta=50, duration_ms=10_000, action_type=LEVEL)
    return dataclasses.replace(base, **changes)


def test_too_fast():
    assert anomaly.too_fast(obs(duration_ms=4_999), LIMITS) == {"duration_ms": 4_999, "min_duration_ms": 5_000}
    assert anomaly.too_fast(obs(duration_ms=5_000), LIMITS) is None
    assert anomaly.too_fast(obs(duration_ms=-3), LIMITS) is not None  # completed "before" it started
    no_minimum = ActionType("tap", 1, 10, 0)
    assert anomaly.too_fast(obs(duration_ms=-3, action_type=no_minimum), LIMITS) is None


def test_near_rate_limit_counts_this_submission_too():
    assert anomaly.near_rate_limit(obs(recent_submissions=8), LIMITS) is None
    assert anomaly.near_rate_limit(obs(recent_submissions=9), LIMITS) == {
        "submissions": 10, "window_s": 60, "threshold": 10}


def test_robust_zscore_uses_median_and_mad():
    history = History(samples=10, median=50, mad=10)
    assert anomaly.robust_zscore(50, history) == 0
    assert anomaly.robust_zscore(50 + 14.826, history) == pytest.approx(1.0)
    # a user who always earned the same: the scale is one point, not zero
    assert anomaly.robust_zscore(53, History(10, 50, 0)) == 3


def test_far_above_history():
    usual = History(samples=20, median=50, mad=10)
    assert anomaly.far_above_history(obs(score_delta=90, history=usual), LIMITS) is None  # z = 2.7
    fired = anomaly.far_above_history(obs(score_delta=900, history=usual), LIMITS)
    assert fired["zscore"] == pytest.approx((900 - 50) / 14.826, abs=0.01)
    assert fired["median"] == 50 and fired["mad"] == 10 and fired["samples"] == 20 and fired["threshold"] == 3.5


def test_far_above_history_needs_enough_history_and_only_looks_up():
    assert anomaly.far_above_history(obs(score_delta=900, history=None), LIMITS) is None
    assert anomaly.far_above_history(obs(score_delta=900, history=History(4, 50, 10)), LIMITS) is None
    penalty = ActionType("penalty", -500, -1, 0)
    assert anomaly.far_above_history(
        obs(score_delta=-1, action_type=penalty, history=History(20, -400, 10)), LIMITS) is None


def test_jump_into_top():
    jump = obs(score_delta=900, score_before=5, score_after=905, top_score=800, far_score=20)
    assert anomaly.jump_into_top(jump, LIMITS) == {
        "score_before": 5, "score_after": 905, "below_score": 20, "top_score": 800, "from_rank": 100, "top": 10}
    # ties share the rank: reaching the 10th score is reaching the top 10
    assert anomaly.jump_into_top(dataclasses.replace(jump, score_after=800), LIMITS) is not None
    # not into the top
    assert anomaly.jump_into_top(dataclasses.replace(jump, score_after=799), LIMITS) is None
    # not from far below: already at the 100th score
    assert anomaly.jump_into_top(dataclasses.replace(jump, score_before=20), LIMITS) is None
    # fewer users than the "far below" rank: nobody can come from far below
    assert anomaly.jump_into_top(dataclasses.replace(jump, far_score=None), LIMITS) is None


def test_evaluate_reports_every_rule_that_fired():
    o = obs(duration_ms=1, score_delta=900, recent_submissions=50, history=History(20, 50, 10),
            score_before=0, score_after=900, top_score=800, far_score=20)
    assert set(anomaly.evaluate(o, LIMITS)) == {"too_fast", "near_rate_limit", "far_above_history",
                                                "jump_into_top"}
    assert anomaly.evaluate(obs(), LIMITS) == {}
    assert anomaly.RULE_NAMES == ("too_fast", "near_rate_limit", "far_above_history", "jump_into_top")


def test_near_limit_count_follows_the_submission_limit():
    assert near_limit_count("20 per second;600 per minute", 60, 0.8) == 480
    assert near_limit_count("5 per minute", 60, 0.8) == 4
    assert near_limit_count("10/second", 60, 0.5) == 300
    assert near_limit_count("10 per 2 minutes", 60, 1.0) == 5
    assert near_limit_count("nonsense", 60, 0.8) == 0


def test_thresholds_come_from_the_environment():
    env = {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x", "SECRET_KEY": "k" * 40,
           "SCOREBOARD_ENV": "test"}
    default = Settings.from_env(env)
    assert default.anomaly == Thresholds()
    custom = Settings.from_env({**env, "ANOMALY_RATE_WINDOW": "10", "RATE_LIMIT_SUBMIT": "2 per second",
                                "ANOMALY_ZSCORE": "5", "ANOMALY_ZSCORE_MIN_SAMPLES": "3",
                                "ANOMALY_ZSCORE_HISTORY": "20", "ANOMALY_JUMP_TOP": "3",
                                "ANOMALY_JUMP_FROM_RANK": "30"})
    assert custom.anomaly == Thresholds(10, 16, 5.0, 3, 20, 3, 30)
    assert Settings.from_env({**env, "ANOMALY_RATE_COUNT": "7"}).anomaly.rate_count == 7


def test_history_summary_takes_median_and_mad_as_postgresql_did():
    """The median of an even count is the mean of the middle two (percentile_cont(0.5))."""
    from scoreboard.anomaly_context import summarise

    assert summarise([4, 1, 3, 2]) == History(samples=4, median=2.5, mad=1.0)
    assert summarise([10, 10, 10, 500]) == History(samples=4, median=10.0, mad=0.0)
    assert summarise([7]) == History(samples=1, median=7.0, mad=0.0)
