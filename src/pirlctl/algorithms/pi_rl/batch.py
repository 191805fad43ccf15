"""The data PPO learns from: one executed chunk as the learner receives it (:class:`ChunkTransition`), and a batch
of chunk decisions with their advantages (:class:`RolloutBatch`). Plain containers, no maths: the algorithm
(``pi_rl_algorithm``), GRPO's batches (``group_batch``) and the data-parallel split (``data_parallel``) all use them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from torch import Tensor


@dataclass
class RolloutBatch:
    """An on-policy PPO batch of N chunk decisions, advantages already computed."""

    observations: dict[str, Tensor]  # each [N, ...]
    chain: Tensor  # [N, K+1, T, D]
    stochastic: Tensor  # [N, K] bool
    old_log_prob: Tensor  # [N] or [N, T, D]
    old_values: Tensor  # [N]
    advantages: Tensor  # [N]
    returns: Tensor  # [N]

    def __len__(self) -> int:
        return int(self.old_values.shape[0])

    def index(self, idx: Tensor) -> RolloutBatch:
        return RolloutBatch(
            observations={k: v[idx] for k, v in self.observations.items()},
            **{f.name: getattr(self, f.name)[idx] for f in fields(self) if f.name != "observations"},
        )


@dataclass
class ChunkTransition:
    """One executed chunk as the learner receives it (one element of an actor's time-ordered stream)."""

    observation: dict[str, Tensor]  # unbatched
    chain: Tensor  # [K+1, T, D]
    stochastic: Tensor  # [K]
    log_prob: Tensor  # [] or [T, D]
    value: float
    reward: float  # sum of the env rewards of the chunk's executed steps
    terminated: bool
    truncated: bool
    bootstrap_value: float  # V(next obs) at a truncation (0 if the time limit ends the task) and at the stream's end
    policy_version: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
