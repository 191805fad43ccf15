"""The small interface a flow-matching policy offers PI-RL.

An adapter wraps a LeRobot policy. It splits a rollout call into the part computed once per observation (the
VLM prefix) and one denoising step, which returns x̂₀, x̂₁ and the action-token hidden states. Everything else
(the chain, log-probs, the heads) lives in ``pirlctl.algorithms.pi_rl``. A π0 adapter implements the same five
members: its ``denoise`` returns x̂₀ = x_t − t·v and x̂₁ = x_t + (1−t)·v from the velocity v, ignoring the hint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@dataclass
class DenoiseOutput:
    """What one denoising step of a flow policy returns."""

    x0_hat: Tensor  # [B, T, D] clean-action estimate
    x1_hat: Tensor  # [B, T, D] noise estimate
    hidden: Tensor  # [B, T, H] action-token hidden states (noise head / action-expert value head read these)


def estimates_from_velocity(x_t: Tensor, v: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """(x̂₀, x̂₁) = (x_t − t·v, x_t + (1−t)·v) for a velocity v = ε − a. x_t, v [B,T,D]; t [B]."""
    tb = t.view(-1, 1, 1).to(x_t.dtype)
    return x_t - tb * v, x_t + (1.0 - tb) * v


class VelocityOutput:
    """One denoising step of a velocity model (π0, π0.5, SmolVLA: v = ε − a), read like a :class:`DenoiseOutput`.

    x̂₀ and x̂₁ are derived from v on first read: a deterministic step needs only the policy's own Euler update
    x_t − δ·v (B1: on a small model every extra op of a step counts). Such a model reads no noise hint.
    """

    def __init__(self, x_t: Tensor, velocity: Tensor, t: Tensor, hidden: Tensor) -> None:
        self.x_t = x_t  # [B, T, D] the step's input latent
        self.velocity = velocity  # [B, T, D]
        self.t = t  # [B]
        self.hidden = hidden  # [B, T, H]
        self._estimates: tuple[Tensor, Tensor] | None = None

    def _both(self) -> tuple[Tensor, Tensor]:
        if self._estimates is None:
            self._estimates = estimates_from_velocity(self.x_t, self.velocity, self.t)
        return self._estimates

    @property
    def x0_hat(self) -> Tensor:
        return self._both()[0]

    @property
    def x1_hat(self) -> Tensor:
        return self._both()[1]


# (x_t [B,T,D], t [B], noise_hint [B,T,D]) -> DenoiseOutput (or VelocityOutput: the same three members)
DenoiseFn = Callable[[Tensor, Tensor, Tensor], DenoiseOutput | VelocityOutput]


@runtime_checkable
class FlowPolicyAdapter(Protocol):
    """What PI-RL needs from a flow-matching policy.

    Attributes: ``policy`` (the wrapped module), ``chunk_size`` T, ``action_dim`` D (model-facing, padding
    included), ``real_action_dim`` (dims the env receives; only these are scored), ``hidden_size`` H of the
    action-token hidden states, ``prefix_feature_dim`` F of :meth:`prefix_features`, ``n_action_steps``.
    """

    policy: nn.Module
    chunk_size: int
    action_dim: int
    real_action_dim: int
    hidden_size: int
    prefix_feature_dim: int
    n_action_steps: int

    def encode(self, batch: dict[str, Tensor]) -> Any:
        """The observation prefix (VLM features, proprio, ...) for a batch, computed once per observation."""
        ...

    def denoise_fn(self, prefix: Any) -> DenoiseFn:
        """A denoising step bound to ``prefix``: (x_t [B,T,D], t [B], hint [B,T,D]) -> DenoiseOutput."""
        ...

    def prefix_features(self, prefix: Any) -> Tensor:
        """Pooled prefix features [B, F] for the value head (placement ``vlm_prefix``)."""
        ...

    def postprocess(self, x: Tensor) -> Tensor:
        """Model-space chunk [B,T,D] -> env actions [B,T,real_action_dim]."""
        ...

    def frozen_parameter_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes that stay frozen under ``trainable = "action_expert"`` (the VLM)."""
        ...

    def expert_block_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes of the action expert's transformer blocks, input to output
        (``trainable_blocks`` freezes all but the last N)."""
        ...


def initial_noise(
    adapter: FlowPolicyAdapter,
    batch_size: int,
    *,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> Tensor:
    """x_0 ~ N(0, I) of shape [B, T, D], drawn exactly as the policy's own sampler draws it."""
    return torch.randn(
        batch_size, adapter.chunk_size, adapter.action_dim, device=device, dtype=dtype, generator=generator
    )
