"""Schedules follow the run: their horizons come from the planned PPO iterations, set once in build_algorithm."""

from __future__ import annotations

import pytest

from pirlctl.algorithms.pi_rl.configuration_pi_rl import anneal_horizon
from pirlctl.config.run_config import load_run_config
from pirlctl.configs import DEFAULT_RUN_CONFIG
from pirlctl.runtime.build import build_algorithm


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
