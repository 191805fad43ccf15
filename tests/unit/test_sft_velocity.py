"""pirlctl's SFT stage trains π0, π0.5 and SmolVLA (tiny offline builds) on the job's demos format: their own
training loss, with the prompt (tokens, attention mask; π0.5's state as text) built as the actor builds it."""

from __future__ import annotations

import math

import pytest

from pirlctl.config.run_config import load_run_config
from pirlctl.pipeline.sft import behaviour_clone

from .test_processors import _fake_demos


@pytest.mark.parametrize("name", ["pi0", "pi05", "smolvla"])
def test_sft_trains_the_velocity_policies_and_writes_a_loadable_folder(name, tmp_path):
    cfg = load_run_config(f"pick_cube_tiny_{name}", [f"--output_dir={tmp_path / 'run'}"])
    demos = _fake_demos(tmp_path / "demos", cfg.env)
    report = behaviour_clone(cfg.policy, demos, tmp_path / "sft", steps=2, batch_size=4, lr=1e-3, seed=0)
    assert math.isfinite(report.final_loss)
    assert (tmp_path / "sft" / "model.safetensors").is_file() and (tmp_path / "sft" / "config.json").is_file()
