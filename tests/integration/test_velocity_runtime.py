"""π0, π0.5 and SmolVLA across real processes (issue 19): an lr-0 PPO update between a ``pirlctl learner`` and a
``pirlctl actor`` re-scores to ratio 1 under each noise method; ``verify-sync`` passes against a live learner;
``pirlctl train`` with a tiny budget completes and ``pirlctl eval`` evaluates its checkpoint."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from pirlctl.cli import verify_sync
from pirlctl.configs import CONFIGS_DIR
from pirlctl.diagnostics.sync_checks import LOG_PROB_TOLERANCE
from pirlctl.metrics import read_metrics
from pirlctl.runtime import checkpoint as ckpt

from .procs import ROOT, env, free_port, report, spawn
from .test_diagnostics import _wait_listening

pytestmark = pytest.mark.integration

POLICIES = ["pi0", "pi05", "smolvla"]
# (noise_method, sampling) as configuration_pi_rl.py names them; Flow-Noise's default sampling is the full chain
METHODS = {
    "flow_sde_hybrid": ("flow_sde", "hybrid"),
    "flow_sde_full_chain": ("flow_sde", "full_chain"),
    "flow_noise": ("flow_noise", "full_chain"),
}
# One PPO iteration of 4 chunks × 4 executed actions, both learning rates 0, the actor step taken (no critic warm-up).
# The learner re-scores one chunk per minibatch, the shapes the actor sampled at (one env: batch 1). At other batch
# sizes CPU GEMMs block rows differently (MKL: row 0 of a [1, K] and of a [4, K] product differ in the last bit), and a
# last-bit change of a step mean moves a full-chain log-prob term by ~1e-6 at the chain's small late-step σ: rounding,
# not a sync defect, so it would hide the check's point. At batch 1 on both sides the re-score is bit-exact.
LR_ZERO = [
    "--runtime.total_env_steps=16",
    "--runtime.rollout_chunks=4",
    "--algorithm.minibatch_size=1",
    "--algorithm.actor_lr=0",
    "--algorithm.actor_lr_final=0",
    "--algorithm.value_lr=0",
    "--algorithm.critic_warmup_iters=0",
]


def _config(policy: str):
    return CONFIGS_DIR / f"pick_cube_tiny_{policy}.json"


def _cases():
    for policy in POLICIES:
        for method in METHODS:
            # all nine are slow (~50 s each on 2 cores): the default suite keeps the on-policy re-score across
            # processes for X-VLA (test_runtime.py, test_diagnostics.py's verify-sync against a live learner) and the
            # velocity adapters' exactness in-process (unit: test_velocity_policies.py, test_velocity_verify_sync.py)
            yield pytest.param(policy, method, marks=(pytest.mark.slow,), id=f"{policy}-{method}")


@pytest.mark.parametrize(("policy", "method"), list(_cases()))
def test_an_lr_zero_update_across_learner_and_actor_processes_has_unit_ratio_and_no_clipping(policy, method, tmp_path):
    noise_method, sampling = METHODS[method]
    out, port = tmp_path / "run", free_port()
    args = [*LR_ZERO, f"--algorithm.noise_method={noise_method}", f"--algorithm.sampling={sampling}"]
    learner = spawn("learner", out, port, *args, config=_config(policy))
    actor = spawn("actor", out, port, *args, config=_config(policy))
    a, lr = report(actor), report(learner)
    assert lr["iterations"] == 1 and lr["stopped_by"] == "budget" and lr["chunks_used"] == 4
    assert a["versions_loaded"] == [0, 1]
    # the run really was this policy under this method
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["policy"]["type"] == policy
    assert (saved["algorithm"]["noise_method"], saved["algorithm"]["sampling"]) == (noise_method, sampling)
    (train,) = read_metrics(out / "metrics.jsonl", "train")
    assert train["data/batch_versions"] == [0] and train["train/actor_lr"] == 0.0
    assert train["train/actor_grad_norm"] > 0  # the actor step was taken (at lr 0), not skipped by a warm-up
    # the learner re-scores what the actor sampled with the same weights: log ratio ~0 before and after every
    # (lr-0) step of every epoch, and nothing is clipped
    assert train["train/onpolicy_max_abs_log_ratio"] < 1e-6
    assert max(abs(math.log(train["train/ratio_min"])), abs(math.log(train["train/ratio_max"]))) < 1e-6
    assert train["train/clipfrac"] == 0.0


@pytest.fixture
def cli():
    app = typer.Typer()
    verify_sync.register(app)
    app.command()(lambda: None)  # a second command keeps typer from collapsing the app into the single command
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.mark.slow  # a learner process per policy and two verify-syncs: ~1.5 min each on 2 shared cores
@pytest.mark.parametrize("policy", POLICIES)
def test_verify_sync_passes_on_its_config_and_against_a_live_learner_process(policy, cli, tmp_path):
    config = str(_config(policy))
    result = cli("verify-sync", "--config_path", config, "--json")
    assert result.exit_code == 0, result.output
    own = json.loads(result.stdout)
    assert own["passed"] is True and own["live"]["source"].startswith("in-process learner")
    assert own["live"]["mismatches"] == [] and own["numeric"]["clipfrac"] == 0.0

    port = free_port()
    learner = spawn("learner", tmp_path / "run", port, config=_config(policy))
    try:
        _wait_listening(port, learner, timeout=180)
        result = cli("verify-sync", "--config_path", config, "--learner", f"127.0.0.1:{port}", "--json")
        assert result.exit_code == 0, result.output
        rep = json.loads(result.stdout)
        assert rep["passed"] is True
        static, live, numeric = rep["static"], rep["live"], rep["numeric"]
        assert live["source"] == f"learner 127.0.0.1:{port}" and live["version"] == 0
        # every tensor the learner pushes (unused lm_heads excluded) arrived bit-exact
        assert static["problems"] == [] and static["keys_pushed"] == static["keys_expected"] > 0
        assert live["tensors_compared"] == static["keys_pushed"] and live["mismatches"] == []
        assert static["fingerprint_match"] is True
        assert numeric["max_abs_delta_log_prob"] < LOG_PROB_TOLERANCE and numeric["clipfrac"] == 0.0
    finally:
        learner.kill()
        learner.communicate(timeout=30)


def _pirlctl(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pirlctl", *args], capture_output=True, text=True, env=env(), cwd=ROOT, timeout=timeout
    )


@pytest.mark.slow  # demos, SFT, two evaluations and RL in real processes: ~5 min per policy on 2 shared cores
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("policy", POLICIES)
def test_train_with_a_tiny_budget_completes_and_eval_evaluates_its_checkpoint(policy, tmp_path):
    run = tmp_path / "run"
    proc = _pirlctl(
        "train",
        "--config_path",
        str(_config(policy)),
        "--json",
        "--no-dashboard",
        f"--output_dir={run}",
        f"--pipeline.cache_dir={tmp_path / 'cache'}",
        "--pipeline.demo_episodes=2",
        "--pipeline.sft_steps=10",
        "--pipeline.eval_episodes=2",
        "--runtime.total_env_steps=32",
        "--runtime.num_actors=1",
        "--runtime.rollout_chunks=4",
        f"--runtime.learner_port={free_port()}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(proc.stdout)
    assert rep["iterations"] >= 2 and rep["env_steps"] >= 32
    assert rep["stages_reused"] == [] and rep["stages_skipped"] == []
    assert json.loads((run / "run_config.json").read_text())["policy"]["type"] == policy
    train = read_metrics(run / "metrics.jsonl", "train")
    assert [r["train/iteration"] for r in train] == list(range(1, rep["iterations"] + 1))
    saved = ckpt.verify_checkpoint(run)
    assert saved.iteration == rep["iterations"]

    ev = _pirlctl("eval", str(run / "checkpoints" / "last"), "--episodes", "2", "--json", timeout=600)
    assert ev.returncode == 0, ev.stderr[-2000:]
    evaluated = json.loads(ev.stdout)
    assert evaluated["checkpoint"] == str(saved.path.resolve()) and evaluated["episodes"] == 2
    # ODE evaluation is deterministic: the fresh process that reloaded the checkpoint reproduces the job's own
    # evaluation of it (done in two processes, one episode each)
    job = json.loads((run / "eval_rl.json").read_text())
    for key in ("episodes", "successes", "mean_return", "mean_length", "env_steps"):
        assert job[key] == pytest.approx(evaluated[key]), key
    assert rep["rl_success"] == job["success_rate"]
