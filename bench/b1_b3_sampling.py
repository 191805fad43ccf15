"""B1: PI-RL actor call / policy's own predict_action_chunk (same K, policy, inputs); B3: hybrid vs full-chain
re-scoring cost per sample, and PPO samples per second. Ratios are measured side by side, interleaved."""

from __future__ import annotations

import copy
from typing import Any

import torch

import pirlctl  # noqa: F401
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm, RolloutBatch
from pirlctl.policies.loading import TINY_XVLA_CONFIG, build_policy, load_policy_config
from pirlctl.policies.xvla import tokenize_task

from .common import fmt, stats, timeit


def policy_configs() -> dict[str, Any]:
    tiny = load_policy_config(TINY_XVLA_CONFIG)
    small = copy.deepcopy(tiny)
    small.hidden_size, small.depth, small.num_heads = 256, 6, 8
    return {"tiny (hidden 64, depth 2)": tiny, "small (hidden 256, depth 6)": small}


def batch_for(cfg: Any, n: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {k: torch.rand(n, *f.shape, generator=g) for k, f in cfg.input_features.items()}
    out["observation.language.tokens"] = tokenize_task("pick up the cube", cfg, n)[0]
    return out


def b1(repeats: int = 5) -> list[dict[str, Any]]:
    rows = []
    for name, cfg in policy_configs().items():
        for K in (1, 4, 10):
            c = copy.deepcopy(cfg)
            c.num_denoising_steps = K
            torch.manual_seed(0)
            policy = build_policy(c)
            obs = batch_for(c, 1)
            for method in ("flow_sde", "flow_noise"):
                algo = PiRLAlgorithm(policy, PiRLConfig(noise_method=method, num_denoise_steps=K))
                ratios = []
                base_t, pirl_t = [], []
                for _ in range(repeats):  # interleave: each repeat measures both, back to back
                    b = timeit(lambda: policy.predict_action_chunk(obs), repeats=1, number=10)[0]
                    p = timeit(lambda: algo.act(obs), repeats=1, number=10)[0]
                    base_t.append(b)
                    pirl_t.append(p)
                    ratios.append(p / b)
                rows.append(
                    {
                        "model": name,
                        "K": K,
                        "method": f"{method} ({algo.config.resolved_sampling})",
                        "predict_action_chunk_ms": stats([1000 * x for x in base_t]),
                        "pirl_act_ms": stats([1000 * x for x in pirl_t]),
                        "ratio": stats(ratios),
                    }
                )
    return rows


def b3(repeats: int = 5, n: int = 64) -> dict[str, Any]:
    cfg = policy_configs()["tiny (hidden 64, depth 2)"]
    torch.manual_seed(0)
    policy = build_policy(cfg)
    obs = batch_for(cfg, n)
    out: dict[str, Any] = {}
    for K in (4, 10):
        hyb = PiRLAlgorithm(policy, PiRLConfig(num_denoise_steps=K, sampling="hybrid"))
        full = PiRLAlgorithm(policy, PiRLConfig(num_denoise_steps=K, sampling="full_chain"))
        sh, sf = hyb.act(obs), full.act(obs)
        bh = RolloutBatch(obs, sh.chain, sh.stochastic, sh.log_prob, sh.value, torch.zeros(n), torch.zeros(n))
        bf = RolloutBatch(obs, sf.chain, sf.stochastic, sf.log_prob, sf.value, torch.zeros(n), torch.zeros(n))
        prefix_t, ratios = [], []
        for _ in range(repeats):
            with torch.no_grad():
                th = timeit(lambda: hyb.evaluate(bh), repeats=1, number=3)[0]
                tf = timeit(lambda: full.evaluate(bf), repeats=1, number=3)[0]
                tp = timeit(lambda: hyb.adapter.encode(obs), repeats=1, number=3)[0]
            ratios.append(th / tf)
            prefix_t.append(tp / tf)
        ppo = PiRLAlgorithm(policy, PiRLConfig(num_denoise_steps=K, minibatch_size=32, ppo_epochs=1))
        t_upd = timeit(lambda: ppo.update(iter([bh])), repeats=3, number=1)
        out[f"K={K}"] = {
            "hybrid_over_full": stats(ratios),
            "prefix_share_of_full": stats(prefix_t),
            "expected": f"1/K + prefix share ≈ {1 / K:.2f} + prefix",
            "ppo_samples_per_s": stats([n / t for t in t_upd]),
        }
    return out


def render(rows: list[dict[str, Any]], b3r: dict[str, Any]) -> str:
    lines = [
        "### B1 sampling overhead (goal ≤ 1.10)",
        "",
        "| model | K | method | predict_action_chunk ms | PI-RL act ms | ratio median (min–max) | goal met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['K']} | {r['method']} | {fmt(r['predict_action_chunk_ms'], 2)} | "
            f"{fmt(r['pirl_act_ms'], 2)} | {fmt(r['ratio'])} | {'yes' if r['ratio']['median'] <= 1.10 else 'no'} |"
        )
    lines += [
        "",
        "### B3 learner re-scoring (hybrid / full chain, per sample) and PPO throughput",
        "",
        "| K | hybrid / full | prefix share of full | expectation | PPO samples/s (tiny X-VLA, 1 epoch) |",
        "|---|---|---|---|---|",
    ]
    for k, v in b3r.items():
        lines.append(
            f"| {k} | {fmt(v['hybrid_over_full'])} | {fmt(v['prefix_share_of_full'])} | {v['expected']} | "
            f"{fmt(v['ppo_samples_per_s'], 0)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(render(b1(), b3()))
