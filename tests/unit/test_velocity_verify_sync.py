"""``pirlctl verify-sync`` on the tiny π0, π0.5 and SmolVLA run configs (real gRPC on loopback, in-process learner)."""

from __future__ import annotations

import json

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
