"""Few, imperfect scripted demonstrations, written as a LeRobot dataset (images as PNG, no video codec needed).

The scripted picker reads the cube pose (privileged); the dataset stores only what the policy sees: camera
images, robot state, the task text, and the demonstrator's clean EE-delta command while a noisy one is executed
(DART-style). Imperfection comes from a per-episode aiming error, an optional constant aiming bias (a miscalibrated
demonstrator) and from the few demos.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pirlctl.config.run_config import EnvSettings, policy_state_dim
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


def quiet_video_backend_probe() -> None:
    """Our datasets store images, never video; LeRobot still probes torchcodec on open and logs a long traceback
    when FFmpeg's libraries are missing. Silence that probe only."""
    logging.getLogger("lerobot.utils.import_utils").setLevel(logging.ERROR)


DEMO_SEED_OFFSET = 500_000  # demo episodes never share cube positions with RL or eval episodes
FPS = 10


@dataclass
class DemoReport:
    root: str
    episodes: int
    successes: int
    frames: int
    reused: bool


def dataset_features(settings: EnvSettings) -> dict:
    s = settings.image_size
    feats: dict = {
        image_key(c): {"dtype": "image", "shape": (s, s, 3), "names": ["height", "width", "channels"]}
        for c in settings.cameras
    }
    feats[STATE_KEY] = {"dtype": "float32", "shape": (policy_state_dim(settings),), "names": None}
    feats["action"] = {"dtype": "float32", "shape": (ACTION_DIM,), "names": None}
    return feats


def record_demos(
    settings: EnvSettings,
    root: str | Path,
    *,
    episodes: int,
    noise_std: float,
    aim_error: float,
    aim_bias: list[float] | None = None,
    retry: bool = True,
    keep_failures: bool = False,
    fresh: bool = False,
) -> DemoReport:
    """Record ``episodes`` scripted episodes into a LeRobot dataset at ``root`` (reused when it exists)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    quiet_video_backend_probe()
    root = Path(root)
    marker = root / ".pirlctl-complete"
    if marker.is_file() and not fresh:
        ds = LeRobotDataset("pirlctl/demos", root=root)
        return DemoReport(str(root), ds.meta.total_episodes, -1, ds.meta.total_frames, reused=True)
    if root.exists():
        shutil.rmtree(root)
    ds = LeRobotDataset.create(
        "pirlctl/demos", fps=FPS, features=dataset_features(settings), root=root, use_videos=False
    )
    env = make_env(settings)
    picker = ScriptedPicker(
        noise_std=noise_std, aim_error=aim_error, aim_bias=aim_bias, seed=settings.seed, retry=retry
    )
    saved = successes = frames = 0
    attempt = 0
    while saved < episodes:
        obs = reset_episode(env, settings.seed + DEMO_SEED_OFFSET + attempt)
        attempt += 1
        picker.reset()
        buffer = []
        success = False
        for _ in range(settings.max_episode_steps):
            executed, label = picker.act(env)
            pobs = observation_to_policy(obs, settings, env)
            frame: dict[str, Any] = {
                k: (v.permute(1, 2, 0).numpy() if k.startswith("observation.images") else v.numpy())
                for k, v in pobs.items()
            }
            frame["action"] = label
            frame["task"] = settings.instruction
            buffer.append(frame)
            obs, reward, terminated, truncated, info = env.step(executed)
            if terminated or truncated:
                success = is_success(float(reward), bool(terminated), info)
                break
            if picker.missed and not retry:  # a lost episode: stop rendering it
                break
        if not success and not keep_failures:
            continue
        for frame in buffer:
            ds.add_frame(frame)
        ds.save_episode()
        saved += 1
        successes += int(success)
        frames += len(buffer)
    ds.finalize()
    marker.write_text("ok\n")
    return DemoReport(str(root), saved, successes, frames, reused=False)
