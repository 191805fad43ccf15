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


def split(policy: Any) -> dict[str, float]:
    adapter: Any = make_flow_adapter(policy)  # freezes the unused heads
    vlm, blocks = adapter.vlm_prefix, adapter.expert_block_prefixes()
    named = dict(policy.named_parameters())
    n = {k: 0 for k in ("vlm", "expert", "other", "unused")}
    for name, p in named.items():
        if name.startswith(adapter.unused_parameter_prefixes):
            n["unused"] += p.numel()
        elif name.startswith(vlm):
            n["vlm"] += p.numel()
        elif name.startswith(adapter.expert_layers.split("layers.")[0]):
            n["expert"] += p.numel()
        else:
            n["other"] += p.numel()

    def push(frozen: tuple[str, ...]) -> int:
        return 4 * sum(p.numel() for k, p in named.items() if p.requires_grad and not (frozen and k.startswith(frozen)))

    n["all"] = push(())
    n["action_expert"] = push((vlm,))
    n["last2"] = push((vlm, *blocks[:-2]))
    n["blocks"] = len(blocks)
    return n


def main() -> None:
    rows = [
        "| policy | total | VLM | action expert | projections | unused lm_heads | expert blocks | push: all | "
        "push: action_expert | push: last 2 blocks |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("pi0", "pi05", "smolvla"):
        n = split(build_meta(kind))
        total = n["vlm"] + n["expert"] + n["other"] + n["unused"]
        m = lambda x: f"{x / 1e6:,.1f} M"  # noqa: E731
        mb = lambda x: f"{x / 2**20:,.0f} MB"  # noqa: E731
        rows.append(
            f"| {kind} | {m(total)} | {m(n['vlm'])} | {m(n['expert'])} | {m(n['other'])} | {m(n['unused'])} | "
            f"{int(n['blocks'])} | {mb(n['all'])} | {mb(n['action_expert'])} | {mb(n['last2'])} |"
        )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
