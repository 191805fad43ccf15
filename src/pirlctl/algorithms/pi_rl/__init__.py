"""PI-RL: PPO over a stochastic denoising chain (Flow-SDE, Flow-Noise).

Importing this package registers ``pi_rl`` with LeRobot: :class:`PiRLConfig` in the ``RLAlgorithmConfig`` registry
(its decorator) and :class:`PiRLAlgorithm` in the algorithm factory (``lerobot_compat.install()``). Every use of the
algorithm (the run config, the learner, the actor, the diagnostics) goes through here, so ``pi_rl`` is always known.
"""

from pirlctl import lerobot_compat as _compat
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig, PiRLConfigError

_compat.install()

__all__ = ["PiRLConfig", "PiRLConfigError"]
