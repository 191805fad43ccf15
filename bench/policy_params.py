"""Full-size π0, π0.5 and SmolVLA on the meta device: the parameter split (VLM / action expert / projections /
unused ``lm_head``s) and the bytes one weight push sends for each trainable scope, from the adapters' own prefixes.

    python bench/policy_params.py          # prints a Markdown table (seconds, no weights are allocated)

SmolVLA's VLM config is SmolVLM2-500M-Video-Instruct's, typed by hand (no hub here). Pushes count float32 bytes of
the parameters that stay trainable: LeRobot's defaults (SmolVLA trains its expert only) with the unused heads frozen.
"""

from __future__ import annotations

from typing import Any

import torch

from pirlctl.policies import make_flow_adapter
from pirlctl.policies.tiny_builds import smolvlm_stand_in


def smolvlm2_500m_config() -> Any:
    from transformers import SmolVLMConfig

    fields: dict[str, Any] = dict(
        text_config={
            "model_type": "llama",
            "vocab_size": 49280,
            "hidden_size": 960,
            "intermediate_size": 2560,
            "num_hidden_layers": 32,
            "num_attention_heads": 15,
            "num_key_value_heads": 5,
            "head_dim": 64,
            "max_position_embeddings": 8192,
            "tie_word_embeddings": False,
        },
        vision_config={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "patch_size": 16,
            "image_size": 512,
        },
        scale_factor=4,
        vocab_size=49280,
        image_token_id=49190,
    )
    return SmolVLMConfig(**fields)


def build_meta(kind: str) -> Any:
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
        if kind == "smolvla":
            with smolvlm_stand_in(smolvlm2_500m_config):
                return get_policy_class(kind)(cfg)
        return get_policy_class(kind)(cfg)


SCOPES: tuple[tuple[str, int], ...] = (("all", 0), ("action_expert", 0), ("action_expert", 6), ("action_expert", 2))


def split(policy: Any) -> dict[str, float]:
    """Parameter counts by part (the adapter's prefixes; it freezes the unused heads)."""
    adapter: Any = make_flow_adapter(policy)
    vlm, blocks = adapter.vlm_prefix, adapter.expert_block_prefixes()
    n = {k: 0 for k in ("vlm", "expert", "other", "unused")}
    for name, p in policy.named_parameters():
        if name.startswith(adapter.unused_parameter_prefixes):
            n["unused"] += p.numel()
        elif name.startswith(vlm):
            n["vlm"] += p.numel()
        elif name.startswith(adapter.expert_layers.split("layers.")[0]):
            n["expert"] += p.numel()
        else:
            n["other"] += p.numel()
    n["blocks"] = len(blocks)
    return n


def push_bytes(policy: Any, scope: str, blocks: int) -> int:
    """Bytes of one weight push under a trainable scope: what the learner sends (``PiRLAlgorithm.get_weights``,
    whose keys, shapes and dtypes ``expected_weights`` lists without copying the meta tensors), value head included.
    Each scope starts from the policy's own ``requires_grad`` flags, as a fresh learner does."""
    from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
    from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm

    algo = PiRLAlgorithm(policy, PiRLConfig(trainable=scope, trainable_blocks=blocks))  # heads follow the policy
    return spec_bytes(algo.expected_weights())


def spec_bytes(spec: dict[str, dict[str, tuple[tuple[int, ...], torch.dtype]]]) -> int:
    """Bytes of the tensors ``spec`` (``expected_weights``: group -> name -> (shape, dtype)) describes."""
    return sum(
        int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()
        for group in spec.values()
        for shape, dtype in group.values()
    )


def measure(kind: str) -> dict[str, Any]:
    policy = build_meta(kind)
    flags = {name: p.requires_grad for name, p in policy.named_parameters()}
    row: dict[str, Any] = split(policy)
    row["whole"] = sum(p.numel() * p.element_size() for p in policy.parameters())
    for scope, blocks in SCOPES:
        for name, p in policy.named_parameters():
            p.requires_grad_(flags[name])
        row[(scope, blocks)] = push_bytes(policy, scope, blocks)
    return row


def main() -> None:
    scope_names = [s if not b else f"last {b} blocks" for s, b in SCOPES]
    rows = [
        "| policy | total | VLM | action expert | projections | unused lm_heads | expert blocks |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    pushes = [
        "| policy | whole policy | " + " | ".join(f"push: {s}" for s in scope_names) + " |",
        "|---|---:|" + "---:|" * len(SCOPES),
    ]
    m = lambda x: f"{x / 1e6:,.1f} M"  # noqa: E731
    mb = lambda x: f"{x / 2**20:,.0f} MB"  # noqa: E731
    for kind in ("pi0", "pi05", "smolvla"):
        n = measure(kind)
        total = n["vlm"] + n["expert"] + n["other"] + n["unused"]
        rows.append(
            f"| {kind} | {m(total)} | {m(n['vlm'])} | {m(n['expert'])} | {m(n['other'])} | {m(n['unused'])} | "
            f"{int(n['blocks'])} |"
        )
        cells = [f"{mb(n[s])} ({n['whole'] / n[s]:.1f}×)" for s in SCOPES]
        pushes.append(f"| {kind} | {mb(n['whole'])} | " + " | ".join(cells) + " |")
    print("\n".join(rows) + "\n\n" + "\n".join(pushes))


if __name__ == "__main__":
    main()
