"""pirlctl: PI-RL for LeRobot flow-matching policies.

``import pirlctl`` is cheap (no torch, no LeRobot), so ``pirlctl --help`` answers at once. ``pi_rl`` registers with
LeRobot's ``RLAlgorithmConfig`` registry and its algorithm factory whenever the algorithm is used: importing
:mod:`pirlctl.algorithms.pi_rl` (or anything under it, or ``from pirlctl import PiRLConfig``) does it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pirlctl.algorithms.pi_rl import PiRLConfig

__all__ = ["PiRLConfig", "__version__"]


def __getattr__(name: str) -> Any:
    """``pirlctl.PiRLConfig`` is loaded on first use (PEP 562): it imports torch and LeRobot and registers pi_rl."""
    if name == "PiRLConfig":
        from pirlctl.algorithms.pi_rl import PiRLConfig

        return PiRLConfig
    raise AttributeError(f"module 'pirlctl' has no attribute {name!r}")
