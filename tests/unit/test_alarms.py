"""Collapse alarms: thresholds, a baseline under the training sampler, one alarm per collapse."""

from __future__ import annotations

import subprocess
import sys

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
    # wandering around the threshold (25% / 50% against a 45% threshold, re-arm at 60%) is one collapse
    st2, fired2 = AlarmState(), []
    for ok in [1, 1, 1, 0] + [0, 0, 0, 0] + [1, 0, 1, 0] + [0, 0] + [1, 0, 1, 0]:
        fired2 += episode_alarms({M.ACTOR_SUCCESS: bool(ok)}, st2, s)
    assert len(fired2) == 1


def test_without_the_dashboard_alarms_are_still_raised_logged_and_printed(tmp_path, capsys):
    from pirlctl.metrics import MetricsWriter
    from pirlctl.reporting.dashboard import Dashboard

    w = MetricsWriter(tmp_path / "metrics.jsonl")
    for ok in [True] * 4 + [False] * 4:  # a collapse of the rolling training success
        w.write("episode", {M.ACTOR_SUCCESS: ok})
    w.write("train", {M.TRAIN_ITERATION: 2, M.TRAIN_APPROX_KL: 0.5})
    learner = subprocess.Popen([sys.executable, "-c", "pass"])
    dash = Dashboard(tmp_path, 100, PipelineSettings(alarm_window=4, alarm_success_drop=0.3), sft_success=0.6)
    assert dash.watch([learner], live=False) is True
    logged = (tmp_path / "alarms.log").read_text().splitlines()
    assert len(logged) == 2 and "rolling success" in logged[0] and "approx_kl" in logged[1]  # in record order
    printed = capsys.readouterr().err
    assert printed.count("ALARM") == 2 and "approx_kl" in printed


def test_the_starting_level_is_the_first_policy_versions_own_rate_not_its_first_arrivals():
    # successful episodes are shorter and arrive first: the first window of arrivals overstates the SFT level
    s, st = PipelineSettings(alarm_window=4, alarm_success_drop=0.3), AlarmState()
    fired = []
    for ok in [1, 1, 1, 1, 0, 0, 0, 0]:  # version 0: 50%, successes first
        fired += episode_alarms({M.ACTOR_SUCCESS: bool(ok), M.ACTOR_POLICY_VERSION: 0}, st, s)
    assert st.baseline is None and fired == []  # not fixed while version 0 is still arriving
    for ok in [0, 1, 0, 1, 0, 1]:  # version 1 holds the level: no collapse
        fired += episode_alarms({M.ACTOR_SUCCESS: bool(ok), M.ACTOR_POLICY_VERSION: 1}, st, s)
    assert st.baseline == 0.5 and fired == []
    for _ in range(4):  # then it does collapse
        fired += episode_alarms({M.ACTOR_SUCCESS: False, M.ACTOR_POLICY_VERSION: 2}, st, s)
    assert len(fired) == 1 and "starting level 50%" in fired[0]


def test_an_actor_that_dies_is_an_alarm_and_when_all_have_died_the_watch_stops(tmp_path, capsys):
    from pirlctl.reporting.dashboard import Dashboard

    learner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead.wait()
        dash = Dashboard(tmp_path, 100, PipelineSettings(), sft_success=0.5)
        procs = [learner, dead, alive]
        first = dash.update(procs)
        assert len(first) == 1 and "actor0 exited with code 3" in first[0] and "actor0.stderr" in first[0]
        assert dash.update(procs) == []  # once per actor
        assert not dash.actors_gone(procs)  # actor1 still rolls out: the job goes on
        alive.kill()
        alive.wait()
        assert dash.watch(procs, live=False) is False  # no actor left: stop instead of waiting for rollouts
        assert learner.poll() is None  # the caller stops the learner (checkpoint) as on Ctrl-C
        assert "actor1 exited" in capsys.readouterr().err
        assert len((tmp_path / "alarms.log").read_text().splitlines()) == 2
        # the normal end: the learner pushes stop, actors exit with 0 while it still writes its last checkpoint
        stopped = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(2)]
        for p in stopped:
            p.wait()
        calm = Dashboard(tmp_path / "calm", 100, PipelineSettings(), sft_success=0.5)
        (tmp_path / "calm").mkdir()
        assert calm.update([learner, *stopped]) == [] and not calm.actors_gone([learner, *stopped])
    finally:
        for p in (learner, alive):
            p.kill()
            p.wait()
