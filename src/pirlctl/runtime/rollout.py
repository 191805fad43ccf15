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

Under GRPO (``pirl.advantage="grpo"``, a :class:`~pirlctl.runtime.groups.GroupSchedule`) a segment is one actor's
whole episodes of its version instead: it must hold exactly the episodes the schedule gives that actor, each ended,
else it is rejected; a second segment of the same actor and version is rejected too. The batch is full when every
actor's segment of the current version is in, which completes all of that version's groups. On the batch-timeout
path (an actor missing) only complete groups are trained on; the episodes of incomplete groups are DROPPED, not
held over (a later version's policy would make them off-policy, and their partners may never come), and counted
(``data/groups_dropped_incomplete``, ``data/chunks_dropped_incomplete``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pirlctl.algorithms.pi_rl.group_batch import split_episodes
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition
from pirlctl.runtime.groups import GroupSchedule
from pirlctl.runtime.wire import Segment

if TYPE_CHECKING:
    from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition

USED, DROPPED_STALE, REJECTED_FUTURE = "used", "dropped_stale", "rejected_future"
REJECTED_SCHEDULE, REJECTED_DUPLICATE = "rejected_schedule", "rejected_duplicate"


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
    groups_used: int = 0  # GRPO: complete groups trained on
    groups_dropped_incomplete: int = 0  # GRPO: groups missing an episode at batch time (batch-timeout path)
    chunks_dropped_incomplete: int = 0  # GRPO: the chunks of those groups' episodes


@dataclass
class GroupedEpisodes:
    """GRPO: the whole episodes of a batch's complete groups, each with its run-wide group id."""

    episodes: list[list[ChunkTransition]]
    group_ids: list[int]


class RolloutAssembler:
    """Thread-safe collection of segments into PPO batches (gRPC threads offer, the training loop takes)."""

    def __init__(
        self, batch_chunks: int, rule: str = "drop", max_lag: int = 1, groups: GroupSchedule | None = None
    ) -> None:
        self.batch_chunks = batch_chunks
        self.rule = rule
        self.max_lag = max_lag
        self.groups = groups  # GRPO's episode schedule; None: PPO batches of chunks
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
            if self.groups is not None:
                problem = self._schedule_problem(segment)
                if problem is not None:
                    self.counters.segments_rejected += 1
                    return problem
            self._segments.append(segment)
            self._cond.notify_all()
            return USED

    def _schedule_problem(self, segment: Segment) -> str | None:
        """GRPO: why a segment does not fit the schedule (None when it does)."""
        assert self.groups is not None
        episodes, tail = split_episodes(segment.transitions)
        if tail or len(episodes) != self.groups.actor_episodes(segment.actor_id):
            return REJECTED_SCHEDULE
        if any(s.actor_id == segment.actor_id and s.policy_version == segment.policy_version for s in self._segments):
            return REJECTED_DUPLICATE
        return None

    def _complete(self, segments: list[Segment]) -> tuple[dict[int, list[list[ChunkTransition]]], int, int]:
        """GRPO: the complete groups of ``segments`` by run-wide id, and the count and chunks of incomplete ones."""
        assert self.groups is not None
        by_group: dict[int, list[list[ChunkTransition]]] = {}
        for seg in segments:
            for j, ep in enumerate(split_episodes(seg.transitions)[0]):
                by_group.setdefault(self.groups.group_key(seg.policy_version, seg.actor_id, j), []).append(ep)
        size = self.groups.group_size
        complete = {g: eps for g, eps in by_group.items() if len(eps) == size}
        incomplete = [eps for eps in by_group.values() if len(eps) != size]
        return complete, len(incomplete), sum(len(ep) for eps in incomplete for ep in eps)

    def complete_groups(self, segments: list[Segment]) -> GroupedEpisodes:
        """GRPO: the episodes of the complete groups of a taken batch, counted used; incomplete ones counted
        dropped."""
        with self._cond:
            complete, n_bad, bad_chunks = self._complete(segments)
            self.counters.groups_used += len(complete)
            self.counters.groups_dropped_incomplete += n_bad
            self.counters.chunks_dropped_incomplete += bad_chunks
            out = GroupedEpisodes([], [])
            for g in sorted(complete):
                for ep in complete[g]:
                    out.episodes.append(ep)
                    out.group_ids.append(g)
                    self.counters.chunks_used += len(ep)
            return out

    def reject(self) -> None:
        with self._cond:
            self.counters.segments_rejected += 1

    def pending_chunks(self) -> int:
        with self._cond:
            return sum(len(s.transitions) for s in self._segments)

    def _take(self) -> list[Segment]:
        taken, self._segments = self._segments, []
        if self.groups is None:  # GRPO counts what it uses in complete_groups
            self.counters.chunks_used += sum(len(s.transitions) for s in taken)
        return taken

    def wait_batch(self, timeout: float) -> list[Segment] | None:
        """Wait up to ``timeout`` seconds for a full batch; take it, or return None."""

        def full() -> bool:
            if self.groups is not None:  # every actor's episodes of this version: all its groups complete
                current = {s.actor_id for s in self._segments if s.policy_version == self.version}
                return current >= set(range(self.groups.num_actors))
            return sum(len(s.transitions) for s in self._segments) >= self.batch_chunks

        with self._cond:
            if self._cond.wait_for(full, timeout=timeout):
                return self._take()
            return None

    def take_partial(self, min_chunks: int) -> list[Segment] | None:
        """Take whatever is pending when it holds at least ``min_chunks`` (the batch-timeout path; under GRPO, in
        complete groups)."""
        with self._cond:
            if self.groups is not None:
                complete = self._complete(self._segments)[0]
                have = sum(len(ep) for eps in complete.values() for ep in eps)
            else:
                have = sum(len(s.transitions) for s in self._segments)
            if have >= min_chunks and have > 0:
                return self._take()
            return None
