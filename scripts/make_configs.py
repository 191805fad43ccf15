"""Regenerate configs/*.json from the dataclass defaults plus the choices below (run after changing defaults)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pirlctl  # noqa: F401
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.config.run_config import EnvSettings, PiRLRunConfig, RuntimeSettings, encode_run_config
from pirlctl.policies.loading import TINY_XVLA_CONFIG, load_policy_config

ROOT = Path(__file__).resolve().parents[1]


def tiny_algorithm(**kw) -> PiRLConfig:
    base = dict(
        actor_lr=3e-4,
        value_lr=1e-3,
        minibatch_size=32,
        ppo_epochs=4,
        n_exec=4,
        num_denoise_steps=4,
        critic_warmup_iters=1,
    )
    base.update(kw)
    return PiRLConfig(**base)


def run(name: str, algorithm: PiRLConfig, runtime: RuntimeSettings, **kw) -> None:
    cfg = PiRLRunConfig(
        policy=load_policy_config(TINY_XVLA_CONFIG),
        algorithm=algorithm,
        env=EnvSettings(),
        runtime=runtime,
        output_dir=f"runs/{name}",
        **kw,
    )
    path = ROOT / "configs" / f"{name}.json"
    path.write_text(json.dumps(encode_run_config(cfg), indent=2) + "\n")
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    run("pick_cube_tiny", tiny_algorithm(), RuntimeSettings(num_actors=1, rollout_chunks=32, total_env_steps=3000))
    run(
        "pick_cube_tiny_flow_noise",
        tiny_algorithm(noise_method="flow_noise"),
        RuntimeSettings(num_actors=1, rollout_chunks=32, total_env_steps=3000),
    )
    run(
        "pick_cube_tiny_2actors",
        tiny_algorithm(),
        RuntimeSettings(num_actors=2, rollout_chunks=16, total_env_steps=3000),
    )
