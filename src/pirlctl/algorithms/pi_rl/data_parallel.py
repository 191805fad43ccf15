"""One PPO minibatch split over data-parallel ranks: the maths every rank agrees on (issue 21).

Every rank holds the whole PPO batch and the same minibatch permutation (rank 0's draw). A minibatch of ``n``
samples is cut into ``world`` contiguous shards; rank ``r`` scores its ``n_r`` samples and scales its mean loss by
``world * n_r / n``. DDP *averages* gradients over ranks, so the reduced gradient is

    (1/W) Σ_r (W n_r / n) ∇ mean_r = Σ_r (n_r / n) ∇ mean_r = ∇ mean over the whole minibatch,

what one rank computes (every loss term is a per-sample mean; token_level's masked mean has the same mask per
sample). A rank whose shard is empty (a last minibatch shorter than ``world``) scores one sample with scale 0: it
still takes part in the gradient reduction and adds nothing. The diagnostics (losses, KL, clip fraction, ratio
range) are combined the same way, so every rank sees the numbers one rank would (``target_kl`` stops all alike).

The runtime provides the :class:`DataParallel` object (``pirlctl.runtime.ranks``, on accelerate); this module only
says what the update asks of it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

if TYPE_CHECKING:
    from pirlctl.algorithms.pi_rl.batch import RolloutBatch

# per-sample means, combined weighted by shard size
MEAN_STATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")
# extremes, combined by min / max
MIN_STATS = ("ratio_min",)
MAX_STATS = ("ratio_max", "max_abs_log_ratio")


class DataParallel(Protocol):
    """What :meth:`PiRLAlgorithm.update` needs from the ranks it runs on."""

    rank: int
    world_size: int

    def permutation(self, n: int, device: torch.device) -> Tensor:
        """``torch.randperm(n)`` drawn by rank 0 (its RNG, as a 1-rank learner draws it), the same on every rank."""
        ...

    def score(self, mb: RolloutBatch) -> tuple[Tensor, Tensor, Tensor]:
        """``algo.evaluate(mb)`` through the engine's wrapper, so that ``backward`` reduces the gradients."""
        ...

    def gather(self, row: Tensor) -> Tensor:
        """Each rank's ``row`` [k], stacked in rank order [world, k], on every rank."""
        ...


def shard_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of rank ``rank``'s contiguous shard of ``n`` samples; the shards cover 0..n once, sizes
    differ by at most one."""
    return n * rank // world, n * (rank + 1) // world


def loss_scale(n_own: int, n: int, world: int) -> float:
    """The factor on a rank's mean loss that makes DDP's gradient average the whole minibatch's mean (module doc)."""
    return world * n_own / n


def stats_row(n_own: int, stats: dict[str, float]) -> Tensor:
    """One rank's minibatch diagnostics as [n_own, *MEAN_STATS, *MIN_STATS, *MAX_STATS] (float64). An empty shard
    contributes nothing (weight 0, neutral extremes)."""
    if n_own == 0:
        values = [0.0] * len(MEAN_STATS) + [math.inf] * len(MIN_STATS) + [-math.inf, 0.0]
    else:
        values = [float(stats[k]) for k in (*MEAN_STATS, *MIN_STATS, *MAX_STATS)]
    return torch.tensor([float(n_own), *values], dtype=torch.float64)


def combine_stats(rows: Tensor) -> dict[str, float]:
    """The minibatch's diagnostics from every rank's :func:`stats_row` ([world, k]): means weighted by shard size,
    extremes over ranks; equal to one rank's numbers for the whole minibatch."""
    rows = rows.reshape(-1, 1 + len(MEAN_STATS) + len(MIN_STATS) + len(MAX_STATS)).double()
    w = rows[:, 0] / rows[:, 0].sum()
    out: dict[str, Any] = {}
    col = 1
    for k in MEAN_STATS:
        out[k] = float((rows[:, col] * w).sum())
        col += 1
    for k in MIN_STATS:
        out[k] = float(rows[:, col].min())
        col += 1
    for k in MAX_STATS:
        out[k] = float(rows[:, col].max())
        col += 1
    return out
