"""The asymmetric critic: the value head reads the simulator-only state, the policy never does, and every place
that builds or checks an observation agrees on the key."""

from __future__ import annotations

import pytest
import torch

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PRIVILEGED_STATE_KEY, PiRLConfig, PiRLConfigError
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition, PiRLAlgorithm, RolloutBatch
from pirlctl.config.run_config import PRIVILEGED_STATE_DIM, PiRLRunConfig, RunConfigError
from pirlctl.runtime.build import expected_observation_shapes
from pirlctl.runtime.wire import WireError, decode_segment, encode_segment


def _algo(tiny_xvla, dim=PRIVILEGED_STATE_DIM):
    algo = PiRLAlgorithm(tiny_xvla, PiRLConfig(critic_privileged_dim=dim, minibatch_size=4, ppo_epochs=1))
    torch.manual_seed(1)
    for p in algo.value_head.parameters():  # the last layer starts at zero: give V something to say
        torch.nn.init.normal_(p, std=0.5)
    return algo


def test_value_depends_on_the_privileged_state_and_the_actions_do_not(tiny_xvla, xvla_batch):
    algo = _algo(tiny_xvla)
    n = next(iter(xvla_batch.values())).shape[0]
    a = {**xvla_batch, PRIVILEGED_STATE_KEY: torch.zeros(n, PRIVILEGED_STATE_DIM)}
    b = {**xvla_batch, PRIVILEGED_STATE_KEY: torch.ones(n, PRIVILEGED_STATE_DIM)}
    torch.manual_seed(5)
    step_a = algo.act(a)
    torch.manual_seed(5)
    step_b = algo.act(b)
    assert torch.equal(step_a.actions, step_b.actions)  # the policy does not see it
    assert torch.equal(step_a.log_prob, step_b.log_prob)
    assert not torch.allclose(step_a.value, step_b.value)  # the critic does
    torch.testing.assert_close(algo.value(a), step_a.value)  # bootstrap values use the same input
    rb = RolloutBatch(b, step_b.chain, step_b.stochastic, step_b.log_prob, step_b.value, torch.zeros(n), torch.zeros(n))
    _, values, _ = algo.evaluate(rb)  # and so does the learner's re-score
    torch.testing.assert_close(values, step_b.value)


def test_missing_or_wrong_width_privileged_state_is_a_one_line_error(tiny_xvla, xvla_batch):
    algo = _algo(tiny_xvla)
    with pytest.raises(PiRLConfigError, match=r"has no 'observation.privileged_state'.*actor must add"):
        algo.act(xvla_batch)
    n = next(iter(xvla_batch.values())).shape[0]
    with pytest.raises(PiRLConfigError, match=r"has 3 numbers but pi_rl.critic_privileged_dim=4"):
        algo.value({**xvla_batch, PRIVILEGED_STATE_KEY: torch.zeros(n, 3)})
    # evaluation runs the ODE policy without simulator state: no V is needed there
    step = algo.act(xvla_batch, deterministic=True)
    assert torch.equal(step.value, torch.zeros(n))


def test_config_checks(tiny_xvla_config):
    with pytest.raises(PiRLConfigError, match="critic_privileged_dim=-1"):
        PiRLConfig(critic_privileged_dim=-1)
    cfg = PiRLRunConfig(policy=tiny_xvla_config, algorithm=PiRLConfig(critic_privileged_dim=3))
    with pytest.raises(RunConfigError, match=rf"critic_privileged_dim=3 .* use {PRIVILEGED_STATE_DIM}"):
        cfg.validate()


def test_the_learner_refuses_a_segment_without_the_privileged_state(tiny_xvla, tiny_xvla_config, xvla_batch):
    algo = _algo(tiny_xvla)
    n = next(iter(xvla_batch.values())).shape[0]
    obs = {**xvla_batch, PRIVILEGED_STATE_KEY: torch.zeros(n, PRIVILEGED_STATE_DIM)}
    step = algo.act(obs)
    tokens = xvla_batch["observation.language.tokens"].shape[-1]
    shapes = expected_observation_shapes(tiny_xvla_config, tokens, PRIVILEGED_STATE_DIM)
    assert shapes[PRIVILEGED_STATE_KEY] == (PRIVILEGED_STATE_DIM,)

    def segment(observation):
        tr = ChunkTransition(
            observation, step.chain[0], step.stochastic[0], step.log_prob[0], 0.0, 0.0, False, False, 0.0
        )
        return encode_segment([tr], actions=[torch.zeros(4, 4)], env_steps=[4])

    kw = dict(expected_obs=shapes, chain_shape=tuple(step.chain.shape[1:]), log_prob_shape=())
    ok = decode_segment(segment({k: v[0] for k, v in obs.items()}), **kw)
    assert torch.equal(ok.transitions[0].observation[PRIVILEGED_STATE_KEY], torch.zeros(PRIVILEGED_STATE_DIM))
    with pytest.raises(WireError, match="'observation.privileged_state' missing"):
        decode_segment(segment({k: v[0] for k, v in xvla_batch.items()}), **kw)


CHILD = r"""
import json
import numpy as np
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PRIVILEGED_STATE_KEY, PiRLConfig
from pirlctl.config.run_config import EnvSettings, PiRLRunConfig
from pirlctl.envs.pick_cube import make_env, privileged_pose, reset_episode, run_chunk
from pirlctl.policies.loading import TINY_XVLA_CONFIG, load_policy_config
from pirlctl.envs.pick_cube_task import PickCubeTaskEnv
from pirlctl.runtime.actor import actor_observation
import torch

env_settings = EnvSettings(cube_range=0.03, image_size=32, cameras=["front", "wrist"], max_episode_steps=20)
out = {}
for dim in (0, 4):
    cfg = PiRLRunConfig(policy=load_policy_config(TINY_XVLA_CONFIG), algorithm=PiRLConfig(critic_privileged_dim=dim),
                        env=env_settings)
    cfg.validate()
    env = make_env(env_settings)
    obs = reset_episode(env, 7)
    down = np.zeros((4, 4), dtype=np.float32)
    down[:, 2] = -1.0
    obs = run_chunk(env, down, env.action_space.low, env.action_space.high).obs
    o = actor_observation(PickCubeTaskEnv(env_settings, gym_env=env), obs, cfg, torch.zeros(8, dtype=torch.long))
    pose = privileged_pose(env)
    out[dim] = {"keys": sorted(o), "priv": o[PRIVILEGED_STATE_KEY].tolist() if dim else None,
                "expected": (10.0 * (pose.cube - pose.tcp)).tolist()}
    env.close()
print(json.dumps(out))
"""


@pytest.mark.filterwarnings("ignore")
def test_the_actor_adds_the_gripper_to_cube_offset_only_for_an_asymmetric_critic(child_json):
    out = child_json(CHILD)
    assert PRIVILEGED_STATE_KEY not in out["0"]["keys"]
    assert PRIVILEGED_STATE_KEY in out["4"]["keys"]
    priv = out["4"]["priv"]
    assert len(priv) == PRIVILEGED_STATE_DIM
    assert priv[:3] == pytest.approx(out["4"]["expected"], abs=1e-5)  # read after the chunk, not at reset
    assert 0.0 <= priv[3] <= 1.0 and abs(sum(priv[:3])) > 0.1
