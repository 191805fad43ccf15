"""A wheel of pirlctl carries its configs: installed outside the checkout, it finds and loads its default config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a wheel build and two cold imports: ~1-2 min on 2 cores

PROBE = """
import json, pirlctl
from pirlctl.config.run_config import load_run_config
from pirlctl.configs import DEFAULT_RUN_CONFIG
from pirlctl.policies.loading import DEFAULT_RUN_CONFIG as legacy
cfg = load_run_config(DEFAULT_RUN_CONFIG)
overlay = load_run_config("pick_cube_tiny_pixels_full_range")
print(json.dumps({"module": pirlctl.__file__, "default": str(DEFAULT_RUN_CONFIG), "legacy": str(legacy),
                  "state": list(cfg.policy.robot_state_feature.shape), "steps": cfg.runtime.total_env_steps,
                  "overlay": [overlay.env.cube_range, overlay.runtime.total_env_steps]}))
"""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_a_wheel_installed_outside_the_checkout_loads_its_default_config_and_answers_help(tmp_path):
    # build from a copy: a build in the checkout would leave build/ and *.egg-info there
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, proj / name)
    shutil.copytree(ROOT / "src", proj / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist, site, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(proj)], cwd=tmp_path)
    (wheel,) = dist.glob("pirlctl-*.whl")
    _run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], cwd=tmp_path)

    # PYTHONPATH comes before the venv's editable .pth (which points at a checkout's src): the wheel's copy wins
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = json.loads(_run([sys.executable, "-c", PROBE], cwd=elsewhere, env=env).strip().splitlines()[-1])
    assert Path(out["module"]).is_relative_to(site)
    assert Path(out["default"]) == site / "pirlctl" / "configs" / "pick_cube_tiny.json" == Path(out["legacy"])
    assert out["state"] == [21] and out["steps"] == 45000 and out["overlay"] == [None, 75000]
    assert (site / "pirlctl" / "configs" / "policy" / "tiny_xvla.json").is_file()
    assert (site / "pirlctl" / "configs" / "README.md").is_file()

    wide = {**env, "COLUMNS": "1000"}  # no line wrapping inside a path
    help_text = _run([sys.executable, "-m", "pirlctl", "train", "--help"], cwd=elsewhere, env=wide)
    assert "--config_path" in help_text
    assert str(ROOT) not in help_text  # no path of the checkout in the help
