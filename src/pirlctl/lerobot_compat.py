"""The one module that touches LeRobot internals that are not public API.

LeRobot 0.6.1's ``lerobot.rl.algorithms.factory.get_algorithm_class`` hard-codes ``"sac"`` (a newly registered
``RLAlgorithmConfig`` raises ValueError there), and both ``make_algorithm`` and LeRobot's actor/learner go through
it. :func:`install` wraps it so that ``pi_rl`` resolves to :class:`PiRLAlgorithm` and every other name falls
through to LeRobot's own lookup (so ``sac`` is untouched). Guarded by the LeRobot version: a version outside the
tested range, or a factory whose shape changed, fails loudly instead of half-working.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
from typing import Any

from pirlctl.errors import PirlError

SUPPORTED_LEROBOT = ((0, 6), (0, 7))  # [0.6, 0.7)


class LeRobotCompatError(PirlError, RuntimeError):
    """The installed LeRobot is not one pirlctl's glue was written for."""


def lerobot_version() -> str:
    return importlib.metadata.version("lerobot")


def _parse(version: str) -> tuple[int, int]:
    parts = version.split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def check_lerobot_version(version: str | None = None) -> str:
    """Raise :class:`LeRobotCompatError` unless LeRobot is in the supported 0.6 series."""
    v = version or lerobot_version()
    lo, hi = SUPPORTED_LEROBOT
    if not (lo <= _parse(v) < hi):
        raise LeRobotCompatError(
            f"lerobot {v} is not supported; pirlctl needs lerobot>={lo[0]}.{lo[1]},<{hi[0]}.{hi[1]} "
            "(pip install 'lerobot>=0.6.1,<0.7')"
        )
    return v


def _check_factory_shape(factory: Any) -> None:
    """The factory must still look like 0.6.1's: else our wrapper could silently stop being used."""
    for name in ("get_algorithm_class", "make_algorithm", "make_algorithm_config"):
        if not hasattr(factory, name):
            raise LeRobotCompatError(f"lerobot.rl.algorithms.factory.{name} is gone; update pirlctl.lerobot_compat")
    params = list(inspect.signature(factory.get_algorithm_class).parameters)
    if params != ["name"]:
        raise LeRobotCompatError(f"get_algorithm_class signature changed to {params}; update pirlctl.lerobot_compat")
    src = inspect.getsource(factory.make_algorithm)
    if "get_algorithm_class(" not in src:
        raise LeRobotCompatError("make_algorithm no longer calls get_algorithm_class; update pirlctl.lerobot_compat")


_PIRL_ALGORITHMS = {"pi_rl": "pirlctl.algorithms.pi_rl.pi_rl_algorithm:PiRLAlgorithm"}


def _resolve(path: str) -> Any:
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


def install() -> None:
    """Register pirlctl's algorithms with LeRobot's factory (idempotent)."""
    check_lerobot_version()
    from lerobot.rl.algorithms import factory

    _check_factory_shape(factory)
    current = factory.get_algorithm_class
    if getattr(current, "__pirlctl__", False):
        return
    original = current

    @functools.wraps(original)
    def get_algorithm_class(name: str):
        if name in _PIRL_ALGORITHMS:
            return _resolve(_PIRL_ALGORITHMS[name])
        return original(name)

    get_algorithm_class.__pirlctl__ = True  # type: ignore[attr-defined]
    get_algorithm_class.__wrapped_original__ = original  # type: ignore[attr-defined]
    factory.get_algorithm_class = get_algorithm_class


def is_installed() -> bool:
    from lerobot.rl.algorithms import factory

    return bool(getattr(factory.get_algorithm_class, "__pirlctl__", False))


def uninstall() -> None:
    """Undo :func:`install` (tests and the checklist's planted-fault check use it)."""
    from lerobot.rl.algorithms import factory

    original = getattr(factory.get_algorithm_class, "__wrapped_original__", None)
    if original is not None:
        factory.get_algorithm_class = original
