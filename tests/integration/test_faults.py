"""Faults survived: the learner SIGKILLed mid-run and resumed, an actor killed and replaced."""

from __future__ import annotations

import signal
import time

import pytest

from pirlctl.metrics import read_metrics
from pirlctl.runtime import checkpoint as ckpt

from .procs import free_port, report, spawn

pytestmark = pytest.mark.integration

ARGS = ["--runtime.rollout_chunks=8", "--runtime.checkpoint_every=1", "--runtime.weights_wait_s=5"]


def _wait_iterations(run, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(read_metrics(run / "metrics.jsonl", "train")) >= n:
            return
        time.sleep(0.3)
    raise AssertionError(f"fewer than {n} PPO iterations after {timeout}s")


def test_actor_survives_a_killed_learner_and_training_resumes_from_the_checkpoint(tmp_path):
    out, port = tmp_path / "run", free_port()
    budget = [*ARGS, "--runtime.total_env_steps=160"]
    learner = spawn("learner", out, port, *budget)
    actor = spawn("actor", out, port, *budget)
    _wait_iterations(out, 2)
    learner.send_signal(signal.SIGKILL)
    learner.wait(timeout=10)
    before_kill = len(read_metrics(out / "metrics.jsonl", "train"))
    saved = ckpt.verify_checkpoint(out)  # `last` is complete even though the learner died without warning
    assert before_kill - saved.iteration <= 1  # bounded loss: at most the checkpoint_every=1 iterations since
    time.sleep(3)
    assert actor.poll() is None  # the actor waits with backoff instead of crashing
    learner = spawn("learner", out, port, *budget, "--resume=true")
    a, lr = report(actor, timeout=240), report(learner, timeout=240)
    assert a["reconnects"] >= 1
    iters = [r["train/iteration"] for r in read_metrics(out / "metrics.jsonl", "train")]
    assert iters == list(range(1, lr["iterations"] + 1))  # resumed at n + 1; the redone iteration once, not twice
    lost = [r["train/iteration"] for r in read_metrics(out / "metrics.jsonl.lost", "train")]
    assert lost == list(range(saved.iteration + 1, before_kill + 1))  # the lost one kept aside
    assert lr["iterations"] > saved.iteration and lr["env_steps"] >= 160
    if before_kill > saved.iteration:  # the redone iteration is reported, with its bound
        assert "restart lost 1 PPO iteration(s)" in (out / "learner.log").read_text()
    # the actor followed the restarted learner's versions to the end
    assert a["versions_loaded"][-1] == lr["iterations"]
    assert ckpt.verify_checkpoint(out).iteration == lr["iterations"]


# slow: the default suite keeps the killed-learner fault test; this one adds a third process (28 s)
@pytest.mark.slow
def test_learner_keeps_serving_when_an_actor_dies_and_a_replacement_gets_current_weights(tmp_path):
    out, port = tmp_path / "run", free_port()
    budget = [*ARGS, "--runtime.total_env_steps=160"]
    learner = spawn("learner", out, port, *budget)
    first = spawn("actor", out, port, *budget)
    _wait_iterations(out, 2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    current = len(read_metrics(out / "metrics.jsonl", "train"))
    assert learner.poll() is None
    replacement = spawn("actor", out, port, *budget, actor_id=0)
    a, lr = report(replacement, timeout=240), report(learner, timeout=240)
    assert a["versions_loaded"][0] >= current  # started from the learner's current weights, not v0
    assert lr["iterations"] > current and lr["stopped_by"] == "budget"
