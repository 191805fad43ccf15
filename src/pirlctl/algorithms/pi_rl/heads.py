"""Algorithm-owned heads: the critic and the Flow-Noise σ net."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ValueHead(nn.Module):
    """V(s): a two-layer MLP on detached features [B, F] -> [B]."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 1),
        )
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, features: Tensor) -> Tensor:
        if torch.is_grad_enabled():  # the critic never trains the features (a sampling pass has no graph to cut)
            features = features.detach()
        return self.net(features.float()).squeeze(-1)


class NoiseHead(nn.Module):
    """Flow-Noise σ_θ'(h): per (row, dim) std from action-token hidden states h [B,T,H] -> [B,T,D].

    σ = exp(log σ_min + (log σ_max − log σ_min)·(tanh(u) + 1)/2): a tanh-squashed log-std, so σ ∈ [σ_min, σ_max]
    (RLinf bounds it to [0.08, 0.16]). Initialised at the middle of the range. The hidden states are detached:
    the σ net learns from the PPO loss through σ only, it does not reshape the action expert.
    """

    def __init__(self, hidden_size: int, action_dim: int, hidden: int, sigma_min: float, sigma_max: float) -> None:
        super().__init__()
        self.log_min, self.log_max = math.log(sigma_min), math.log(sigma_max)
        self.net = nn.Sequential(nn.Linear(hidden_size, hidden), nn.SiLU(), nn.Linear(hidden, action_dim))
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        # log σ_min + (log σ_max − log σ_min)·(tanh(u) + 1)/2, as one multiply-add around the middle of the range
        half_range, middle = (self.log_max - self.log_min) / 2.0, (self.log_max + self.log_min) / 2.0
        if torch.is_grad_enabled():  # σ learns through σ only (a sampling pass has no graph to cut)
            hidden = hidden.detach()
        u = self.net(hidden.float().reshape(-1, hidden.shape[-1]))  # 2-D: each Linear is one matmul, no reshapes
        return torch.exp(torch.tanh(u.view(*hidden.shape[:-1], -1)) * half_range + middle)
