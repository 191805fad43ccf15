"""``pirlctl checklist`` on a healthy install and with the factory registration removed; ``verify-sync --learner``
against a real ``pirlctl learner`` process, fresh and resumed from a later version."""

from __future__ import annotations

import json
import socket
import time

import pytest
import typer
from typer.testing import CliRunner

from pirlctl import lerobot_compat
from pirlctl.cli import checklist, verify_sync
from pirlctl.config.run_config import load_run_config
from pirlctl.diagnostics import checklist as items
from pirlctl.diagnostics.sync_checks import LOG_PROB_TOLERANCE
from pirlctl.diagnostics.verify_sync import verify_sync as run_verify_sync

from .procs import TINY_RUN, free_port, report, spawn

pytestmark = pytest.mark.integration

ALL_ITEMS = [
    items.PYTHON,
    items.LEROBOT_VERSION,
    items.RECIPE_WIRED,
    items.LEARNER_BRANCH,
    items.ACTOR_SYNC,
    items.SAC_UNAFFECTED,
    items.MUJOCO_GL,
    items.ENV_RENDERS,
    items.PORT_FREE,
    items.PY_SPY,
]


@pytest.fixture
def cli():
    app = typer.Typer()
    checklist.register(app)
    verify_sync.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_checklist_passes_every_item_on_a_healthy_install(cli):
    started = time.monotonic()
    result = cli("checklist", "--json", f"--runtime.learner_port={free_port()}")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [i["name"] for i in report["items"]] == ALL_ITEMS
    failed = {i["name"]: i["evidence"] for i in report["items"] if not i["passed"]}
    assert failed == {} and report["passed"] is True
    evidence = {i["name"]: i["evidence"] for i in report["items"]}
    assert "LeRobot make_algorithm → PiRLAlgorithm" in evidence[items.RECIPE_WIRED]
    assert "verified" in evidence[items.LEARNER_BRANCH]
    assert "v0 → v1" in evidence[items.ACTOR_SYNC] and "44/44 tensors match" in evidence[items.ACTOR_SYNC]
    assert "SACAlgorithm" in evidence[items.SAC_UNAFFECTED]
    assert "front mean" in evidence[items.ENV_RENDERS]
    assert time.monotonic() - started < 60


def test_checklist_fails_naming_recipe_wired_without_the_factory_registration(cli):
    lerobot_compat.uninstall()
    try:
        assert not lerobot_compat.is_installed()
        result = cli("doctor", "--config_path", str(TINY_RUN), f"--runtime.learner_port={free_port()}")
    finally:
        lerobot_compat.install()
    assert result.exit_code == 1, result.output
    out = result.stdout
    row = next(line for line in out.splitlines() if items.RECIPE_WIRED in line and "FAIL" in line)
    assert "make_algorithm" in row
    assert "registration" in out and "missing" in out  # the evidence cell (folded over lines) says why
    failed_line = next(line for line in out.splitlines() if "failed:" in line)
    assert items.RECIPE_WIRED in failed_line and items.SAC_UNAFFECTED not in failed_line  # SAC still builds


def test_both_names_are_registered_and_doctor_says_it_is_the_alias(cli):
    assert cli("checklist", "--help").exit_code == 0
    result = cli("doctor", "--help")
    assert result.exit_code == 0 and "Alias of" in result.stdout


def _wait_listening(port: int, proc, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"learner exited {proc.returncode}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"learner did not listen on {port} within {timeout}s")


def test_verify_sync_against_a_running_learner_process(cli, tmp_path):
    port = free_port()
    learner = spawn("learner", tmp_path / "run", port)
    try:
        _wait_listening(port, learner)
        result = cli("verify-sync", "--config_path", str(TINY_RUN), "--learner", f"127.0.0.1:{port}", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["passed"] is True
        assert report["live"]["source"] == f"learner 127.0.0.1:{port}" and report["live"]["version"] == 0
        assert report["live"]["mismatches"] == [] and report["live"]["tensors_compared"] == 44
        assert report["static"]["fingerprint_match"] is True
        assert report["numeric"]["clipfrac"] == 0.0
    finally:
        learner.kill()
        learner.communicate(timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(900)  # two real runs and two verify-syncs: about 5 min on 2 shared cores
def test_verify_sync_passes_against_a_learner_resumed_at_a_later_version_and_fails_on_a_planted_fault(cli, tmp_path):
    # a real run of a few PPO iterations, then its learner resumed from the checkpoint with no actor connected
    out, port = tmp_path / "run", free_port()
    first = ["--runtime.total_env_steps=64", "--runtime.rollout_chunks=8", "--runtime.checkpoint_every=2"]
    learner = spawn("learner", out, port, *first)
    actor = spawn("actor", out, port, *first)
    report(actor)
    n = report(learner)["iterations"]
    assert n >= 2
    learner = spawn(
        "learner", out, port, "--runtime.total_env_steps=100000", "--runtime.rollout_chunks=8", "--resume=true"
    )
    try:
        _wait_listening(port, learner)
        address = f"127.0.0.1:{port}"
        result = cli("verify-sync", "--config_path", str(TINY_RUN), "--learner", address, "--json")
        assert result.exit_code == 0, result.output
        rep = json.loads(result.stdout)
        assert rep["passed"] is True and rep["live"]["version"] == n and rep["live"]["mismatches"] == []
        num = rep["numeric"]
        # the actor side took the learner's version as its iteration: the annealed noise level (below its start,
        # 0.5) is the same on both sides, so on-policy data re-scores to ratio 1
        assert num["actor_noise_level"] == num["learner_noise_level"] < 0.5
        assert num["max_abs_delta_log_prob"] < LOG_PROB_TOLERANCE and num["clipfrac"] == 0.0

        # a planted mismatch against the same resumed learner still fails, in the numeric check
        planted = run_verify_sync(load_run_config(TINY_RUN), learner_address=address, perturb_learner=1e-3, chunks=2)
        assert planted.live.passed and planted.live.version == n
        assert not planted.passed and not planted.numeric.passed
        assert planted.numeric.max_abs_delta_log_prob is not None
        assert planted.numeric.max_abs_delta_log_prob > LOG_PROB_TOLERANCE
    finally:
        learner.kill()
        learner.communicate(timeout=30)
