"""A learner and an actor with runtime.envs_per_actor=2 on gym_hil pick-cube, as real processes over gRPC."""

from __future__ import annotations

import pytest

from pirlctl.config.run_config import load_run_config
from pirlctl.metrics import read_metrics
from pirlctl.runtime.actor import EPISODE_SEED_STRIDE

from .procs import TINY_RUN, free_port, report, spawn

pytestmark = pytest.mark.integration


@pytest.mark.slow  # ~2 min on the shared 2-core machine
def test_an_actor_with_two_envs_trains_on_one_stream_per_env_with_per_env_episodes(tmp_path):
    out, port = tmp_path / "run", free_port()
    # 8 chunks of 4 steps per env per iteration: 64 env steps per iteration, two iterations; each env passes the
    # 60-step episode limit, so each ends at least one episode
    args = ["--runtime.envs_per_actor=2", "--runtime.rollout_chunks=8", "--runtime.total_env_steps=128"]
    learner = spawn("learner", out, port, *args)
    actor = spawn("actor", out, port, *args)
    a, lr = report(actor), report(learner)
    assert lr["iterations"] >= 2 and lr["stopped_by"] == "budget"
    assert lr["chunks_used"] == 2 * 8 * lr["iterations"] and lr["chunks_dropped_stale"] == 0
    train = read_metrics(out / "metrics.jsonl", "train")
    for r in train:
        assert r["train/samples"] == 2 * 8 and r["data/batch_actors"] == [0]
        # the learner's first re-score reproduces the batched call's log-probs, row for row
        assert r["train/onpolicy_max_abs_log_ratio"] < 1e-3
    episodes = read_metrics(out / "metrics.jsonl", "episode")
    assert len(episodes) == a["episodes"] >= 2
    assert {r["actor/env_index"] for r in episodes} == {0, 1}
    base = load_run_config(TINY_RUN, []).env.seed
    seeds = [r["actor/episode_seed"] for r in episodes]
    assert len(set(seeds)) == len(seeds)  # every episode its own seed: env i's j-th is base + 2j + i
    for r in episodes:
        offset = r["actor/episode_seed"] - base
        assert 0 <= offset < EPISODE_SEED_STRIDE and offset % 2 == r["actor/env_index"]
        assert 1 <= r["actor/episode_length"] <= 60 and isinstance(r["actor/success"], bool)
    assert sum(r["actor/success"] for r in episodes) == a["successes"]
