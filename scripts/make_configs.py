"""Regenerate configs/*.json from the dataclass defaults plus the choices below (run after changing defaults)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from lerobot.configs.types import FeatureType, PolicyFeature

import pirlctl  # noqa: F401
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.config.run_config import (
    PRIVILEGED_STATE_DIM,
    EnvSettings,
    PipelineSettings,
    PiRLRunConfig,
    RuntimeSettings,
    encode_run_config,
    policy_state_dim,
)
from pirlctl.envs.pick_cube import STATE_KEY
from pirlctl.policies.loading import TINY_XVLA_CONFIG, load_policy_config

ROOT = Path(__file__).resolve().parents[1]


# The demonstrator of the default job is miscalibrated: it believes the cube sits 2 cm further along +y than it
# does (pipeline.demo_aim_bias). Behaviour cloning copies that offset; the reward does not reward it. With exactly
# aimed demos the SFT policy's failures are cube localisation from 64 px images, which RL on 2 CPU cores does not
# fix within the 20-minute budget (docs/benchmarks.md): pick_cube_tiny_exact_demos keeps that task.
DEMO_AIM_BIAS = [0.0, 0.02, 0.0]

# two actors x 256 chunks x 4 executed actions = 2048 env steps per PPO update: 37 updates
DEFAULT_ACTORS, DEFAULT_ROLLOUT_CHUNKS, N_EXEC = 2, 256, 4
DEFAULT_ENV_STEPS = 75_000
DEFAULT_ITERATIONS = math.ceil(DEFAULT_ENV_STEPS / (DEFAULT_ACTORS * DEFAULT_ROLLOUT_CHUNKS * N_EXEC))


def tiny_algorithm(**kw) -> PiRLConfig:
    """PI-RL settings for the tiny X-VLA on CPU: reference K and clip, a small lr (a few-demo BC policy is easily
    pushed off its data), the reference noise level 0.5 annealed to 0.2 over the first 31 of the run's 37 iterations
    (exploration early, the trained chain close to the ODE one that is evaluated), one ratio per (row, dim) (the
    summed chunk log-prob of 16 terms moved ratios too far per step), target-KL early stopping, the actor lr
    annealed linearly to 0 over the run's 37 iterations (with a constant lr, training success rose and then fell
    back in the last third), and an asymmetric critic that also reads the gripper-to-cube offset (simulator-only;
    the policy never sees it); the runs behind these choices are in docs/benchmarks.md."""
    base = dict(
        actor_lr=6e-5,
        actor_lr_final=0.0,
        lr_anneal_iters=DEFAULT_ITERATIONS,
        critic_privileged_dim=PRIVILEGED_STATE_DIM,
        value_lr=1e-3,
        minibatch_size=64,
        ppo_epochs=4,
        n_exec=N_EXEC,
        num_denoise_steps=4,
        noise_level=0.5,
        noise_level_final=0.2,
        noise_anneal_iters=31,
        logprob_reduction="token_level",
        target_kl=0.03,
        critic_warmup_iters=1,
    )
    base.update(kw)
    return PiRLConfig(**base)


def tiny_env(**kw) -> EnvSettings:
    """Cube within +-3 cm; shaping: policy-invariant, and the critic's only signal between sparse successes;
    collision-hull rendering: ~2x the env steps per second on CPU (docs/benchmarks.md)."""
    return EnvSettings(**{"cube_range": 0.03, "shaping": 1.0, "render_geometry": "collision", **kw})


def tiny_pipeline(**kw) -> PipelineSettings:
    """20 demos of the miscalibrated demonstrator; 100 evaluation episodes (intervals of about +-10 points)."""
    return PipelineSettings(**{"demo_aim_bias": DEMO_AIM_BIAS, "eval_episodes": 100, **kw})


def run(
    name: str,
    algorithm: PiRLConfig,
    runtime: RuntimeSettings,
    env: EnvSettings | None = None,
    pipeline: PipelineSettings | None = None,
    **kw,
) -> None:
    env = env or tiny_env()
    policy = load_policy_config(TINY_XVLA_CONFIG)
    state_dim = policy_state_dim(env)
    policy.input_features[STATE_KEY] = PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))
    policy.max_state_dim = state_dim
    cfg = PiRLRunConfig(
        policy=policy,
        algorithm=algorithm,
        env=env,
        pipeline=pipeline or tiny_pipeline(),
        runtime=runtime,
        output_dir=f"runs/{name}",
        **kw,
    )
    path = ROOT / "configs" / f"{name}.json"
    path.write_text(json.dumps(encode_run_config(cfg), indent=2) + "\n")
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    # two actors: on 2 cores the learner idles while actors render, so two actors nearly double env throughput;
    # 256 chunks each: ~50 episodes per PPO update, 37 updates in 75 k env steps (rendering once per chunk and
    # the fast arm controller made room for 2.5x the steps of the earlier 128-chunk, 30 k default)
    default_runtime = RuntimeSettings(
        num_actors=DEFAULT_ACTORS,
        rollout_chunks=DEFAULT_ROLLOUT_CHUNKS,
        total_env_steps=DEFAULT_ENV_STEPS,
        checkpoint_every=2,
    )
    run("pick_cube_tiny", tiny_algorithm(), default_runtime)
    run("pick_cube_tiny_flow_noise", tiny_algorithm(noise_method="flow_noise"), default_runtime)
    run(
        "pick_cube_tiny_1actor",
        tiny_algorithm(),
        RuntimeSettings(num_actors=1, rollout_chunks=512, total_env_steps=DEFAULT_ENV_STEPS, checkpoint_every=2),
    )
    # the task with exactly aimed demos: the SFT policy fails on cube localisation, which RL here barely moves
    run(
        "pick_cube_tiny_exact_demos", tiny_algorithm(), default_runtime, pipeline=tiny_pipeline(demo_aim_bias=[0, 0, 0])
    )
    # gym_hil's full cube range: the tiny X-VLA does not learn to localise the cube from 64 px (docs/benchmarks.md)
    # the state-based variant: the policy also reads the gripper-to-cube offset, so it need not localise the cube
    run("pick_cube_tiny_cube_obs", tiny_algorithm(), default_runtime, env=tiny_env(observe_cube=True))
    run("pick_cube_tiny_full_range", tiny_algorithm(), default_runtime, env=tiny_env(cube_range=None))
