"""A learner and an actor with two envs on each env type (pick-cube and LeRobot's pusht, metaworld and aloha), as
real processes, then ``pirlctl eval`` of the checkpoint they wrote; the checklist's render probe on an env type other
than pick-cube."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pirlctl.config.run_config import load_run_config
from pirlctl.diagnostics.checklist import finish_render_probe, start_render_probe
from pirlctl.metrics import read_metrics
from tests.env_configs import tiny_run_config
from tests.integration.procs import ROOT, env, free_port, report, spawn

pytestmark = pytest.mark.integration

# the instruction each env type's rollouts carry: MetaWorld's own task_description, else the config's
INSTRUCTIONS = {
    "pick_cube": "pick up the cube",
    "pusht": "push the T-shaped block onto the target",
    "metaworld": "Push the puck to a goal",
    "aloha": "AlohaInsertion-v0",  # no instruction of its own or in the config: the gym task id
}
PACKAGES = {"pick_cube": "gym_hil", "pusht": "gym_pusht", "metaworld": "metaworld", "aloha": "gym_aloha"}
LIMIT = 10  # each env type's episode limit in tests/env_configs.py


@pytest.mark.slow  # 1-3 min per env type on 2 shared cores (aloha and metaworld step at 2-8 steps/s)
@pytest.mark.timeout(900)
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("env_type", list(INSTRUCTIONS))
def test_two_envs_per_actor_train_two_iterations_and_eval_evaluates_the_checkpoint(env_type, tmp_path):
    pytest.importorskip(PACKAGES[env_type])
    # 2 envs x 4 chunks x 4 steps: 32 env steps per iteration; each env passes the 10-step limit in every iteration
    runtime = {"envs_per_actor": 2, "rollout_chunks": 4, "total_env_steps": 64, "checkpoint_every": 2}
    config = tiny_run_config(tmp_path, env_type, runtime=runtime)
    port, out = free_port(), tmp_path / "run"
    learner = spawn("learner", out, port, config=config)
    actor = spawn("actor", out, port, config=config)
    a, learned = report(actor, timeout=800), report(learner, timeout=800)
    assert learned["iterations"] >= 2 and learned["stopped_by"] == "budget", learned
    for r in read_metrics(out / "metrics.jsonl", "train"):
        assert r["train/samples"] == 2 * 4  # one stream per env in each batch
    episodes = read_metrics(out / "metrics.jsonl", "episode")
    assert len(episodes) == a["episodes"] >= 4
    assert {r["actor/env_index"] for r in episodes} == {0, 1}  # episodes from both envs
    assert all(1 <= r["actor/episode_length"] <= LIMIT for r in episodes)
    assert all(isinstance(r["actor/success"], bool) for r in episodes)
    assert sum(r["actor/success"] for r in episodes) == a["successes"]
    assert {r["actor/instruction"] for r in episodes} == {INSTRUCTIONS[env_type]}

    res = subprocess.run(
        [sys.executable, "-m", "pirlctl", "eval", str(out / "checkpoints" / "last"), "--episodes", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env(),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    evaluated = json.loads(res.stdout[res.stdout.index("{") :])
    assert evaluated["episodes"] == 2 and 0 <= evaluated["successes"] <= 2
    assert 2 <= evaluated["env_steps"] <= 2 * LIMIT and evaluated["mean_length"] <= LIMIT


def test_the_checklist_render_probe_renders_pusht_through_the_env_interface(tmp_path):
    pytest.importorskip("gym_pusht")
    cfg = load_run_config(tiny_run_config(tmp_path, "pusht"))
    evidence = finish_render_probe(start_render_probe(cfg))
    assert evidence.startswith("reset rendered 64×64×3: image mean "), evidence
