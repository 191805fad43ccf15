"""A learner and an actor on an env type other than pick-cube (LeRobot's pusht), as real processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pirlctl.policies.loading import TINY_XVLA_CONFIG
from tests.integration.procs import free_port, report, spawn

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _pusht_run_config(folder: Path) -> Path:
    policy = json.loads(Path(TINY_XVLA_CONFIG).read_text())
    policy["input_features"] = {
        "observation.image": {"type": "VISUAL", "shape": [3, 64, 64]},
        "observation.state": {"type": "STATE", "shape": [2]},
    }
    policy["output_features"] = {"action": {"type": "ACTION", "shape": [2]}}
    policy["max_state_dim"], policy["max_action_dim"] = 2, 2
    (folder / "policy.json").write_text(json.dumps(policy))
    run = {
        "policy": {"base": "policy.json"},
        "algorithm": {"type": "pi_rl", "n_exec": 4},
        "env": {"type": "pusht", "observation_height": 64, "observation_width": 64, "episode_length": 12},
        "runtime": {"rollout_chunks": 8, "total_env_steps": 64, "checkpoint_every": 2},
    }
    (folder / "pusht.json").write_text(json.dumps(run))
    return folder / "pusht.json"


def test_a_learner_and_an_actor_train_two_iterations_on_pusht(tmp_path):
    pytest.importorskip("gym_pusht")
    config = _pusht_run_config(tmp_path)
    port, out = free_port(), tmp_path / "run"
    learner = spawn("learner", out, port, config=config)
    actor = spawn("actor", out, port, config=config)
    a = report(actor, timeout=400)
    learned = report(learner, timeout=400)
    assert a["episodes"] >= 4 and a["env_steps"] >= 64  # 12-step episodes ended by the limit
    assert learned["iterations"] == 2, learned
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    episodes = [r for r in records if "actor/success" in r]
    assert episodes and all(r["actor/episode_length"] <= 12 for r in episodes)
