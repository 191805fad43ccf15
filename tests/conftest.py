"""Shared fixtures: tiny seeded models on CPU, built offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

import pirlctl.algorithms.pi_rl  # noqa: E402,F401  (registers pi_rl with LeRobot)
from pirlctl.policies.loading import TINY_XVLA_CONFIG, build_policy, load_policy_config  # noqa: E402
from pirlctl.policies.xvla import LANGUAGE_TOKENS_KEY, tokenize_task  # noqa: E402


@pytest.fixture
def tiny_xvla_config():
    return load_policy_config(TINY_XVLA_CONFIG)


@pytest.fixture
def tiny_xvla(tiny_xvla_config):
    torch.manual_seed(0)
    return build_policy(tiny_xvla_config)


def make_xvla_batch(config, batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {}
    for key, feat in config.input_features.items():
        if key.startswith("observation.images"):
            batch[key] = torch.rand(batch_size, *feat.shape, generator=g)
        else:
            batch[key] = torch.randn(batch_size, *feat.shape, generator=g)
    batch[LANGUAGE_TOKENS_KEY] = tokenize_task("pick up the cube", config, batch_size)[0]
    return batch


@pytest.fixture
def xvla_batch(tiny_xvla_config):
    return make_xvla_batch(tiny_xvla_config, 6)


@pytest.fixture
def child_json():
    """Runs a Python snippet in a fresh interpreter (rendering needs one GL context per process, pick_cube.py) and
    returns its last stdout line parsed as JSON; a child that fails fails the test with its stderr."""

    def run(code: str, *args: str, timeout: int = 600) -> Any:
        res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
        assert res.returncode == 0, res.stderr[-3000:]
        return json.loads(res.stdout.strip().splitlines()[-1])

    return run
