"""env.observe_cube: the state-based variant appends the gripper-to-cube offset to the policy's state, everywhere
an observation is built (demos, actor, evaluation), and a policy whose state width disagrees is refused."""

from __future__ import annotations

import pytest

from pirlctl.config.run_config import AGENT_STATE_DIM, CUBE_OFFSET_DIM, RunConfigError, load_run_config
from pirlctl.policies.loading import CONFIGS_DIR

CHILD = r"""
import json
import numpy as np
from pirlctl.config.run_config import EnvSettings
from pirlctl.envs.pick_cube import (
    STATE_KEY, make_env, observation_to_policy, privileged_pose, privileged_state, reset_episode,
    run_chunk,
)
from pirlctl.pipeline.demos import dataset_features

settings = EnvSettings(cube_range=0.03, image_size=16, cameras=["front"], max_episode_steps=8, observe_cube=True)
env = make_env(settings)
out = {"states": [], "expected": [], "plain": [], "privileged_head": []}
for seed in (0, 1):
    obs = reset_episode(env, seed)
    step = run_chunk(env, np.zeros((2, 4), np.float32), env.action_space.low, env.action_space.high)
    pose = privileged_pose(env)
    out["states"].append(observation_to_policy(step.obs, settings, env)[STATE_KEY].tolist())
    out["expected"].append((10.0 * (pose.cube - pose.tcp)).tolist())
    plain = EnvSettings(cube_range=0.03, image_size=16, cameras=["front"], max_episode_steps=8)
    out["plain"].append(observation_to_policy(step.obs, plain)[STATE_KEY].tolist())
    out["privileged_head"].append(privileged_state(env)[:3].tolist())
try:
    observation_to_policy(step.obs, settings)
    out["refused"] = ""
except ValueError as e:
    out["refused"] = str(e)
out["feature"] = list(dataset_features(settings)["observation.state"]["shape"])
print(json.dumps(out))
"""


def test_the_policy_state_gains_the_cube_offset_only_when_asked(child_json):
    out = child_json(CHILD)
    for state, expected, plain, priv in zip(
        out["states"], out["expected"], out["plain"], out["privileged_head"], strict=True
    ):
        assert len(state) == AGENT_STATE_DIM + CUBE_OFFSET_DIM and len(plain) == AGENT_STATE_DIM
        assert state[:AGENT_STATE_DIM] == plain  # the robot state is unchanged
        assert state[AGENT_STATE_DIM:] == pytest.approx(expected, abs=1e-6)
        assert state[AGENT_STATE_DIM:] == pytest.approx(priv, abs=1e-6)  # the critic's offset, the same numbers
    assert out["states"][0][AGENT_STATE_DIM:] != pytest.approx(out["states"][1][AGENT_STATE_DIM:], abs=1e-3)
    assert "pass the env" in out["refused"]
    assert out["feature"] == [AGENT_STATE_DIM + CUBE_OFFSET_DIM]  # demos are written with the same width


def test_a_policy_state_width_that_disagrees_with_observe_cube_is_one_line():
    cfg = load_run_config(CONFIGS_DIR / "pick_cube_tiny.json")  # the default observes the cube offset
    assert cfg.env.observe_cube and cfg.policy.robot_state_feature.shape == (AGENT_STATE_DIM + CUBE_OFFSET_DIM,)
    pixels = load_run_config(CONFIGS_DIR / "pick_cube_tiny_pixels.json")
    assert not pixels.env.observe_cube and pixels.policy.robot_state_feature.shape == (AGENT_STATE_DIM,)
    with pytest.raises(RunConfigError, match=r"shape \[21\] but env.observe_cube=False feeds 18 numbers"):
        load_run_config(CONFIGS_DIR / "pick_cube_tiny.json", ["--env.observe_cube=false"])
    with pytest.raises(RunConfigError, match=r"shape \[18\] but env.observe_cube=True feeds 21 numbers"):
        load_run_config(CONFIGS_DIR / "pick_cube_tiny_pixels.json", ["--env.observe_cube=true"])
