"""Potential-based reward shaping: the discounted shaped return differs from the original by -w·Phi(s_0) only."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pirlctl.config.run_config import RunConfigError, load_run_config
from pirlctl.envs.pick_cube import progress_potential, shaped_reward
from pirlctl.policies.loading import DEFAULT_RUN_CONFIG


@pytest.mark.parametrize("terminal_end", [True, False])
def test_discounted_shaped_return_telescopes_to_the_original_minus_the_start_potential(terminal_end):
    rng = np.random.default_rng(0)
    gamma, w = 0.99, 2.0
    phis = rng.uniform(0, 1, size=13)
    rewards = rng.choice([0.0, 1.0], size=12, p=[0.9, 0.1])
    ret = shaped = 0.0
    for t in range(12):
        terminal = terminal_end and t == 11
        ret += gamma**t * rewards[t]
        shaped += gamma**t * shaped_reward(rewards[t], phis[t], phis[t + 1], gamma=gamma, weight=w, terminal=terminal)
    tail = 0.0 if terminal_end else gamma**12 * w * phis[12]  # a truncated episode keeps its last potential
    assert shaped == pytest.approx(ret - w * phis[0] + tail, abs=1e-12)


def _env(cube, tcp, z_init=0.02, z_success=0.12):
    sensors = {"block_pos": np.asarray(cube, float), "2f85/pinch_pos": np.asarray(tcp, float)}
    data = SimpleNamespace(sensor=lambda name: SimpleNamespace(data=sensors[name]))
    return SimpleNamespace(unwrapped=SimpleNamespace(_data=data, _z_init=z_init, _z_success=z_success))


def test_potential_grows_as_the_gripper_nears_and_lifts_the_cube():
    far = progress_potential(_env([0.4, 0.0, 0.02], [0.4, 0.0, 0.3]))
    near = progress_potential(_env([0.4, 0.0, 0.02], [0.4, 0.0, 0.03]))
    lifted = progress_potential(_env([0.4, 0.0, 0.12], [0.4, 0.0, 0.12]))
    assert 0.0 <= far < near < lifted == pytest.approx(1.0)
    assert near == pytest.approx(0.3 * np.exp(-20 * 0.01))


def test_a_negative_shaping_weight_is_refused_naming_the_field():
    with pytest.raises(RunConfigError, match="env.shaping=-1.0 is invalid"):
        load_run_config(DEFAULT_RUN_CONFIG, ["--env.shaping=-1.0"])
