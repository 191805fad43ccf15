"""Optional Weights & Biases logging of the learner's records, in LeRobot's ``wandb`` config shape (``WandBConfig``:
``enable``, ``project``, ``entity``, ``notes``, ``run_id``, ``mode``).

metrics.jsonl stays the source of truth: W&B gets a copy of each record as the learner writes it (PPO iterations
against ``train/iteration``, episodes against a running episode count). ``wandb`` comes with LeRobot's ``training``
extra and is imported only when ``wandb.enable`` is true.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pirlctl import metrics as M
from pirlctl.errors import PirlError

EPISODE_STEP = "actor/episode"  # W&B x-axis of the episode records: how many episodes the learner has received


class WandbError(PirlError, RuntimeError):
    """W&B logging was asked for but cannot start; the message names the fix."""


class WandbSink:
    """A :class:`pirlctl.metrics.MetricsSink` that logs train and episode records to a W&B run."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.episodes = 0
        run.define_metric(M.TRAIN_ITERATION)
        for prefix in ("train/*", "data/*"):
            run.define_metric(prefix, step_metric=M.TRAIN_ITERATION)
        run.define_metric(EPISODE_STEP)
        run.define_metric("actor/*", step_metric=EPISODE_STEP)

    def log(self, kind: str, record: dict[str, Any]) -> None:
        numbers = {k: float(v) for k, v in record.items() if isinstance(v, int | float)}
        if kind == "train":
            self.run.log(numbers)
        elif kind == "episode":
            self.episodes += 1
            self.run.log({**numbers, EPISODE_STEP: self.episodes})
        elif kind == "alarm":  # a running count in the run summary; their text stays in metrics.jsonl
            self.run.summary["alarms"] = int(self.run.summary.get("alarms", 0)) + 1

    def close(self) -> None:
        self.run.finish()


def open_wandb(cfg: Any, run_dir: str | Path) -> WandbSink | None:
    """A W&B sink for this run, or None when ``cfg.wandb.enable`` is false. Files go under ``$WANDB_DIR`` if set,
    else the run folder; ``wandb.mode="offline"`` writes them without any network."""
    w = cfg.wandb
    if w is None or not w.enable:
        return None
    try:
        import wandb
    except ImportError as err:
        raise WandbError(
            "wandb.enable=true but wandb is not installed; install LeRobot's training extra "
            "(pip install 'lerobot[training]>=0.6.1,<0.7') or set --wandb.enable=false"
        ) from err
    from pirlctl.config.run_config import encode_run_config

    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(
        project=w.project,
        entity=w.entity,
        notes=w.notes,
        id=w.run_id,
        resume="allow" if w.run_id else None,
        name=cfg.job_name,
        job_type="pirl-learner",
        dir=os.environ.get("WANDB_DIR") or str(run_dir),
        mode=w.mode if w.mode in ("online", "offline", "disabled") else "online",
        config=encode_run_config(cfg),
        save_code=False,
    )
    return WandbSink(run)
