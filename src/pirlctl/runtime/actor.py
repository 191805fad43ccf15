"""The PI-RL actor: runs the env with the PI-RL sampler, sends version-tagged segments, loads new weights between
segments.

Loop: wait for weights → collect ``rollout_chunks`` chunks with that version in each of its ``envs_per_actor``
envs (each chunk: every env's observation through the policy's LeRobot preprocessor, ONE batched ``act`` call for
all envs, the actions through its postprocessor, up to n_exec steps in each env, stopped early in an env whose
episode ends; the PREPROCESSED observation is what is sent, so the learner re-scores exactly what the actor saw;
per-env episodes in :mod:`pirlctl.envs.vector`) → send the segment (one time-ordered stream per env, with V(s')
for the bootstrap) →
wait for the next push (``weights_wait_s``; on timeout keep collecting with the weights it has, and the
learner's version rule decides) → load it, checking the version → ... until the learner pushes ``stop``.
The episode is not reset at a segment boundary; GAE bootstraps there. Under GRPO a segment is instead the
actor's whole episodes of its version, each reset with its group's seed (``runtime.groups``). The learner being
away is survived: the parameter stream reconnects with exponential backoff and a failed send is retried, holding
at most one segment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import torch

from pirlctl import metrics as M
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PRIVILEGED_STATE_KEY
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition, PiRLAlgorithm
from pirlctl.config.run_config import PiRLRunConfig
from pirlctl.envs.base import ChunkOutcome, TaskEnv, shaped_reward
from pirlctl.envs.vector import EnvGroup, Episode, episode_seed
from pirlctl.policies.augment import image_keys, shift_images
from pirlctl.policies.processors import PolicyProcessors
from pirlctl.policies.xvla import LANGUAGE_TOKENS_KEY, tokenize_task
from pirlctl.runtime.build import build_algorithm, setup_process
from pirlctl.runtime.groups import make_group_schedule
from pirlctl.runtime.transport import BufferPool, LearnerClient, LearnerUnreachableError, TlsConfig
from pirlctl.runtime.wire import (
    ParametersMessage,
    WireError,
    decode_parameters,
    encode_interaction,
    encode_segment,
)

logger = logging.getLogger("pirlctl.actor")


def actor_observation(
    env: TaskEnv, obs: dict[str, Any], cfg: PiRLRunConfig, tokens: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """One unbatched raw observation: the policy's inputs, the task tokens (None: the preprocessor tokenises the
    instruction itself), and, for an asymmetric critic, the simulator-only state (read from ``env``, whose state
    must be that of ``obs``)."""
    o = env.policy_observation(obs)
    if tokens is not None:
        o[LANGUAGE_TOKENS_KEY] = tokens
    if cfg.pirl.critic_privileged_dim:
        o[PRIVILEGED_STATE_KEY] = torch.from_numpy(env.privileged_state())
    return o


EPISODE_SEED_STRIDE = 100_000  # actor i's episodes use seeds env.seed + i·stride + j


def receive_pushes(
    client: LearnerClient, pool: BufferPool
) -> Iterator[tuple[ParametersMessage | WireError, bytearray | None]]:
    """The actor's receive path: each push of ``client``'s ``StreamParameters``, assembled into a buffer of
    ``pool`` and decoded. Yields (message, its buffer): the message's tensors are views of the buffer, to be given
    back to ``pool`` once loaded. A push that does not decode comes as its :class:`WireError` (its buffer already
    given back). Ends or raises ``grpc.RpcError`` as the stream does. ``pirlctl verify-sync`` reads through this."""
    for blob in client.stream_parameters_into(pool):
        buffer = blob.obj if isinstance(blob.obj, bytearray) else None
        try:
            msg = decode_parameters(blob)
        except WireError as err:
            pool.give_back(buffer)
            yield err, None
            continue
        yield msg, buffer


def load_parameters(algo: PiRLAlgorithm, msg: ParametersMessage, base_fingerprint: str) -> None:
    """Everything a push does to the actor's algorithm: refuse a learner whose frozen part differs (its
    fingerprint against ``base_fingerprint``, this side's), load the pushed weights, and take the learner's
    version as the PPO iteration, so that schedules depending on it (noise annealing) agree with the learner's
    re-score. ``pirlctl verify-sync`` loads through this, so it checks what actors do."""
    if msg.base_fingerprint and msg.base_fingerprint != base_fingerprint:
        raise WireError(
            "the learner's frozen policy weights differ from this actor's; start both from the same "
            "policy_path and seed (pirlctl verify-sync shows the mismatch)"
        )
    algo.load_weights(msg.weights)
    algo.optimization_step = msg.version


class WeightsSlot:
    """The newest decoded parameters, filled by the stream thread, read by the loop.

    Every push gets a sequence number. The loop waits for a *new push*, not for a higher version: a learner that
    was killed and resumed from an older checkpoint publishes a lower version, and the actor must follow it (its
    newer-versioned data would be refused as "from the future" and training would stall).

    A message's tensors are views of its receive buffer. A message replaced before the loop took it goes back to
    the pool at once; one the loop took is given back by the loop once loaded (``BufferPool.give_back``).
    """

    def __init__(self, pool: BufferPool | None = None) -> None:
        self._cond = threading.Condition()
        self._msg: ParametersMessage | None = None
        self._buffer: object = None
        self._taken = False
        self._pool = pool
        self.seq = 0

    def put(self, msg: ParametersMessage, buffer: object = None) -> None:
        with self._cond:
            if self._msg is not None and not self._taken and self._pool is not None:
                self._pool.give_back(self._buffer)
            self._msg, self._buffer, self._taken = msg, buffer, False
            self.seq += 1
            self._cond.notify_all()

    @property
    def latest(self) -> ParametersMessage | None:
        with self._cond:
            return self._msg

    def wait_new(
        self, seen: int, timeout: float, stop: threading.Event
    ) -> tuple[int, ParametersMessage, object] | None:
        """Block until a push after sequence ``seen`` (or a stop push) arrives: (sequence, message, its buffer);
        None on timeout or stop."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not stop.is_set():
                if self._msg is not None and (self.seq > seen or self._msg.stop):
                    self._taken = True
                    return self.seq, self._msg, self._buffer
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))
        return None


@dataclass
class ActorReport:
    actor_id: int
    episodes: int
    successes: int
    env_steps: int
    segments_sent: int
    chunks_sent: int = 0  # chunk transitions the learner acknowledged (it then counts them used or dropped)
    versions_loaded: list[int] = field(default_factory=list)
    reconnects: int = 0
    policy_fps: float = 0.0
    env_fps: float = 0.0
    # where the actor's wall time went (seconds; B2 in docs/benchmarks.md): policy inference (chunk sampling,
    # log-prob, value, bootstrap values), env steps and resets, everything else while collecting (observation
    # conversion, transition building, episode stats), encoding and sending segments, loading pushed weights,
    # and waiting for the next policy version (the on-policy sync: the learner is updating)
    infer_s: float = 0.0
    env_s: float = 0.0
    collect_s: float = 0.0
    send_s: float = 0.0
    load_s: float = 0.0
    wait_s: float = 0.0


class Actor:
    def __init__(
        self, cfg: PiRLRunConfig, actor_id: int, *, token: str | None = None, tls: TlsConfig | None = None
    ) -> None:
        self.cfg = cfg
        self.actor_id = actor_id
        self.stop = threading.Event()
        self.algo: PiRLAlgorithm = build_algorithm(cfg, cfg.runtime.actor_device)
        self.base_fingerprint = self.algo.frozen_fingerprint()
        torch.manual_seed(cfg.seed + 7919 * (actor_id + 1))
        self.generator = torch.Generator().manual_seed(cfg.seed + 104_729 * (actor_id + 1))
        # algorithm.image_shift: its own stream, so turning it on leaves the sampler's noise draws as they were
        self.shift_generator = torch.Generator().manual_seed(cfg.seed + 15_485_863 * (actor_id + 1))
        # runtime.envs_per_actor envs, each built as the single env is; env 0 is also ``self.env``
        self.envs: list[TaskEnv] = [cfg.env.build_task_env() for _ in range(cfg.runtime.envs_per_actor)]
        self.env = self.envs[0]
        self.tokens: torch.Tensor | None = None  # the pipeline's own tokenizer step tokenises the instruction
        if self.processors.tokenizes:
            logger.info("actor %d: task tokens from the policy's preprocessor", actor_id)
        else:
            tokens, source = tokenize_task(self.env.instruction, cfg.policy, 1)
            self.tokens = tokens[0]
            logger.info("actor %d: task tokens from %s", actor_id, source)
        self.client = LearnerClient(cfg.runtime.learner_host, cfg.runtime.learner_port, token, tls)
        self.pool = BufferPool(keep=2)  # receive buffers reused across pushes (B4)
        self.slot = WeightsSlot(self.pool)
        self.report = ActorReport(actor_id, 0, 0, 0, 0)
        self.version = -1
        # GRPO: the episode schedule (runtime.groups), and the index of the episode within this version's segment
        self.groups = make_group_schedule(cfg, self.algo.n_exec)
        self.group_episode = 0
        self.episode_start: dict[int, dict[str, float | int]] = {}  # per env: the env's reset stats (and group)
        # after the schedule: the group draws each env's first seed from _episode_seed now
        self.group = EnvGroup(self.envs, self._step_env, self._reset_env, self._episode_seed)
        self.infer_time = 0.0
        self.env_time = 0.0
        self.actions_done = 0
        self.phi = [0.0] * len(self.envs)  # shaping potential of each env's current state (env.shaping > 0)
        self.started = time.monotonic()  # run() restarts it; episode stats report the loop's rate since then

    @property
    def processors(self) -> PolicyProcessors:
        """The policy's LeRobot processors (those of the checkpoint after a restore, as in profile-actor)."""
        return self.algo.processors

    # -- parameters stream (background thread) ------------------------------------------------------------
    def _stream_parameters(self) -> None:
        backoff = 0.2
        while not self.stop.is_set():
            try:
                for msg, buffer in receive_pushes(self.client, self.pool):
                    if isinstance(msg, WireError):
                        logger.warning("ignored a bad parameters message: %s", msg)
                        continue
                    self.slot.put(msg, buffer)
                    backoff = 0.2
                    if msg.stop:
                        return
            except grpc.RpcError as err:
                if self.stop.is_set():
                    return
                code = err.code() if hasattr(err, "code") else None
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    logger.error("learner refused our token; set PIRL_TOKEN to the learner's token")
                    self.stop.set()
                    return
                logger.warning("parameter stream lost (%s); reconnecting in %.1fs", code, backoff)
                self.report.reconnects += 1
            self.stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _learner_done(self) -> bool:
        latest = self.slot.latest
        return latest is not None and latest.stop

    def _load(self, msg: ParametersMessage) -> None:
        load_parameters(self.algo, msg, self.base_fingerprint)
        if msg.version < self.version:
            logger.warning(
                "learner went back from v%d to v%d (resumed from a checkpoint); following it", self.version, msg.version
            )
        self.version = msg.version
        self.report.versions_loaded.append(msg.version)
        logger.info("actor %d loaded policy v%d", self.actor_id, msg.version)

    def _send(self, send: Any, blob: bytes, what: str) -> bool:
        backoff = 0.2
        while not self.stop.is_set():
            if self._learner_done():
                return False  # the learner has finished: nothing will take this data
            try:
                send(blob)
                return True
            except grpc.RpcError as err:
                code = err.code() if hasattr(err, "code") else None
                if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED):
                    logger.error("learner refused %s: %s", what, err.details() if hasattr(err, "details") else err)
                    return False
                logger.warning("sending %s failed (%s); retrying in %.1fs", what, code, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        return False

    # -- env interaction ----------------------------------------------------------------------------------
    def _policy_obs(self, k: int, obs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Env ``k``'s preprocessed, unbatched observation, which the actor scores and sends: its camera images
        randomly shifted here under ``algorithm.image_shift``, so the learner re-scores the shifted images."""
        raw = actor_observation(self.envs[k], obs, self.cfg, self.tokens)
        pobs = self.processors.preprocess_one(raw, self.envs[k].instruction)
        return shift_images(pobs, image_keys(self.cfg.policy), self.cfg.pirl.image_shift, self.shift_generator)

    def _batch(self, rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {key: torch.stack([r[key] for r in rows]).to(self.algo.device) for key in rows[0]}

    @staticmethod
    def _step_env(env: TaskEnv, actions: np.ndarray) -> ChunkOutcome:
        return env.step_chunk(actions)  # clipped to the env's bounds, stopped at the episode's end

    def _reset(self, *, restart: bool = False) -> list[dict[str, Any]]:
        """Start every env's current episode (``restart``: a new episode in each, seeded now); their observations."""
        obs = self.group.restart_all() if restart else self.group.reset_all()
        if self.cfg.env.shaping:
            self.phi = [env.progress_potential() for env in self.envs]
        return obs

    def _reset_env(self, env: TaskEnv, seed: int) -> dict[str, Any]:
        """Reset one env with ``seed``; what the env reports of its initial state (``reset_stats``: pick-cube's
        initial object position) and the GRPO group go into the episode's record."""
        obs = env.reset(seed)
        start: dict[str, float | int] = dict(env.reset_stats())
        if self.groups is not None:
            start[M.ACTOR_GROUP] = self.groups.group_key(self.version, self.actor_id, self.group_episode)
        self.episode_start[self.envs.index(env)] = start
        return obs

    def _episode_seed(self, env_index: int, number: int) -> int:
        """PPO: env k of actor i runs its j-th episode from ``vector.episode_seed``. GRPO (one env per actor): the
        seed of the episode's group (runtime.groups), shared by every episode of the group, whichever actor runs it."""
        if self.groups is not None:
            return self.groups.seed(self.version, self.actor_id, self.group_episode)
        rt = self.cfg.runtime
        return episode_seed(self.cfg.env.seed, self.actor_id, EPISODE_SEED_STRIDE, rt.envs_per_actor, env_index, number)

    def _collect_segment(self) -> tuple[list, list, list, list[int]]:
        """``rollout_chunks`` chunks in each env: transitions, executed actions and env steps, env after env (each
        env's stream in time order, tagged with its ``env_index``), and the env steps of each policy call."""
        n_envs = self.group.num_envs
        streams: list[list[ChunkTransition]] = [[] for _ in range(n_envs)]
        actions: list[list[torch.Tensor]] = [[] for _ in range(n_envs)]
        env_steps: list[list[int]] = [[] for _ in range(n_envs)]
        call_steps: list[int] = []
        pirl = self.cfg.pirl
        n_chunks = self.cfg.runtime.rollout_chunks
        if self.groups is not None:  # GRPO: this version's episodes of the schedule, whole, from their group's seed
            self.group_episode = 0
            self._reset(restart=True)
            n_chunks = self.groups.max_segment_chunks(self.actor_id)
        for i in range(n_chunks):
            pobs = [self._policy_obs(k, o) for k, o in enumerate(self.group.obs)]
            t0 = time.perf_counter()
            step = self.algo.act(self._batch(pobs), generator=self.generator)
            self.infer_time += time.perf_counter() - t0
            chunks = np.asarray(self.processors.postprocess(step.actions).detach().cpu().numpy(), dtype=np.float32)
            t1 = time.perf_counter()
            outs = self.group.step(list(chunks))
            self.env_time += time.perf_counter() - t1
            last = i == n_chunks - 1
            rewards, need_boot = [], []
            for k, out in enumerate(outs):
                # The time limit ends the task unless pirl.bootstrap_time_limit says to look past it.
                ended = out.terminated or (out.truncated and not pirl.bootstrap_time_limit)
                chunk_reward = out.reward
                if self.cfg.env.shaping:
                    phi_next = self.envs[k].progress_potential()
                    chunk_reward = shaped_reward(
                        out.reward, self.phi[k], phi_next, gamma=pirl.gamma, weight=self.cfg.env.shaping, terminal=ended
                    )
                    self.phi[k] = phi_next
                rewards.append(chunk_reward)
                self.actions_done += out.steps
                if (out.done and not ended) or (last and not out.done):
                    need_boot.append(k)
            # with truncated set, chunk_gae bootstraps from this: 0 when the time limit ended the task
            boot = [0.0] * n_envs
            if need_boot:  # V of each env's TRUE final observation (its state not yet reset), one batched call
                nb = self._batch([self._policy_obs(k, outs[k].final_obs) for k in need_boot])
                t2 = time.perf_counter()
                values = self.algo.value(nb)
                self.infer_time += time.perf_counter() - t2
                for j, k in enumerate(need_boot):
                    boot[k] = float(values[j])
            for k, out in enumerate(outs):
                streams[k].append(
                    ChunkTransition(
                        observation=pobs[k],
                        chain=step.chain[k].cpu(),
                        stochastic=step.stochastic[k].cpu(),
                        log_prob=step.log_prob[k].cpu(),
                        value=float(step.value[k]),
                        reward=rewards[k],
                        terminated=out.terminated,
                        truncated=out.truncated,
                        bootstrap_value=boot[k],
                        policy_version=self.version,
                        extra={"actor_id": self.actor_id, "env_index": k},
                    )
                )
                actions[k].append(torch.as_tensor(chunks[k][: out.steps]))
                env_steps[k].append(out.steps)
                self.report.env_steps += out.steps
                if out.episode is not None:
                    self._end_episode(out.episode)
                    self.group_episode += 1
            call_steps.append(sum(out.steps for out in outs))
            if self.groups is not None and self.group_episode >= self.groups.actor_episodes(self.actor_id):
                break  # the segment is whole; the next one resets for the next version's groups
            if any(out.done for out in outs):
                t3 = time.perf_counter()
                self.group.reset_ended()
                if self.cfg.env.shaping:
                    for k, out in enumerate(outs):
                        if out.done:
                            self.phi[k] = self.envs[k].progress_potential()
                self.env_time += time.perf_counter() - t3
            if self.stop.is_set() or self._learner_done():
                break
        flat = [x for stream in streams for x in stream]
        return flat, [a for env in actions for a in env], [n for env in env_steps for n in env], call_steps

    def collect_and_send(self) -> list[int]:
        """One segment of the loop: collect it with the weights loaded now (from the envs' current observations),
        encode it and send it (retried); collect and send times go to the report. Returns the env steps (all envs)
        of each policy call. ``pirlctl profile-actor`` times this with a stand-in client."""
        t0 = time.perf_counter()
        transitions, actions, env_steps, call_steps = self._collect_segment()
        t1 = time.perf_counter()
        if transitions and self._send(
            self.client.send_transitions,
            encode_segment(transitions, actions=actions, env_steps=env_steps),
            "transitions",
        ):
            self.report.segments_sent += 1
            self.report.chunks_sent += len(transitions)
        self.report.collect_s += t1 - t0
        self.report.send_s += time.perf_counter() - t1
        return call_steps

    def _end_episode(self, ep: Episode) -> None:
        self.report.episodes += 1
        self.report.successes += int(ep.success)
        self.report.policy_fps = self.actions_done / max(self.infer_time, 1e-9)
        self.report.env_fps = self.actions_done / max(self.env_time, 1e-9)
        stats: dict[str, float | int | bool | str] = {
            M.ACTOR_ID: self.actor_id,
            M.ACTOR_ENV_INDEX: ep.env_index,
            M.ACTOR_EPISODE_SEED: ep.seed,
            M.ACTOR_INSTRUCTION: self.envs[ep.env_index].instruction,
            M.ACTOR_EPISODE_RETURN: ep.ret,
            M.ACTOR_SUCCESS: bool(ep.success),
            M.ACTOR_EPISODE_LENGTH: int(ep.length),
            M.ACTOR_POLICY_VERSION: self.version,
            M.ACTOR_POLICY_FPS: self.report.policy_fps,
            M.ACTOR_ENV_FPS: self.report.env_fps,
            M.ACTOR_LOOP_FPS: self.actions_done / max(time.monotonic() - self.started, 1e-9),
            M.ACTOR_ENV_STEPS: self.report.env_steps,
            **self.episode_start.get(ep.env_index, {}),
        }
        self._send(self.client.send_interaction, encode_interaction(stats), "interaction")

    def _wait_for_learner(self) -> None:
        """Until the learner answers; a :class:`LearnerUnreachableError` after ``runtime.connect_timeout_s``."""
        deadline = time.monotonic() + self.cfg.runtime.connect_timeout_s
        backoff = 0.2
        while not self.stop.is_set():
            try:
                self.client.ready(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
                return
            except grpc.RpcError as err:
                if hasattr(err, "code") and err.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise PermissionError("learner refused our token; set PIRL_TOKEN to the learner's token") from err
                if time.monotonic() + backoff > deadline:
                    raise self._unreachable("answered") from None
                logger.info("waiting for the learner at %s (%.1fs)", self.client.address, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _unreachable(self, what: str) -> LearnerUnreachableError:
        rt = self.cfg.runtime
        return LearnerUnreachableError(
            f"no learner {what} at {rt.learner_host}:{rt.learner_port} within runtime.connect_timeout_s="
            f"{rt.connect_timeout_s:g}s; start `pirlctl learner` there first (same config), or point the actor at it "
            "with --host/--port"
        )

    def run(self) -> ActorReport:
        self.started = time.monotonic()
        self._wait_for_learner()
        streamer = threading.Thread(target=self._stream_parameters, name="params", daemon=True)
        streamer.start()
        rt = self.cfg.runtime
        got = self.slot.wait_new(0, timeout=rt.connect_timeout_s, stop=self.stop)
        if got is None:
            self.stop.set()
            raise self._unreachable("sent weights")
        seen, msg, buffer = got
        if not msg.stop:
            self._load(msg)
        self.pool.give_back(buffer)
        if self.groups is None:  # GRPO's segments start their episodes themselves, from the loaded version's seeds
            self._reset()
        while not self.stop.is_set() and not msg.stop:
            self.collect_and_send()
            t2 = time.perf_counter()
            got = self.slot.wait_new(seen, timeout=rt.weights_wait_s, stop=self.stop)
            while got is None and self.groups is not None and not self.stop.is_set():
                # GRPO: this version's episodes are sent; a second copy would be refused as a duplicate
                logger.warning("no new policy version within %.0fs; still waiting (GRPO)", rt.weights_wait_s)
                got = self.slot.wait_new(seen, timeout=rt.weights_wait_s, stop=self.stop)
            t3 = time.perf_counter()
            self.report.wait_s += t3 - t2
            if got is None:
                logger.warning(
                    "no new policy version within %.0fs; collecting with v%d", rt.weights_wait_s, self.version
                )
                continue
            seen, msg, buffer = got
            # the stop push carries the learner's final weights: when it replaced an untaken final version in the
            # slot, load it, so the actor still ends on every version the learner published
            if not msg.stop or msg.version > self.version:
                self._load(msg)
                self.report.load_s += time.perf_counter() - t3
            self.pool.give_back(buffer)
        self.stop.set()
        self.client.close()
        self.report.infer_s, self.report.env_s = self.infer_time, self.env_time
        return self.report


def run_actor(
    cfg: PiRLRunConfig, actor_id: int = 0, *, token: str | None = None, tls: TlsConfig | None = None
) -> ActorReport:
    setup_process(cfg, f"actor{actor_id}")
    return Actor(cfg, actor_id, token=token, tls=tls).run()
