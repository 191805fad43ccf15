"""Metric names (one place, namespaced) and the run's metrics.jsonl writer."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any, Protocol

# learner, one record per PPO iteration (kind = "train")
TRAIN_ITERATION = "train/iteration"
TRAIN_POLICY_VERSION = "train/policy_version"
TRAIN_ENV_STEPS = "train/env_steps"
TRAIN_SAMPLES = "train/samples"
TRAIN_POLICY_LOSS = "train/policy_loss"
TRAIN_VALUE_LOSS = "train/value_loss"
TRAIN_ENTROPY = "train/entropy"
TRAIN_APPROX_KL = "train/approx_kl"
TRAIN_CLIPFRAC = "train/clipfrac"
TRAIN_EXPLAINED_VARIANCE = "train/explained_variance"
TRAIN_RATIO_MIN = "train/ratio_min"
TRAIN_RATIO_MAX = "train/ratio_max"
TRAIN_ONPOLICY_LOG_RATIO = "train/onpolicy_max_abs_log_ratio"  # first minibatch, before any step: ~0 on-policy
TRAIN_ACTOR_GRAD_NORM = "train/actor_grad_norm"
TRAIN_CRITIC_GRAD_NORM = "train/critic_grad_norm"
TRAIN_NOISE_LEVEL = "train/noise_level"
TRAIN_ACTOR_LR = "train/actor_lr"
TRAIN_UPDATE_SECONDS = "train/update_seconds"
TRAIN_MEAN_RETURN = "train/mean_chunk_return"
DATA_USED = "data/chunks_used"
DATA_DROPPED_STALE = "data/chunks_dropped_stale"
DATA_REJECTED = "data/segments_rejected"
DATA_ACTORS = "data/actors"  # distinct actors seen so far
DATA_BATCH_ACTORS = "data/batch_actors"  # actor ids whose segments formed this PPO batch
DATA_BATCH_VERSIONS = "data/batch_versions"  # policy versions of those segments

# actor, one record per episode (kind = "episode")
ACTOR_ID = "actor/id"
ACTOR_EPISODE_RETURN = "actor/episode_return"
ACTOR_SUCCESS = "actor/success"
ACTOR_EPISODE_LENGTH = "actor/episode_length"
ACTOR_POLICY_VERSION = "actor/policy_version"
ACTOR_POLICY_FPS = "actor/policy_fps"
ACTOR_ENV_FPS = "actor/env_fps"
ACTOR_LOOP_FPS = "actor/loop_fps"
ACTOR_ENV_STEPS = "actor/env_steps"

# learner, one record per alarm raised (kind = "alarm"; pirlctl.alarms computes them, the dashboard displays them)
ALARM_ITERATION = "alarm/iteration"  # the learner's PPO iteration (policy version) when it was raised
ALARM_NAME = "alarm/name"  # which check: approx_kl, clipfrac, value_loss, onpolicy_log_ratio, success_collapse
ALARM_MESSAGE = "alarm/message"  # one line naming the signal, its threshold and what to do

# evaluation (kind = "eval")
EVAL_SUCCESS_RATE = "eval/success_rate"
EVAL_CI_LOW = "eval/ci95_low"
EVAL_CI_HIGH = "eval/ci95_high"
EVAL_MEAN_RETURN = "eval/mean_return"
EVAL_EPISODES = "eval/episodes"


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsSink(Protocol):
    """A second destination for the records (e.g. Weights & Biases); metrics.jsonl stays the source of truth."""

    def log(self, kind: str, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class MetricsWriter:
    """Append-only JSON lines, one record per event, each with ``kind`` and wall-clock ``time``. Thread-safe.
    ``sink``, if given, receives each record after it is written."""

    def __init__(self, path: str | Path, sink: MetricsSink | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.sink = sink

    def write(self, kind: str, record: dict[str, Any]) -> None:
        clean = {k: _clean(v) for k, v in record.items()}
        line = json.dumps({"kind": kind, "time": time.time(), **clean})
        with self._lock:
            with open(self.path, "a") as f:
                f.write(line + "\n")
            if self.sink is not None:
                self.sink.log(kind, clean)

    def close(self) -> None:
        """Finish the sink (metrics.jsonl needs no closing)."""
        with self._lock:
            if self.sink is not None:
                self.sink.close()
                self.sink = None


def read_metrics(path: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl (optionally of one kind); a torn last line (crash mid-write) is skipped."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if kind is None or rec.get("kind") == kind:
            out.append(rec)
    return out
