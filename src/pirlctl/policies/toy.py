"""A tiny x̂₀-predicting flow policy on vector observations, for fast tests and the PPO sanity task.

Same contract as X-VLA (x̂₀ prediction, carried noise hint), a few thousand parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pirlctl.policies.base import DenoiseFn, DenoiseOutput

STATE_KEY = "observation.state"


class ToyFlowPolicy(nn.Module):
    """x̂₀ = f(x_t row, t, obs, row index), per chunk row; obs_dim may be 0."""

    name = "toy_flow"

    def __init__(self, obs_dim: int = 0, chunk_size: int = 1, action_dim: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.obs_dim, self.chunk_size, self.action_dim, self.hidden = obs_dim, chunk_size, action_dim, hidden
        self.encoder = nn.Sequential(nn.Linear(max(obs_dim, 1), hidden), nn.SiLU())
        self.inp = nn.Linear(action_dim + 8 + chunk_size, hidden)
        self.body = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.out = nn.Linear(hidden, action_dim)

    @staticmethod
    def time_embedding(t: Tensor) -> Tensor:
        freqs = torch.exp(torch.arange(4, dtype=t.dtype, device=t.device) * -math.log(100.0) / 4)
        ang = t[:, None] * freqs[None] * 10.0
        return torch.cat([ang.sin(), ang.cos()], dim=-1)

    def prefix(self, obs: Tensor) -> Tensor:
        return self.encoder(obs if self.obs_dim > 0 else torch.zeros(obs.shape[0], 1, device=obs.device))

    def step(self, prefix: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        B, T, _ = x_t.shape
        rows = torch.eye(T, device=x_t.device).expand(B, T, T)
        temb = self.time_embedding(t)[:, None, :].expand(B, T, 8)
        h = self.body(self.inp(torch.cat([x_t, temb, rows], dim=-1)) + prefix[:, None, :])
        return self.out(h), h


@dataclass
class ToyPrefix:
    features: Tensor  # [B, H]


class ToyAdapter:
    """PI-RL view of :class:`ToyFlowPolicy`."""

    def __init__(self, policy: ToyFlowPolicy) -> None:
        self.policy = policy
        self.chunk_size = policy.chunk_size
        self.n_action_steps = policy.chunk_size
        self.action_dim = policy.action_dim
        self.real_action_dim = policy.action_dim
        self.hidden_size = policy.hidden
        self.prefix_feature_dim = policy.hidden

    def encode(self, batch: dict[str, Tensor]) -> ToyPrefix:
        obs = batch[STATE_KEY]
        return ToyPrefix(self.policy.prefix(obs))

    def denoise_fn(self, prefix: ToyPrefix) -> DenoiseFn:
        def denoise(x_t: Tensor, t: Tensor, hint: Tensor) -> DenoiseOutput:
            x0, h = self.policy.step(prefix.features, x_t, t)
            return DenoiseOutput(x0_hat=x0, x1_hat=hint, hidden=h)

        return denoise

    def prefix_features(self, prefix: ToyPrefix) -> Tensor:
        return prefix.features

    def postprocess(self, x: Tensor) -> Tensor:
        return x

    def frozen_parameter_prefixes(self) -> tuple[str, ...]:
        return ("encoder.",)

    def expert_block_prefixes(self) -> tuple[str, ...]:
        return ()
