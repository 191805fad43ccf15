"""π0.5 flow adapter (``lerobot.policies.pi05``, LeRobot 0.6.1); the velocity convention is in :mod:`.velocity`.

Same shape as π0 (prefix :652, ``denoise_step`` :671-708), with AdaRMS in the expert and no state input: the state
reaches the model only through the prompt text. Offline (no attention mask in the batch) the adapter appends the
state words to the task tokens as π0.5's processor would (:mod:`pirlctl.policies.language`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pirlctl.policies.language import LANGUAGE_MASK_KEY, state_prompt_tokens
from pirlctl.policies.pi0 import EXPERT, PALIGEMMA, paligemma_prefix
from pirlctl.policies.velocity import VelocityAdapter, VelocityPrefix


class PI05Adapter(VelocityAdapter):
    """PI-RL view of a ``PI05Policy``."""

    vlm_prefix = PALIGEMMA
    expert_layers = EXPERT + "model.layers."
    unused_parameter_prefixes = (PALIGEMMA + "lm_head.", EXPERT + "lm_head.")

    def _vlm_width(self) -> int:
        return int(self.model.paligemma_with_expert.paligemma.config.text_config.hidden_size)

    def language(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        tokens, masks = super().language(batch)
        if LANGUAGE_MASK_KEY in batch:  # a processor wrote the prompt, state included
            return tokens, masks
        vocab = int(self.model.paligemma_with_expert.paligemma.config.text_config.vocab_size)
        words = state_prompt_tokens(self._state(batch), vocab).to(tokens.device)
        return torch.cat([tokens, words], dim=1), torch.cat([masks, torch.ones_like(words, dtype=torch.bool)], dim=1)

    def _state(self, batch: dict[str, Tensor]) -> Tensor:
        from lerobot.policies.common.vla_utils import pad_vector

        return pad_vector(batch["observation.state"], self.state_dim)

    def _prefix(self, batch: dict[str, Tensor], tokens: Tensor, masks: Tensor) -> VelocityPrefix:
        images, img_masks = self.policy._preprocess_images(batch)
        cache, pad_masks, out = paligemma_prefix(self.model, images, img_masks, tokens, masks)
        return VelocityPrefix(cache, pad_masks, out, state=self._state(batch), policy_state=None)

    def _velocity(self, prefix: VelocityPrefix, x_t: Tensor, t: Tensor) -> Tensor:
        return self.model.denoise_step(prefix.pad_masks, prefix.past_key_values, x_t, t)
