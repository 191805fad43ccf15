"""GRPO group scheduling: which episodes an actor runs for a policy version, and from which initial state.

A deterministic numbering, so actors need no coordination and the learner can check what it got:

- A PPO batch of policy version v holds ``groups_per_batch`` groups of G episodes, numbered e = 0 .. M−1
  (M = groups_per_batch · G). Episode e belongs to group e // G.
- Actor a of A runs the episodes e ≡ a (mod A), in order: its j-th episode of the version is e = a + j·A. A group
  therefore spans actors (with A = 2 and G = 8, each actor runs 4 episodes of every group).
- Every episode of group g of version v resets with the seed ``env.seed + v · groups_per_batch + g``: the same
  initial state within a group (a TaskEnv's ``reset(seed)`` is reproducible), a new one for every group of the
  run.
- An actor's segment for version v is exactly its episodes of v, whole (it resets at the start of each segment),
  so the learner splits a segment into episodes and knows each one's group without extra fields on the wire.

``groups_per_batch`` is derived, not set: the most whole groups whose episodes, at full length
(ceil(env.episode_limit / n_exec) chunks), fit in the PPO batch's chunk budget ``num_actors · rollout_chunks``
(at least one group). Episodes that end early (successes) make GRPO batches smaller than that budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pirlctl.config.run_config import PiRLRunConfig


def groups_per_batch(num_actors: int, rollout_chunks: int, group_size: int, max_chunks_per_episode: int) -> int:
    """Whole groups of full-length episodes that fit in ``num_actors · rollout_chunks`` chunks; at least 1."""
    return max(1, (num_actors * rollout_chunks) // (group_size * max_chunks_per_episode))


@dataclass(frozen=True)
class GroupSchedule:
    """The episode numbering of one GRPO run (see the module docstring)."""

    num_actors: int
    group_size: int
    groups_per_batch: int
    base_seed: int
    max_chunks_per_episode: int

    @property
    def episodes_per_batch(self) -> int:
        return self.groups_per_batch * self.group_size

    def actor_episodes(self, actor_id: int) -> int:
        """How many episodes actor ``actor_id`` runs per policy version (0 for an id outside 0..num_actors−1)."""
        if not 0 <= actor_id < self.num_actors:
            return 0
        return len(range(actor_id, self.episodes_per_batch, self.num_actors))

    def group(self, actor_id: int, j: int) -> int:
        """The group (0 .. groups_per_batch−1) of actor ``actor_id``'s j-th episode of a version."""
        return (actor_id + j * self.num_actors) // self.group_size

    def group_key(self, version: int, actor_id: int, j: int) -> int:
        """The run-wide id of that group: v · groups_per_batch + group (unique over the run's versions)."""
        return version * self.groups_per_batch + self.group(actor_id, j)

    def seed(self, version: int, actor_id: int, j: int) -> int:
        """The reset seed of actor ``actor_id``'s j-th episode of ``version``: one seed per group."""
        return self.base_seed + self.group_key(version, actor_id, j)

    def max_segment_chunks(self, actor_id: int) -> int:
        """The longest segment an actor can send for one version (all its episodes at full length)."""
        return self.actor_episodes(actor_id) * self.max_chunks_per_episode


def make_group_schedule(cfg: PiRLRunConfig, n_exec: int) -> GroupSchedule | None:
    """The run's schedule under ``algorithm.advantage="grpo"``; None under GAE (episodes run as before)."""
    pirl = cfg.pirl
    if pirl.advantage != "grpo":
        return None
    limit = cfg.env.episode_limit  # run_config refuses GRPO on an env without one
    assert limit is not None
    per_episode = math.ceil(limit / n_exec)
    rt = cfg.runtime
    return GroupSchedule(
        num_actors=rt.num_actors,
        group_size=pirl.group_size,
        groups_per_batch=groups_per_batch(rt.num_actors, rt.rollout_chunks, pirl.group_size, per_episode),
        base_seed=cfg.env.seed,
        max_chunks_per_episode=per_episode,
    )
