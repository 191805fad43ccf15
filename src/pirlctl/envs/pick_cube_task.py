"""Pick-cube behind the :class:`pirlctl.envs.base.TaskEnv` interface: the functions of :mod:`pirlctl.envs.pick_cube`,
bound to one gym_hil env (one image env per process: see that module's traps)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pirlctl.envs import pick_cube
from pirlctl.envs.base import ChunkOutcome
from pirlctl.envs.pick_cube_config import PRIVILEGED_STATE_DIM, PickCubeEnv

# episode-record metrics of pick-cube (TaskEnv.reset_stats): the cube's position after the reset (metres)
INITIAL_CUBE_X = "actor/initial_cube_x"
INITIAL_CUBE_Y = "actor/initial_cube_y"


class PickCubeTaskEnv:
    privileged_dim = PRIVILEGED_STATE_DIM
    has_progress = True

    def __init__(self, settings: PickCubeEnv, gym_env: Any = None) -> None:
        """``gym_env``: an env already made (tests pass stand-ins); None makes one with :func:`pick_cube.make_env`."""
        self.settings = settings
        self.gym_env = gym_env if gym_env is not None else pick_cube.make_env(settings)
        self.action_low = np.asarray(self.gym_env.action_space.low, dtype=np.float32)
        self.action_high = np.asarray(self.gym_env.action_space.high, dtype=np.float32)
        self.instruction = settings.instruction

    def reset(self, seed: int) -> dict[str, Any]:
        return pick_cube.reset_episode(self.gym_env, seed)

    def step_chunk(self, actions: np.ndarray, on_step: Callable[[np.ndarray], None] | None = None) -> ChunkOutcome:
        return pick_cube.run_chunk(self.gym_env, actions, self.action_low, self.action_high, on_step=on_step)

    def policy_observation(self, obs: dict[str, Any]) -> dict[str, torch.Tensor]:
        return pick_cube.observation_to_policy(obs, self.settings, self.gym_env)

    def camera_frames(self) -> dict[str, np.ndarray]:
        frames = pick_cube.camera_frames(self.gym_env)
        return {c: frames[c] for c in self.settings.cameras}

    def privileged_state(self) -> np.ndarray:
        return pick_cube.privileged_state(self.gym_env)

    def progress_potential(self) -> float:
        return pick_cube.progress_potential(self.gym_env)

    def reset_stats(self) -> dict[str, float]:
        cube = pick_cube.privileged_pose(self.gym_env).cube
        return {INITIAL_CUBE_X: float(cube[0]), INITIAL_CUBE_Y: float(cube[1])}

    def close(self) -> None:
        self.gym_env.close()
