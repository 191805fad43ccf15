"""GRPO over real processes: a learner and two actors share every group, each group from one initial state."""

from __future__ import annotations

from collections import defaultdict

import pytest

from pirlctl.configs import CONFIGS_DIR
from pirlctl.metrics import read_metrics

from .procs import free_port, report, spawn

pytestmark = pytest.mark.integration

GRPO_RUN = CONFIGS_DIR / "pick_cube_tiny_grpo.json"
# groups of 4 episodes of at most 20 env steps (5 chunks); 2 actors × 8 chunks hold one group of full episodes, so
# each version is one group: actor 0 runs its episodes 0 and 2, actor 1 its episodes 1 and 3
ARGS = [
    "--runtime.num_actors=2",
    "--runtime.rollout_chunks=8",
    "--runtime.checkpoint_every=2",
    "--algorithm.group_size=4",
    "--env.max_episode_steps=20",
    "--runtime.total_env_steps=120",
]


@pytest.mark.slow  # a learner and two actor processes for two GRPO iterations: ~1.5 min on 2 busy cores
def test_two_actors_run_whole_groups_from_one_initial_state_each(tmp_path):
    out, port = tmp_path / "run", free_port()
    learner = spawn("learner", out, port, *ARGS, config=GRPO_RUN)
    actors = [spawn("actor", out, port, *ARGS, actor_id=i, config=GRPO_RUN) for i in range(2)]
    reports = [report(a) for a in actors]
    lr = report(learner)
    iterations = lr["iterations"]
    assert iterations >= 2 and lr["stopped_by"] == "budget" and lr["segments_rejected"] == 0
    for a in reports:
        assert a["versions_loaded"] == list(range(iterations + 1))
    train = read_metrics(out / "metrics.jsonl", "train")
    assert [r["train/iteration"] for r in train] == list(range(1, iterations + 1))
    for r in train:
        assert r["data/batch_actors"] == [0, 1]  # a group spans both actors
        assert r["data/groups_used"] == r["train/iteration"]  # one whole group per version ...
        assert r["data/groups_dropped_incomplete"] == 0 and r["data/chunks_dropped_incomplete"] == 0  # ... none cut
        assert 4 <= r["train/samples"] <= 4 * 5  # 4 whole episodes of 1 to 5 chunks
        assert r["train/onpolicy_max_abs_log_ratio"] < 1e-3
    # what the learner got from the actors, per episode: its group, reset seed and the cube's initial position
    by_group: dict[int, list[dict]] = defaultdict(list)
    for ep in read_metrics(out / "metrics.jsonl", "episode"):
        if ep["actor/policy_version"] < iterations:  # the trained versions (the final one is cut by the stop)
            by_group[ep["actor/group"]].append(ep)
    assert sorted(by_group) == list(range(iterations))  # group id = version (one group per batch here)
    for eps in by_group.values():
        assert len(eps) == 4 and sorted(e["actor/id"] for e in eps) == [0, 0, 1, 1]  # every group complete
        assert len({e["actor/episode_seed"] for e in eps}) == 1  # one reset seed ...
        assert len({(e["actor/initial_cube_x"], e["actor/initial_cube_y"]) for e in eps}) == 1  # ... one cube position
        assert len({e["actor/policy_version"] for e in eps}) == 1
    seeds = [eps[0]["actor/episode_seed"] for eps in by_group.values()]
    cubes = {(eps[0]["actor/initial_cube_x"], eps[0]["actor/initial_cube_y"]) for eps in by_group.values()}
    assert len(set(seeds)) == len(seeds) and len(cubes) == len(seeds)  # a new initial state for every group
