"""Split evaluations merge into the one-process result: counts and means pooled, the interval recomputed."""

from __future__ import annotations

import pytest

from pirlctl.pipeline.evaluate import EvalReport, merge_eval_reports, wilson_interval


def _part(successes, episodes, mean_length, seconds, strip=None):
    lo, hi = wilson_interval(successes, episodes)
    return EvalReport(
        checkpoint="ckpt",
        episodes=episodes,
        successes=successes,
        success_rate=successes / episodes,
        ci95_low=lo,
        ci95_high=hi,
        mean_return=successes / episodes,
        mean_length=mean_length,
        env_steps=int(mean_length * episodes),
        seconds=seconds,
        strip=strip,
    )


def test_merged_report_pools_counts_and_recomputes_the_interval():
    merged = merge_eval_reports([_part(30, 50, 40.0, 61.0, strip="s.png"), _part(10, 50, 50.0, 58.0)])
    assert (merged.episodes, merged.successes, merged.success_rate) == (100, 40, 0.4)
    assert (merged.ci95_low, merged.ci95_high) == wilson_interval(40, 100)
    assert merged.ci95_high - merged.ci95_low < 0.2  # narrower than either half's interval
    assert merged.mean_return == pytest.approx(0.4)
    assert merged.mean_length == pytest.approx(45.0) and merged.env_steps == 4500
    assert merged.seconds == 61.0 and merged.strip == "s.png"


def test_merging_nothing_is_an_error():
    with pytest.raises(ValueError, match="no evaluation parts"):
        merge_eval_reports([])
