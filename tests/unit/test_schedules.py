"""Schedules follow the run: their horizons come from the planned PPO iterations, set once in build_algorithm."""

from __future__ import annotations

import pytest

from pirlctl.algorithms.pi_rl.configuration_pi_rl import anneal_horizon
from pirlctl.config.run_config import load_run_config
from pirlctl.configs import DEFAULT_RUN_CONFIG
from pirlctl.runtime.build import build_algorithm

from ..integration.procs import free_port


def _algo(*overrides: str):
    return build_algorithm(load_run_config(DEFAULT_RUN_CONFIG, list(overrides)), "cpu")


def test_doubling_total_env_steps_doubles_the_anneal_horizons():
    default, doubled = _algo(), _algo("--runtime.total_env_steps=90000")
    assert (default.planned_iterations, doubled.planned_iterations) == (22, 44)
    cfg = default.config
    assert anneal_horizon(cfg.noise_anneal_frac, default.planned_iterations) == 18
    assert anneal_horizon(cfg.noise_anneal_frac, doubled.planned_iterations) == 36
    # the noise reaches its final level at iteration 18 of the default and 36 of the doubled run, not before
    assert default.noise_level(18) == pytest.approx(0.2) and doubled.noise_level(18) == pytest.approx(0.35)
    assert doubled.noise_level(36) == pytest.approx(0.2)
    # the doubled run still learns in its second half (it trained at lr 0 there when the horizon was frozen)
    assert cfg.actor_lr_at(30, doubled.planned_iterations) == pytest.approx(6e-5 * (1 - 30 / 45))
    assert cfg.actor_lr_at(22, default.planned_iterations) > 0.0  # the 23rd update of the default run too


def test_learner_and_actor_built_from_the_run_config_compute_the_same_noise_level_for_each_version():
    # each process loads the run config and builds its algorithm itself; the actor follows the learner's version
    learner, actor = _algo("--runtime.total_env_steps=60000"), _algo("--runtime.total_env_steps=60000")
    levels = []
    for version in range(learner.planned_iterations + 2):
        learner.optimization_step = version  # after `version` PPO updates
        actor.optimization_step = version  # what Actor._load does on receiving weights of that version
        assert actor.noise_level() == learner.noise_level()
        levels.append(learner.noise_level())
    assert levels[0] == pytest.approx(0.5) and levels[-1] == pytest.approx(0.2)
    assert levels == sorted(levels, reverse=True) and len(set(levels)) > 10


def test_the_policy_freezes_only_once_an_annealed_lr_has_reached_a_final_zero():
    cfg = _algo().config  # the default job: actor lr 6e-5 -> 0 over the whole plan (22 updates)
    assert (cfg.lr_anneal_frac, cfg.actor_lr_final) == (1.0, 0.0)
    assert not cfg.policy_frozen_after(22, 22) and cfg.actor_lr_at(22, 22) > 0.0  # the one extra update learns
    assert cfg.policy_frozen_after(23, 22) and cfg.actor_lr_at(23, 22) == 0.0  # every later one is at lr 0
    assert not _algo("--algorithm.actor_lr_final=1e-6").config.policy_frozen_after(100, 22)
    constant_zero = _algo("--algorithm.lr_anneal_frac=0", "--algorithm.actor_lr=0").config  # lr-0 checks
    assert not constant_zero.policy_frozen_after(100, 22)


@pytest.mark.parametrize(("final_lr", "stopped_by"), [(0.0, "schedule"), (1e-6, "budget")])
def test_the_learner_ends_the_run_when_its_updates_can_no_longer_change_the_policy(tmp_path, final_lr, stopped_by):
    # short episodes (GRPO's, once it succeeds) spend few env steps per update: without the stop, updates past the
    # plan ran at lr 0 until the env-step budget was spent (49 updates for a plan of 23 on 2026-12-03)

    from pirlctl.pipeline.train_job import _run_done
    from pirlctl.runtime.checkpoint import find_resume_checkpoint
    from pirlctl.runtime.learner import Learner

    cfg = load_run_config(
        DEFAULT_RUN_CONFIG,
        [f"--output_dir={tmp_path}", f"--runtime.learner_port={free_port()}", f"--algorithm.actor_lr_final={final_lr}"],
    )
    learner = Learner(cfg)
    planned = learner.algo.planned_iterations

    def one_update(_segments):  # an update whose batch counted a twentieth of a full one's env steps
        learner.algo.optimization_step = learner.algo.iteration + 1
        learner.env_steps_offset += cfg.runtime.total_env_steps // (20 * planned)

    learner._next_batch = lambda: []  # type: ignore[method-assign]
    learner.train_iteration = one_update  # type: ignore[method-assign]
    report = learner.run()
    assert report.stopped_by == stopped_by
    if final_lr == 0.0:
        assert report.iterations == planned + 1 and report.env_steps < cfg.runtime.total_env_steps
    else:
        assert report.iterations > planned + 1 and report.env_steps >= cfg.runtime.total_env_steps
    point = find_resume_checkpoint(tmp_path)
    assert point.info.iteration == report.iterations and point.info.counters["planned_iterations"] == planned
    assert _run_done(cfg, point.info.iteration, point.info.counters)  # a rerun of the job reuses the finished RL
