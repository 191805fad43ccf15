"""π0 flow adapter (``lerobot.policies.pi0``, LeRobot 0.6.1); the velocity convention is in :mod:`.velocity`.

The prefix (SigLIP images and language through PaliGemma) is cached once per chunk exactly as
``PI0Pytorch.sample_actions`` does (modeling_pi0.py:671-686); each step is the policy's own ``denoise_step``
(:705-743), which clones the cache per call and carries the state in the suffix (:529-548).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pirlctl.policies.velocity import VelocityAdapter, VelocityPrefix

PALIGEMMA = "model.paligemma_with_expert.paligemma."
EXPERT = "model.paligemma_with_expert.gemma_expert."


def paligemma_prefix(
    model: Any, images: Any, img_masks: Any, tokens: Tensor, masks: Tensor
) -> tuple[Any, Tensor, Tensor]:
    """(KV cache, pad masks [B,P], prefix output [B,P,W]) of π0 / π0.5, as their ``sample_actions`` computes them."""
    from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d

    embs, pad_masks, att_masks = model.embed_prefix(images, img_masks, tokens, masks)
    att_4d = prepare_attention_masks_4d(make_att_2d_masks(pad_masks, att_masks))
    position_ids = torch.cumsum(pad_masks, dim=1) - 1  # int64, as the policy computes it
    model.paligemma_with_expert.paligemma.model.language_model.config._attn_implementation = "eager"  # noqa: SLF001
    (prefix_out, _), cache = model.paligemma_with_expert.forward(
        attention_mask=att_4d,
        position_ids=position_ids,
        past_key_values=None,
        inputs_embeds=[embs, None],
        use_cache=True,
    )
    return cache, pad_masks, prefix_out


class PI0Adapter(VelocityAdapter):
    """PI-RL view of a ``PI0Policy``."""

    vlm_prefix = PALIGEMMA
    expert_layers = EXPERT + "model.layers."
    unused_parameter_prefixes = (PALIGEMMA + "lm_head.", EXPERT + "lm_head.")

    def _vlm_width(self) -> int:
        return int(self.model.paligemma_with_expert.paligemma.config.text_config.hidden_size)

    def _prefix(self, batch: dict[str, Tensor], tokens: Tensor, masks: Tensor) -> VelocityPrefix:
        images, img_masks = self.policy._preprocess_images(batch)
        state = self.policy.prepare_state(batch)
        cache, pad_masks, out = paligemma_prefix(self.model, images, img_masks, tokens, masks)
        return VelocityPrefix(cache, pad_masks, out, state=state, policy_state=state)

    def _velocity(self, prefix: VelocityPrefix, x_t: Tensor, t: Tensor) -> Tensor:
        return self.model.denoise_step(prefix.policy_state, prefix.pad_masks, prefix.past_key_values, x_t, t)
