"""LoRA push size for full-size π0 and π0.5 built on the meta device (issue 21: the push must be >= 50x smaller
than the whole policy).

    python bench/lora_push.py          # a Markdown table; seconds, no weights are allocated

The push is what ``PiRLAlgorithm.get_weights`` sends under ``algorithm.trainable=lora`` (adapters + value head),
counted from ``expected_weights`` (shapes and dtypes, so no tensor needs data). The whole policy is every parameter
of the LeRobot policy, float32, the two unused ``lm_head``s left out (3.24 B for π0, lerobot-policies.md). The build
is ``bench/policy_params.py``'s ``build_meta`` (config device set after construction, built under ``torch.device``).
"""

from __future__ import annotations

from typing import Any

import torch

from bench.policy_params import build_meta, spec_bytes
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm

RANKS = (8, 16, 64)
GOAL = 50.0  # the push must be at least this many times smaller than the whole policy


def measure(kind: str, rank: int, lora_vlm: bool = False) -> dict[str, Any]:
    """Whole-policy bytes (unused heads excluded) and LoRA push bytes for one full-size policy."""
    with torch.device("meta"):
        policy = build_meta(kind)
        algo = PiRLAlgorithm(
            policy, PiRLConfig(trainable="lora", lora_rank=rank, lora_alpha=2 * rank, lora_vlm=lora_vlm)
        )
    unused = tuple(getattr(algo.adapter, "unused_parameter_prefixes", ()))
    whole = sum(
        4 * p.numel() for n, p in policy.named_parameters() if not n.replace(".base_layer", "").startswith(unused)
    )
    whole -= sum(4 * p.numel() for n, p in policy.named_parameters() if ".lora_" in n)  # adapters are not the policy
    push = spec_bytes(algo.expected_weights())
    layers = len({n.split(".lora_")[0] for n in algo.trainable_policy_parameters()})
    return {"kind": kind, "rank": rank, "vlm": lora_vlm, "layers": layers, "whole": whole, "push": push}


def main() -> None:
    rows = [
        "| policy | LoRA rank | VLM adapted | adapted linears | whole policy | LoRA push | smaller by |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for kind in ("pi0", "pi05"):
        for rank, vlm in [(r, False) for r in RANKS] + [(16, True)]:
            m = measure(kind, rank, vlm)
            ratio = m["whole"] / m["push"]
            flag = "" if ratio >= GOAL else f" (below the {GOAL:.0f}x goal)"
            rows.append(
                f"| {kind} | {rank} | {'yes' if vlm else 'no'} | {m['layers']} | {m['whole'] / 2**30:,.2f} GB | "
                f"{m['push'] / 2**20:,.1f} MB | {ratio:,.0f}x{flag} |"
            )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
