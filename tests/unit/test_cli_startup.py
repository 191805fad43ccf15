"""Start-up: ``import pirlctl`` and ``--help``/``version`` load neither torch nor LeRobot; ``pi_rl`` still registers
with LeRobot whenever the algorithm is used; no path of this checkout in any help text. Each check runs in a fresh
interpreter (this test process has imported torch already). Speed itself is measured in bench/cli_startup.py."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "lerobot", "draccus", "gymnasium", "transformers")


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level package names a ``python -X importtime`` run imported."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def _commands() -> list[str]:
    import typer

    from pirlctl.cli.app import app

    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_import_pirlctl_loads_neither_torch_nor_lerobot():
    code = f"import sys, pirlctl; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    res = _python("-c", code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("trigger", ["from pirlctl import PiRLConfig", "import pirlctl.runtime.build"])
def test_pi_rl_registers_with_lerobot_whenever_the_algorithm_is_used(trigger):
    code = (
        f"{trigger}\n"
        "from lerobot.rl.algorithms.factory import get_algorithm_class, make_algorithm_config\n"
        "from lerobot.rl.algorithms.configs import RLAlgorithmConfig\n"
        "print(type(make_algorithm_config('pi_rl')).__name__, get_algorithm_class('pi_rl').__name__,"
        " RLAlgorithmConfig.get_choice_class('pi_rl').__name__, get_algorithm_class('sac').__name__)"
    )
    res = _python("-c", code)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["PiRLConfig", "PiRLAlgorithm", "PiRLConfig", "SACAlgorithm"]


def test_pirlctl_has_no_attribute_beyond_its_lazy_ones():
    import pirlctl

    with pytest.raises(AttributeError, match="no attribute 'PiRLConfg'"):
        pirlctl.PiRLConfg  # noqa: B018


def test_help_of_every_command_imports_nothing_heavy_and_shows_no_checkout_path():
    commands = _commands()
    assert {"train", "pretrain", "checklist", "learner", "version"} <= set(commands)
    for argv in [[], *([c] for c in commands)]:
        res = _python("-X", "importtime", "-m", "pirlctl", *argv, "--help")
        assert res.returncode == 0, (argv, res.stderr[-2000:])
        assert "Usage" in res.stdout, argv
        assert str(REPO_ROOT) not in res.stdout, (argv, res.stdout)
        heavy = _imported(res.stderr) & set(HEAVY)
        assert not heavy, (argv, heavy)


def test_default_config_help_names_the_built_in_config():
    res = _python("-m", "pirlctl", "train", "--help")
    assert "(default: pick_cube_tiny)" in " ".join(res.stdout.replace("│", " ").split())


def test_version_json_reads_package_metadata_without_importing_torch():
    res = _python("-X", "importtime", "-m", "pirlctl", "version", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout)
    for name in ("pirlctl", "lerobot", "torch"):
        assert got[name] == importlib.metadata.version(name)
    assert got["python"] == ".".join(map(str, sys.version_info[:3]))
    assert not _imported(res.stderr) & set(HEAVY)
