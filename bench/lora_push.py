"""LoRA push size for full-size π0 and π0.5 built on the meta device (issue 21: the push must be >= 50x smaller
than the whole policy).

    python bench/lora_push.py          # a Markdown table; seconds, no weights are allocated

The push is what ``PiRLAlgorithm.get_weights`` sends under ``algorithm.trainable=lora`` (adapters + value head),
counted from ``expected_weights`` (shapes and dtypes, so no tensor needs data). The whole policy is every parameter
of the LeRobot policy, float32, the two unused ``lm_head``s left out (3.24 B for π0, lerobot-policies.md). The build
follows ``bench/policy_params.py`` (config device set after construction, modules built under ``torch.device``).
"""

from __future__ import annotations

from typing import Any

import torch

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm

RANKS = (8, 16, 64)
GOAL = 50.0  # the push must be at least this many times smaller than the whole policy


def build_meta(kind: str) -> Any:
    """A full-size LeRobot ``kind`` policy on the meta device (one 224² camera, 8-d state, 7-d action)."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import get_policy_class, make_policy_config

    cfg = make_policy_config(kind)
    cfg.input_features = {
        "observation.images.front": PolicyFeature(FeatureType.VISUAL, (3, 224, 224)),
        "observation.state": PolicyFeature(FeatureType.STATE, (8,)),
    }
    cfg.output_features = {"action": PolicyFeature(FeatureType.ACTION, (7,))}
    cfg.device = "meta"  # after construction: __post_init__ replaces "meta" (configs/policies.py:86-89)
    with torch.device("meta"):
        return get_policy_class(kind)(cfg)


def nbytes(spec: dict[str, dict[str, tuple[tuple[int, ...], torch.dtype]]]) -> int:
    """Bytes of the tensors ``spec`` (``expected_weights``: group -> name -> (shape, dtype)) describes."""
    total = 0
    for group in spec.values():
        for shape, dtype in group.values():
            total += int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()
    return total


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
    push = nbytes(algo.expected_weights())
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
