"""What every demo recorder shares: the dataset's frame rate, where demo episode seeds start, the report a
recording returns, and the quieting of LeRobot's video-backend probe. Pick-cube's recorder (``demos``) and the
scripted experts of other env types (``expert_demos``) both build on it."""

from __future__ import annotations

import logging
from dataclasses import dataclass


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
    attempts: int = -1  # scripted attempts played (kept or not); -1 when reused
