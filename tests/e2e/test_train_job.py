"""``pirlctl train`` end to end with a tiny budget, then ``pirlctl eval`` on what it saved."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from pirlctl.metrics import read_metrics

from ..integration.procs import ROOT, env, free_port

pytestmark = pytest.mark.integration


def _pirlctl(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pirlctl", *args], capture_output=True, text=True, env=env(), cwd=ROOT, timeout=timeout
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("job")
    run = base / "run"
    args = [
        "train",
        "--json",
        "--no-dashboard",
        f"--output_dir={run}",
        f"--pipeline.cache_dir={base / 'cache'}",
        "--pipeline.demo_episodes=2",
        "--pipeline.sft_steps=20",
        "--pipeline.eval_episodes=2",
        "--runtime.total_env_steps=64",
        "--runtime.num_actors=1",
        "--runtime.rollout_chunks=8",
        f"--runtime.learner_port={free_port()}",
    ]
    proc = _pirlctl(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (base / "terminal.txt").write_text(proc.stderr)  # what the user saw (stdout is the JSON report)
    return run, json.loads(proc.stdout), args


def test_the_terminal_shows_each_stages_progress_and_no_third_party_line(trained):
    run, _, _ = trained
    terminal = (run.parent / "terminal.txt").read_text()
    lines = terminal.splitlines()
    for noise in ("Map", "%|", "Box", "precision", "Warning", "WARN", "absl", "fork_posix", "grpc"):
        assert noise not in terminal, (noise, terminal[-3000:])
    assert not [line for line in lines if re.match(r"[EIWF]\d{4} ", line)], terminal  # gRPC core's log format
    for stage in ("demos 2/2 episodes, done", "sft 20/20 steps, done", "eval_sft 2/2 episodes, done"):
        assert stage in lines or any(line.startswith(stage) for line in lines), (stage, terminal)
    assert any(re.match(r"rl 64/64 env steps, done, \d+ episodes?$", line) for line in lines), terminal
    assert "eval_rl 2/2 episodes, done" in lines, terminal
    # the third-party output went to the run folder instead: gymnasium's warning on the demo env, for one
    assert "precision" in (run / "train.log").read_text()


def test_train_writes_the_run_folder_and_the_report_comes_from_the_metrics(trained):
    run, report, _ = trained
    for name in (
        "run_config.json",
        "metrics.jsonl",
        "learning_curve.png",
        "report.md",
        "report.json",
        "eval_sft.json",
        "eval_rl.json",
        "learner.log",
        "actor0.log",
        "checkpoints/last/manifest.json",
    ):
        assert (run / name).exists(), name
    train = read_metrics(run / "metrics.jsonl", "train")
    assert len(train) == report["iterations"] >= 2
    sft, rl = (json.loads((run / f).read_text()) for f in ("eval_sft.json", "eval_rl.json"))
    assert report["sft_success"] == sft["success_rate"] and report["rl_success"] == rl["success_rate"]
    assert report["rl_ci95"] == [rl["ci95_low"], rl["ci95_high"]]
    assert report["env_steps"] == train[-1]["train/env_steps"] >= 64
    assert json.loads((run / "report.json").read_text()) == report  # what --json printed, kept in the run folder
    md = (run / "report.md").read_text()
    assert f"| {report['iterations']} |" in md and f"{100 * rl['success_rate']:.1f}%" in md
    assert json.loads((run / "run_config.json").read_text())["policy_path"]  # RL started from the SFT policy


def test_second_run_reuses_every_stage(trained):
    run, _, args = trained
    proc = _pirlctl(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(json.loads(proc.stdout)["stages_reused"]) >= {"demos", "sft", "eval_sft", "rl", "eval_rl"}


def test_eval_on_the_saved_checkpoint_and_one_line_errors(trained, tmp_path):
    run, _, _ = trained
    proc = _pirlctl("eval", str(run / "checkpoints" / "last"), "--episodes", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(proc.stdout)
    assert rep["episodes"] == 2 and 0.0 <= rep["ci95_low"] <= rep["success_rate"] <= rep["ci95_high"] <= 1.0
    # the job evaluated the same checkpoint in two processes (one episode each): merged, it is this one evaluation
    split = json.loads((run / "eval_rl.json").read_text())
    for key in ("episodes", "successes", "mean_return", "mean_length", "env_steps", "ci95_low", "ci95_high"):
        assert split[key] == pytest.approx(rep[key]), key

    missing = _pirlctl("eval", str(tmp_path / "nope"), "--episodes", "1")
    assert missing.returncode == 2
    assert "no checkpoint at" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

    wrong = _pirlctl(
        "eval", str(run), "--episodes", "1", "--config_path", str(run / "run_config.json"), "--policy.hidden_size=32"
    )
    assert wrong.returncode == 2
    assert "do not fit" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1


# slow (12 s): test_second_run_reuses_every_stage covers the caches in the default suite
@pytest.mark.slow
def test_rerunning_from_the_run_folders_run_config_reuses_the_cached_demos_and_sft_policy(trained):
    run, _, _ = trained
    proc = _pirlctl("train", "--json", "--no-dashboard", "--config_path", str(run / "run_config.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(json.loads(proc.stdout)["stages_reused"]) >= {"demos", "sft", "eval_sft", "rl", "eval_rl"}


def _flip_last_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _digests(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def _args(args: list[str], run, *extra: str) -> list[str]:
    """The fixture's train command for another run folder (its demos and SFT policy come from the cache)."""
    own = ("--output_dir=", "--runtime.learner_port=")
    kept = [a for a in args if not a.startswith(own)]
    return [*kept, f"--output_dir={run}", f"--runtime.learner_port={free_port()}", *extra]


def test_train_over_a_run_whose_checkpoints_all_fail_stops_in_one_line_and_changes_nothing(trained, tmp_path):
    run, _, args = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    for model in (copy / "checkpoints").glob("0*/pretrained_model/model.safetensors"):
        _flip_last_byte(model)
    before = _digests(copy / "checkpoints"), (copy / "metrics.jsonl").read_bytes()
    proc = _pirlctl(*_args(args, copy, "--runtime.total_env_steps=96"))
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert str(copy / "checkpoints") in line and "--fresh" in line and "--resume-from" in line
    assert (_digests(copy / "checkpoints"), (copy / "metrics.jsonl").read_bytes()) == before


# slow (24 s): the learner's own held-port line is tested fast in tests/integration/test_net.py
@pytest.mark.slow
def test_train_whose_learner_cannot_bind_its_port_stops_with_the_learners_line_and_changes_nothing(trained, tmp_path):
    """Another job's learner holds the port: the job ends with the learner's own one-line reason (not a later,
    misleading "no checkpoint"), its actors are stopped, and the run folder's checkpoints and metrics are untouched."""
    run, _, args = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    before = _digests(copy / "checkpoints"), (copy / "metrics.jsonl").read_bytes()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        extra = ("--runtime.total_env_steps=96", f"--runtime.learner_port={port}")
        proc = _pirlctl(*[a for a in _args(args, copy) if not a.startswith("--runtime.learner_port=")], *extra)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "learner exited" in line and f"port {port}" in line and "--port" in line, line
    assert str(copy / "learner.stderr") in line
    assert (_digests(copy / "checkpoints"), (copy / "metrics.jsonl").read_bytes()) == before


@pytest.mark.slow  # ~2 min; tests/unit/test_checkpoint.py covers the fallback in the default suite
def test_train_over_a_corrupt_last_resumes_from_the_previous_checkpoint_and_the_report_says_so(trained, tmp_path):
    _, _, args = trained
    run = tmp_path / "run"
    first = _pirlctl(*_args(args, run, "--runtime.checkpoint_every=1"))
    assert first.returncode == 0, first.stderr[-2000:]
    n = json.loads(first.stdout)["iterations"]
    root = run / "checkpoints"
    good = root / f"{n - 1:06d}"
    before = _digests(good)
    steps = json.loads((good / "training_state" / "training_step.json").read_text())["env_steps"]
    _flip_last_byte(root / f"{n:06d}" / "pretrained_model" / "model.safetensors")

    proc = _pirlctl(*_args(args, run, "--runtime.checkpoint_every=1", f"--runtime.total_env_steps={steps + 1}"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert f"resumed from {n - 1:06d}" in proc.stderr  # said on the console as it happens
    assert report["rl_sessions"] == 2 and len(report["resume_notes"]) == 1
    assert f"resumed from {n - 1:06d}" in report["resume_notes"][0] and f"last -> {n:06d}" in report["resume_notes"][0]
    assert report["iterations"] == n and not {"rl", "eval_rl"} & set(report["stages_reused"])
    assert json.loads((run / "report.json").read_text()) == report
    md = (run / "report.md").read_text()
    assert "Resumed by fallback" in md and report["resume_notes"][0] in md and "| learner sessions | 2 |" in md
    assert [r["train/iteration"] for r in read_metrics(run / "metrics.jsonl", "train")] == list(range(1, n + 1))
    assert _digests(good) == before
    records = read_metrics(run / "metrics.jsonl")
    assert 0 < report["rl_wall_seconds"] < records[-1]["time"] - records[0]["time"]  # the pause is not counted
    assert json.loads((run / "eval_rl.json").read_text())["checkpoint"] == str((root / f"{n:06d}").resolve())


# slow (~30 s): tests/unit/test_train_job_keys.py::test_rl_stopped_early_is_one_line_naming_what_was_saved_and_ctrl_c_
# exits_130 covers the line and the exit code in the default suite
@pytest.mark.slow
def test_ctrl_c_during_rl_stops_at_once_with_a_checkpoint_and_evaluates_nothing(trained, tmp_path):
    run, _, args = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    report = json.loads((copy / "report.json").read_text())
    before, steps = report["iterations"], report["env_steps"]
    cmd = [sys.executable, "-m", "pirlctl", *_args(args, copy, "--runtime.total_env_steps=100000")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT, start_new_session=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until RL has trained on, as a user watching the progress lines would
        progress = re.match(r"rl (\d+)/100000 env steps", line)
        if progress and int(progress.group(1)) > steps + 64:
            break
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    last = rest.strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: RL interrupted: the learner saved iteration (\d+) \(\d+ env steps\) in \S+; run the same command "
        r"again to resume",
        last,
    ), rest
    assert "eval_rl" not in rest  # nothing is evaluated after Ctrl-C
    saved = int(re.search(r"iteration (\d+)", last).group(1))
    assert saved > before and (copy / "checkpoints" / "last").resolve().name == f"{saved:06d}"
