"""PI-RL: PPO over a stochastic denoising chain (Flow-SDE, Flow-Noise)."""

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig, PiRLConfigError

__all__ = ["PiRLConfig", "PiRLConfigError"]
