"""Learner and actors as real processes over gRPC on loopback, with the tiny X-VLA and gym_hil pick-cube."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from pirlctl.config.run_config import load_run_config
from pirlctl.metrics import read_metrics
from pirlctl.runtime import checkpoint as ckpt
from pirlctl.runtime.learner import Learner

from .procs import TINY_RUN, free_port, report, spawn

pytestmark = pytest.mark.integration

SMALL = ["--runtime.rollout_chunks=8", "--runtime.checkpoint_every=2"]


def test_learner_and_two_actor_processes_train_push_and_checkpoint(tmp_path):
    # one run serves both views (the shipped default runs two actors; the fault tests run one)
    out, port = tmp_path / "run", free_port()
    args = ["--runtime.num_actors=2", "--runtime.total_env_steps=192", *SMALL]  # 3 iterations of 2 × 8 chunks
    learner = spawn("learner", out, port, *args)
    actors = [spawn("actor", out, port, *args, actor_id=i) for i in range(2)]
    reports = [report(a) for a in actors]
    lr = report(learner)
    assert lr["iterations"] >= 3 and lr["stopped_by"] == "budget" and lr["actors"] == [0, 1]
    # counted on both sides: every used chunk was sent and acknowledged; nothing is dropped on-policy
    assert lr["chunks_used"] == 2 * 8 * lr["iterations"] and lr["chunks_dropped_stale"] == 0
    assert sum(a["chunks_sent"] for a in reports) >= lr["chunks_used"]
    for a in reports:
        # the actor's time accounting (B2): inference and env steps happen inside the collect phase
        assert a["infer_s"] > 0 and a["env_s"] > 0 and a["send_s"] > 0 and a["load_s"] > 0
        assert a["infer_s"] + a["env_s"] <= a["collect_s"] * 1.01
        # each actor loaded every version the learner produced, in order (v0 first, then each push)
        assert a["versions_loaded"] == list(range(lr["iterations"] + 1))
    train = read_metrics(out / "metrics.jsonl", "train")
    assert [r["train/iteration"] for r in train] == list(range(1, lr["iterations"] + 1))
    for r in train:
        assert r["data/batch_versions"] == [r["train/iteration"] - 1]  # on-policy: trained on the previous version
        assert r["data/batch_actors"] == [0, 1] and r["train/samples"] == 2 * 8  # each batch shared by both
        # the learner's first re-score, before any step, reproduces the actor's log-probs: weights arrived intact.
        # (ratio_max over later epochs is not bounded: the clip bounds the gradient, not the ratio.)
        assert r["train/onpolicy_max_abs_log_ratio"] < 1e-3
    episodes = read_metrics(out / "metrics.jsonl", "episode")
    assert 1 <= len(episodes) <= sum(a["episodes"] for a in reports)
    assert episodes[0]["actor/episode_length"] <= 60 and episodes[0]["actor/policy_fps"] > 0  # env.max_episode_steps
    info = ckpt.verify_checkpoint(out)
    assert info.iteration == lr["iterations"]
    assert (info.path / "pretrained_model" / "model.safetensors").is_file()
    assert info.counters["env_steps"] == lr["env_steps"] >= 192


def _stopped_run(tmp_path):
    """A run that stopped at its budget: (run folder, port, its iterations, its checkpoint)."""
    out, port = tmp_path / "run", free_port()
    first = ["--runtime.total_env_steps=64", *SMALL]
    learner = spawn("learner", out, port, *first)
    actor = spawn("actor", out, port, *first)
    report(actor)
    n = report(learner)["iterations"]
    saved = ckpt.verify_checkpoint(out)
    assert saved.iteration == n
    return out, port, n, saved


def test_a_resumed_learner_holds_exactly_the_saved_tensors_and_counters(tmp_path):
    out, port, n, saved = _stopped_run(tmp_path)
    cfg = load_run_config(TINY_RUN, [f"--output_dir={out}", "--resume=true", f"--runtime.learner_port={port}"])
    resumed = Learner(cfg)
    policy_saved = load_file(str(saved.path / "pretrained_model" / "model.safetensors"))
    own = resumed.algo.policy.state_dict()
    for k, v in policy_saved.items():
        assert torch.equal(own[k], v), k
    algo_saved = load_file(str(saved.path / "algorithm" / "model.safetensors"))
    for k, v in resumed.algo.state_dict().items():
        assert torch.equal(v, algo_saved[k]), k
    for name, opt in resumed.algo.optimizers.items():
        opt_saved = load_file(str(saved.path / "training_state" / "optimizers" / name / "optimizer_state.safetensors"))
        state = opt.state_dict()["state"]
        assert opt_saved and len(state) == len({k.split("/")[1] for k in opt_saved})
        for key, value in opt_saved.items():
            _, idx, field = key.split("/")
            assert torch.equal(state[int(idx)][field], value), (name, key)
    assert resumed.algo.iteration == n and resumed.env_steps == saved.counters["env_steps"]


# slow (15 s): test_faults.py::test_actor_survives_a_killed_learner_and_training_resumes_from_the_checkpoint, in the
# default suite, resumes real processes from `last` and checks the same continuation (iterations n + 1 on, versions)
@pytest.mark.slow
def test_a_resumed_run_continues_from_the_next_iteration(tmp_path):
    out, port, n, _ = _stopped_run(tmp_path)
    more = ["--runtime.total_env_steps=128", "--resume=true", *SMALL]
    learner = spawn("learner", out, port, *more)
    actor = spawn("actor", out, port, *more)
    a = report(actor)
    lr2 = report(learner)
    iters = [r["train/iteration"] for r in read_metrics(out / "metrics.jsonl", "train")]
    assert iters[:n] == list(range(1, n + 1)) and iters[n] == n + 1
    assert lr2["iterations"] > n
    assert a["versions_loaded"][0] == n
