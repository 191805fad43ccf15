"""The stochastic denoising chain of PI-RL as plain functions.

Notation (shared/reference/pirl-method.md): x_t = t·ε + (1−t)·a, t=1 is noise, t=0 the action chunk.
K steps, t_k = 1 − k/K for k = 0..K, step width δ = 1/K. Step k maps the latent x_k (at t_k) to x_{k+1}
(at t_k − δ) by x_{k+1} = μ_k + σ_k·z, z ~ N(0, I). The network gives the clean estimate x̂₀ and the noise
estimate x̂₁ at each step; methods differ only in μ and σ:

  flow_ode   μ = x̂₀(1−t+δ) + x̂₁(t−δ)                          σ = 0
  flow_sde   μ = x̂₀(1−t+δ) + x̂₁(t−δ − s_t²δ/(2t))             σ = s_t·√δ,  s_t = a·√(t/(1−t))
  flow_noise μ = the flow_ode mean                              σ = σ_θ'(h) ∈ [σ_min, σ_max]

Only sampled steps use the method's row; a deterministic step (flow_ode, and every step but k* of the hybrid
sampler) is always the ODE step x_{k+1} = x̂₀(1−t+δ) + x̂₁(t−δ), whatever the method (pirl-method.md, "two-layer
MDP": the other steps are deterministic ODE steps). flow_sde's drift correction −s_t²δ/(2t) belongs to its SDE
and is applied only where noise is injected.

Shapes: B batch, K steps, T chunk rows, D model-facing action dims (padding included), H hidden width.

The noise hint. An x̂₀-predicting model (X-VLA) has no velocity output; its own sampler re-noises every step with
the *initial* noise (x_t = x1·t + â·(1−t)). We carry that estimate as the "noise hint" n_k: n_0 = x_0, an ODE
step keeps it (the identity (x_{k+1} − (1−t_{k+1})x̂₀)/t_{k+1} = n_k holds exactly there), and a stochastic step
re-derives it from the new latent, n_{k+1} = (x_{k+1} − (1−t_{k+1})·x̂₀_k)/t_{k+1}, so injected noise is carried
forward. With σ = 0 this reproduces X-VLA's sampler exactly; velocity models (π0) ignore the hint.
In the hybrid sampler every step before k* is an ODE step, so n_{k*} = x_0 = chain[:, 0] and re-scoring needs
only the stored chain and k*.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from pirlctl.policies.base import DenoiseFn, DenoiseOutput  # noqa: F401 - the adapter contract, re-exported

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# hidden [B,T,H] -> σ [B,T,D]
SigmaFn = Callable[[Tensor], Tensor]


def denoise_timesteps(num_steps: int, *, device: torch.device | str | None = None) -> Tensor:
    """t_k = 1 − k/K for k = 0..K. Returns [K+1] float32."""
    k = torch.arange(num_steps + 1, device=device, dtype=torch.float32)
    return 1.0 - k / num_steps


def noise_estimate_from_latent(x_t: Tensor, x0_hat: Tensor, t: Tensor) -> Tensor:
    """x̂₁ = (x_t − (1−t)·x̂₀)/t for an x̂₀-predicting model. x_t, x0_hat [B,T,D]; t [B] with t > 0."""
    tb = t.view(-1, 1, 1)
    return (x_t - (1.0 - tb) * x0_hat) / tb


def sde_std_scale(t: Tensor, delta: float, noise_level: float) -> Tensor:
    """Flow-SDE diffusion scale s_t = a·√(t/(1−t)); at t=1 the denominator uses t₁ = 1−δ (so 1−t₁ = δ).

    t: [B] (or any shape) in (0, 1]. Returns s_t with t's shape.
    """
    denom = torch.where(t >= 1.0, torch.full_like(t, delta), 1.0 - t)
    return noise_level * torch.sqrt(t / denom)


def ode_step_mean(x0_hat: Tensor, x1_hat: Tensor, t: Tensor, delta: float) -> Tensor:
    """The deterministic (flow_ode) step x_{t−δ} = x̂₀(1−t+δ) + x̂₁(t−δ). x0_hat, x1_hat [B,T,D]; t [B]."""
    tb = t.view(-1, 1, 1).to(x0_hat.dtype)
    return x0_hat * (1.0 - tb + delta) + x1_hat * (tb - delta)


def step_moments(
    x0_hat: Tensor,
    x1_hat: Tensor,
    t: Tensor,
    delta: float,
    method: str,
    *,
    noise_level: float = 0.0,
    sigma: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean μ and std σ of x_{t−δ} given the step's estimates (table in the module docstring).

    x0_hat, x1_hat: [B,T,D]; t: [B]; sigma (flow_noise only): [B,T,D]. Returns (μ [B,T,D], σ [B,T,D]).
    """
    tb = t.view(-1, 1, 1).to(x0_hat.dtype)
    if method == "flow_ode":
        mean = ode_step_mean(x0_hat, x1_hat, t, delta)
        return mean, torch.zeros_like(mean)
    if method == "flow_sde":
        s = sde_std_scale(tb, delta, noise_level)
        mean = x0_hat * (1.0 - tb + delta) + x1_hat * (tb - delta - s.pow(2) * delta / (2.0 * tb))
        return mean, (s * math.sqrt(delta)).expand_as(mean)
    if method == "flow_noise":
        if sigma is None:
            raise ValueError("flow_noise needs the learned sigma")
        mean = ode_step_mean(x0_hat, x1_hat, t, delta)
        return mean, sigma.expand_as(mean)
    raise ValueError(f"unknown noise method {method!r}; use flow_ode, flow_sde or flow_noise")


def gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Elementwise log N(x; mean, std²). All [B,T,D]; std > 0. Returns [B,T,D]."""
    return -((x - mean) ** 2) / (2.0 * std**2) - torch.log(std) - LOG_SQRT_2PI


def gaussian_entropy(std: Tensor) -> Tensor:
    """Elementwise entropy of N(·, std²): ½ + ½·log(2π) + log std."""
    return 0.5 + LOG_SQRT_2PI + torch.log(std)


def action_mask(chunk_size: int, action_dim: int, n_exec: int, real_dim: int, *, device=None) -> Tensor:
    """[T, D] float mask of the entries PI-RL scores: the executed rows (< n_exec) and the real dims (< real_dim)."""
    mask = torch.zeros(chunk_size, action_dim, device=device)
    mask[:n_exec, :real_dim] = 1.0
    return mask


def reduce_chain_log_prob(
    step_log_prob: Tensor,
    stochastic: Tensor,
    mask: Tensor,
    *,
    reduction: str = "chunk_level",
    aggregation: str = "sum",
) -> Tensor:
    """Log-probability of a chunk from its per-step elementwise terms.

    step_log_prob: [B,K,T,D] elementwise log N terms (any value at deterministic steps: they are masked out);
    stochastic: [B,K] bool, which steps were sampled; mask: [T,D] executed rows × real dims.
    The chain terms are summed over the stochastic steps ("sum", the joint density of the chain) or averaged
    ("mean", RLinf's choice). The θ-independent term log N(x_0; 0, I) is omitted: it cancels in the ratio.
    Returns [B] for chunk_level (also summed over the masked rows and dims) or [B,T,D] for token_level
    (zero outside the mask).
    """
    weights = stochastic.to(step_log_prob.dtype)  # [B,K]
    if aggregation == "mean":
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1.0)
    elif aggregation != "sum":
        raise ValueError(f"unknown chain aggregation {aggregation!r}; use sum or mean")
    per_elem = torch.where(weights.bool()[:, :, None, None], step_log_prob, torch.zeros_like(step_log_prob))
    per_elem = (per_elem * weights[:, :, None, None]).sum(dim=1) * mask  # [B,T,D]
    if reduction == "token_level":
        return per_elem
    if reduction == "chunk_level":
        return per_elem.sum(dim=(1, 2))
    raise ValueError(f"unknown log-prob reduction {reduction!r}; use chunk_level or token_level")


@dataclass
class ChainSample:
    """One rollout call's chain: everything the learner needs to re-score it."""

    actions: Tensor  # [B,T,D] final latent x_K (model space, padding included)
    chain: Tensor  # [B,K+1,T,D] latents x_0..x_K
    stochastic: Tensor  # [B,K] bool, which steps were sampled
    kstar: Tensor  # [B] long, the stochastic step of the hybrid sampler (-1 for full_chain)
    step_log_prob: Tensor  # [B,K,T,D] elementwise log-prob terms (0 at deterministic steps)
    step_std: Tensor  # [B,K,T,D] σ of each step (0 at deterministic steps)
    first_hidden: Tensor  # [B,T,H] hidden states of step 0 (action_expert value head)


def draw_kstar(batch_size: int, num_steps: int, *, generator: torch.Generator | None = None, device=None) -> Tensor:
    """k* ~ U{0..K−1} per sample (RLinf draws one per batch; per-sample is also valid). Returns [B] long."""
    return torch.randint(0, num_steps, (batch_size,), generator=generator, device=device)


def sample_chain(
    denoise: DenoiseFn,
    x_init: Tensor,
    num_steps: int,
    method: str,
    *,
    sampling: str = "hybrid",
    noise_level: float = 0.0,
    sigma_fn: SigmaFn | None = None,
    kstar: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> ChainSample:
    """Run the K-step chain from x_init = x_0 ~ N(0, I) [B,T,D].

    flow_ode: every step deterministic. hybrid: only step k* (given, or drawn per sample) is stochastic, every
    other step is the ODE step (:func:`ode_step_mean`). full_chain: every step stochastic.
    """
    B = x_init.shape[0]
    device = x_init.device
    delta = 1.0 / num_steps
    ts = denoise_timesteps(num_steps, device=device).to(x_init.dtype)
    if method == "flow_ode":
        stochastic = torch.zeros(B, num_steps, dtype=torch.bool, device=device)
        kstar = torch.full((B,), -1, dtype=torch.long, device=device)
    elif sampling == "hybrid":
        if kstar is None:
            kstar = draw_kstar(B, num_steps, generator=generator, device=device)
        stochastic = torch.nn.functional.one_hot(kstar, num_steps).bool()
    elif sampling == "full_chain":
        stochastic = torch.ones(B, num_steps, dtype=torch.bool, device=device)
        kstar = torch.full((B,), -1, dtype=torch.long, device=device)
    else:
        raise ValueError(f"unknown sampling {sampling!r}; use hybrid or full_chain")

    x = x_init
    hint = x_init
    latents = [x_init]
    step_lp, step_std = [], []
    first_hidden: Tensor | None = None
    for k in range(num_steps):
        t = ts[k].expand(B)
        out = denoise(x, t, hint)
        if first_hidden is None:
            first_hidden = out.hidden
        sto = stochastic[:, k].view(-1, 1, 1)
        if not bool(sto.any()):
            # no sample is stochastic here: the ODE step for all (the method's σ and drift are not needed)
            x_next = ode_step_mean(out.x0_hat, out.x1_hat, t, delta)
            latents.append(x_next)
            step_lp.append(torch.zeros_like(x_next))
            step_std.append(torch.zeros_like(x_next))
            x = x_next
            continue
        sigma = sigma_fn(out.hidden) if (method == "flow_noise" and sigma_fn is not None) else None
        mean, std = step_moments(out.x0_hat, out.x1_hat, t, delta, method, noise_level=noise_level, sigma=sigma)
        if sampling == "full_chain":
            # every sample stochastic at every step: the same maths as below without the per-sample selects
            # (B1: they are a visible share of a small model's step on CPU)
            x_next = mean + std * torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
            lp = gaussian_log_prob(x_next, mean, std.clamp_min(1e-12))
            std_k = std
            if k + 1 < num_steps:
                hint = noise_estimate_from_latent(x_next, out.x0_hat, ts[k + 1].expand(B))
        else:
            # hybrid: the samples whose k* this is take the method's step, the others the ODE step
            z = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
            ode = mean if method == "flow_noise" else ode_step_mean(out.x0_hat, out.x1_hat, t, delta)
            x_next = torch.where(sto, mean + std * z, ode)
            lp = torch.where(sto, gaussian_log_prob(x_next, mean, std.clamp_min(1e-12)), torch.zeros_like(mean))
            std_k = torch.where(sto, std, torch.zeros_like(std))
            t_next = ts[k + 1].expand(B)
            if k + 1 < num_steps:
                new_hint = noise_estimate_from_latent(x_next, out.x0_hat, t_next)
                hint = torch.where(sto, new_hint, hint)
        latents.append(x_next)
        step_lp.append(lp)
        step_std.append(std_k)
        x = x_next
    assert first_hidden is not None
    return ChainSample(
        actions=x,
        chain=torch.stack(latents, dim=1),
        stochastic=stochastic,
        kstar=kstar,
        step_log_prob=torch.stack(step_lp, dim=1),
        step_std=torch.stack(step_std, dim=1),
        first_hidden=first_hidden,
    )


@dataclass
class Rescore:
    """The learner's re-scoring of stored chains under the current parameters."""

    step_log_prob: Tensor  # [B,K,T,D] (0 at deterministic steps)
    step_std: Tensor  # [B,K,T,D]
    first_hidden: Tensor | None  # [B,T,H] when computed (full chain, or k* = 0, or asked for)


def rescore_chain(
    denoise: DenoiseFn,
    chain: Tensor,
    stochastic: Tensor,
    method: str,
    *,
    noise_level: float = 0.0,
    sigma_fn: SigmaFn | None = None,
    hybrid: bool = True,
) -> Rescore:
    """Recompute the per-step log-prob terms of stored chains [B,K+1,T,D].

    hybrid: one forward pass at each sample's own k* (t = t_{k*}, noise hint x_0, see module docstring);
    cost ≈ 1/K of the chain. Otherwise a sequential pass over all K steps that re-derives the noise hint from
    the stored latents exactly as :func:`sample_chain` did. Deterministic steps need no mean here (their latents
    are stored); only the stochastic steps are scored, with the method's moments.
    """
    B, K1 = chain.shape[:2]
    K = K1 - 1
    delta = 1.0 / K
    ts = denoise_timesteps(K, device=chain.device).to(chain.dtype)
    zeros = torch.zeros(B, K, *chain.shape[2:], dtype=chain.dtype, device=chain.device)
    if hybrid:
        kstar = stochastic.float().argmax(dim=1)  # [B]
        idx = torch.arange(B, device=chain.device)
        x_k, x_next, t = chain[idx, kstar], chain[idx, kstar + 1], ts[kstar]
        out = denoise(x_k, t, chain[:, 0])
        sigma = sigma_fn(out.hidden) if (method == "flow_noise" and sigma_fn is not None) else None
        mean, std = step_moments(out.x0_hat, out.x1_hat, t, delta, method, noise_level=noise_level, sigma=sigma)
        lp = gaussian_log_prob(x_next, mean, std.clamp_min(1e-12))
        step_lp, step_std = zeros.clone(), zeros.clone()
        step_lp[idx, kstar] = lp
        step_std[idx, kstar] = std
        first = out.hidden if bool((kstar == 0).all()) else None
        return Rescore(step_lp, step_std, first)

    hint = chain[:, 0]
    lps, stds = [], []
    first_hidden = None
    for k in range(K):
        t = ts[k].expand(B)
        out = denoise(chain[:, k], t, hint)
        if first_hidden is None:
            first_hidden = out.hidden
        sigma = sigma_fn(out.hidden) if (method == "flow_noise" and sigma_fn is not None) else None
        mean, std = step_moments(out.x0_hat, out.x1_hat, t, delta, method, noise_level=noise_level, sigma=sigma)
        sto = stochastic[:, k].view(-1, 1, 1)
        lps.append(torch.where(sto, gaussian_log_prob(chain[:, k + 1], mean, std.clamp_min(1e-12)), 0.0))
        stds.append(torch.where(sto, std, 0.0))
        if k + 1 < K:
            new_hint = noise_estimate_from_latent(chain[:, k + 1], out.x0_hat, ts[k + 1].expand(B))
            hint = torch.where(sto, new_hint, hint)
    return Rescore(torch.stack(lps, dim=1), torch.stack(stds, dim=1), first_hidden)
