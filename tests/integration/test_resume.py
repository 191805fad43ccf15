"""Resume never discards training: a corrupt ``last`` falls back to the newest good checkpoint, said out loud,
metrics.jsonl keeps one monotone iteration sequence, the good checkpoints stay byte for byte."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from pirlctl import metrics as M
from pirlctl.runtime import checkpoint as ckpt

from .procs import ROOT, TINY_RUN, env, free_port, report, spawn

pytestmark = pytest.mark.integration

ARGS = ["--runtime.rollout_chunks=8", "--runtime.checkpoint_every=1", "--runtime.weights_wait_s=5"]


def _digests(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def _train(out, port, *extra: str) -> dict:
    learner = spawn("learner", out, port, *ARGS, *extra)
    actor = spawn("actor", out, port, *ARGS, *extra)
    lr = report(learner, timeout=300)
    report(actor, timeout=60)
    return lr


# slow (37 s): the fallback itself is unit-tested in test_checkpoint.py (test_resume_falls_back_...)
@pytest.mark.slow
def test_a_corrupt_last_resumes_from_the_newest_good_checkpoint_and_metrics_continue(tmp_path):
    out, port = tmp_path / "run", free_port()
    first = _train(out, port, "--runtime.total_env_steps=96")  # 32 env steps per iteration: 3 iterations
    n = first["iterations"]
    assert n >= 3 and first["resumed_from"] is None
    root = out / "checkpoints"
    assert sorted(p.name for p in root.iterdir() if p.name.isdigit()) == [f"{i:06d}" for i in (n - 2, n - 1, n)]
    good = ckpt.verify_checkpoint(root / f"{n - 1:06d}")
    before = {i: _digests(root / f"{i:06d}") for i in (n - 2, n - 1)}
    model = root / f"{n:06d}" / "pretrained_model" / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF  # bit rot in the newest checkpoint, the one `last` points at
    model.write_bytes(bytes(data))

    # without --resume the learner refuses to train over the run (one line, exit 2, nothing written)
    metrics_before = (out / "metrics.jsonl").read_bytes()
    refused = subprocess.run(
        [sys.executable, "-m", "pirlctl", "learner", "--config_path", str(TINY_RUN), f"--output_dir={out}",
         f"--runtime.learner_port={free_port()}"],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2 and "already holds checkpoints" in refused.stderr and "--resume" in refused.stderr
    assert (out / "metrics.jsonl").read_bytes() == metrics_before

    budget = f"--runtime.total_env_steps={int(good.counters['env_steps']) + 1}"  # one iteration past n - 1
    second = _train(out, port, budget, "--resume=true")

    assert second["resumed_from"] == str(good.path)
    note = second["resume_note"]
    assert f"resumed from {n - 1:06d}" in note and f"last -> {n:06d}" in note and "sha256" in note
    assert note in (out / "learner.log").read_text()
    assert second["iterations"] == n  # iteration n trained again from n - 1, under its own number
    iters = [r[M.TRAIN_ITERATION] for r in M.read_metrics(out / "metrics.jsonl", "train")]
    assert iters == list(range(1, n + 1))  # monotone: the lost iteration n moved out, the redone one in its place
    lost = M.read_metrics(out / "metrics.jsonl.lost", "train")
    assert [r[M.TRAIN_ITERATION] for r in lost] == [n]
    sessions = M.read_metrics(out / "metrics.jsonl", M.KIND_SESSION)
    assert [s[M.SESSION_NOTE] for s in sessions] == [None, note]
    records = M.read_metrics(out / "metrics.jsonl")
    gap = sessions[1]["time"] - max(r["time"] for r in records[: records.index(sessions[1])])
    assert gap > 0 and M.running_seconds(records) == pytest.approx(
        records[-1]["time"] - records[0]["time"] - gap, abs=1e-6
    )  # the time between the two learner processes is not running time

    # the good checkpoints are untouched byte for byte; `last` is a new, verified checkpoint n
    for i, digests in before.items():
        assert _digests(root / f"{i:06d}") == digests, i
    assert ckpt.verify_checkpoint(out).path == (root / f"{n:06d}").resolve()
    assert json.loads((root / "last" / "training_state" / "training_step.json").read_text())["iteration"] == n
