"""trainable="lora" across real learner and actor processes: the adapters a push carries reproduce the learner's
policy on the actor (on-policy |log ratio| < 1e-6), and a resumed learner pushes the restored adapters."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from pirlctl.metrics import read_metrics
from pirlctl.runtime import checkpoint as ckpt

from .procs import free_port, report, spawn

pytestmark = pytest.mark.integration

# 4 chunks of 4 env steps per iteration; the actor trains from iteration 1 (no critic warm-up) with a step large
# enough that every push after the first carries adapters far from their zero init
LORA = [
    "--algorithm.trainable=lora",
    "--algorithm.lora_rank=4",
    "--algorithm.critic_warmup_iters=0",
    "--algorithm.actor_lr=0.001",
    "--runtime.rollout_chunks=4",
    "--runtime.checkpoint_every=1",
    "--runtime.weights_wait_s=5",
]


def _train(out, *extra: str) -> dict:
    port = free_port()
    learner = spawn("learner", out, port, *LORA, *extra)
    actor = spawn("actor", out, port, *LORA, *extra)
    lr = report(learner, timeout=300)
    report(actor, timeout=60)
    return lr


@pytest.mark.slow  # two learner + actor sessions of the tiny X-VLA: ~2-3 min on 2 busy cores
def test_lora_pushes_keep_the_on_policy_log_ratio_below_1e_6_across_processes_and_through_a_resume(tmp_path):
    out = tmp_path / "run"
    first = _train(out, "--runtime.total_env_steps=32")
    n = first["iterations"]
    assert n >= 2
    algo_state = load_file(str(ckpt.verify_checkpoint(out).path / "algorithm" / "model.safetensors"))
    adapters = {k: v for k, v in algo_state.items() if k.startswith("lora.")}
    assert adapters and all(".lora_A." in k or ".lora_B." in k for k in adapters)
    assert max(float(v.abs().max()) for k, v in adapters.items() if ".lora_B." in k) > 1e-3  # the adapters moved

    second = _train(out, f"--runtime.total_env_steps={16 * (n + 1)}", "--resume=true")
    assert second["resumed_from"] is not None and second["iterations"] > n
    train = read_metrics(out / "metrics.jsonl", "train")
    assert [r["train/iteration"] for r in train] == list(range(1, second["iterations"] + 1))
    for r in train:  # the learner's first re-score of each batch, before any step: the ratio at learning rate 0
        assert abs(r["train/onpolicy_max_abs_log_ratio"]) < 1e-6, r
    saved = load_file(str(ckpt.verify_checkpoint(out).path / "pretrained_model" / "model.safetensors"))
    assert not any("lora_" in k or "base_layer" in k for k in saved)  # a plain LeRobot policy folder
    assert all(torch.isfinite(v).all() for v in saved.values())
