"""The velocity convention of π0, π0.5 and SmolVLA, shared by their three adapters.

All three (LeRobot 0.6.1, ``common/flow_matching.py:61-122``) train on x_t = t·ε + (1−t)·a with target velocity
u = ε − a, and sample by Euler from t = 1 (noise) to t = 0 (actions): t_k = 1 + k·dt, dt = −1/K, x ← x + dt·v.
pirlctl's sampler (``pirlctl.algorithms.pi_rl.sampler``) uses the same time axis, so t maps to t unchanged:

  LeRobot                  pirlctl sampler             this module
  t = 1 + k·dt, dt = −1/K  t_k = 1 − k/K, δ = 1/K       t passed through as is
  v = ε − a                x̂₀, x̂₁ (clean, noise)      x̂₀ = x_t − t·v,  x̂₁ = x_t + (1−t)·v
  x ← x + dt·v             ODE μ = x̂₀(1−t+δ) + x̂₁(t−δ)  = x_t − δ·v: the policy's own Euler step

The noise hint of X-VLA (an x̂₀-predicting model) is ignored: a velocity model gives x̂₁ itself, and under Flow-SDE
the injected noise is carried forward by the latent x_t, which the next velocity reads.

An adapter computes the VLM prefix KV cache once per chunk (``encode``) and calls the policy's own
``denoise_step`` per step; it returns a :class:`~pirlctl.policies.base.VelocityOutput`, whose ODE step the sampler
takes as x + dt·v, the policy's own Euler update, so the ODE chain is the policy's ``sample_actions`` for the same
noise (bit for bit), and x̂₀, x̂₁ are computed only at the steps that inject noise. The action-token
hidden states are the input of ``action_out_proj`` (a forward pre-hook), as X-VLA's are its decoder's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from pirlctl.policies.base import DenoiseFn, VelocityOutput, estimates_from_velocity
from pirlctl.policies.language import LANGUAGE_MASK_KEY, LANGUAGE_TOKENS_KEY, attention_mask_from_tokens

__all__ = ["VelocityAdapter", "VelocityPrefix", "estimates_from_velocity"]


@dataclass
class VelocityPrefix:
    """What ``encode`` computes once per chunk."""

    past_key_values: Any  # the VLM prefix KV cache (π0: cloned per step by the policy; SmolVLA: cropped back)
    pad_masks: Tensor  # [B, P] bool, valid prefix tokens
    prefix_out: Tensor  # [B, P, W] VLM output over the prefix (value-head input)
    state: Tensor  # [B, S] padded robot state (max_state_dim)
    policy_state: Tensor | None  # [B, S] the state argument of π0's denoise_step (None for π0.5 and SmolVLA)


class VelocityAdapter:
    """PI-RL view of a LeRobot velocity-predicting flow policy (π0, π0.5, SmolVLA): the shared part.

    Subclasses give the parameter-name prefixes and :meth:`_prefix` / :meth:`_velocity`, the two calls into the
    policy's own model. ``unused_parameter_prefixes`` (the ``lm_head``s: the models never decode text) are frozen
    here, so they are outside every trainable set and every weight push.
    """

    vlm_prefix: str = ""
    expert_layers: str = ""
    unused_parameter_prefixes: tuple[str, ...] = ()

    def __init__(self, policy: Any) -> None:
        self.policy: Any = policy
        self.model: Any = policy.model
        cfg: Any = self.policy.config
        self.chunk_size = int(cfg.chunk_size)
        self.n_action_steps = int(cfg.n_action_steps)
        self.action_dim = int(cfg.max_action_dim)
        self.real_action_dim = int(cfg.output_features["action"].shape[0])
        self.state_dim = int(cfg.max_state_dim)
        self.hidden_size = int(self.model.action_out_proj.in_features)
        self.prefix_feature_dim = self._vlm_width() + self.state_dim
        for name, p in self.policy.named_parameters():
            if name.startswith(self.unused_parameter_prefixes):
                p.requires_grad_(False)
        self._captured: Tensor | None = None
        self.model.action_out_proj.register_forward_pre_hook(self._capture_hidden)

    def _capture_hidden(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        self._captured = args[0]

    # -- policy-specific ---------------------------------------------------------------------------------------
    def _vlm_width(self) -> int:
        raise NotImplementedError

    def _prefix(self, batch: dict[str, Tensor], tokens: Tensor, masks: Tensor) -> VelocityPrefix:
        raise NotImplementedError

    def _velocity(self, prefix: VelocityPrefix, x_t: Tensor, t: Tensor) -> Tensor:
        raise NotImplementedError

    def language(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(tokens [B,L] long, attention mask [B,L] bool); the mask is derived from the pad id when absent."""
        tokens = batch[LANGUAGE_TOKENS_KEY]
        mask = batch.get(LANGUAGE_MASK_KEY)
        return tokens, (attention_mask_from_tokens(tokens) if mask is None else mask.bool())

    # -- the adapter contract ------------------------------------------------------------------------------------
    def encode(self, batch: dict[str, Tensor]) -> VelocityPrefix:
        tokens, masks = self.language(batch)
        return self._prefix(batch, tokens, masks)

    def denoise_fn(self, prefix: VelocityPrefix) -> DenoiseFn:
        def denoise(x_t: Tensor, t: Tensor, _hint: Tensor) -> VelocityOutput:
            v = self._velocity(prefix, x_t, t.to(torch.float32))
            hidden = self._captured
            assert hidden is not None, "action_out_proj hook did not fire"
            self._captured = None
            return VelocityOutput(x_t, v.to(x_t.dtype), t, hidden)  # x̂₀, x̂₁ derived when a step reads them

        return denoise

    def prefix_features(self, prefix: VelocityPrefix) -> Tensor:
        """Mean of the VLM output over the valid prefix tokens, with the padded state: [B, W + S]."""
        m = prefix.pad_masks.to(prefix.prefix_out.dtype)[:, :, None]
        pooled = (prefix.prefix_out * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
        return torch.cat([pooled.float(), prefix.state.float()], dim=-1)

    def postprocess(self, x: Tensor) -> Tensor:
        return x[..., : self.real_action_dim]

    def frozen_parameter_prefixes(self) -> tuple[str, ...]:
        return (self.vlm_prefix,)

    def expert_block_prefixes(self) -> tuple[str, ...]:
        n = len(self._expert_layers())
        return tuple(f"{self.expert_layers}{i}." for i in range(n))

    def _expert_layers(self) -> nn.ModuleList:
        module: Any = self.policy
        for part in self.expert_layers.rstrip(".").split("."):
            module = getattr(module, part)
        return module
