"""Demos of any env type with a scripted demonstrator (``TaskEnvConfig.make_demonstrator``), through the env interface.

The dataset stores what the policy sees (:meth:`TaskEnv.policy_observation`: images as HWC, state, the env's
instruction as the task) and the demonstrator's label, while its executed action (noise included) steps the env:
the same dataset pick-cube's recorder (:mod:`pirlctl.pipeline.demos`) writes, with the features read from the env.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pirlctl.envs.base import EnvSetupError, TaskEnv
from pirlctl.envs.configs import TaskEnvConfig
from pirlctl.pipeline.demo_dataset import DEMO_SEED_OFFSET, FPS, DemoReport, quiet_video_backend_probe

MAX_ATTEMPTS_PER_EPISODE = 50  # a demonstrator that never succeeds fails the stage instead of looping forever
IMAGE_PREFIX = "observation.image"  # observation.image and observation.images.*: stored as images (HWC)


def dataset_frame(pobs: dict[str, Any], label: np.ndarray, instruction: str) -> dict[str, Any]:
    """One dataset frame from a policy observation (unbatched tensors; images [3, H, W] in [0, 1])."""
    frame: dict[str, Any] = {
        k: (v.permute(1, 2, 0).numpy() if k.startswith(IMAGE_PREFIX) else v.numpy()) for k, v in pobs.items()
    }
    frame["action"] = np.asarray(label, dtype=np.float32)
    frame["task"] = instruction
    return frame


def frame_features(frame: dict[str, Any]) -> dict[str, Any]:
    """LeRobot dataset features of a :func:`dataset_frame`."""
    feats: dict[str, Any] = {}
    for k, v in frame.items():
        if k == "task":
            continue
        if k.startswith(IMAGE_PREFIX):
            feats[k] = {"dtype": "image", "shape": tuple(v.shape), "names": ["height", "width", "channels"]}
        else:
            feats[k] = {"dtype": "float32", "shape": tuple(v.shape), "names": None}
    return feats


def play_episode(env: TaskEnv, demonstrator: Any, seed: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """One demonstrator episode from ``env.reset(seed)``: its dataset frames and whether it succeeded."""
    demonstrator.reset(seed)
    obs = env.reset(seed)
    frames: list[dict[str, Any]] = []
    for _ in range(limit):
        executed, label = demonstrator.act(env, obs)
        frames.append(dataset_frame(env.policy_observation(obs), label, env.instruction))
        out = env.step_chunk(np.asarray(executed, dtype=np.float32)[None])
        obs = out.obs
        if out.terminated or out.truncated:
            return frames, out.success
    return frames, False


def record_expert_demos(
    settings: TaskEnvConfig,
    root: str | Path,
    *,
    episodes: int,
    noise_std: float,
    aim_error: float,
    aim_bias: list[float],
    keep_failures: bool,
    on_episode: Callable[[int, int], None] | None = None,
) -> DemoReport:
    """Record ``episodes`` demonstrator episodes (successful ones only, unless ``keep_failures``) at ``root``, which
    the caller has cleared."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    demonstrator = settings.make_demonstrator(
        noise_std=noise_std, aim_error=aim_error, aim_bias=list(aim_bias), seed=settings.seed
    )
    limit = settings.episode_limit
    if not limit:
        raise EnvSetupError(
            f"env.type={settings.type} sets no episode limit for the demonstrator's episodes; set env.episode_length"
        )
    quiet_video_backend_probe()
    env = settings.build_task_env()
    ds = None
    saved = successes = frames = attempt = 0
    if on_episode is not None:
        on_episode(0, episodes)
    try:
        while saved < episodes:
            if attempt >= MAX_ATTEMPTS_PER_EPISODE * episodes:
                raise EnvSetupError(
                    f"the {settings.type} demonstrator succeeded {saved} times in {attempt} attempts; lower "
                    "pipeline.demo_noise_std / demo_aim_bias / demo_aim_error, or set pipeline.demo_keep_failures=true"
                )
            seed = settings.seed + DEMO_SEED_OFFSET + attempt
            attempt += 1
            played, success = play_episode(env, demonstrator, seed, limit)
            if not success and not keep_failures:
                continue
            if ds is None:  # the features are the env's: known from its first frame
                ds = LeRobotDataset.create(
                    "pirlctl/demos", fps=FPS, features=frame_features(played[0]), root=root, use_videos=False
                )
            for frame in played:
                ds.add_frame(frame)
            ds.save_episode()
            saved += 1
            successes += int(success)
            frames += len(played)
            if on_episode is not None:
                on_episode(saved, episodes)
    finally:
        env.close()
    if ds is not None:
        ds.finalize()
    return DemoReport(str(root), saved, successes, frames, reused=False, attempts=attempt)
