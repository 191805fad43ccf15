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

Cost (bench B1: on a small model every extra tensor op of a step counts). Every sample of a chain shares t_k, so
the coefficients of step k (1−t+δ, t−δ, the Flow-SDE drift and σ, and σ's log-density constants) are computed once
per (K, a, dtype, device) by the same tensor expressions as :func:`step_moments` (:func:`chain_schedule`) and read
as Python floats: a deterministic step is two or three ops, and a velocity model's ODE step is its own Euler update
x_t − δ·v (:class:`~pirlctl.policies.base.VelocityOutput`). Which steps are stochastic is decided once per chain,
not per step (no device sync inside the loop). Full-chain log-probs are one expression over the stacked chain.
The re-score reads the same table, per sample, so the learner's log-prob equals the actor's bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from pirlctl.policies.base import (  # noqa: F401 - DenoiseOutput: the adapter contract, re-exported
    DenoiseFn,
    DenoiseOutput,
    VelocityOutput,
)

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
NOISE_METHODS = ("flow_ode", "flow_sde", "flow_noise")
MIN_STD = 1e-12  # σ floor of every log-density (σ = 0 only at a = 0, where a step's log-prob is never used)


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


def ode_coefficients(t: Tensor, delta: float) -> tuple[Tensor, Tensor]:
    """(1−t+δ, t−δ): the ODE mean is x̂₀·(1−t+δ) + x̂₁·(t−δ). t: any shape; returns t's shape."""
    return 1.0 - t + delta, t - delta


def sde_coefficients(t: Tensor, delta: float, noise_level: float) -> tuple[Tensor, Tensor]:
    """(t−δ − s_t²δ/(2t), s_t·√δ): Flow-SDE's x̂₁ coefficient (x̂₀'s is the ODE one) and σ. t: any shape."""
    s = sde_std_scale(t, delta, noise_level)
    return t - delta - s.pow(2) * delta / (2.0 * t), s * math.sqrt(delta)


def ode_step_mean(x0_hat: Tensor, x1_hat: Tensor, t: Tensor, delta: float) -> Tensor:
    """The deterministic (flow_ode) step x_{t−δ} = x̂₀(1−t+δ) + x̂₁(t−δ). x0_hat, x1_hat [B,T,D]; t [B]."""
    c0, c1 = ode_coefficients(t.view(-1, 1, 1).to(x0_hat.dtype), delta)
    return x0_hat * c0 + x1_hat * c1


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
    c0, c1 = ode_coefficients(tb, delta)
    if method == "flow_ode":
        mean = x0_hat * c0 + x1_hat * c1
        return mean, torch.zeros_like(mean)
    if method == "flow_sde":
        c1_sde, std = sde_coefficients(tb, delta, noise_level)
        mean = x0_hat * c0 + x1_hat * c1_sde
        return mean, std.expand_as(mean)
    if method == "flow_noise":
        if sigma is None:
            raise ValueError("flow_noise needs the learned sigma")
        mean = x0_hat * c0 + x1_hat * c1
        return mean, sigma.expand_as(mean)
    raise ValueError(f"unknown noise method {method!r}; use flow_ode, flow_sde or flow_noise")


def gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Elementwise log N(x; mean, std²). All [B,T,D]; std > 0. Returns [B,T,D]."""
    return ((x - mean) / std).square() * -0.5 - torch.log(std) - LOG_SQRT_2PI


def scheduled_log_prob(x: Tensor, mean: Tensor, neg_inv_two_var: float | Tensor, log_norm: float | Tensor) -> Tensor:
    """:func:`gaussian_log_prob` with −1/(2σ²) and log σ + ½·log(2π) given (floats, or tensors broadcasting to
    x [B,T,D] / [B,K,T,D]): three ops where σ is known ahead, as it is for Flow-SDE."""
    return (x - mean).square() * neg_inv_two_var - log_norm


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

    step_log_prob: [B,K,T,D] elementwise log N terms, 0 at deterministic steps (as :func:`sample_chain` and
    :func:`rescore_chain` give them); stochastic: [B,K] bool, which steps were sampled (the "mean" weights);
    mask: [T,D] executed rows × real dims.
    The chain terms are summed over the stochastic steps ("sum", the joint density of the chain) or averaged
    ("mean", RLinf's choice). The θ-independent term log N(x_0; 0, I) is omitted: it cancels in the ratio.
    Returns [B] for chunk_level (also summed over the masked rows and dims) or [B,T,D] for token_level
    (zero outside the mask).
    """
    per_elem = step_log_prob  # [B,K,T,D], 0 at deterministic steps
    if aggregation == "mean":
        weights = stochastic.to(step_log_prob.dtype)  # [B,K]
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1.0)
        per_elem = per_elem * weights[:, :, None, None]
    elif aggregation != "sum":  # "sum": every weight is 1
        raise ValueError(f"unknown chain aggregation {aggregation!r}; use sum or mean")
    if reduction == "token_level":
        return per_elem.sum(dim=1) * mask  # [B,T,D]
    if reduction == "chunk_level":
        return (per_elem * mask).sum(dim=(1, 2, 3))
    raise ValueError(f"unknown log-prob reduction {reduction!r}; use chunk_level or token_level")


class StepFloats(NamedTuple):
    """Step k's coefficients as Python floats (exact values of the chain's dtype): see :class:`ChainSchedule`."""

    t: float
    t_next: float
    one_minus_t_next: float
    c0: float
    c1_ode: float
    c1_sde: float
    sde_vx: float
    sde_vv: float
    sde_std: float
    sde_neg_inv_two_var: float
    sde_log_norm: float


@dataclass(frozen=True)
class ChainSchedule:
    """The per-step coefficients of a K-step chain, shared by every sample (t_k does not depend on the sample).

    Computed once per (K, a, dtype, device) by the expressions of :func:`ode_coefficients` and
    :func:`sde_coefficients` on the [K] time grid, so each value is bit for bit the one those functions give
    for a single step. The sampler reads ``steps[k]`` (floats: no tensor op per coefficient); the re-score gathers
    the tensors at each sample's k*. Cached and shared: never modify the tensors.
    """

    dt: float  # −δ = −1/K, the Euler step of a velocity model
    t: Tensor  # [K+1] t_k
    c0: Tensor  # [K] 1 − t_k + δ, x̂₀'s coefficient in every mean
    c1_ode: Tensor  # [K] t_k − δ, x̂₁'s in the ODE mean (flow_ode, flow_noise, deterministic steps)
    c1_sde: Tensor  # [K] t_k − δ − s_k²δ/(2t_k), x̂₁'s in the Flow-SDE mean
    sde_vx: Tensor  # [K] c0 + c1_sde: the Flow-SDE mean of a velocity model is x_t·sde_vx + v·sde_vv
    sde_vv: Tensor  # [K] (1 − t_k)·c1_sde − t_k·c0 (x̂₀ = x_t − t·v, x̂₁ = x_t + (1−t)·v substituted)
    sde_std: Tensor  # [K] σ_k = s_k·√δ
    sde_neg_inv_two_var: Tensor  # [K] −1/(2σ_k²) (σ floored at MIN_STD)
    sde_log_norm: Tensor  # [K] log σ_k + ½·log(2π) (floored)
    steps: tuple[StepFloats, ...]  # the same, per step, as Python floats


@functools.lru_cache(maxsize=64)
def chain_schedule(num_steps: int, noise_level: float, dtype: torch.dtype, device: torch.device) -> ChainSchedule:
    """The :class:`ChainSchedule` of K = ``num_steps`` at Flow-SDE noise level a (0 for the other methods)."""
    delta = 1.0 / num_steps
    ts = denoise_timesteps(num_steps, device=device).to(dtype)
    tk = ts[:-1]
    c0, c1_ode = ode_coefficients(tk, delta)
    c1_sde, std = sde_coefficients(tk, delta, noise_level)
    vx, vv = c0 + c1_sde, (1.0 - tk) * c1_sde - tk * c0
    floor = std.clamp_min(MIN_STD)
    neg_inv_two_var, log_norm = -0.5 / floor**2, torch.log(floor) + LOG_SQRT_2PI
    lists = [v.tolist() for v in (tk, ts[1:], 1.0 - ts[1:], c0, c1_ode, c1_sde, vx, vv, std, neg_inv_two_var, log_norm)]
    return ChainSchedule(
        dt=-delta,
        t=ts,
        c0=c0,
        c1_ode=c1_ode,
        c1_sde=c1_sde,
        sde_vx=vx,
        sde_vv=vv,
        sde_std=std,
        sde_neg_inv_two_var=neg_inv_two_var,
        sde_log_norm=log_norm,
        steps=tuple(StepFloats(*row) for row in zip(*lists, strict=True)),
    )


def _ode_mean(out: DenoiseOutput | VelocityOutput, x_t: Tensor, dt: float, c0, c1) -> Tensor:
    """The ODE mean x̂₀·c0 + x̂₁·c1 (c: floats, or [B,1,1] per sample). A velocity model's is its own Euler update
    x_t + dt·v instead: the same mean in exact arithmetic, the policy's own step bit for bit, and no x̂₀, x̂₁."""
    if isinstance(out, VelocityOutput):
        return x_t + dt * out.velocity
    return out.x0_hat * c0 + out.x1_hat * c1


def _sde_mean(out: DenoiseOutput | VelocityOutput, x_t: Tensor, c0, c1, vx, vv) -> Tensor:
    """The Flow-SDE mean x̂₀·c0 + x̂₁·c1 (c0, c1 = the schedule's c0, c1_sde; floats or [B,1,1]). A velocity model's
    is x_t·vx + v·vv with the schedule's sde_vx, sde_vv: the same mean in exact arithmetic, in three ops."""
    if isinstance(out, VelocityOutput):
        return x_t * vx + out.velocity * vv
    return out.x0_hat * c0 + out.x1_hat * c1


def _learned_sigma(sigma_fn: SigmaFn | None, hidden: Tensor) -> Tensor:
    if sigma_fn is None:
        raise ValueError("flow_noise needs the learned sigma")
    return sigma_fn(hidden)


def _stacked_log_prob(chain: Tensor, means: list[Tensor], sigmas: list[Tensor], sched: ChainSchedule) -> Tensor:
    """Log-prob terms of every step of a chain at once, one expression over the stack: [B,K,T,D].

    chain [B,K+1,T,D]; means: K × [B,T,D]; sigmas: K × [B,T,D] (flow_noise) or empty (Flow-SDE: the schedule's σ).
    """
    mean, x_next = torch.stack(means, dim=1), chain[:, 1:]
    if sigmas:
        return gaussian_log_prob(x_next, mean, torch.stack(sigmas, dim=1).clamp_min(MIN_STD))
    col = (1, -1, 1, 1)
    return scheduled_log_prob(x_next, mean, sched.sde_neg_inv_two_var.view(col), sched.sde_log_norm.view(col))


def _stacked_std(means: list[Tensor], sigmas: list[Tensor], sched: ChainSchedule) -> Tensor:
    """σ of every step [B,K,T,D], for :func:`_stacked_log_prob`'s arguments (the learner's entropy)."""
    if sigmas:
        return torch.stack(sigmas, dim=1)
    return sched.sde_std.view(1, -1, 1, 1).expand(means[0].shape[0], -1, *means[0].shape[1:]).clone()


@dataclass
class ChainSample:
    """One rollout call's chain: everything the learner needs to re-score it."""

    actions: Tensor  # [B,T,D] final latent x_K (model space, padding included)
    chain: Tensor  # [B,K+1,T,D] latents x_0..x_K
    stochastic: Tensor  # [B,K] bool, which steps were sampled
    kstar: Tensor  # [B] long, the stochastic step of the hybrid sampler (-1 for full_chain)
    step_log_prob: Tensor  # [B,K,T,D] elementwise log-prob terms (0 at deterministic steps)
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
    if method not in NOISE_METHODS:
        raise ValueError(f"unknown noise method {method!r}; use flow_ode, flow_sde or flow_noise")
    B, K = x_init.shape[0], num_steps
    device, dtype = x_init.device, x_init.dtype
    sched = chain_schedule(K, noise_level if method == "flow_sde" else 0.0, dtype, device)
    # per step, decided once: does any sample inject noise here (any), do all (every)
    if method == "flow_ode":
        stochastic = torch.zeros(B, K, dtype=torch.bool, device=device)
        kstar = torch.full((B,), -1, dtype=torch.long, device=device)
        any_k = every_k = [False] * K
    elif sampling == "hybrid" and K == 1 and kstar is None:
        # one step: it is every sample's k*, nothing to draw
        stochastic = torch.ones(B, K, dtype=torch.bool, device=device)
        kstar = torch.zeros(B, dtype=torch.long, device=device)
        any_k = every_k = [True]
    elif sampling == "hybrid":
        if kstar is None:
            kstar = draw_kstar(B, K, generator=generator, device=device)
        ks = kstar.tolist()
        if not all(0 <= k < K for k in ks):
            raise ValueError(f"k* must lie in 0..{K - 1} for {K} denoising steps; got {ks}")
        stochastic = kstar[:, None] == torch.arange(K, device=device)
        any_k = [k in ks for k in range(K)]
        every_k = [all(j == k for j in ks) for k in range(K)]
    elif sampling == "full_chain":
        stochastic = torch.ones(B, K, dtype=torch.bool, device=device)
        kstar = torch.full((B,), -1, dtype=torch.long, device=device)
        any_k = every_k = [True] * K
    else:
        raise ValueError(f"unknown sampling {sampling!r}; use hybrid or full_chain")
    # log-probs once over the stacked chain (at K = 1 the per-step expression is that, without the stacking)
    fused = sampling == "full_chain" and method != "flow_ode" and K > 1

    x = hint = x_init
    latents = [x_init]
    step_lp: list[Tensor | None] = []  # per step (not fused); None: deterministic for every sample
    means: list[Tensor] = []  # fused: every step's mean and learned σ
    sigmas: list[Tensor] = []
    first_hidden: Tensor | None = None
    for k in range(K):
        f = sched.steps[k]
        out = denoise(x, torch.full((B,), f.t, dtype=dtype, device=device), hint)
        if first_hidden is None:
            first_hidden = out.hidden
        if not any_k[k]:
            # no sample injects noise here: the ODE step for all (the method's σ and drift are not needed)
            x = _ode_mean(out, x, sched.dt, f.c0, f.c1_ode)
            latents.append(x)
            step_lp.append(None)
            continue
        sigma = _learned_sigma(sigma_fn, out.hidden) if method == "flow_noise" else None
        if sigma is None:
            mean = _sde_mean(out, x, f.c0, f.c1_sde, f.sde_vx, f.sde_vv)
        else:
            mean = _ode_mean(out, x, sched.dt, f.c0, f.c1_ode)
        std: Tensor | float = f.sde_std if sigma is None else sigma
        x_next = mean + std * torch.randn(x.shape, generator=generator, device=device, dtype=dtype)
        sto = None if every_k[k] else stochastic[:, k].view(-1, 1, 1)
        if sto is not None:
            # hybrid: the samples whose k* this is take the method's step, the others the ODE step
            ode = mean if sigma is not None else _ode_mean(out, x, sched.dt, f.c0, f.c1_ode)
            x_next = torch.where(sto, x_next, ode)
        if fused:
            means.append(mean)
            if sigma is not None:
                sigmas.append(sigma)
        else:
            if sigma is None:
                lp = scheduled_log_prob(x_next, mean, f.sde_neg_inv_two_var, f.sde_log_norm)
            else:
                lp = gaussian_log_prob(x_next, mean, sigma.clamp_min(MIN_STD))
            step_lp.append(lp if sto is None else torch.where(sto, lp, 0.0))
        if k + 1 < K and not isinstance(out, VelocityOutput):  # a velocity model reads no hint
            new_hint = (x_next - f.one_minus_t_next * out.x0_hat) / f.t_next  # noise_estimate_from_latent
            hint = new_hint if sto is None else torch.where(sto, new_hint, hint)
        latents.append(x_next)
        x = x_next
    assert first_hidden is not None
    chain = torch.stack(latents, dim=1)
    if fused:
        lp_all = _stacked_log_prob(chain, means, sigmas, sched)
    else:
        zero = torch.zeros_like(x_init) if any(v is None for v in step_lp) else x_init  # shared by deterministic steps
        lp_all = torch.stack([zero if v is None else v for v in step_lp], dim=1)
    return ChainSample(
        actions=x,
        chain=chain,
        stochastic=stochastic,
        kstar=kstar,
        step_log_prob=lp_all,
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
    are stored); only the stochastic steps are scored, with the method's moments, read from the same
    :func:`chain_schedule` as the sampler's (hence bit for bit its log-prob). flow_ode has no stochastic step: it
    is scored as Flow-SDE at a = 0, every term masked out.
    """
    if method not in NOISE_METHODS:
        raise ValueError(f"unknown noise method {method!r}; use flow_ode, flow_sde or flow_noise")
    learned = method == "flow_noise"
    B, K1 = chain.shape[:2]
    K = K1 - 1
    sched = chain_schedule(K, noise_level if method == "flow_sde" else 0.0, chain.dtype, chain.device)
    if hybrid:
        kstar = stochastic.float().argmax(dim=1)  # [B]
        idx = torch.arange(B, device=chain.device)
        x_k, x_next = chain[idx, kstar], chain[idx, kstar + 1]
        out = denoise(x_k, sched.t[kstar], chain[:, 0])

        def at_kstar(v: Tensor) -> Tensor:
            return v[kstar].view(-1, 1, 1)

        if learned:
            sigma = _learned_sigma(sigma_fn, out.hidden)
            mean = _ode_mean(out, x_k, sched.dt, at_kstar(sched.c0), at_kstar(sched.c1_ode))
            std = sigma.expand_as(mean)
            lp = gaussian_log_prob(x_next, mean, sigma.clamp_min(MIN_STD))
        else:
            c0, c1, vx, vv = (at_kstar(v) for v in (sched.c0, sched.c1_sde, sched.sde_vx, sched.sde_vv))
            mean = _sde_mean(out, x_k, c0, c1, vx, vv)
            std = at_kstar(sched.sde_std).expand_as(mean)
            lp = scheduled_log_prob(x_next, mean, at_kstar(sched.sde_neg_inv_two_var), at_kstar(sched.sde_log_norm))
        zeros = torch.zeros(B, K, *chain.shape[2:], dtype=chain.dtype, device=chain.device)
        step_lp, step_std = zeros, zeros.clone()
        step_lp[idx, kstar] = lp
        step_std[idx, kstar] = std
        first = out.hidden if bool((kstar == 0).all()) else None
        return Rescore(step_lp, step_std, first)

    hint = chain[:, 0]
    means, sigmas = [], []
    first_hidden = None
    for k in range(K):
        f = sched.steps[k]
        x_k = chain[:, k]
        out = denoise(x_k, torch.full((B,), f.t, dtype=chain.dtype, device=chain.device), hint)
        if first_hidden is None:
            first_hidden = out.hidden
        if learned:
            sigmas.append(_learned_sigma(sigma_fn, out.hidden))
            means.append(_ode_mean(out, x_k, sched.dt, f.c0, f.c1_ode))
        else:
            means.append(_sde_mean(out, x_k, f.c0, f.c1_sde, f.sde_vx, f.sde_vv))
        if k + 1 < K and not isinstance(out, VelocityOutput):
            new_hint = (chain[:, k + 1] - f.one_minus_t_next * out.x0_hat) / f.t_next
            hint = torch.where(stochastic[:, k].view(-1, 1, 1), new_hint, hint)
    lp, std = _stacked_log_prob(chain, means, sigmas, sched), _stacked_std(means, sigmas, sched)
    sto = stochastic[:, :, None, None]
    return Rescore(torch.where(sto, lp, 0.0), torch.where(sto, std, 0.0), first_hidden)
