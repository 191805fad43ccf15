"""``pirlctl checklist`` on a healthy install and with the factory registration removed; ``verify-sync --learner``
against a real ``pirlctl learner`` process."""

from __future__ import annotations

import json
import socket
import time

import pytest
import typer
from typer.testing import CliRunner

from pirlctl import lerobot_compat
from pirlctl.cli import checklist, verify_sync
from pirlctl.diagnostics import checklist as items

from .procs import TINY_RUN, free_port, spawn

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
