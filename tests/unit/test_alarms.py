"""Collapse alarms: thresholds, a baseline under the training sampler, one alarm per collapse."""

from __future__ import annotations

from pirlctl import metrics as M
from pirlctl.alarms import AlarmState, episode_alarms, train_alarms
from pirlctl.config.run_config import PipelineSettings


def test_train_alarms_name_the_signal():
    s, st = PipelineSettings(), AlarmState()
    assert (
        train_alarms(
            {M.TRAIN_ITERATION: 1, M.TRAIN_APPROX_KL: 0.01, M.TRAIN_CLIPFRAC: 0.1, M.TRAIN_VALUE_LOSS: 1.0}, st, s
        )
        == []
    )
    out = train_alarms(
        {M.TRAIN_ITERATION: 2, M.TRAIN_APPROX_KL: 0.5, M.TRAIN_CLIPFRAC: 0.9, M.TRAIN_VALUE_LOSS: 100.0}, st, s
    )
    assert [a.split(":")[1].split()[0] for a in out] == ["approx_kl", "clipfrac", "value"]


def test_actor_learner_mismatch_alarms_only_on_an_on_policy_batch():
    s, st = PipelineSettings(), AlarmState()
    rec = {M.TRAIN_ITERATION: 3, M.DATA_BATCH_VERSIONS: [2], M.TRAIN_ONPOLICY_LOG_RATIO: 1e-6}
    assert train_alarms(rec, st, s) == []
    out = train_alarms({**rec, M.TRAIN_ONPOLICY_LOG_RATIO: 0.3}, st, s)
    assert len(out) == 1 and "on-policy" in out[0] and "verify-sync" in out[0]
    # stale segments under importance weighting legitimately start away from ratio 1: no alarm
    assert train_alarms({**rec, M.DATA_BATCH_VERSIONS: [1, 2], M.TRAIN_ONPOLICY_LOG_RATIO: 0.3}, st, s) == []


def test_success_collapse_alarms_once_against_the_starting_level_and_re_arms():
    s, st = PipelineSettings(alarm_window=4, alarm_success_drop=0.3), AlarmState()
    fired = []
    for ok in [1, 1, 1, 0] + [1, 1, 1, 1] + [0, 0, 0, 0, 0] + [1, 1, 1, 1] + [0, 0, 0, 0]:
        fired += episode_alarms({M.ACTOR_SUCCESS: bool(ok)}, st, s)
    assert st.baseline == 0.75
    assert len(fired) == 2 and "fell more than 30% below its starting level 75%" in fired[0]
