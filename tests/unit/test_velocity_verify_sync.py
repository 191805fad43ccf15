"""``pirlctl verify-sync`` (real gRPC on loopback, in-process learner) and ``profile-actor`` on the tiny π0, π0.5 and
SmolVLA run configs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from pirlctl.cli import verify_sync as verify_sync_cmd
from pirlctl.diagnostics.sync_checks import LOG_PROB_TOLERANCE


@pytest.mark.parametrize("name", ["pick_cube_tiny_pi0", "pick_cube_tiny_pi05", "pick_cube_tiny_smolvla"])
def test_verify_sync_passes_on_the_tiny_velocity_configs(name):
    app = typer.Typer()
    verify_sync_cmd.register(app)
    app.command()(lambda: None)  # a second command keeps typer from collapsing the app into the single command
    result = CliRunner().invoke(app, ["verify-sync", "--config_path", name, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    static, live, numeric = report["static"], report["live"], report["numeric"]
    assert static["problems"] == [] and static["keys_pushed"] == static["keys_expected"] > 0
    assert live["tensors_compared"] == static["keys_pushed"] and live["mismatches"] == []
    assert numeric["max_abs_delta_log_prob"] < LOG_PROB_TOLERANCE and numeric["clipfrac"] == 0.0


# pi0 in the default suite; the other two run the same code path with their own adapter (~12 s each: slow)
@pytest.mark.parametrize(
    "name",
    [
        "pick_cube_tiny_pi0",
        pytest.param("pick_cube_tiny_pi05", marks=pytest.mark.slow),
        pytest.param("pick_cube_tiny_smolvla", marks=pytest.mark.slow),
    ],
)
def test_profile_actor_runs_on_the_tiny_velocity_configs(name):
    """A real ``pirlctl profile-actor`` process: the actor loop (env, prefix, denoise, log-prob) on each policy."""
    res = subprocess.run(
        [sys.executable, "-m", "pirlctl", "profile-actor", "--config_path", name, "--steps", "8", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Warning" not in res.stderr and "WARN" not in res.stderr, res.stderr  # e.g. gymnasium's Box precision
    (row,) = json.loads(res.stdout)["rows"]
    assert row["chunks"] == 2 and row["policy_fps_mean"] > 0
    assert row["seconds_per_chunk"]["prefix"] > 0 and row["seconds_per_chunk"]["denoise"] > 0
