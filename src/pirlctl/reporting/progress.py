"""Progress of the long stages of ``pirlctl train``, and a terminal kept free of third-party output.

Stages report ``(stage, done, total, unit, note)``; :class:`StageProgress` draws one Rich bar with an ETA per stage on
a terminal, or plain periodic lines elsewhere (``--no-dashboard``, a pipe, CI). Third-party output (``datasets``'
"Map" bars, gymnasium's and torch's warnings, library loggers) goes to a log file in the run folder instead
(:func:`quiet_third_party`). RL's env steps come from the actors' episode records (:class:`EnvStepCount`): the
learner reports only once per PPO iteration.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, Protocol

from pirlctl import metrics as M

# loggers of libraries the job imports; each gets the run's log file instead of its own terminal handler
THIRD_PARTY_LOGGERS = ("datasets", "gymnasium", "absl", "grpc", "torch", "huggingface_hub", "lerobot", "py.warnings")


class ProgressFn(Protocol):
    def __call__(self, stage: str, done: int, total: int, unit: str, note: str = "") -> None: ...


def quiet_environment(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Settings read by libraries when they are imported (so they must be set before, i.e. in a child's
    environment): no ``datasets`` bars, gRPC core logs errors only, absl/TensorFlow-style C++ logs errors only."""
    env.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    env.setdefault("GRPC_VERBOSITY", "ERROR")
    env.setdefault("GLOG_minloglevel", "2")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


# modules whose Python warnings a command's terminal never shows (gymnasium's "Box ... precision lowered" at every
# env build, torch's and transformers' deprecation notes): they name nothing a pirlctl user can act on
LIBRARY_WARNING_MODULES = r"(gymnasium|gym_hil|mujoco|torch|transformers|lerobot|datasets)(\.|$)"


def silence_library_warnings() -> None:
    """Ignore Python warnings raised inside :data:`LIBRARY_WARNING_MODULES` in this process (every command but
    ``pirlctl train``, via ``cli.common.headless_defaults``; train logs them to its run folder instead,
    :func:`quiet_third_party`)."""
    import warnings

    warnings.filterwarnings("ignore", module=LIBRARY_WARNING_MODULES)


def disable_datasets_bars() -> None:
    """``HF_DATASETS_DISABLE_PROGRESS_BARS`` is read when ``datasets`` is imported, and ``import pirlctl`` imports
    LeRobot, which imports ``datasets``: the variable alone comes too late in this process. Without this, saving
    each demo episode draws a "Map" bar."""
    datasets = sys.modules.get("datasets")
    if datasets is not None:
        from datasets.utils import disable_progress_bars

        disable_progress_bars()


def quiet_third_party(log_file: Path) -> logging.Handler:
    """Send Python warnings and third-party loggers to ``log_file`` (appended) instead of the terminal, and
    disable ``datasets``' progress bars. Our own Rich output (stage lines, bars, alarms) is untouched. Returns
    the file handler."""
    quiet_environment(os.environ)  # for libraries imported from now on
    disable_datasets_bars()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"))
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger (Python's filters still apply)
    root = logging.getLogger()
    for name in ("", *THIRD_PARTY_LOGGERS):
        logger = logging.getLogger(name) if name else root
        for old in list(logger.handlers):
            if isinstance(old, logging.StreamHandler) and not isinstance(old, logging.FileHandler):
                logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
    return handler


def progress_file_writer(path: Path) -> Callable[[int, int], None]:
    """``on_episode(done, total)`` for a child process (``pirlctl eval --progress-file``): appends one line per
    call, which the parent reads with :func:`read_progress_file`."""

    def write(done: int, total: int) -> None:
        with open(path, "a") as f:
            f.write(f"{done} {total}\n")

    return write


def read_progress_file(path: Path) -> int:
    """The last complete count written by :func:`progress_file_writer` (0 when none yet)."""
    try:
        lines = path.read_text().split("\n")[:-1]  # the last piece is empty or a line being written
    except FileNotFoundError:
        return 0
    return int(lines[-1].split()[0]) if lines else 0


# -- RL env steps ---------------------------------------------------------------------------------------------


class EnvStepCount:
    """Env steps done so far, from metrics records as they arrive.

    Each actor's episode record carries its own running total ``actor/env_steps`` (counted from its start), so the
    job's total is the sum of the latest value per actor, plus the learner's count when this session began (a
    resumed run; actors restart from 0). The learner's ``train/env_steps`` (one per PPO iteration) is a floor: it
    also counts steps of episodes not finished yet. Records older than ``since`` (wall-clock) belong to an earlier
    session: they set the starting count only."""

    def __init__(self, since: float = 0.0) -> None:
        self.since = since
        self.base = 0  # learner's count at the start of this session
        self.learner = 0
        self.actors: dict[int, int] = {}

    def add(self, rec: dict[str, Any]) -> None:
        kind = rec.get("kind")
        old = float(rec.get("time", self.since)) < self.since
        if kind == "train":
            steps = int(rec.get(M.TRAIN_ENV_STEPS) or 0)
            if old:
                self.base = max(self.base, steps)
            self.learner = max(self.learner, steps)
        elif kind == "episode" and not old and rec.get(M.ACTOR_ENV_STEPS) is not None:
            self.actors[int(rec.get(M.ACTOR_ID) or 0)] = int(rec[M.ACTOR_ENV_STEPS])

    @property
    def total(self) -> int:
        return max(self.learner, self.base + sum(self.actors.values()))

    @property
    def started(self) -> bool:
        """A record of this session arrived (before that, learner and actors are still starting)."""
        return bool(self.actors) or self.learner > self.base


# -- stage bars and lines -------------------------------------------------------------------------------------


def eta_seconds(elapsed: float, done: int, total: int, start: int = 0) -> float | None:
    """Seconds left at the mean rate so far (``start``: the count when timing began); None before any progress."""
    if done <= start or elapsed <= 0:
        return None
    return max(total - done, 0) * elapsed / (done - start)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def progress_line(stage: str, done: int, total: int, unit: str, eta: float | None, note: str = "") -> str:
    """The plain form: ``sft 400/2000 steps, ETA 1:05, loss 0.0312`` (no ETA before any progress)."""
    tail = ["done"] if done >= total else [] if eta is None else [f"ETA {_clock(eta)}"]
    return ", ".join([f"{stage} {done}/{total} {unit}", *tail, *([note] if note else [])])


class StageProgress:
    """A :class:`ProgressFn` that draws the stages: with ``live`` one Rich bar (count, ETA) per stage, left on
    screen when it completes; otherwise a plain line when a stage starts, every ``every_s`` seconds and when it
    completes. Call :meth:`close` before another live display (the RL dashboard) starts."""

    def __init__(self, console: Any, *, live: bool, every_s: float = 15.0) -> None:
        self.console = console
        self.live = live
        self.every_s = every_s
        self.stage: str | None = None
        self.bar: Any = None
        self.task: Any = None
        self.started = 0.0
        self.start_count = 0
        self.last_line = float("-inf")
        self.finished: set[str] = set()

    def __call__(self, stage: str, done: int, total: int, unit: str, note: str = "") -> None:
        now = time.monotonic()
        if stage in self.finished:
            return
        if stage != self.stage:
            self.close()
            self.stage, self.started, self.start_count, self.last_line = stage, now, done, float("-inf")
            if self.live:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

                self.bar = Progress(
                    TextColumn("[bold cyan]{task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed}/{task.total} {task.fields[unit]}"),
                    TimeElapsedColumn(),
                    TextColumn("ETA"),
                    TimeRemainingColumn(),
                    TextColumn("[dim]{task.fields[note]}"),
                    console=self.console,
                )
                self.task = self.bar.add_task(stage, total=total, unit=unit, note=note)
                self.bar.start()
        finished = done >= total
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, note=note)
        elif finished or now - self.last_line >= self.every_s:
            eta = eta_seconds(now - self.started, done, total, self.start_count)
            self.console.print(progress_line(stage, done, total, unit, eta, note), highlight=False)
            self.last_line = now
        if finished:
            self.finished.add(stage)
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.stage, self.bar, self.task = None, None, None
