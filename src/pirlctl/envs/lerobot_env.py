"""LeRobot's env configs (pusht, metaworld, aloha, libero) behind the :class:`pirlctl.envs.base.TaskEnv` interface.

The env is made by LeRobot's own factory (``lerobot.envs.factory.make_env``, one env, synchronous) and driven
directly, not through the vector env's auto-reset: pirlctl resets each episode itself with its seed. Observations go
through LeRobot's ``preprocess_observation`` and the env's own processors (``EnvConfig.get_env_processors``:
``LiberoProcessorStep`` for LIBERO), as ``lerobot_eval`` does; success is read as LeRobot's ``rollout()`` reads it
(:func:`pirlctl.envs.base.episode_success`). Facts and traps: shared/reference/lerobot-envs.md.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pirlctl.envs.base import ChunkOutcome, EnvSetupError, episode_success

if TYPE_CHECKING:
    from pirlctl.envs.configs import TaskEnvConfig


class LeRobotTaskEnv:
    privileged_dim = 0
    has_progress = False

    def __init__(self, cfg: TaskEnvConfig) -> None:
        from lerobot.envs.factory import make_env

        cfg.check_installed()
        with contextlib.redirect_stdout(sys.stderr):  # LeRobot's factory prints progress; stdout is for reports
            suites = make_env(cfg, n_envs=1, use_async_envs=False)
        self.vector = next(iter(next(iter(suites.values())).values()))
        self.gym_env = self.vector.envs[0]
        cfg.prepare_gym_env(self.gym_env)
        self.cfg = cfg
        self.env_preprocessor, _ = cfg.get_env_processors()
        space = self.gym_env.action_space
        self.action_low = np.asarray(space.low, dtype=np.float32)
        self.action_high = np.asarray(space.high, dtype=np.float32)
        described = getattr(self.gym_env.unwrapped, "task_description", None)
        self.instruction = str(described or cfg.instruction or cfg.task)
        self.limit = cfg.episode_limit
        self.t = 0  # env steps into the current episode

    def reset(self, seed: int) -> dict[str, Any]:
        self.t = 0
        obs, _ = self.gym_env.reset(seed=seed)
        return obs

    def step_chunk(self, actions: np.ndarray, on_step: Callable[[np.ndarray], None] | None = None) -> ChunkOutcome:
        reward, terminated, truncated, success, n = 0.0, False, False, False, 0
        obs: dict[str, Any] = {}
        for a in actions:
            action = np.clip(a, self.action_low, self.action_high)
            if on_step is not None:
                on_step(action)
            obs, r, terminated, truncated, info = self.gym_env.step(action)
            reward += float(r)
            n += 1
            self.t += 1
            if self.limit is not None and self.t >= self.limit:
                truncated = True  # LIBERO never truncates by itself; the others agree with their own limit
            if terminated or truncated:
                success = episode_success(info)
                break
        return ChunkOutcome(obs, reward, bool(terminated), bool(truncated), success, n)

    def policy_observation(self, obs: dict[str, Any]) -> dict[str, torch.Tensor]:
        from lerobot.envs.utils import preprocess_observation

        batch = self.env_preprocessor(preprocess_observation(obs))
        h, w = getattr(self.cfg, "observation_height", None), getattr(self.cfg, "observation_width", None)
        size = (int(h), int(w)) if h and w else None
        return {k: fit_image(k, v[0], size) for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def camera_frames(self) -> dict[str, np.ndarray]:
        frame = self.gym_env.render()
        return {"render": np.asarray(frame)} if frame is not None else {}

    def privileged_state(self) -> np.ndarray:
        raise EnvSetupError(
            f"env.type={self.cfg.type} has no simulator state for the critic; set algorithm.critic_privileged_dim=0"
        )

    def progress_potential(self) -> float:
        raise EnvSetupError(f"env.type={self.cfg.type} has no progress potential; set env.shaping=0")

    def reset_stats(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        self.vector.close()


def fit_image(key: str, value: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """An image [3, H, W] at the config's ``observation_height`` x ``observation_width``, resized (bilinear,
    antialiased) when the env rendered another size: gym_aloha renders 480x640 whatever it is told (pusht and
    metaworld are sized where the gym env is made, so theirs pass unchanged). Other keys pass unchanged."""
    if not key.startswith("observation.image") or value.ndim != 3 or size is None or tuple(value.shape[1:]) == size:
        return value
    resized = torch.nn.functional.interpolate(value[None].float(), size=size, mode="bilinear", antialias=True)
    return resized[0].to(value.dtype)


def size_metaworld_renderer(env: Any, width: int, height: int) -> None:
    """Make LeRobot's ``MetaworldEnv`` (lerobot/envs/metaworld.py, 0.6.1) render ``width`` x ``height``: its
    ``_ensure_env`` builds the MetaWorld env at 480 px on first reset, so build it first, the same way, with the
    size where the env is made (MetaWorld's ``width``/``height``)."""
    if not all(hasattr(env, a) for a in ("_env", "_env_name", "camera_name")):
        raise EnvSetupError(
            "LeRobot's MetaworldEnv no longer has _env/_env_name/camera_name (a LeRobot other than 0.6.x?); "
            "install lerobot>=0.6.1,<0.7 or leave env.observation_height/width at 480"
        )
    if env._env is not None or (width, height) == (480, 480):
        return
    import metaworld

    mt1 = metaworld.MT1(env._env_name, seed=42)
    inner = mt1.train_classes[env._env_name](
        render_mode="rgb_array", camera_name=env.camera_name, width=width, height=height
    )
    inner.set_task(mt1.train_tasks[0])
    if env.camera_name == "corner2":  # as LeRobot: this camera's default pose shows little of the table
        inner.model.cam_pos[2] = [0.75, 0.075, 0.7]
    inner.reset()
    inner._freeze_rand_vec = False  # as LeRobot: randomise object positions
    inner.seeded_rand_vec = True  # reset(seed) sets them
    env._env = inner


def answer_libero_first_run() -> None:
    """LIBERO asks an interactive question on import when its ``config.yaml`` is missing (an EOFError, or a hang on
    a terminal): write one with the package's default paths under pirlctl's cache and point
    ``LIBERO_CONFIG_PATH`` at it. A user's own config is left alone."""
    import importlib.util

    import yaml

    from pirlctl.envs.configs import libero_config_dir

    if (libero_config_dir() / "config.yaml").is_file():
        return
    spec = importlib.util.find_spec("libero")
    if spec is None or not spec.submodule_search_locations:
        return
    root = Path(next(iter(spec.submodule_search_locations))) / "libero"
    folder = Path(os.path.expanduser("~/.cache/pirlctl/libero"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "benchmark_root": str(root),
        "bddl_files": str(root / "bddl_files"),
        "init_states": str(root / "init_files"),
        "datasets": str(root.parent / "datasets"),
        "assets": str(root / "assets"),
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(paths))
    os.environ["LIBERO_CONFIG_PATH"] = str(folder)
