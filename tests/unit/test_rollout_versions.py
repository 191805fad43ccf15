"""The documented rule for samples from an older (or future) policy version."""

from __future__ import annotations

import torch

from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition
from pirlctl.runtime.rollout import DROPPED_STALE, REJECTED_FUTURE, USED, RolloutAssembler
from pirlctl.runtime.wire import Segment


def seg(version: int, n: int = 4, actor: int = 0) -> Segment:
    tr = ChunkTransition(
        observation={},
        chain=torch.zeros(3, 2, 2),
        stochastic=torch.tensor([True, False]),
        log_prob=torch.tensor(0.0),
        value=0.0,
        reward=0.0,
        terminated=False,
        truncated=False,
        bootstrap_value=0.0,
        policy_version=version,
    )
    return Segment([tr] * n, version, actor, env_steps=4 * n)


def test_drop_rule_keeps_current_drops_stale_rejects_future():
    asm = RolloutAssembler(batch_chunks=8, rule="drop")
    asm.set_version(3)
    assert asm.offer(seg(3)) == USED
    assert asm.offer(seg(2)) == DROPPED_STALE
    assert asm.offer(seg(4)) == REJECTED_FUTURE
    c = asm.counters
    assert (c.chunks_dropped_stale, c.segments_rejected) == (4, 1)
    assert c.env_steps == 48  # every reported env step is counted, used or not
    assert asm.wait_batch(timeout=0.01) is None  # 4 of 8 chunks: not complete
    assert asm.offer(seg(3, actor=1)) == USED
    batch = asm.wait_batch(timeout=0.01)
    assert batch is not None and [s.actor_id for s in batch] == [0, 1]
    assert asm.counters.chunks_used == 8


def test_importance_weight_rule_accepts_bounded_lag_only():
    asm = RolloutAssembler(batch_chunks=100, rule="importance_weight", max_lag=1)
    asm.set_version(5)
    assert asm.offer(seg(4)) == USED  # lag 1: kept, its stored log-probs make the PPO ratio the IS weight
    assert asm.offer(seg(3)) == DROPPED_STALE  # lag 2 > max_policy_lag
    assert asm.offer(seg(6)) == REJECTED_FUTURE


def test_partial_batch_is_taken_only_with_enough_chunks():
    asm = RolloutAssembler(batch_chunks=100)
    asm.offer(seg(0, n=3))
    assert asm.take_partial(min_chunks=4) is None
    asm.offer(seg(0, n=3))
    taken = asm.take_partial(min_chunks=4)
    assert taken is not None and sum(len(s.transitions) for s in taken) == 6
