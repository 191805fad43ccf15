"""The one env interface of pirlctl: what the actor, evaluation, demos and profile-actor see of a task.

A :class:`TaskEnv` is one env (not a vector of them): ``reset(seed)``, a chunk of actions stepped in order until the
episode ends, the observation as the policy reads it, the episode's success, the language instruction, the action
bounds, and capabilities an env may lack (the simulator state for an asymmetric critic, a progress potential for
reward shaping). ``env.type`` in the run config picks the builder (:class:`pirlctl.envs.configs.TaskEnvConfig`);
building N of them gives N independent envs (envs/vector.py keeps per-env bookkeeping over this interface).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pirlctl.errors import PirlError


class EnvSetupError(PirlError, ValueError):
    """An env cannot be built as configured; the message names the setting or package and the fix."""


@dataclass
class ChunkOutcome:
    obs: dict[str, Any]  # the observation after the chunk's last executed step (images rendered)
    reward: float  # sum of the executed steps' env rewards
    terminated: bool
    truncated: bool
    success: bool
    steps: int  # actions executed (fewer than the chunk when the episode ended inside it)


class TaskEnv(Protocol):
    """One env of a task, as pirlctl drives it."""

    instruction: str  # the language instruction: the env's own ``task_description`` if it has one, else the config's
    action_low: np.ndarray  # float32 action bounds: actions are clipped to them before each step
    action_high: np.ndarray
    privileged_dim: int  # width of :meth:`privileged_state`; 0 = the env has no simulator state for the critic
    has_progress: bool  # :meth:`progress_potential` is available (potential-based reward shaping)
    gym_env: Any  # the gymnasium env underneath, for tools that read the simulator (bench/grasp_errors.py)

    def reset(self, seed: int) -> dict[str, Any]:
        """Start an episode reproducibly from ``seed``; the raw observation."""
        ...

    def step_chunk(self, actions: np.ndarray, on_step: Callable[[np.ndarray], None] | None = None) -> ChunkOutcome:
        """Execute ``actions`` [n, A] in order (clipped to the bounds) until the episode ends; ``on_step(action)``
        runs before each step."""
        ...

    def policy_observation(self, obs: dict[str, Any]) -> dict[str, Any]:
        """A raw observation -> LeRobot policy keys, unbatched tensors (images [3, H, W] in [0, 1])."""
        ...

    def camera_frames(self) -> dict[str, np.ndarray]:
        """HWC uint8 frames of the current state, rendered now (evaluation strips)."""
        ...

    def privileged_state(self) -> np.ndarray:
        """The critic's simulator-only input (``privileged_dim`` numbers); only when ``privileged_dim`` > 0."""
        ...

    def progress_potential(self) -> float:
        """Phi(s) for potential-based shaping; only when ``has_progress``."""
        ...

    def reset_stats(self) -> dict[str, float]:
        """What the env reports of the episode it just reset (metric name -> number), logged with the episode's
        record (pick-cube: the object's initial xy, to check GRPO's groups share one initial state); {} if none."""
        ...

    def close(self) -> None: ...


class Demonstrator(Protocol):
    """A scripted expert that plays an env type's episodes for ``pirlctl train``'s demos
    (:meth:`pirlctl.envs.configs.TaskEnvConfig.make_demonstrator`); it may read the simulator (privileged)."""

    def reset(self, seed: int) -> None:
        """A new episode, started in the env with ``seed``."""
        ...

    def act(self, env: TaskEnv, obs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(executed, label)`` for the next step of ``env`` (``obs`` its raw observation): the action to execute
        (noise included) and the one the dataset records as the demonstrator's."""
        ...


def episode_success(info: dict[str, Any]) -> bool:
    """Success at an episode's end, read as LeRobot's ``rollout()`` reads it: ``final_info["is_success"]`` first
    (a same-step auto-reset moves the last step's info there), then ``info["is_success"]``."""
    final = info.get("final_info")
    if isinstance(final, dict) and "is_success" in final:
        return bool(np.any(final["is_success"]))
    return bool(np.any(info.get("is_success", False)))


def shaped_reward(reward: float, phi: float, phi_next: float, *, gamma: float, weight: float, terminal: bool) -> float:
    """``reward + weight * (gamma * Phi(s') - Phi(s))`` with Phi(s') = 0 after a terminal step: the discounted
    shaped return of an episode is the original one minus ``weight * Phi(s_0)``, so no policy gains by gaming it."""
    return reward + weight * (gamma * (0.0 if terminal else phi_next) - phi)
