"""What the env's time limit means to the PPO targets (pirl.bootstrap_time_limit).

The actor's own segment loop runs on a fake env whose episode is cut by the time limit while the gripper holds
the cube half-lifted (a high shaping potential): by default nothing is paid for ending there.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pirlctl.algorithms.pi_rl.advantages import chunk_gae
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PolicyStep
from pirlctl.config.run_config import load_run_config
from pirlctl.envs.pick_cube_task import PickCubeTaskEnv
from pirlctl.envs.vector import EnvGroup
from pirlctl.policies.loading import DEFAULT_RUN_CONFIG
from pirlctl.policies.processors import build_processors
from pirlctl.runtime.actor import Actor, ActorReport, WeightsSlot

Z_INIT, Z_SUCCESS = 0.02, 0.12


class HalfLiftEnv:
    """Each step raises the grasped cube 1 cm; the time limit cuts the episode at 6 steps, before success."""

    action_space = SimpleNamespace(low=-np.ones(4, np.float32), high=np.full(4, 2.0, np.float32))

    def __init__(self, limit: int = 6) -> None:
        self.limit, self.t = limit, 0
        self.cube = np.array([0.4, 0.0, Z_INIT])
        sensors = {"block_pos": self.cube, "2f85/pinch_pos": self.cube}
        data = SimpleNamespace(sensor=lambda name: SimpleNamespace(data=sensors[name]))
        self.unwrapped = SimpleNamespace(
            _data=data, _z_init=Z_INIT, _z_success=Z_SUCCESS, render=lambda: [np.zeros((8, 8, 3), np.uint8)] * 2
        )

    def step(self, action):
        self.t += 1
        self.cube[2] += 0.01
        return {}, 0.0, False, self.t >= self.limit, {}


class ConstantValueAlgo:
    device = torch.device("cpu")

    def __init__(self, value: float, n_exec: int = 2) -> None:
        self.v, self.n_exec = value, n_exec

    def act(self, batch, generator=None):
        return PolicyStep(
            actions=torch.zeros(1, self.n_exec, 4),
            chain=torch.zeros(1, 2, 1, 1),
            stochastic=torch.ones(1, 1, dtype=torch.bool),
            log_prob=torch.zeros(1),
            value=torch.tensor([self.v]),
        )

    def value(self, batch):
        return torch.tensor([self.v])


def _segment(bootstrap_time_limit: bool, value: float = 0.9):
    cfg = load_run_config(
        DEFAULT_RUN_CONFIG,
        ["--env.shaping=1.0", f"--algorithm.bootstrap_time_limit={str(bootstrap_time_limit).lower()}"],
    )
    actor = Actor.__new__(Actor)
    actor.cfg, actor.actor_id, actor.version = cfg, 0, 0
    actor.algo = ConstantValueAlgo(value)
    actor.algo.processors = build_processors(cfg.policy, None)
    actor.envs = [PickCubeTaskEnv(cfg.env, gym_env=HalfLiftEnv())]
    # the actor's own step callable; the fake has no reset (a new episode continues the lift, past what is read)
    actor.group = EnvGroup(actor.envs, Actor._step_env, lambda env, seed: {}, lambda i, j: j)
    actor.group.reset_all()
    actor.groups, actor.group_episode, actor.episode_start = None, 0, {}
    actor.generator, actor.stop, actor.slot = None, threading.Event(), WeightsSlot()
    actor.report = ActorReport(0, 0, 0, 0, 0)
    actor.infer_time = actor.env_time = 0.0
    actor.actions_done = 0
    actor._policy_obs = lambda k, obs: {"x": torch.zeros(1)}
    actor._end_episode = lambda ep: None
    actor.phi = [actor.envs[0].progress_potential()]
    phi0 = actor.phi[0]
    transitions, _, steps, _ = actor._collect_segment()
    return cfg, phi0, transitions[:3], steps[:3]


def test_by_default_the_time_limit_ends_the_task_no_bootstrap_and_no_terminal_potential():
    cfg, phi0, trs, steps = _segment(bootstrap_time_limit=False)
    assert steps == [2, 2, 2] and [t.truncated for t in trs] == [False, False, True]
    assert trs[-1].bootstrap_value == 0.0
    gamma = cfg.pirl.gamma
    shaped_return = sum(gamma**i * t.reward for i, t in enumerate(trs))
    assert shaped_return == pytest.approx(0.0 - phi0, abs=1e-9)  # no success: the sparse return 0, minus Phi(s_0)
    _, returns = chunk_gae(
        torch.tensor([t.reward for t in trs]),
        torch.tensor([t.value for t in trs]),
        torch.tensor([t.terminated for t in trs]),
        torch.tensor([t.truncated for t in trs]),
        torch.tensor([t.bootstrap_value for t in trs]),
        gamma=gamma,
        gae_lambda=1.0,
    )
    assert float(returns[0]) == pytest.approx(shaped_return, abs=1e-6)


def test_bootstrap_time_limit_pays_the_final_potential_and_the_critic_for_ending_half_lifted():
    cfg, phi0, trs, _ = _segment(bootstrap_time_limit=True, value=0.9)
    assert trs[-1].truncated and trs[-1].bootstrap_value == pytest.approx(0.9)
    gamma = cfg.pirl.gamma
    phi_end = 0.3 + 0.7 * 0.06 / (Z_SUCCESS - Z_INIT)
    shaped_return = sum(gamma**i * t.reward for i, t in enumerate(trs))
    assert shaped_return == pytest.approx(gamma**3 * phi_end - phi0, abs=1e-6)
    assert shaped_return > 0.3  # an unfinished lift is worth more than nothing: the incentive the default removes
