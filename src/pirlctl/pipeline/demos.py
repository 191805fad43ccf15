"""Few, imperfect scripted demonstrations, written as a LeRobot dataset (images as PNG, no video codec needed).

The scripted picker reads the cube pose (privileged); the dataset stores only what the policy sees: camera
images, robot state, the task text, and the demonstrator's clean EE-delta command while a noisy one is executed
(DART-style). Imperfection comes from a per-episode aiming error, an optional constant aiming bias (a miscalibrated
demonstrator) and from the few demos.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pirlctl.config.run_config import EnvSettings, policy_state_dim
from pirlctl.envs.base import EnvSetupError
from pirlctl.envs.configs import TaskEnvConfig
from pirlctl.envs.pick_cube import (
    ACTION_DIM,
    STATE_KEY,
    ScriptedPicker,
    image_key,
    is_success,
    make_env,
    observation_to_policy,
    reset_episode,
)
from pirlctl.pipeline.demo_dataset import DEMO_SEED_OFFSET, FPS, DemoReport, quiet_video_backend_probe


def dataset_features(settings: EnvSettings) -> dict:
    s = settings.image_size
    feats: dict = {
        image_key(c): {"dtype": "image", "shape": (s, s, 3), "names": ["height", "width", "channels"]}
        for c in settings.cameras
    }
    feats[STATE_KEY] = {"dtype": "float32", "shape": (policy_state_dim(settings),), "names": None}
    feats["action"] = {"dtype": "float32", "shape": (ACTION_DIM,), "names": None}
    return feats


@dataclass
class _Attempt:
    executed: list[np.ndarray]
    labels: list[np.ndarray]
    frames: list[dict[str, Any]]  # empty when not rendered
    success: bool


def _play(
    env: Any,
    settings: EnvSettings,
    seed: int,
    act: Callable[[Any], tuple[np.ndarray, np.ndarray]],
    *,
    render: bool,
    lost: Callable[[], bool] = lambda: False,
    max_steps: int | None = None,
) -> _Attempt:
    """One scripted attempt from ``reset_episode(env, seed)``; ``act(env)`` gives (executed, label) per step, and
    the attempt stops early once ``lost()`` or after ``max_steps``. With ``render`` every step's observation is
    rendered and kept as a dataset frame (the label is its action)."""
    base = env.unwrapped
    base.pirl_render = render
    try:
        obs = reset_episode(env, seed)
        out = _Attempt([], [], [], success=False)
        for _ in range(min(settings.max_episode_steps, max_steps or settings.max_episode_steps)):
            executed, label = act(env)
            out.executed.append(executed)
            out.labels.append(label)
            if render:
                pobs = observation_to_policy(obs, settings, env)
                frame: dict[str, Any] = {
                    k: (v.permute(1, 2, 0).numpy() if k.startswith("observation.images") else v.numpy())
                    for k, v in pobs.items()
                }
                frame["action"] = label
                frame["task"] = settings.instruction
                out.frames.append(frame)
            obs, reward, terminated, truncated, info = env.step(executed)
            if terminated or truncated:
                out.success = is_success(float(reward), bool(terminated), info)
                break
            if lost():
                break
        return out
    finally:
        base.pirl_render = True


def _replayer(attempt: _Attempt) -> Callable[[Any], tuple[np.ndarray, np.ndarray]]:
    """``act`` for :func:`_play` that gives back an attempt's (executed, label) pairs in order."""
    steps = iter(zip(attempt.executed, attempt.labels, strict=True))
    return lambda _env: next(steps)


def record_demos(
    settings: TaskEnvConfig,
    root: str | Path,
    *,
    episodes: int,
    noise_std: float,
    aim_error: float,
    aim_bias: list[float] | None = None,
    retry: bool = True,
    aim_scale: float = 0.0,
    keep_failures: bool = False,
    fresh: bool = False,
    two_pass: bool = True,
    on_episode: Callable[[int, int], None] | None = None,
) -> DemoReport:
    """Record ``episodes`` scripted episodes into a LeRobot dataset at ``root`` (reused when it exists).

    With ``two_pass`` each attempt first runs without rendering; only a kept attempt is replayed (same reset seed,
    same executed actions: the simulator is deterministic) with the cameras on. A miscalibrated demonstrator fails
    most attempts, and rendering them was most of the demo stage's time. With ``keep_failures`` every attempt is
    kept, so each is rendered as it is played and never replayed. The dataset is the same either way.
    ``on_episode(saved, episodes)`` is called at the start (0 saved) and after each saved episode (a progress bar)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    quiet_video_backend_probe()
    root = Path(root)
    marker = root / ".pirlctl-complete"
    if marker.is_file() and not fresh:
        ds = LeRobotDataset("pirlctl/demos", root=root)
        return DemoReport(str(root), ds.meta.total_episodes, -1, ds.meta.total_frames, reused=True)
    if root.exists():
        shutil.rmtree(root)
    if not isinstance(settings, EnvSettings):  # another type's demonstrator, through the env interface
        from pirlctl.pipeline.expert_demos import record_expert_demos

        if settings.has_demonstrator and (aim_scale or not retry):
            raise EnvSetupError(
                f"pipeline.demo_aim_scale and demo_retry=false are pick-cube's; the env.type={settings.type} "
                "demonstrator takes demo_noise_std, demo_aim_error and demo_aim_bias: set demo_aim_scale=0 and "
                "demo_retry=true"
            )
        report = record_expert_demos(  # raises for a type without a demonstrator, naming the fix
            settings,
            root,
            episodes=episodes,
            noise_std=noise_std,
            aim_error=aim_error,
            aim_bias=list(aim_bias or [0.0, 0.0, 0.0]),
            keep_failures=keep_failures,
            on_episode=on_episode,
        )
        marker.write_text("ok\n")
        return report
    ds = LeRobotDataset.create(
        "pirlctl/demos", fps=FPS, features=dataset_features(settings), root=root, use_videos=False
    )
    env = make_env(settings)
    picker = ScriptedPicker(
        noise_std=noise_std,
        aim_error=aim_error,
        aim_bias=aim_bias,
        seed=settings.seed,
        retry=retry,
        aim_scale=aim_scale,
    )
    saved = successes = frames = 0
    attempt = 0
    if on_episode is not None:
        on_episode(0, episodes)
    while saved < episodes:
        seed = settings.seed + DEMO_SEED_OFFSET + attempt
        attempt += 1
        picker.reset()
        # render while playing unless the attempt may be dropped; without retry the demonstrator's first miss is
        # final: stop playing a lost attempt
        rendered = not two_pass or keep_failures
        scripted = _play(env, settings, seed, picker.act, render=rendered, lost=lambda: picker.missed and not retry)
        if not scripted.success and not keep_failures:
            continue  # a failed attempt, never rendered when two_pass
        played = scripted
        if not rendered:  # replay the kept attempt's executed actions, rendering the cameras this time
            played = _play(env, settings, seed, _replayer(scripted), render=True, max_steps=len(scripted.executed))
            if played.success != scripted.success or len(played.frames) != len(scripted.executed):
                raise RuntimeError(
                    f"demo attempt {attempt - 1} (seed {seed}) did not replay the same way; record with "
                    "two_pass=False and report this (the simulator is expected to be deterministic)"
                )
        for frame in played.frames:
            ds.add_frame(frame)
        ds.save_episode()
        saved += 1
        successes += int(played.success)
        frames += len(played.frames)
        if on_episode is not None:
            on_episode(saved, episodes)
    ds.finalize()
    marker.write_text("ok\n")
    return DemoReport(str(root), saved, successes, frames, reused=False, attempts=attempt)
