"""Build LeRobot policies from config files or local checkpoints, offline."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import draccus
from lerobot.configs.policies import PreTrainedConfig
from torch import nn

from pirlctl.configs import CONFIGS_DIR, DEFAULT_RUN_CONFIG, TINY_XVLA_CONFIG
from pirlctl.errors import PirlError


class PolicyLoadError(PirlError, ValueError):
    """A policy checkpoint cannot be loaded with the given config."""


# The configs shipped in the package (pirlctl.configs, standard library only), re-exported for older imports.
__all__ = [
    "CONFIGS_DIR",
    "DEFAULT_RUN_CONFIG",
    "TINY_XVLA_CONFIG",
    "PolicyLoadError",
    "build_policy",
    "load_policy_config",
]


def load_policy_config(path: str | Path) -> PreTrainedConfig:
    """A LeRobot policy config (draccus JSON with a ``type`` key, e.g. ``TINY_XVLA_CONFIG``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"policy config {p} not found; pass a JSON file such as {TINY_XVLA_CONFIG}")
    import lerobot.policies  # noqa: F401 - registers every policy config type (pi0, smolvla, ...) with draccus

    with draccus.config_type("json"):
        return draccus.parse(PreTrainedConfig, str(p), args=[])


def build_policy(config: PreTrainedConfig, pretrained_path: str | Path | None = None) -> nn.Module:
    """A policy from its config: randomly initialised, or loaded from a local LeRobot checkpoint directory.

    Never downloads: a ``pretrained_path`` that is not a local directory is refused.
    """
    from lerobot.policies.factory import get_policy_class

    from pirlctl.policies.tiny_builds import build_context

    cls = get_policy_class(config.type)
    # the tiny offline build of a config tagged tiny (no patch outlives it); SmolVLA's constructor print()s
    # progress, which would corrupt ``--json`` output: it goes to stderr
    with build_context(config), contextlib.redirect_stdout(sys.stderr):
        policy = _construct(cls, config, pretrained_path)
    return policy.to(config.device or "cpu")


def _construct(cls: Any, config: PreTrainedConfig, pretrained_path: str | Path | None) -> nn.Module:
    if pretrained_path is None:
        policy = cls(config)
    else:
        path = Path(pretrained_path)
        if not path.is_dir():
            raise FileNotFoundError(
                f"pretrained policy {path} is not a local directory; download it first (hf download ...) "
                "and pass the folder"
            )
        from pirlctl.policies.processors import require_pretrained_tokenizer

        require_pretrained_tokenizer(config, path)  # before the (possibly multi-GB) build
        try:
            policy = cls.from_pretrained(str(path), config=config, local_files_only=True)
        except (RuntimeError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise PolicyLoadError(
                f"the weights in {path} do not fit this {config.type} config ({first[:160]}); "
                "use the config the checkpoint was trained with (its run_config.json)"
            ) from err
    return policy
