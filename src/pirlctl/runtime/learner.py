"""The PI-RL learner: serves LeRobot's LearnerService, turns segments into PPO batches, pushes versioned weights.

Loop: publish weights v → wait for a full batch of version-v segments → GAE (or GRPO's group advantages over
whole groups of episodes, ``runtime.groups``) → one PPO iteration → v+1 → publish
→ checkpoint every ``checkpoint_every`` iterations → stop at ``total_env_steps``, or earlier once the actor lr has
annealed to a final 0 (``PiRLConfig.policy_frozen_after``) (final checkpoint, then a
``stop`` push that ends the actors).
"""

from __future__ import annotations

import copy
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pirlctl import metrics as M
from pirlctl.alarms import Alarm, AlarmMonitor
from pirlctl.algorithms.pi_rl.group_batch import build_group_batch
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import RolloutBatch, build_rollout_batch
from pirlctl.config.run_config import PiRLRunConfig, config_hash, encode_run_config, save_run_config
from pirlctl.reporting.wandb_log import open_wandb
from pirlctl.runtime import checkpoint as ckpt
from pirlctl.runtime.build import build_algorithm, expected_observation_shapes, run_end, setup_process
from pirlctl.runtime.groups import make_group_schedule
from pirlctl.runtime.ranks import CHECKPOINT, Mirror, RankGroup, attach, follow, start_ranks
from pirlctl.runtime.rollout import USED, RolloutAssembler, segment_streams
from pirlctl.runtime.transport import BoundServer, PiRLLearnerService, TlsConfig, bind_server, serve
from pirlctl.runtime.wire import WireError, decode_interaction, decode_segment, encode_parameters

logger = logging.getLogger("pirlctl.learner")


@dataclass
class LearnerReport:
    output_dir: str
    iterations: int
    env_steps: int
    chunks_used: int
    chunks_dropped_stale: int
    segments_rejected: int
    actors: list[int]
    last_checkpoint: str | None
    wall_seconds: float
    stopped_by: str  # "budget" | "schedule" (the actor lr reached a final 0) | "signal"
    resumed_from: str | None = None  # the checkpoint this session started from (None: the SFT policy)
    resume_note: str | None = None  # why it is not the one `last` pointed at, when it is not
    ranks: int = 1  # learner processes the PPO update ran on (runtime.learner_ranks)


class Learner:
    def __init__(
        self,
        cfg: PiRLRunConfig,
        *,
        token: str | None = None,
        tls: TlsConfig | None = None,
        resume_from: str | None = None,
        force: bool = False,
        ranks: RankGroup | None = None,
    ) -> None:
        self.cfg = cfg
        self.token = token
        self.tls = tls
        self.out = Path(cfg.output_dir)
        self.shutdown = threading.Event()  # ends the gRPC streams
        self.stop_requested = threading.Event()  # ends training (signal, Ctrl-C, tests)
        self.algo = build_algorithm(cfg, cfg.runtime.device)
        self.base_fingerprint = self.algo.frozen_fingerprint()
        self.algo.make_optimizers_and_scheduler()
        self.config_hash = config_hash(cfg)
        self.run_json = encode_run_config(cfg)
        pirl = cfg.pirl
        rt = cfg.runtime
        self.groups = make_group_schedule(cfg, self.algo.n_exec)  # GRPO's episode schedule; None under GAE
        self.assembler = RolloutAssembler(
            rt.num_actors * rt.envs_per_actor * rt.rollout_chunks,
            pirl.stale_sample_rule,
            pirl.max_policy_lag,
            groups=self.groups,
        )
        self.metrics = M.MetricsWriter(self.out / "metrics.jsonl", sink=open_wandb(cfg, self.out))
        T, D = self.algo.adapter.chunk_size, self.algo.adapter.action_dim
        K = pirl.num_denoise_steps
        self.chain_shape = (K + 1, T, D)
        self.log_prob_shape: tuple[int, ...] = () if pirl.logprob_reduction == "chunk_level" else (T, D)
        self.obs_shapes = expected_observation_shapes(
            cfg.policy,
            int(cfg.policy.tokenizer_max_length),  # type: ignore[union-attr]
            cfg.pirl.critic_privileged_dim,
            self.algo.processors,
            cfg.env.instruction,
        )
        self.last_checkpoint: str | None = None
        self._alarms: AlarmMonitor | None = None  # built on first use (_alarm_monitor)
        self._alarm_lock = threading.Lock()
        self.env_steps_offset = 0
        self.resume_point: ckpt.ResumePoint | None = None
        self._saved_iteration: int | None = None  # the iteration `last` holds; save() skips re-writing it
        self._resume(resume_from, force)
        self.ranks = ranks  # rank 0 of a data-parallel learner (runtime.ranks); None: one process
        self.mirror: Mirror | None = None  # under FSDP: the whole trained state that pushes and checkpoints read
        if ranks is not None:
            if ranks.strategy == "fsdp":
                with torch.random.fork_rng(devices=[]):  # rank 0 draws the minibatches as a 1-rank learner does
                    self.mirror = Mirror(build_algorithm(copy.deepcopy(cfg), "cpu"), self.algo)
            attach(ranks, self.algo)  # the other ranks wait for this (run_learner): the resumed state goes to them
        self.service = PiRLLearnerService(self.shutdown, self._on_transitions, self._on_interaction, token)

    # -- resume -------------------------------------------------------------------------------------------
    def _resume(self, resume_from: str | None, force: bool) -> None:
        """The start state: ``resume_from``, or with ``resume`` ``last`` if it verifies, else the newest checkpoint
        that does (said in the log and the report); without either, the SFT policy, but only in a run folder that
        holds no checkpoint. Reads only: the run folder is changed in :meth:`_open_session`."""
        if resume_from is not None:
            info = ckpt.verify_checkpoint(resume_from, expected_config_hash=self.config_hash, force=force)
            point = ckpt.ResumePoint(info, [])
        elif self.cfg.resume:
            point = ckpt.find_resume_checkpoint(self.out, expected_config_hash=self.config_hash, force=force)
        elif ckpt.has_checkpoints(self.out):
            raise ckpt.CheckpointError(
                f"{self.out} already holds checkpoints of a run; resume it with --resume=true (or --resume-from "
                "PATH), or start a new run in another --output_dir"
            )
        else:
            return
        info = point.info
        if point.note:
            logger.warning("%s", point.note)
        ckpt.restore_checkpoint(info, policy=self.algo.policy, algorithm=self.algo)
        self.resume_point = point
        self.env_steps_offset = int(info.counters.get("env_steps", 0))
        self.last_checkpoint = str(info.path)
        if info.path.parent.resolve() == (self.out / ckpt.CHECKPOINTS_DIR).resolve():
            self._saved_iteration = info.iteration
        logger.info("resumed from %s: iteration %d, %d env steps", info.path, info.iteration, self.env_steps_offset)

    def _open_session(self) -> None:
        """Before this process writes its first record: cut the lost tail (training after the start checkpoint, now
        redone) out of metrics.jsonl, point ``last`` at a checkpoint resumed from by fallback, mark the session."""
        point = self.resume_point
        start = point.info.iteration if point is not None else 0
        path = self.out / "metrics.jsonl"
        after = [r for r in M.read_metrics(path, "train") if r[M.TRAIN_ITERATION] > start]
        dropped = M.drop_lost_tail(path, start)
        if dropped:
            lost_steps = max((r[M.TRAIN_ENV_STEPS] for r in after), default=self.env_steps_offset)
            logger.warning(
                "restart lost %d PPO iteration(s) and %d env steps after iteration %d (runtime.checkpoint_every=%d); "
                "their %d metrics records moved to %s",
                len(after),
                max(lost_steps - self.env_steps_offset, 0),
                start,
                self.cfg.runtime.checkpoint_every,
                dropped,
                path.name + M.LOST_SUFFIX,
            )
        last = self.out / ckpt.CHECKPOINTS_DIR / ckpt.LAST_LINK
        if self._saved_iteration is not None and point is not None and last.resolve() != point.info.path:
            ckpt.point_last(point.info.path)  # a fallback or --resume-from: the run goes on from there
        self.metrics.write(
            M.KIND_SESSION,
            {
                M.SESSION_RESUMED_FROM: str(point.info.path) if point is not None else None,
                M.SESSION_ITERATION: start,
                M.SESSION_NOTE: point.note if point is not None else None,
            },
        )

    @property
    def env_steps(self) -> int:
        return self.env_steps_offset + self.assembler.counters.env_steps

    # -- wire callbacks (gRPC threads) -----------------------------------------------------------------------
    def _on_transitions(self, blob: bytes, peer: str) -> None:
        try:
            seg = decode_segment(
                blob, expected_obs=self.obs_shapes, chain_shape=self.chain_shape, log_prob_shape=self.log_prob_shape
            )
        except WireError as err:
            self.assembler.reject()
            logger.warning("rejected a segment from %s: %s", peer, err)
            return
        outcome = self.assembler.offer(seg)
        level = logging.DEBUG if outcome == USED else logging.WARNING
        logger.log(
            level,
            "segment from actor %d (v%d, %d chunks, %d env steps): %s",
            seg.actor_id,
            seg.policy_version,
            len(seg.transitions),
            seg.env_steps,
            outcome,
        )

    def _on_interaction(self, blob: bytes, peer: str) -> None:
        try:
            stats = decode_interaction(blob)
        except WireError as err:
            logger.warning("rejected an interaction message from %s: %s", peer, err)
            return
        self.metrics.write("episode", stats)
        self._raise(self._alarm_monitor().on_episode(stats, self.algo.iteration))

    # -- alarms (computed here once; the dashboard and the report only read the ``alarm`` records) ------------
    def _raise(self, alarms: list[Alarm]) -> None:
        for alarm in alarms:
            self.metrics.write("alarm", alarm.record())
            logger.warning("ALARM iter %s: %s", alarm.iteration, alarm.message)

    def _alarm_monitor(self) -> AlarmMonitor:
        """The alarm state, built on first use (after any resume). A resumed run first replays its own records up
        to the checkpoint, without raising their alarms again: the reference levels stay the run's."""
        with self._alarm_lock:
            if self._alarms is None:
                self._alarms = AlarmMonitor()
                if self.cfg.resume:
                    kept, before = [], True
                    for rec in M.read_metrics(self.out / "metrics.jsonl"):
                        if rec.get("kind") == "train":
                            before = rec.get(M.TRAIN_ITERATION, 0) <= self.algo.iteration
                        if before and rec.get("kind") in ("train", "episode"):
                            kept.append(rec)
                    self._alarms.replay(kept)
            return self._alarms

    # -- main loop ----------------------------------------------------------------------------------------
    @property
    def whole(self) -> Any:
        """The algorithm whose modules hold the whole trained state: the learner's own, or under FSDP rank 0's
        :class:`~pirlctl.runtime.ranks.Mirror` of it."""
        return self.mirror.algo if self.mirror is not None else self.algo

    def publish(self, *, stop: bool = False) -> None:
        version = self.algo.iteration
        self.assembler.set_version(version)
        blob = encode_parameters(
            version,
            self.whole.get_weights(),
            stop=stop,
            base_fingerprint=self.base_fingerprint,
            out=self.service.send_buffer(),  # a warm buffer no stream is reading (B4)
        )
        self.service.publish(version, blob)

    def save(self) -> None:
        if self.algo.iteration == self._saved_iteration:
            return  # `last` already holds this iteration (saved periodically, or the checkpoint resumed from)
        counters = {
            "env_steps": self.env_steps,
            "policy_version": self.algo.iteration,
            "chunks_used": self.assembler.counters.chunks_used,
            "planned_iterations": self.algo.planned_iterations,  # a rerun of the job reads whether the run is done
        }
        if self.mirror is not None and self.ranks is not None:
            self.ranks.share(CHECKPOINT)  # every rank gathers its optimiser shards into rank 0's mirror
            self.mirror.refresh_optimizers(self.ranks, self.algo)
        path = ckpt.save_checkpoint(
            self.out,
            self.algo.iteration,
            policy=self.whole.policy,
            algorithm=self.whole,
            processors=self.algo.processors,
            run_config_json=self.run_json,
            config_hash=self.config_hash,
            counters=counters,
            keep=self.cfg.runtime.keep_checkpoints,
        )
        self._saved_iteration = self.algo.iteration
        self.last_checkpoint = str(path)
        logger.info("checkpoint %s", path)

    def _next_batch(self) -> list[Any] | None:
        rt = self.cfg.runtime
        deadline = time.monotonic() + rt.batch_timeout_s if rt.batch_timeout_s > 0 else None
        while not self.stop_requested.is_set():
            segs = self.assembler.wait_batch(timeout=0.5)
            if segs:
                return segs
            if deadline is not None and time.monotonic() > deadline:
                segs = self.assembler.take_partial(self.cfg.pirl.minibatch_size)
                if segs:
                    logger.warning("batch timeout: training on %d chunks", sum(len(s.transitions) for s in segs))
                    return segs
        return None

    def _build_batch(self, segments: list[Any]) -> RolloutBatch:
        """The PPO batch of the taken segments: chunk-level GAE per segment, or under GRPO the complete groups'
        episodes with group-relative advantages (incomplete groups dropped and counted by the assembler)."""
        pirl = self.cfg.pirl
        if self.groups is None:
            return build_rollout_batch(segment_streams(segments), gamma=pirl.gamma, gae_lambda=pirl.gae_lambda)
        grouped = self.assembler.complete_groups(segments)
        return build_group_batch(grouped.episodes, grouped.group_ids, gamma=pirl.gamma)

    def train_iteration(self, segments: list[Any]) -> dict[str, Any]:
        t0 = time.monotonic()
        alarms = self._alarm_monitor()  # before the update: a resumed run's state is primed up to the checkpoint
        batch = self._build_batch(segments)
        if self.ranks is not None:
            self.ranks.share(batch)  # every rank runs this update on its shards
        stats = self.algo.update(iter([batch]))
        if self.mirror is not None and self.ranks is not None:
            self.mirror.refresh(self.ranks, self.algo)  # every rank gathers its shards into rank 0's mirror
        c = self.assembler.counters
        rec = {
            M.TRAIN_ITERATION: self.algo.iteration,
            M.TRAIN_POLICY_VERSION: self.algo.iteration,
            M.TRAIN_ENV_STEPS: self.env_steps,
            M.TRAIN_SAMPLES: len(batch),
            M.TRAIN_POLICY_LOSS: stats.losses["policy_loss"],
            M.TRAIN_VALUE_LOSS: stats.losses["value_loss"],
            M.TRAIN_ENTROPY: stats.extra["entropy"],
            M.TRAIN_APPROX_KL: stats.extra["approx_kl"],
            M.TRAIN_CLIPFRAC: stats.extra["clipfrac"],
            M.TRAIN_EXPLAINED_VARIANCE: stats.extra["explained_variance"],
            M.TRAIN_RATIO_MIN: stats.extra["ratio_min"],
            M.TRAIN_RATIO_MAX: stats.extra["ratio_max"],
            M.TRAIN_ONPOLICY_LOG_RATIO: stats.extra["onpolicy_max_abs_log_ratio"],
            M.TRAIN_ACTOR_GRAD_NORM: stats.grad_norms["actor"],
            M.TRAIN_CRITIC_GRAD_NORM: stats.grad_norms["critic"],
            M.TRAIN_NOISE_LEVEL: stats.extra["noise_level"],
            M.TRAIN_ACTOR_LR: stats.extra["actor_lr"],
            M.TRAIN_MEAN_RETURN: stats.extra["mean_return"],
            M.TRAIN_UPDATE_SECONDS: time.monotonic() - t0,
            M.DATA_USED: c.chunks_used,
            M.DATA_DROPPED_STALE: c.chunks_dropped_stale,
            M.DATA_REJECTED: c.segments_rejected,
            M.DATA_ACTORS: len(c.actors),
            M.DATA_BATCH_ACTORS: sorted({s.actor_id for s in segments}),
            M.DATA_BATCH_VERSIONS: sorted({s.policy_version for s in segments}),
        }
        if self.groups is not None:
            rec[M.DATA_GROUPS_USED] = c.groups_used
            rec[M.DATA_GROUPS_DROPPED_INCOMPLETE] = c.groups_dropped_incomplete
            rec[M.DATA_CHUNKS_DROPPED_INCOMPLETE] = c.chunks_dropped_incomplete
        self.metrics.write("train", rec)
        self._raise(alarms.on_train(rec))
        logger.info(
            "iter %d | env %d/%d | n %d | pi %.4f v %.4f | kl %.4f clip %.3f ev %.2f | ratio [%.3f, %.3f] | %.1fs",
            self.algo.iteration,
            self.env_steps,
            self.cfg.runtime.total_env_steps,
            len(batch),
            stats.losses["policy_loss"],
            stats.losses["value_loss"],
            stats.extra["approx_kl"],
            stats.extra["clipfrac"],
            stats.extra["explained_variance"],
            stats.extra["ratio_min"],
            stats.extra["ratio_max"],
            rec[M.TRAIN_UPDATE_SECONDS],
        )
        return rec

    def run(self, bound: BoundServer | None = None) -> LearnerReport:
        """Serve and train; on ``bound`` (:func:`run_learner` binds the port before the model is built) or on a
        port bound now."""
        cfg = self.cfg
        started = time.monotonic()
        rt = cfg.runtime
        bound = bound or bind_server(rt.learner_host, rt.learner_port, rt.num_actors, self.tls)
        save_run_config(cfg, self.out / "run_config.json")
        self._open_session()
        server = serve(bound, self.service)
        stopped_by = "budget"
        ended = False  # the loop ended by itself: the other ranks are waiting for the next batch, not in an update
        try:
            self.publish()
            while not self.stop_requested.is_set():
                end = run_end(cfg, self.env_steps, self.algo.iteration, self.algo.planned_iterations)
                if end is not None:
                    stopped_by = end
                    if end == "schedule":
                        logger.info(
                            "the actor learning rate has annealed to 0 after %d updates: later ones cannot change "
                            "the policy, so the run ends at %d of %d env steps",
                            self.algo.iteration,
                            self.env_steps,
                            cfg.runtime.total_env_steps,
                        )
                    break
                segments = self._next_batch()
                if segments is None:
                    break
                self.train_iteration(segments)
                if self.algo.iteration % cfg.runtime.checkpoint_every == 0:
                    self.save()  # before the push: an actor never holds a version no checkpoint has
                self.publish()
            if self.stop_requested.is_set():
                stopped_by = "signal"
            ended = True
        finally:
            if self.ranks is not None and ended:
                if self.mirror is not None:
                    self.save()  # under FSDP a checkpoint needs the other ranks' shards: before they end
                self.ranks.share(None)  # the end; after an error the launcher stops them
                self.ranks.close()
            if self.mirror is None:
                self.save()
            elif not ended:  # the other ranks are not listening: the last checkpoint is the last periodic one
                logger.warning("the learner stopped on an error; under FSDP no final checkpoint is written")
            self.publish(stop=True)
            self._drain_actors(server)
            self.metrics.close()
        c = self.assembler.counters
        return LearnerReport(
            output_dir=str(self.out),
            iterations=self.algo.iteration,
            env_steps=self.env_steps,
            chunks_used=c.chunks_used,
            chunks_dropped_stale=c.chunks_dropped_stale,
            segments_rejected=c.segments_rejected,
            actors=sorted(c.actors),
            last_checkpoint=self.last_checkpoint,
            wall_seconds=time.monotonic() - started,
            stopped_by=stopped_by,
            resumed_from=str(self.resume_point.info.path) if self.resume_point is not None else None,
            resume_note=self.resume_point.note if self.resume_point is not None else None,
            ranks=self.ranks.world_size if self.ranks is not None else 1,
        )

    def _drain_actors(self, server: Any, grace: float = 3.0) -> None:
        """Give parameter streams a moment to deliver the stop push, then stop serving."""
        time.sleep(min(grace, 1.0))
        self.shutdown.set()
        server.stop(grace).wait(grace + 1)


def run_learner(
    cfg: PiRLRunConfig,
    *,
    token: str | None = None,
    tls: TlsConfig | None = None,
    handle_signals: bool = True,
    resume_from: str | None = None,
    force: bool = False,
) -> LearnerReport | None:
    """The learner's report; None on a data-parallel rank > 0 (it follows rank 0 and reports nothing)."""
    rt = cfg.runtime
    ranks = start_ranks(cfg)  # every rank joins first (runtime.ranks); rank 0 goes on as the learner
    if ranks is not None and ranks.rank > 0:
        _follow_rank(cfg, ranks)
        return None
    # the port first: a second learner on a held port fails in a second, before it builds a model or writes a file
    bound = bind_server(rt.learner_host, rt.learner_port, rt.num_actors, tls)
    try:
        setup_process(cfg, "learner")
        learner = Learner(cfg, token=token, tls=tls, resume_from=resume_from, force=force, ranks=ranks)
    except BaseException:
        bound.release()
        raise
    if handle_signals and threading.current_thread() is threading.main_thread():

        def _stop(signum: int, _frame: Any) -> None:
            logger.info("signal %d: finishing with a checkpoint", signum)
            learner.stop_requested.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
    return learner.run(bound)


def _follow_rank(cfg: PiRLRunConfig, ranks: RankGroup) -> None:
    """A rank > 0: the same algorithm as rank 0, its state from rank 0, then its shard of every update until rank 0
    ends. Signals are rank 0's to act on (it finishes with a checkpoint and then ends the others)."""
    setup_process(cfg, f"learner-rank{ranks.rank}")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    algo = build_algorithm(cfg, cfg.runtime.device)
    attach(ranks, algo)
    done = follow(ranks, algo)
    ranks.close()
    logger.info("rank %d: %d PPO updates, ended by rank 0", ranks.rank, done)
