"""pirlctl: PI-RL for LeRobot flow-matching policies.

Importing pirlctl registers ``pi_rl`` in LeRobot's ``RLAlgorithmConfig`` registry and its algorithm factory.
"""

__version__ = "0.1.0"

from pirlctl import lerobot_compat as _compat  # noqa: E402
from pirlctl.algorithms.pi_rl import PiRLConfig  # noqa: E402

_compat.install()

__all__ = ["PiRLConfig", "__version__"]
