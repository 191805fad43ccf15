"""Training alarms: computed once in the learner (``alarm`` records), calibrated on recorded healthy and faulty runs,
only displayed by the dashboard."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pirlctl import metrics as M
from pirlctl.alarms import AlarmMonitor, AlarmState, AlarmThresholds, episode_alarms, train_alarms

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alarms"
SMALL = AlarmThresholds(window=4, success_drop=0.3)


def _names(alarms):
    return [a.name for a in alarms]


def test_train_alarms_name_the_signal():
    st = AlarmState()
    ok = {M.TRAIN_APPROX_KL: 0.01, M.TRAIN_CLIPFRAC: 0.1}
    assert train_alarms({M.TRAIN_ITERATION: 1, **ok}, st) == []
    out = train_alarms({M.TRAIN_ITERATION: 2, M.TRAIN_APPROX_KL: 0.5, M.TRAIN_CLIPFRAC: 0.9}, st)
    assert _names(out) == ["approx_kl", "clipfrac"] and out[0].iteration == 2
    assert "approx_kl 0.500 > 0.05" in out[0].message


def test_value_loss_is_measured_against_its_level_after_the_warm_up_not_its_first_value():
    # the critic warm-up fits the SFT returns to ~0.001; the loss then settles at 0.02-0.06 (a healthy default run)
    st, fired = AlarmState(), []
    for it, vl in enumerate([0.001, 0.03, 0.04, 0.05, 0.02, 0.06, 0.045, 0.3], start=1):
        fired += train_alarms({M.TRAIN_ITERATION: it, M.TRAIN_VALUE_LOSS: vl}, st)
    assert fired == [] and st.value_loss_ref == 0.04  # median of iterations 3..5
    out = train_alarms({M.TRAIN_ITERATION: 9, M.TRAIN_VALUE_LOSS: 5.0}, st)
    assert _names(out) == ["value_loss"] and "critic diverges" in out[0].message


def test_a_critic_with_nothing_to_fit_yet_does_not_alarm_when_the_first_successes_arrive():
    # a policy at 0% success: sparse returns ~0, loss ~1e-5; then it learns and the loss rises to a normal level
    st, fired = AlarmState(), []
    for it, vl in enumerate([1e-4, 1e-5, 2e-5, 1e-5, 1e-5, 0.01, 0.04, 0.3], start=1):
        fired += train_alarms({M.TRAIN_ITERATION: it, M.TRAIN_VALUE_LOSS: vl}, st)
    assert fired == []
    assert _names(train_alarms({M.TRAIN_ITERATION: 9, M.TRAIN_VALUE_LOSS: 0.8}, st)) == ["value_loss"]
    # a critic that diverges from its first update alarms at once (against the floor), before any reference
    early = train_alarms({M.TRAIN_ITERATION: 1, M.TRAIN_VALUE_LOSS: 1.4e4}, AlarmState())
    assert _names(early) == ["value_loss"] and "reference level 0.05" in early[0].message


def test_actor_learner_mismatch_alarms_only_on_an_on_policy_batch():
    st = AlarmState()
    rec = {M.TRAIN_ITERATION: 3, M.DATA_BATCH_VERSIONS: [2], M.TRAIN_ONPOLICY_LOG_RATIO: 1e-6}
    assert train_alarms(rec, st) == []
    out = train_alarms({**rec, M.TRAIN_ONPOLICY_LOG_RATIO: 0.3}, st)
    assert _names(out) == ["onpolicy_log_ratio"] and "verify-sync" in out[0].message
    # stale segments under importance weighting legitimately start away from ratio 1: no alarm
    assert train_alarms({**rec, M.DATA_BATCH_VERSIONS: [1, 2], M.TRAIN_ONPOLICY_LOG_RATIO: 0.3}, st) == []


def test_success_collapse_alarms_once_against_the_starting_level_and_re_arms():
    st, fired = AlarmState(), []
    for ok in [1, 1, 1, 0] + [1, 1, 1, 1] + [0, 0, 0, 0, 0] + [1, 1, 1, 1] + [0, 0, 0, 0]:
        fired += episode_alarms({M.ACTOR_SUCCESS: bool(ok)}, st, SMALL)
    assert st.baseline == 0.75
    assert len(fired) == 2 and "fell more than 30% below its starting level 75%" in fired[0].message
    # wandering around the threshold (25% / 50% against a 45% threshold, re-arm at 60%) is one collapse
    st2, fired2 = AlarmState(), []
    for ok in [1, 1, 1, 0] + [0, 0, 0, 0] + [1, 0, 1, 0] + [0, 0] + [1, 0, 1, 0]:
        fired2 += episode_alarms({M.ACTOR_SUCCESS: bool(ok)}, st2, SMALL)
    assert len(fired2) == 1


def test_the_starting_level_is_the_first_policy_versions_own_rate_not_its_first_arrivals():
    # successful episodes are shorter and arrive first: the first window of arrivals overstates the SFT level
    st, fired = AlarmState(), []
    for ok in [1, 1, 1, 1, 0, 0, 0, 0]:  # version 0: 50%, successes first
        fired += episode_alarms({M.ACTOR_SUCCESS: bool(ok), M.ACTOR_POLICY_VERSION: 0}, st, SMALL)
    assert st.baseline is None and fired == []  # not fixed while version 0 is still arriving
    for ok in [0, 1, 0, 1, 0, 1]:  # version 1 holds the level: no collapse
        fired += episode_alarms({M.ACTOR_SUCCESS: bool(ok), M.ACTOR_POLICY_VERSION: 1}, st, SMALL)
    assert st.baseline == 0.5 and fired == []
    for _ in range(4):  # then it does collapse
        fired += episode_alarms({M.ACTOR_SUCCESS: False, M.ACTOR_POLICY_VERSION: 2}, st, SMALL, iteration=3)
    assert len(fired) == 1 and "starting level 50%" in fired[0].message and fired[0].iteration == 3


def test_a_monitor_primed_with_a_runs_records_does_not_raise_their_alarms_again():
    # what the learner does on resume: replay the run's records up to the checkpoint, then go on
    old = [{"kind": "episode", M.ACTOR_SUCCESS: True, M.ACTOR_POLICY_VERSION: 0}] * 50
    old += [{"kind": "train", M.TRAIN_ITERATION: 1, M.TRAIN_VALUE_LOSS: 0.001}]
    old += [{"kind": "episode", M.ACTOR_SUCCESS: False, M.ACTOR_POLICY_VERSION: 1}] * 50
    primed = AlarmMonitor()
    assert _names(primed.replay(old)) == ["success_collapse"]  # raised in the earlier session
    assert primed.on_episode({M.ACTOR_SUCCESS: False, M.ACTOR_POLICY_VERSION: 2}, 2) == []  # still the same collapse
    assert primed.state.baseline == 1.0  # the run's own starting level, not the resumed segment's


# -- recorded runs (tests/fixtures/alarms/README.md says how each was made) ------------------------------------
def _fixture(name: str) -> list[dict]:
    with gzip.open(FIXTURES / f"{name}.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def _recorded() -> dict[str, set[str]]:
    """Each recorded run and the alarms it must raise (an empty set: it must raise none)."""
    return json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("run", sorted(_recorded()))
def test_recorded_runs_raise_exactly_their_planted_faults_alarms(run):
    alarms = AlarmMonitor().replay(_fixture(run))
    want = set(_recorded()[run])
    if not want:
        assert alarms == [], [a.message for a in alarms]  # a healthy default run: not one false alarm
    else:
        assert want <= set(_names(alarms)), [a.message for a in alarms]


# -- the dashboard only displays the learner's alarm records, and only the new ones ----------------------------
def test_the_dashboard_shows_only_alarms_raised_after_it_started_logs_and_prints_them(tmp_path, capsys):
    from pirlctl.reporting.dashboard import Dashboard

    w = M.MetricsWriter(tmp_path / "metrics.jsonl")
    w.write("alarm", {M.ALARM_ITERATION: 2, M.ALARM_NAME: "approx_kl", M.ALARM_MESSAGE: "old session's alarm"})
    time.sleep(0.01)
    dash = Dashboard(tmp_path, 100, sft_success=0.6)
    for ok in [True] * 4 + [False] * 60:  # a collapse in the records: the dashboard does not compute alarms
        w.write("episode", {M.ACTOR_SUCCESS: ok})
    w.write("alarm", {M.ALARM_ITERATION: 7, M.ALARM_NAME: "value_loss", M.ALARM_MESSAGE: "value loss 3 > 10x"})
    learner = subprocess.Popen([sys.executable, "-c", "pass"])
    assert dash.watch([learner], live=False) is True
    logged = (tmp_path / "alarms.log").read_text().splitlines()
    assert len(logged) == 1 and logged[0].endswith("iter 7: value loss 3 > 10x")
    printed = capsys.readouterr().err
    assert printed.count("ALARM") == 1 and "old session" not in printed
    assert len(dash.episodes) == 64  # the records themselves are all read


def test_an_actor_that_dies_is_an_alarm_and_when_all_have_died_the_watch_stops(tmp_path, capsys):
    from pirlctl.reporting.dashboard import Dashboard

    learner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead.wait()
        dash = Dashboard(tmp_path, 100, sft_success=0.5)
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
        calm = Dashboard(tmp_path / "calm", 100, sft_success=0.5)
        (tmp_path / "calm").mkdir()
        assert calm.update([learner, *stopped]) == [] and not calm.actors_gone([learner, *stopped])
    finally:
        for p in (learner, alive):
            p.kill()
            p.wait()


# -- the learner raises them (and mirrors its records to W&B when asked) ---------------------------------------
def test_the_learner_writes_alarm_records_and_a_wandb_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from pirlctl.config.run_config import load_run_config
    from pirlctl.runtime.learner import Learner
    from pirlctl.runtime.wire import encode_interaction

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    (tmp_path / "wandb").mkdir()
    overrides = [f"--output_dir={tmp_path / 'run'}", "--wandb.enable=true", "--wandb.mode=offline"]
    cfg = load_run_config("pick_cube_tiny", overrides)
    learner = Learner(cfg)
    try:
        for version, ok in [(0, True)] * 50 + [(1, False)] * 60:  # training success 100% -> 0%: a collapse
            learner._on_interaction(encode_interaction({M.ACTOR_SUCCESS: ok, M.ACTOR_POLICY_VERSION: version}), "t")
        learner.metrics.write("train", {M.TRAIN_ITERATION: 1, M.TRAIN_APPROX_KL: 0.01, M.TRAIN_VALUE_LOSS: 0.03})
    finally:
        learner.metrics.close()
    alarms = M.read_metrics(tmp_path / "run" / "metrics.jsonl", "alarm")
    assert [a[M.ALARM_NAME] for a in alarms] == ["success_collapse"] and alarms[0][M.ALARM_ITERATION] == 0
    runs = list((tmp_path / "wandb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0


def test_wandb_enabled_without_wandb_installed_is_one_line_naming_the_extra(monkeypatch):
    from types import SimpleNamespace

    from lerobot.configs.default import WandBConfig

    from pirlctl.reporting.wandb_log import WandbError, open_wandb

    assert open_wandb(SimpleNamespace(wandb=WandBConfig()), "unused") is None  # disabled: nothing imported
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(WandbError, match=r"lerobot\[training\]") as err:
        open_wandb(SimpleNamespace(wandb=WandBConfig(enable=True)), "unused")
    assert "\n" not in str(err.value)


def test_a_saved_run_config_with_the_retired_alarm_settings_still_loads(tmp_path):
    from pirlctl.config.run_config import RETIRED_PIPELINE_KEYS, load_run_config, save_run_config

    full = tmp_path / "full.json"
    save_run_config(load_run_config("pick_cube_tiny"), full)  # a whole config, as a run folder holds
    data = json.loads(full.read_text())
    data["pipeline"].update({k: 1 for k in RETIRED_PIPELINE_KEYS})  # as an older run's run_config.json has them
    old = tmp_path / "run_config.json"
    old.write_text(json.dumps(data))
    cfg = load_run_config(old, ["--pipeline.sft_steps=7"])
    assert cfg.pipeline.sft_steps == 7 and not any(hasattr(cfg.pipeline, k) for k in RETIRED_PIPELINE_KEYS)
    assert json.loads(old.read_text()) == data  # the run's own file is left as it is
