"""Metric names (one place, namespaced) and the run's metrics.jsonl writer."""

from __future__ import annotations

import json
import math
import os
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
DATA_GROUPS_USED = "data/groups_used"  # GRPO: complete groups trained on so far
DATA_GROUPS_DROPPED_INCOMPLETE = "data/groups_dropped_incomplete"  # GRPO: groups dropped for a missing episode
DATA_CHUNKS_DROPPED_INCOMPLETE = "data/chunks_dropped_incomplete"  # GRPO: the chunks of those groups

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
ACTOR_ENV_INDEX = "actor/env_index"  # which of the actor's runtime.envs_per_actor envs ran the episode
ACTOR_EPISODE_SEED = "actor/episode_seed"  # the episode's reset seed
ACTOR_INSTRUCTION = "actor/instruction"  # the language instruction the episode's observations carried
# (the episode record also carries its env's TaskEnv.reset_stats(), named by the env: envs/pick_cube_task.py)
ACTOR_GROUP = "actor/group"  # GRPO: the run-wide id of the episode's group (absent under GAE)

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


# learner, bookkeeping
KIND_SESSION = "session"  # a learner process started: SESSION_RESUMED_FROM, SESSION_ITERATION, SESSION_NOTE
KIND_LOST = "lost"  # where a lost tail was cut out (moved to metrics.jsonl.lost): LOST_RECORDS, LOST_ITERATIONS
SESSION_RESUMED_FROM = "session/resumed_from"  # checkpoint folder, or None for a start from the SFT policy
SESSION_ITERATION = "session/iteration"  # iteration the session starts from (the checkpoint's, or 0)
SESSION_NOTE = "session/note"  # why the resume did not start from `last` (None when it did)
LOST_RECORDS = "lost/records"
LOST_ITERATIONS = "lost/iterations"
LOST_SUFFIX = ".lost"


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


def _is_lost(rec: dict[str, Any], iteration: int) -> bool:
    if rec.get("kind") == "train":
        return int(rec.get(TRAIN_ITERATION, 0)) > iteration
    if rec.get("kind") == "episode":
        return int(rec.get(ACTOR_POLICY_VERSION, 0)) > iteration
    return False


def drop_lost_tail(path: str | Path, iteration: int) -> int:
    """Cut the records of training lost by a restart at ``iteration`` out of metrics.jsonl; returns how many.

    Lost: train records of an iteration > ``iteration`` and episode records of a policy version > ``iteration``
    (written after the checkpoint the run resumes from, and redone by it). They are appended to
    ``metrics.jsonl.lost``; metrics.jsonl is rewritten atomically (temp file, fsync, ``os.replace``) with one
    ``lost`` marker in their place that keeps the time of the last one, so the iteration numbering reads monotone
    and the session's running time still counts. Call before anything appends to the file.
    """
    p = Path(path)
    records = read_metrics(p)
    lost = [r for r in records if _is_lost(r, iteration)]
    if not lost:
        return 0
    with open(p.with_name(p.name + LOST_SUFFIX), "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in lost)
        f.flush()
        os.fsync(f.fileno())
    marker = {
        "kind": KIND_LOST,
        "time": lost[-1]["time"],
        LOST_RECORDS: len(lost),
        LOST_ITERATIONS: sorted({int(r[TRAIN_ITERATION]) for r in lost if r.get("kind") == "train"}),
    }
    last_lost = max(i for i, r in enumerate(records) if _is_lost(r, iteration))
    kept = [r for i, r in enumerate(records[: last_lost + 1]) if not _is_lost(r, iteration)]
    kept += [marker, *records[last_lost + 1 :]]
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    return len(lost)


def running_seconds(records: list[dict[str, Any]]) -> float:
    """Seconds the learner really ran: the sum over its sessions of first-to-last record time.

    A session starts at each ``session`` record; files written before those records existed are split where the
    train iteration stops increasing (a restart). Time between sessions (nothing running) is not counted.
    """
    total, first, last, prev_iter = 0.0, None, None, None
    for rec in records:
        t = rec.get("time")
        if not isinstance(t, int | float):
            continue
        it = rec.get(TRAIN_ITERATION) if rec.get("kind") == "train" else None
        restart = rec.get("kind") == KIND_SESSION or (it is not None and prev_iter is not None and it <= prev_iter)
        if restart and first is not None and last is not None:
            total += last - first
            first = None
        if first is None:
            first = t
        last = t
        if it is not None:
            prev_iter = it
    if first is not None and last is not None:
        total += last - first
    return total
