"""N envs per actor, stepped chunk by chunk, each with its own episode (issue 20, deliverable 2).

The actor makes one batched policy call per chunk for all N envs, then each env executes its own chunk. This module
holds the per-env bookkeeping, independent of how the envs are built (it takes them already built):

- :class:`EnvGroup`: N separate envs (pirlctl's pick-cube builder called N times), each stepped through its chunk
  by a step function (``run_chunk``), which stops at the episode's end. Reset is explicit (:meth:`reset_ended`),
  AFTER the actor has read what it needs from the ended env's final state (shaping potential, the bootstrap
  observation, simulator state for the critic).
- :class:`VectorGroup`: one gymnasium ``VectorEnv`` (LeRobot's ``make_env``), stepped in lockstep. Its auto-reset
  mode decides where an episode's true last observation is (lerobot-envs.md, "Auto-reset modes differ"):

  ========== ============================================ ==========================================
  mode       observation returned at the ending step      the episode's true last observation
  ========== ============================================ ==========================================
  same_step  the NEXT episode's first (already reset)      ``info["final_obs"][i]``
  next_step  the episode's last                            the returned one; the following step only
                                                           resets (action ignored, reward 0)
  ========== ============================================ ==========================================

  Within a chunk, an env whose episode ended is latched done, as LeRobot's ``rollout()`` latches it: what it
  returns afterwards (an auto-reset, a new episode run with the old chunk's actions, or, under LeRobot's
  ``FreezeAfterEpisodeEnd``, a replay of its last step with reward 0) is ignored. At the chunk's end every ended
  env is reset explicitly with its own seed (``reset_mask`` plus LeRobot's ``NEW_ROLLOUT_OPTION``, which is what
  thaws a frozen env), so each episode starts on a chunk boundary from a seeded reset.

Success is read as LeRobot's ``rollout()`` reads it (lerobot/scripts/lerobot_eval.py): ``info["final_info"]``
first, then ``info["is_success"]``.

Episode seeds: env i's j-th episode of actor a uses ``base + a·stride + j·N + i`` (N = 1: ``base + a·stride + j``,
the single-env actor's seeds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MANUAL, SAME_STEP, NEXT_STEP = "manual", "same_step", "next_step"
# lerobot.envs.utils.NEW_ROLLOUT_OPTION (LeRobot 0.6.1): the reset option that thaws FreezeAfterEpisodeEnd
NEW_ROLLOUT_OPTION = "lerobot_new_rollout"


@dataclass
class Episode:
    """One env's current (or just finished) episode."""

    env_index: int
    seed: int
    ret: float = 0.0  # sum of env rewards (unshaped)
    length: int = 0  # env steps
    success: bool = False
    terminated: bool = False
    truncated: bool = False

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


@dataclass
class EnvChunk:
    """What one env did in one chunk."""

    final_obs: Any  # the observation after the chunk's last executed step: the TRUE last one when the episode ended
    reward: float  # sum of the executed steps' env rewards
    terminated: bool
    truncated: bool
    success: bool
    steps: int  # env steps executed (fewer than the chunk when the episode ended inside it)
    episode: Episode | None  # the episode this chunk ended, else None

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


def episode_seed(base: int, actor_id: int, stride: int, num_envs: int, env_index: int, number: int) -> int:
    """Seed of env ``env_index``'s ``number``-th episode (0-based) in actor ``actor_id``: distinct across envs and
    actors while ``number·num_envs < stride``."""
    return base + actor_id * stride + number * num_envs + env_index


def take_env(x: Any, i: int) -> Any:
    """Env ``i``'s part of a batched gymnasium value (an array, or a dict of them as vector envs make)."""
    if isinstance(x, dict):
        return {k: take_env(v, i) for k, v in x.items()}
    return x[i]


def step_success(info: dict[str, Any], i: int) -> bool:
    """Env ``i``'s success at a vector step, read as LeRobot's ``rollout()`` reads it: ``final_info["is_success"]``
    when the step carries a ``final_info`` (same-step auto-reset), else ``info["is_success"]``; False when neither.
    Gymnasium < 1.0's per-env ``final_info`` sequence is read too."""
    final = info.get("final_info")
    if final is not None:
        if isinstance(final, dict):
            mask = final.get("_is_success")
            if "is_success" not in final or (mask is not None and not bool(mask[i])):
                return False
            return bool(final["is_success"][i])
        item = final[i]
        return bool(isinstance(item, dict) and item.get("is_success", False))
    if "is_success" in info:
        mask = info.get("_is_success")
        return bool(info["is_success"][i]) if mask is None or bool(mask[i]) else False
    return False


class _Books:
    """Per-env episodes and their seeds."""

    def __init__(self, num_envs: int, seed_of: Callable[[int, int], int]) -> None:
        self.seed_of = seed_of  # (env index, episode number) -> seed
        self.started = [0] * num_envs  # episodes started per env
        self.episodes: list[Episode] = [self._new(i) for i in range(num_envs)]

    def _new(self, i: int) -> Episode:
        ep = Episode(i, self.seed_of(i, self.started[i]))
        self.started[i] += 1
        return ep

    def record(self, i: int, reward: float, steps: int, term: bool, trunc: bool, success: bool, obs: Any) -> EnvChunk:
        ep = self.episodes[i]
        ep.ret += reward
        ep.length += steps
        ep.terminated, ep.truncated, ep.success = bool(term), bool(trunc), bool(success)
        return EnvChunk(obs, reward, bool(term), bool(trunc), bool(success), steps, ep if ep.done else None)

    def check_running(self) -> None:
        ended = [ep.env_index for ep in self.episodes if ep.done]
        if ended:
            raise RuntimeError(f"env(s) {ended} ended their episode; call reset_ended() before the next step()")

    def renew(self, i: int) -> Episode:
        self.episodes[i] = self._new(i)
        return self.episodes[i]


class EnvGroup:
    """N separate envs, each stepped through its own chunk by ``step_chunk(env, actions)`` (pick-cube's
    ``run_chunk``: it stops at the episode's end and returns a ``ChunkOutcome``), reset by ``reset(env, seed)``."""

    mode = MANUAL

    def __init__(
        self,
        envs: Sequence[Any],
        step_chunk: Callable[[Any, np.ndarray], Any],
        reset: Callable[[Any, int], Any],
        seed_of: Callable[[int, int], int],
    ) -> None:
        self.envs = list(envs)
        self.step_chunk = step_chunk
        self._reset = reset
        self.books = _Books(len(self.envs), seed_of)
        self.obs: list[Any] = []

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    @property
    def episodes(self) -> list[Episode]:
        return self.books.episodes

    def reset_all(self) -> list[Any]:
        """Start every env's current episode (with its seed); the observations to act on."""
        self.obs = [self._reset(env, ep.seed) for env, ep in zip(self.envs, self.books.episodes, strict=True)]
        return self.obs

    def step(self, chunks: Sequence[np.ndarray]) -> list[EnvChunk]:
        """Each env executes its chunk [n_exec, A]. An env whose episode ended stays at its final observation
        (``self.obs``) until :meth:`reset_ended`."""
        self.books.check_running()
        out = []
        for i, (env, actions) in enumerate(zip(self.envs, chunks, strict=True)):
            o = self.step_chunk(env, actions)
            out.append(self.books.record(i, o.reward, o.steps, o.terminated, o.truncated, o.success, o.obs))
            self.obs[i] = o.obs
        return out

    def restart_all(self) -> list[Any]:
        """Start a new episode in every env, ended or not, each with its next seed (GRPO's segments start so)."""
        for i in range(self.num_envs):
            self.books.renew(i)
        return self.reset_all()

    def reset_ended(self) -> list[Any]:
        """Start a new episode in every env whose episode ended; the observations to act on next."""
        for i, ep in enumerate(self.books.episodes):
            if ep.done:
                self.obs[i] = self._reset(self.envs[i], self.books.renew(i).seed)
        return self.obs


class VectorGroup:
    """One gymnasium ``VectorEnv`` of N envs with auto-reset mode ``mode`` (``same_step`` or ``next_step``)."""

    def __init__(self, vec: Any, mode: str, seed_of: Callable[[int, int], int]) -> None:
        if mode not in (SAME_STEP, NEXT_STEP):
            raise ValueError(f"auto-reset mode {mode!r} is not handled; use {SAME_STEP!r} or {NEXT_STEP!r}")
        self.vec = vec
        self.mode = mode
        self.books = _Books(vec.num_envs, seed_of)
        self.obs: list[Any] = []

    @classmethod
    def from_vector_env(cls, vec: Any, seed_of: Callable[[int, int], int]) -> VectorGroup:
        """Read the mode from the env's metadata (gymnasium >= 1.0 ``AutoresetMode``: SAME_STEP, NEXT_STEP)."""
        mode = vec.metadata.get("autoreset_mode")
        return cls(vec, str(getattr(mode, "name", mode)).lower(), seed_of)

    @property
    def num_envs(self) -> int:
        return int(self.vec.num_envs)

    @property
    def episodes(self) -> list[Episode]:
        return self.books.episodes

    def reset_all(self) -> list[Any]:
        seeds = [ep.seed for ep in self.books.episodes]
        obs, _ = self.vec.reset(seed=seeds, options={NEW_ROLLOUT_OPTION: True})
        self.obs = [take_env(obs, i) for i in range(self.num_envs)]
        return self.obs

    def step(self, chunks: Sequence[np.ndarray]) -> list[EnvChunk]:
        """All envs execute their chunks in lockstep; an env is latched done from the step its episode ended (its
        later results are ignored), and the chunk stops early once every env is done."""
        self.books.check_running()
        n = self.num_envs
        actions = np.stack([np.asarray(c) for c in chunks])  # [N, n_exec, A]
        rewards = np.zeros(n)
        steps = [0] * n
        term, trunc, success = [False] * n, [False] * n, [False] * n
        final = list(self.obs)
        for t in range(actions.shape[1]):
            if all(a or b for a, b in zip(term, trunc, strict=True)):
                break
            obs, reward, terminated, truncated, info = self.vec.step(actions[:, t])
            for i in range(n):
                if term[i] or trunc[i]:
                    continue  # latched: an auto-reset, a frozen replay or a new episode on stale actions
                rewards[i] += float(reward[i])
                steps[i] += 1
                term[i], trunc[i] = bool(terminated[i]), bool(truncated[i])
                if term[i] or trunc[i]:
                    success[i] = step_success(info, i)
                    final[i] = take_env(info["final_obs"], i) if self.mode == SAME_STEP else take_env(obs, i)
                else:
                    final[i] = take_env(obs, i)
        self.obs = final
        return [
            self.books.record(i, float(rewards[i]), steps[i], term[i], trunc[i], success[i], final[i]) for i in range(n)
        ]

    def reset_ended(self) -> list[Any]:
        """Reset every env whose episode ended, each with its next seed (a masked reset: the others continue)."""
        mask = np.array([ep.done for ep in self.books.episodes], dtype=np.bool_)
        if not mask.any():
            return self.obs
        seeds = [self.books.renew(i).seed if mask[i] else None for i in range(self.num_envs)]
        obs, _ = self.vec.reset(seed=seeds, options={"reset_mask": mask, NEW_ROLLOUT_OPTION: True})
        for i in np.flatnonzero(mask):
            self.obs[int(i)] = take_env(obs, int(i))
        return self.obs
