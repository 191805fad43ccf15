"""algorithm.image_shift across a real learner and actor process: an lr-0 PPO update re-scores the shifted images the
actor sampled from to ratio 1, with nothing clipped (the lr-0 pattern of test_velocity_runtime.py)."""

from __future__ import annotations

import json
import math

import pytest

from pirlctl.metrics import read_metrics

from .procs import free_port, report, spawn
from .test_velocity_runtime import LR_ZERO

# slow (~75 s): tests/unit/test_augment_onpolicy.py checks the same exactness in-process in the default suite
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_an_lr_zero_update_with_image_shift_on_has_unit_ratio_and_no_clipping(tmp_path):
    out, port = tmp_path / "run", free_port()
    args = [*LR_ZERO, "--algorithm.image_shift=4"]
    learner = spawn("learner", out, port, *args)
    actor = spawn("actor", out, port, *args)
    a, lr = report(actor), report(learner)
    assert lr["iterations"] == 1 and lr["chunks_used"] == 4 and a["versions_loaded"] == [0, 1]
    assert json.loads((out / "run_config.json").read_text())["algorithm"]["image_shift"] == 4
    (train,) = read_metrics(out / "metrics.jsonl", "train")
    assert train["train/actor_lr"] == 0.0 and train["train/actor_grad_norm"] > 0  # the step was taken, at lr 0
    assert train["train/onpolicy_max_abs_log_ratio"] < 1e-6
    assert max(abs(math.log(train["train/ratio_min"])), abs(math.log(train["train/ratio_max"]))) < 1e-6
    assert train["train/clipfrac"] == 0.0
