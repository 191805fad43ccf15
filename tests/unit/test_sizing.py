"""The sizing model's arithmetic (bench/sizing.py, docs/scaling.md) on figures worked out by hand."""

from __future__ import annotations

import pytest
from bench.sizing import Fleet, Rates, Workload, actor_fps, actors_to_balance, predict

# 2 envs x 1 rollout x ceil(10 / 5) = 4 chunks, 20 env steps; 2 PPO epochs
W = Workload(envs=2, rollout_epochs=1, episode_steps=10, n_exec=5, ppo_epochs=2)
R = Rates(
    env_step_s=0.1,
    policy_chunk_s=0.5,
    batch_slope=0.5,
    sample_epoch_s=1.0,
    rank_efficiency=0.8,
    push_gb=2.0,
    push_s_per_gb=0.25,
)


def test_workload_counts_chunks_per_rollout_rounding_a_partial_chunk_up():
    assert (W.chunks, W.env_steps) == (4, 20)
    assert Workload(envs=64, rollout_epochs=8, episode_steps=280, n_exec=5, ppo_epochs=4).chunks == 64 * 8 * 56
    assert Workload(envs=1, rollout_epochs=1, episode_steps=11, n_exec=5, ppo_epochs=1).chunks == 3


def test_actor_fps_counts_sequential_envs_and_the_batched_policy_call():
    # one env: 5 steps in 5 x 0.1 + 0.5 s
    assert actor_fps(R, W, 1, 1) == pytest.approx(5 / 1.0)
    # 4 envs in one process: 4 x 0.5 s of env steps + 0.5 x (1 + 0.5 x 3) s of policy for 20 env steps
    assert actor_fps(R, W, 4, 1) == pytest.approx(20 / (2.0 + 1.25))
    # 4 envs on 2 workers: two envs per worker one after another
    assert actor_fps(R, W, 4, 2) == pytest.approx(20 / (1.0 + 1.25))


def test_predict_splits_the_iteration_at_the_sync_point():
    p = predict(R, W, Fleet(actors=2, envs_per_actor=1, env_workers=1, ranks=1))
    assert p.collect_s == pytest.approx(20 / (2 * 5.0))  # 2 s
    assert p.update_s == pytest.approx(4 * 2 * 1.0)  # 8 s
    assert p.push_s == pytest.approx(0.5)
    assert p.iteration_s == pytest.approx(10.5)
    assert p.learner_idle == pytest.approx(2 / 10.5)
    assert p.actor_wait == pytest.approx(8.5 / 10.5)
    # 2 ranks at 80% efficiency: 8 / 1.6 s
    assert predict(R, W, Fleet(2, 1, 1, ranks=2)).update_s == pytest.approx(5.0)


def test_actors_to_balance_is_the_fleet_whose_collection_fits_in_update_and_push():
    # one actor collects 20 steps in 4 s; update + push = 8.5 s: one actor already fits
    assert actors_to_balance(R, W, 1, 1, ranks=1) == 1
    slow = Rates(**{**R.__dict__, "env_step_s": 1.0})  # one actor: 20 / (5 / 5.5) = 22 s, 3 actors: 7.33 s
    assert actors_to_balance(slow, W, 1, 1, ranks=1) == 3
    n = actors_to_balance(slow, W, 1, 1, ranks=1)
    assert predict(slow, W, Fleet(n, 1, 1, 1)).collect_s <= 8.5 < predict(slow, W, Fleet(n - 1, 1, 1, 1)).collect_s
