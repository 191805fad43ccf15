"""Version-tagged on-policy batches on the learner.

Each actor sends one rollout *segment* per policy version: ``rollout_chunks`` chunk transitions per env
(``envs_per_actor`` envs) collected with that version, each env's in time order. A PPO batch is complete when the
segments of the current version hold ``num_actors × envs_per_actor × rollout_chunks`` chunks. GAE runs over one
stream per (actor, env) (:func:`segment_streams`), never across envs. The rule for a segment of version v when the
learner is at version c:

- v == c: used.
- v > c: rejected (a version from the future cannot exist; the peer is confused or hostile).
- v < c, rule "drop" (default): dropped and counted. The data was sampled by a policy PPO no longer holds.
- v < c, rule "importance_weight": used when c − v ≤ ``max_policy_lag``, else dropped. Its stored log-probs are
  those of the behaviour policy, so PPO's ratio π_θ/π_v is the importance weight and the clip bounds it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pirlctl.runtime.wire import Segment

if TYPE_CHECKING:
    from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition

USED, DROPPED_STALE, REJECTED_FUTURE = "used", "dropped_stale", "rejected_future"


def segment_streams(segments: list[Segment]) -> list[list[ChunkTransition]]:
    """The time-ordered GAE streams of ``segments``: one per (actor, env), keyed by each transition's
    ``extra["env_index"]`` (0 when absent), in the order they first appear; a stream keeps its transitions' order.
    Two segments of one actor are two streams (each ends in its own bootstrap)."""
    streams: list[list[ChunkTransition]] = []
    for seg in segments:
        by_env: dict[int, list[ChunkTransition]] = {}
        for tr in seg.transitions:
            by_env.setdefault(int(tr.extra.get("env_index", 0)), []).append(tr)
        streams.extend(by_env.values())
    return streams


@dataclass
class RolloutCounters:
    chunks_used: int = 0
    chunks_dropped_stale: int = 0
    segments_rejected: int = 0
    env_steps: int = 0  # every env step an actor reported, used or not
    actors: set[int] = field(default_factory=set)


class RolloutAssembler:
    """Thread-safe collection of segments into PPO batches (gRPC threads offer, the training loop takes)."""

    def __init__(self, batch_chunks: int, rule: str = "drop", max_lag: int = 1) -> None:
        self.batch_chunks = batch_chunks
        self.rule = rule
        self.max_lag = max_lag
        self.version = 0
        self.counters = RolloutCounters()
        self._segments: list[Segment] = []
        self._cond = threading.Condition()

    def set_version(self, version: int) -> None:
        with self._cond:
            self.version = version

    def offer(self, segment: Segment) -> str:
        """Apply the version rule to a decoded segment; returns what happened to it."""
        n = len(segment.transitions)
        with self._cond:
            self.counters.env_steps += segment.env_steps
            self.counters.actors.add(segment.actor_id)
            lag = self.version - segment.policy_version
            if lag < 0:
                self.counters.segments_rejected += 1
                return REJECTED_FUTURE
            if lag > 0 and (self.rule == "drop" or lag > self.max_lag):
                self.counters.chunks_dropped_stale += n
                return DROPPED_STALE
            self._segments.append(segment)
            self._cond.notify_all()
            return USED

    def reject(self) -> None:
        with self._cond:
            self.counters.segments_rejected += 1

    def pending_chunks(self) -> int:
        with self._cond:
            return sum(len(s.transitions) for s in self._segments)

    def _take(self) -> list[Segment]:
        taken, self._segments = self._segments, []
        self.counters.chunks_used += sum(len(s.transitions) for s in taken)
        return taken

    def wait_batch(self, timeout: float) -> list[Segment] | None:
        """Wait up to ``timeout`` seconds for a full batch; take it, or return None."""

        def full() -> bool:
            return sum(len(s.transitions) for s in self._segments) >= self.batch_chunks

        with self._cond:
            if self._cond.wait_for(full, timeout=timeout):
                return self._take()
            return None

    def take_partial(self, min_chunks: int) -> list[Segment] | None:
        """Take whatever is pending when it holds at least ``min_chunks`` (the batch-timeout path)."""
        with self._cond:
            if sum(len(s.transitions) for s in self._segments) >= min_chunks:
                return self._take()
            return None
