"""Chunk-level generalised advantage estimation (pirl-method.md, "PPO, chunk level").

One outer-MDP step executes one chunk of n_exec actions: its reward is the sum of the env rewards it collected,
and it ends the episode when any env step inside it terminated or truncated (the actor stops executing the chunk
there). Discounting is per chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor


def chunk_gae(
    rewards: Tensor,
    values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    bootstrap_values: Tensor,
    *,
    gamma: float,
    gae_lambda: float,
) -> tuple[Tensor, Tensor]:
    """GAE over one time-ordered stream of chunks (one actor's rollout segment).

    rewards [N]: chunk rewards r̃_t.  values [N]: V(s_t) recorded at sampling time.
    terminated [N] bool: the episode ended inside chunk t by termination (no bootstrap: V(s_{t+1}) = 0).
    truncated [N] bool: the episode was cut inside chunk t by a time limit (bootstrap from bootstrap_values[t]).
    bootstrap_values [N]: V(s_{t+1}) of the observation after chunk t; read where chunk t is truncated or is
    the last of the stream (the rollout boundary), ignored elsewhere (there V(s_{t+1}) = values[t+1]). The actor
    sends 0 at a truncation when the time limit ends the task (PiRLConfig.bootstrap_time_limit false, the default).

        δ_t = r̃_t + γ·V_next_t·(1 − term_t) − V(s_t)
        Â_t = δ_t + γλ·(1 − end_t)·Â_{t+1},   end_t = term_t or trunc_t

    Computed in float64. Returns float32 (advantages [N], returns [N] = advantages + values).
    """
    n = rewards.shape[0]
    rewards, values = rewards.double(), values.double()
    bootstrap_values = bootstrap_values.double()
    term = terminated.bool()
    end = term | truncated.bool()
    adv = torch.zeros(n, dtype=torch.float64, device=rewards.device)
    next_adv = torch.zeros((), dtype=torch.float64, device=rewards.device)
    for t in reversed(range(n)):
        last = t == n - 1
        v_next = bootstrap_values[t] if bool(truncated[t]) or last else values[t + 1]
        not_term = 0.0 if bool(term[t]) else 1.0
        delta = rewards[t] + gamma * v_next * not_term - values[t]
        carry = 0.0 if (bool(end[t]) or last) else 1.0
        next_adv = delta + gamma * gae_lambda * carry * next_adv
        adv[t] = next_adv
    return adv.float(), (adv + values).float()


def normalize(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero-mean, unit-std copy of x (unchanged when it has fewer than 2 elements)."""
    if x.numel() < 2:
        return x - x.mean()
    return (x - x.mean()) / (x.std() + eps)


def explained_variance(values: Tensor, returns: Tensor) -> float:
    """1 − Var(R − V)/Var(R): 1 is a perfect critic, ≤ 0 no better than a constant. NaN when Var(R) = 0."""
    var_r = torch.var(returns.double())
    if float(var_r) == 0.0:
        return float("nan")
    return float(1.0 - torch.var((returns - values).double()) / var_r)


def group_relative_advantages(returns: Tensor, group_ids: Tensor, *, eps: float = 1e-6) -> Tensor:
    """GRPO's critic-free advantage of each episode (pirl-method.md, "GRPO"; DeepSeekMath's outcome supervision).

    returns [M]: one return per episode (``group_batch.episode_return``: its chunk rewards, discounted per chunk).
    group_ids [M] int: the group of each episode; the episodes of a group started from the same initial state.

        Â_i = (R_i − mean_g(R)) / (std_g(R) + eps),   g = group_ids[i]

    std is the unbiased sample std (torch's default, as DeepSeekMath and RLinf compute it). A group whose returns
    are all equal (all successes, all failures) carries no signal: its advantages are exactly 0, not 0/eps noise.
    A group of one episode has no baseline; it is refused (PiRLConfig refuses group_size < 2 before it gets here).

    Each chunk of an episode is then given the episode's advantage (:func:`broadcast_to_chunks`): the πRL paper and
    RLinf's GRPO give every action of a trajectory its group-normalised outcome, with no per-step credit.
    Computed in float64. Returns float32 [M].
    """
    r = returns.double()
    gid = group_ids.long()
    adv = torch.zeros_like(r)
    for g in torch.unique(gid).tolist():
        sel = gid == g
        rg = r[sel]
        if rg.numel() < 2:
            raise ValueError(f"group {g} has {rg.numel()} episode(s); a GRPO group needs at least 2")
        if bool((rg == rg[0]).all()):
            continue  # equal returns: advantage 0 (mean may differ from each value by a rounding error)
        adv[sel] = (rg - rg.mean()) / (rg.std() + eps)
    return adv.float()


def broadcast_to_chunks(episode_values: Tensor, episode_lengths: Tensor) -> Tensor:
    """Repeat each episode's value over its chunks: [M] values and [M] chunk counts -> [sum(lengths)], episode order
    kept (the chunks of episode 0, then those of episode 1, ...)."""
    return torch.repeat_interleave(episode_values, episode_lengths.long())
