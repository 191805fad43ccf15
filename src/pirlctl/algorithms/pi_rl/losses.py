"""PPO losses for PI-RL (pirl-method.md, "PPO, chunk level")."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class SurrogateStats:
    """Diagnostics of one clipped-surrogate evaluation (all detached floats)."""

    approx_kl: float  # mean((ρ − 1) − log ρ), the low-variance KL estimator (Schulman)
    clipfrac: float  # fraction of ratios outside [1 − ε, 1 + ε]
    ratio_min: float
    ratio_max: float
    max_abs_log_ratio: float


def clipped_surrogate(
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    clip_ratio: float,
    mask: Tensor | None = None,
) -> tuple[Tensor, SurrogateStats]:
    """PPO actor loss −E[min(ρÂ, clip(ρ, 1−ε, 1+ε)Â)], ρ = exp(log π_θ − log π_old).

    chunk_level: log_prob, old_log_prob, advantages all [B].
    token_level: log_prob, old_log_prob [B,T,D]; advantages [B] (broadcast); mask [T,D] selects the scored
    entries and the mean runs over them only.
    """
    log_ratio = log_prob - old_log_prob
    adv = advantages
    while adv.dim() < log_ratio.dim():
        adv = adv.unsqueeze(-1)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio) * adv
    per = -torch.min(unclipped, clipped)
    with torch.no_grad():
        w = mask.expand_as(log_ratio) if mask is not None and log_ratio.dim() > 1 else torch.ones_like(log_ratio)
        n = w.sum().clamp_min(1.0)
        lr = log_ratio.detach()
        approx_kl = float((((ratio.detach() - 1.0) - lr) * w).sum() / n)
        clipfrac = float((((ratio.detach() - 1.0).abs() > clip_ratio).float() * w).sum() / n)
        sel = lr[w.bool()]
        r = torch.exp(sel) if sel.numel() else torch.ones(1)
        stats = SurrogateStats(
            approx_kl=approx_kl,
            clipfrac=clipfrac,
            ratio_min=float(r.min()),
            ratio_max=float(r.max()),
            max_abs_log_ratio=float(sel.abs().max()) if sel.numel() else 0.0,
        )
    if mask is not None and log_ratio.dim() > 1:
        m = mask.expand_as(per)
        loss = (per * m).sum() / m.sum().clamp_min(1.0)
    else:
        loss = per.mean()
    return loss, stats


def clipped_value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    *,
    huber_delta: float,
    value_clip: float | None,
) -> Tensor:
    """Critic loss max(Huber(R − V), Huber(R − V_clipped)), V_clipped = V_old + clip(V − V_old, ±c). All [B]."""
    loss = F.huber_loss(values, returns, delta=huber_delta, reduction="none")
    if value_clip is not None:
        v_clipped = old_values + torch.clamp(values - old_values, -value_clip, value_clip)
        loss = torch.max(loss, F.huber_loss(v_clipped, returns, delta=huber_delta, reduction="none"))
    return loss.mean()
