"""B1 for π0, π0.5 and SmolVLA (tiny builds): PI-RL's actor call (Flow-SDE hybrid: chain, log-prob, value) over the
policy's own ``predict_action_chunk`` at the same K, inputs and weights, interleaved. Goal ≤ 1.10 at K = 1, 4, 10.

    python -m bench.b1_velocity
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm
from pirlctl.configs import CONFIGS_DIR
from pirlctl.policies.language import LANGUAGE_MASK_KEY, LANGUAGE_TOKENS_KEY, tokenize_task
from pirlctl.policies.loading import build_policy, load_policy_config

from .common import machine, stats, timeit

STEPS_FIELD = {"pi0": "num_inference_steps", "pi05": "num_inference_steps", "smolvla": "num_steps"}


def obs_for(cfg: Any) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {k: torch.rand(1, *f.shape, generator=g) for k, f in cfg.input_features.items()}
    out[LANGUAGE_TOKENS_KEY] = tokenize_task("pick up the cube", cfg, 1)[0]
    out[LANGUAGE_MASK_KEY] = out[LANGUAGE_TOKENS_KEY] != 0  # the processor path: both sides read the same prompt
    return out


def main(repeats: int = 5) -> None:
    print(f"_{machine()}_\n")
    print("| policy | K | predict_action_chunk ms | PI-RL act ms | ratio (median, min–max) | goal ≤ 1.10 |")
    print("|---|---:|---:|---:|---|---|")
    for kind in ("pi0", "pi05", "smolvla"):
        for K in (1, 4, 10):
            cfg = copy.deepcopy(load_policy_config(CONFIGS_DIR / "policy" / f"tiny_{kind}.json"))
            setattr(cfg, STEPS_FIELD[kind], K)
            torch.manual_seed(0)
            policy = build_policy(cfg).eval()
            algo = PiRLAlgorithm(policy, PiRLConfig(num_denoise_steps=K))
            obs = obs_for(cfg)
            base, pirl = [], []
            for _ in range(repeats):
                base.append(timeit(lambda: policy.predict_action_chunk(obs), repeats=1, number=10)[0])  # noqa: B023
                pirl.append(timeit(lambda: algo.act(obs), repeats=1, number=10)[0])  # noqa: B023
            r = stats([p / b for p, b in zip(pirl, base, strict=True)])
            b_ms, p_ms = stats([1000 * x for x in base]), stats([1000 * x for x in pirl])
            print(
                f"| {kind} | {K} | {b_ms['median']:.1f} | {p_ms['median']:.1f} | {r['median']:.2f} "
                f"({r['min']:.2f}–{r['max']:.2f}) | {'met' if r['median'] <= 1.10 else 'not met'} |"
            )


if __name__ == "__main__":
    main()
