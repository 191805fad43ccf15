"""SmolVLA flow adapter (``lerobot.policies.smolvla``, LeRobot 0.6.1); the velocity convention is in :mod:`.velocity`.

The state enters the prefix (modeling_smolvla.py:619-630), so the cache depends on it. ``denoise_step``
(:775-810) appends the suffix to the shared ``DynamicCache`` and crops it back (:803-805): repeatable, but an
exception mid-step would leave it extended, so the adapter crops it again in ``finally``; a prefix is not to be
shared across threads.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pirlctl.policies.velocity import VelocityAdapter, VelocityPrefix

VLM = "model.vlm_with_expert.vlm."


class SmolVLAAdapter(VelocityAdapter):
    """PI-RL view of a ``SmolVLAPolicy``."""

    vlm_prefix = VLM
    expert_layers = "model.vlm_with_expert.lm_expert.layers."
    unused_parameter_prefixes = (VLM + "lm_head.",)

    def _vlm_width(self) -> int:
        return int(self.model.vlm_with_expert.config.text_config.hidden_size)

    def _prefix(self, batch: dict[str, Tensor], tokens: Tensor, masks: Tensor) -> VelocityPrefix:
        from lerobot.policies.common.vla_utils import make_att_2d_masks

        images, img_masks = self.policy.prepare_images(batch)
        state = self.policy.prepare_state(batch)
        embs, pad_masks, att_masks = self.model.embed_prefix(images, img_masks, tokens, masks, state=state)
        (prefix_out, _), cache = self.model.vlm_with_expert.forward(
            attention_mask=make_att_2d_masks(pad_masks, att_masks),
            position_ids=torch.cumsum(pad_masks, dim=1) - 1,  # int64, as the policy computes it
            past_key_values=None,
            inputs_embeds=[embs, None],
            use_cache=self.policy.config.use_cache,
        )
        return VelocityPrefix(cache, pad_masks, prefix_out, state=state, policy_state=None)

    def _velocity(self, prefix: VelocityPrefix, x_t: Tensor, t: Tensor) -> Tensor:
        cache = prefix.past_key_values
        try:
            return self.model.denoise_step(prefix.pad_masks, cache, x_t, t)
        finally:
            if cache is not None:
                cache.crop(prefix.pad_masks.shape[1])
