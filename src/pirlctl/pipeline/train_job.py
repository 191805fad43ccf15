"""``pirlctl train``: demos → SFT → ODE eval → PI-RL (learner + actor processes over gRPC) → ODE eval → report.

Each stage's output is cached and reused (``--fresh`` redoes everything): demos, the SFT policy and its
evaluation live in the cache folder under a key derived from the settings that produce them; RL lives in the
run folder and resumes from its last checkpoint. Evaluations run in their own process (one image env per
process, see ``envs.pick_cube``).

``--policy_path DIR`` given by the user (a folder written by ``lerobot-train``, or a pirlctl checkpoint's
``pretrained_model``): the demos and SFT stages are skipped (said in the report), the start evaluation and RL run
on that folder, through the processors saved in it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import draccus

from pirlctl import metrics as M
from pirlctl.config.run_config import PiRLRunConfig, encode_run_config, save_run_config
from pirlctl.errors import PirlError, StoppedByUserError
from pirlctl.metrics import read_metrics
from pirlctl.reporting.progress import ProgressFn, quiet_environment, read_progress_file
from pirlctl.runtime import checkpoint as ckpt

STAGE_DEMOS, STAGE_SFT, STAGE_EVAL_SFT, STAGE_RL, STAGE_EVAL_RL = "demos", "sft", "eval_sft", "rl", "eval_rl"
SFT_PROGRESS_UPDATES = 100  # progress reports over the SFT steps


class ActorsGoneError(PirlError, RuntimeError):
    """Every actor failed while the learner waited for rollouts; the learner was stopped with a checkpoint."""


@dataclass
class TrainJobReport:
    run_dir: str
    sft_success: float
    sft_ci95: tuple[float, float]
    rl_success: float
    rl_ci95: tuple[float, float]
    eval_episodes: int
    env_steps: int
    iterations: int
    rl_wall_seconds: float
    total_wall_seconds: float
    machine: str
    report_md: str
    curve_png: str
    stages_reused: list[str] = field(default_factory=list)
    stages_skipped: list[str] = field(default_factory=list)  # demos + sft when the user gave --policy_path
    start_policy: str = ""  # the folder RL started from (the SFT output, or the user's --policy_path)
    rl_sessions: int = 0  # learner processes that trained this run (restarts and resumes add one each)
    resume_notes: list[str] = field(default_factory=list)  # each resume that skipped a checkpoint, and why
    learner_ranks: int = 1  # learner processes (data-parallel ranks, runtime.learner_ranks)


# Version of the evaluation protocol: a cached SFT evaluation made under another one is not reused.
# 2: the ODE's initial noise is seeded per episode (paired comparisons; split evaluations give the same result).
EVAL_PROTOCOL = 2


def _key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def machine_description() -> str:
    import torch

    return (
        f"{platform.node() or 'host'}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({'cuda' if torch.cuda.is_available() else 'cpu'})"
    )


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MUJOCO_GL", "osmesa")
    env.setdefault("HF_HUB_OFFLINE", "1")
    quiet_environment(env)  # read at import time in the child: no datasets bars, no gRPC core info lines
    return env


def _pirlctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "pirlctl", *args]


def policy_key_json(cfg: PiRLRunConfig) -> Any:
    """The policy config as the cache keys see it: with the fields the policy fills in itself already filled.

    X-VLA sets ``num_image_views`` (and adds empty-camera features) in ``validate_features`` when the policy is
    built, so a config file and the run_config.json saved after building differ until that has run on both; the
    key is taken on a copy after it. ``policy_path`` is outside ``policy`` and never part of the key.
    """
    policy = copy.deepcopy(cfg.policy)
    validate = getattr(policy, "validate_features", None)
    if callable(validate):
        with contextlib.suppress(ValueError):  # an invalid config fails later, where it is built, with its message
            validate()
    return encode_run_config(dataclasses.replace(cfg, policy=policy))["policy"]


class TrainJob:
    """Runs the stages; ``on_event`` gets (stage, message) for the dashboard / console, ``on_progress`` (stage,
    done, total, unit, note) as the demo, SFT and evaluation stages advance (RL's progress is in metrics.jsonl)."""

    def __init__(
        self,
        cfg: PiRLRunConfig,
        *,
        fresh: bool = False,
        on_event: Callable[[str, str], None] | None = None,
        on_progress: ProgressFn | None = None,
    ):
        self.cfg = cfg
        self.fresh = fresh
        self.run_dir = Path(cfg.output_dir)
        self.cache = Path(cfg.pipeline.cache_dir)
        self.on_event = on_event or (lambda stage, msg: None)
        self.on_progress: ProgressFn = on_progress or (lambda stage, done, total, unit, note="": None)
        self.reused: list[str] = []
        env_json = draccus.encode(cfg.env)
        pol_json = policy_key_json(cfg)
        p = cfg.pipeline
        self.demo_key = _key(
            env_json,
            p.demo_episodes,
            p.demo_noise_std,
            p.demo_aim_error,
            list(p.demo_aim_bias),
            p.demo_retry,
            p.demo_aim_scale,
            p.demo_keep_failures,
        )
        shift = cfg.pirl.image_shift  # in the key only when on: the unshifted SFT policies' keys stay as they were
        sft_parts = (p.sft_steps, p.sft_batch_size, p.sft_lr, cfg.seed) + ((f"image_shift={shift}",) if shift else ())
        self.sft_key = _key(self.demo_key, pol_json, *sft_parts)
        self.demo_dir = self.cache / f"demos-{self.demo_key}"
        self.sft_dir = self.cache / f"sft-{self.sft_key}"
        # a user's policy folder replaces demos + SFT; its evaluation is cached under the folder's contents. The
        # job's own SFT folder (recorded in a run folder's run_config.json) is not the user's: its stages are reused
        given = Path(cfg.policy_path).resolve() if cfg.policy_path else None
        self.user_policy = given if given is not None and given != self.sft_dir.resolve() else None
        self.skipped: list[str] = []
        if self.user_policy is not None:
            self.sft_dir = self.user_policy
            self.sft_key = _key(pol_json, _folder_stamp(self.user_policy))
        eval_key = _key(cfg.pirl.num_denoise_steps, p.eval_episodes, EVAL_PROTOCOL)
        self.sft_eval = self.cache / f"eval-{self.sft_key}-{eval_key}.json"

    # -- stages ------------------------------------------------------------------------------------------
    def pretrain(self) -> None:
        from pirlctl.pipeline.demos import record_demos
        from pirlctl.pipeline.sft import behaviour_clone

        if self.user_policy is not None:
            self.skipped = [STAGE_DEMOS, STAGE_SFT]
            for stage in self.skipped:
                self.on_event(stage, f"skipped: starting from --policy_path {self.user_policy}")
            return
        p = self.cfg.pipeline
        from pirlctl.runtime.build import apply_torch_threads

        apply_torch_threads(self.cfg)  # demos and SFT run in this process: the same setting as the others
        self.on_event(STAGE_DEMOS, f"{p.demo_episodes} scripted demos -> {self.demo_dir}")
        demos = record_demos(
            self.cfg.env,
            self.demo_dir,
            episodes=p.demo_episodes,
            noise_std=p.demo_noise_std,
            aim_error=p.demo_aim_error,
            aim_bias=p.demo_aim_bias,
            retry=p.demo_retry,
            aim_scale=p.demo_aim_scale,
            keep_failures=p.demo_keep_failures,
            fresh=self.fresh,
            on_episode=lambda done, total: self.on_progress(STAGE_DEMOS, done, total, "episodes"),
        )
        if demos.reused:
            self.reused.append(STAGE_DEMOS)
        self.on_event(STAGE_SFT, f"behaviour cloning {p.sft_steps} steps -> {self.sft_dir}")
        sft = behaviour_clone(
            self.cfg.policy,
            self.demo_dir,
            self.sft_dir,
            steps=p.sft_steps,
            batch_size=p.sft_batch_size,
            lr=p.sft_lr,
            seed=self.cfg.seed,
            fresh=self.fresh,
            log_every=max(1, p.sft_steps // SFT_PROGRESS_UPDATES),
            image_shift=self.cfg.pirl.image_shift,
            on_log=lambda step, loss: self.on_progress(
                STAGE_SFT, step, p.sft_steps, "steps", f"loss {loss:.4f}" if step else ""
            ),
        )
        if sft.reused:
            self.reused.append(STAGE_SFT)

    def evaluate(self, target: str, out_json: Path, stage: str, strip: Path | None = None) -> dict[str, Any]:
        """ODE evaluation in child processes (``pirlctl eval``, ``pipeline.eval_workers`` of them side by side on
        consecutive episode ranges, merged); cached in ``out_json``."""
        from pirlctl.pipeline.evaluate import EvalReport, merge_eval_reports

        if out_json.is_file() and not self.fresh:
            self.reused.append(stage)
            return json.loads(out_json.read_text())
        n = self.cfg.pipeline.eval_episodes
        workers = min(self.cfg.pipeline.eval_workers, n)
        self.on_event(stage, f"ODE evaluation, {n} episodes, {workers} process(es)")
        bounds = [n * w // workers for w in range(workers + 1)]
        procs, errs, counts = [], [], []
        with contextlib.ExitStack() as stack:
            for w in range(workers):
                # stderr (log lines, third-party warnings, a traceback) to the run folder; progress via a file
                errs.append(self.run_dir / f"{stage}-{w}.stderr")
                counts.append(self.run_dir / f"{stage}-{w}.progress")
                counts[w].unlink(missing_ok=True)
                args = ["eval", target, "--config_path", str(self.run_dir / "run_config.json"), "--json"]
                args += ["--episodes", str(bounds[w + 1] - bounds[w]), "--first-episode", str(bounds[w])]
                args += ["--progress-file", str(counts[w])]
                if strip is not None and w == 0:
                    args += ["--strip", str(strip)]
                err = stack.enter_context(open(errs[w], "w"))
                procs.append(
                    subprocess.Popen(_pirlctl(*args), stdout=subprocess.PIPE, stderr=err, text=True, env=_child_env())
                )
            stdouts = _wait_reporting(procs, lambda: self.on_progress(stage, _count(counts), n, "episodes"))
        for f in counts:
            f.unlink(missing_ok=True)
        # the first failure to report is one that was not killed because another one failed
        failed = sorted((p.returncode == -signal.SIGKILL, w) for w, p in enumerate(procs) if p.returncode != 0)
        if failed:
            w = failed[0][1]
            line = _last_error_line(_read(errs[w]) or stdouts[w])
            raise RuntimeError(f"evaluation of {target} failed: {line} (log: {errs[w]})")
        parts = [EvalReport(**json.loads(out)) for out in stdouts]
        self.on_progress(stage, n, n, "episodes")
        report = dataclasses.asdict(merge_eval_reports(parts))
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(report, indent=2) + "\n")
        return report

    def rl(self, watch: Callable[[list[subprocess.Popen]], bool]) -> None:
        """Learner and actors as child processes, resumed from a checkpoint when the run has one. Ctrl-C, or every
        actor failing, stops the learner with a checkpoint and raises one line saying so (nothing is evaluated)."""
        cfg = self.cfg
        # over a run's checkpoints, never train from the SFT policy without --fresh: when none verifies, this
        # raises one line naming the folder and the fixes
        point = self._resume_point()
        if point is not None and point.note:
            self.on_event(STAGE_RL, point.note)
        done = point is not None and _run_done(cfg, point.info.iteration, point.info.counters)
        if done and not self.fresh:
            self.reused.append(STAGE_RL)
            return
        resume = ["--resume=true"] if point is not None else []
        # the learner cuts the lost tail out of metrics.jsonl itself; done here first, before the dashboard starts
        # tailing the file, so that its rewrite (shorter) never happens under the tail
        dropped = M.drop_lost_tail(self.run_dir / "metrics.jsonl", point.info.iteration if point is not None else 0)
        if dropped:
            self.on_event(STAGE_RL, f"{dropped} metrics records of training lost by a restart -> metrics.jsonl.lost")
        from pirlctl.runtime.ranks import learner_command

        conf = ["--config_path", str(self.run_dir / "run_config.json")]
        ranks = cfg.runtime.learner_ranks
        self.on_event(
            STAGE_RL,
            f"learner{f' ({ranks} ranks)' if ranks > 1 else ''} + {cfg.runtime.num_actors} actor(s) on "
            f"{cfg.runtime.learner_host}:{cfg.runtime.learner_port}",
        )
        names = ["learner", *[f"actor{i}" for i in range(cfg.runtime.num_actors)]]
        with contextlib.ExitStack() as stack:
            # stdout: the child's JSON report; stderr: its log lines and, if it dies, its traceback
            logs = [stack.enter_context(open(self.run_dir / f"{n}.stdout", "a")) for n in names]
            errs = [stack.enter_context(open(self.run_dir / f"{n}.stderr", "a")) for n in names]
            procs = [
                subprocess.Popen(
                    learner_command(ranks, [*conf, *resume, "--json"]),  # accelerate's launcher for ranks > 1
                    stdout=logs[0],
                    stderr=errs[0],
                    env=_child_env(),
                )
            ]
            for i in range(cfg.runtime.num_actors):
                procs.append(
                    subprocess.Popen(
                        _pirlctl("actor", *conf, "--actor-id", str(i), "--json"),
                        stdout=logs[i + 1],
                        stderr=errs[i + 1],
                        env=_child_env(),
                    )
                )
            interrupted = False
            try:
                finished = watch(procs)
            except KeyboardInterrupt:
                finished, interrupted = False, True
            if not finished:
                self.stop_children(procs)
            for p in procs:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
        if procs[0].returncode not in (0, None):  # it failed (a held port, a bad checkpoint...): its own line
            log = self.run_dir / "learner.stderr"
            raise RuntimeError(
                f"the learner exited with {procs[0].returncode}: {_last_error_line(_read(log))} (log: {log})"
            )
        if not finished:
            self._stopped_early(interrupted)

    def _resume_point(self) -> ckpt.ResumePoint | None:
        """The checkpoint RL would resume from; None when the run has none (raises when none verifies)."""
        return ckpt.find_resume_checkpoint(self.run_dir) if ckpt.has_checkpoints(self.run_dir) else None

    def _stopped_early(self, interrupted: bool) -> None:
        """The one line for RL stopped before its end: where its checkpoint is and how to go on."""
        point = self._resume_point()
        saved = (
            f"the learner saved iteration {point.info.iteration} ({point.info.counters.get('env_steps', 0)} env "
            f"steps) in {point.info.path}"
            if point is not None
            else "no checkpoint was saved yet"
        )
        if interrupted:
            raise StoppedByUserError(f"RL interrupted: {saved}; run the same command again to resume")
        log = self.run_dir / "actor0.stderr"
        raise ActorsGoneError(
            f"every actor exited before RL finished (actor0: {_last_error_line(_read(log))}; log: {log}); "
            f"{saved}; fix the cause and run the same command again to resume"
        )

    @staticmethod
    def stop_children(procs: list[subprocess.Popen]) -> None:
        """Ctrl-C: the learner checkpoints and pushes ``stop``; actors then exit by themselves. A learner that
        failed pushes nothing: its actors are stopped at once (left alone they would wait for a learner, or reach
        another job's learner on the same port)."""
        if procs and procs[0].poll() is None:
            procs[0].send_signal(signal.SIGINT)
        failed = bool(procs) and procs[0].returncode not in (0, None)
        deadline = time.monotonic() + (0 if failed else 45)
        for p in procs:
            try:
                while p.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for the checkpoint
                deadline = 0.0
            if p.poll() is None:
                p.terminate()

    # -- the whole job ----------------------------------------------------------------------------------
    def run(self, watch: Callable[[list[subprocess.Popen]], bool]) -> TrainJobReport:
        started = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.fresh:
            import shutil

            for sub in ("checkpoints", "metrics.jsonl", "metrics.jsonl" + M.LOST_SUFFIX, "eval_rl.json", "alarms.log"):
                target = self.run_dir / sub
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        self.pretrain()
        self.cfg.policy_path = str(self.sft_dir.resolve())
        save_run_config(self.cfg, self.run_dir / "run_config.json")
        sft = self.evaluate(str(self.sft_dir), self.sft_eval, STAGE_EVAL_SFT)
        (self.run_dir / "eval_sft.json").write_text(json.dumps(sft, indent=2))
        rl_started = time.monotonic()
        self.rl(watch)
        rl_wall = time.monotonic() - rl_started
        info = ckpt.find_resume_checkpoint(self.run_dir).info  # `last`, or the newest that verifies
        final_eval = self.run_dir / "eval_rl.json"
        if STAGE_RL not in self.reused and final_eval.exists():
            final_eval.unlink()  # RL trained in this invocation: a re-saved iteration may keep the folder's name
        stale = final_eval.is_file() and json.loads(final_eval.read_text()).get("checkpoint") != str(info.path)
        if stale:
            final_eval.unlink()
        rl = self.evaluate(str(info.path), final_eval, STAGE_EVAL_RL, strip=self.run_dir / "episode_strip.png")
        from pirlctl.alarms import SUCCESS_WINDOW
        from pirlctl.reporting.plots import learning_curve
        from pirlctl.reporting.report import write_report

        curve = learning_curve(
            self.run_dir / "metrics.jsonl",
            self.run_dir / "learning_curve.png",
            sft_success=sft["success_rate"],
            rl_eval=rl,
            window=SUCCESS_WINDOW,
        )
        records = read_metrics(self.run_dir / "metrics.jsonl")
        train = [r for r in records if r.get("kind") == "train"]
        sessions = [r for r in records if r.get("kind") == M.KIND_SESSION]
        report = TrainJobReport(
            run_dir=str(self.run_dir),
            sft_success=sft["success_rate"],
            sft_ci95=(sft["ci95_low"], sft["ci95_high"]),
            rl_success=rl["success_rate"],
            rl_ci95=(rl["ci95_low"], rl["ci95_high"]),
            eval_episodes=int(rl["episodes"]),
            env_steps=int(info.counters.get("env_steps", 0)),
            iterations=info.iteration,
            rl_wall_seconds=_rl_wall(records, rl_wall),
            total_wall_seconds=time.monotonic() - started,
            machine=machine_description(),
            report_md=str(self.run_dir / "report.md"),
            curve_png=str(curve),
            stages_reused=sorted(set(self.reused)),
            stages_skipped=list(self.skipped),
            start_policy=str(self.sft_dir),
            rl_sessions=len(sessions),
            learner_ranks=self.cfg.runtime.learner_ranks,
            resume_notes=[str(r[M.SESSION_NOTE]) for r in sessions if r.get(M.SESSION_NOTE)],
        )
        write_report(report, self.cfg, Path(report.report_md), sft_eval=sft, rl_eval=rl, train=train)
        (self.run_dir / "report.json").write_text(json.dumps(dataclasses.asdict(report), indent=2) + "\n")
        return report


def _run_done(cfg: PiRLRunConfig, iteration: int, counters: dict[str, Any]) -> bool:
    """Whether a checkpoint ends its run, by the learner's own rule (``runtime.build.run_end``) read from the
    checkpoint's counters."""
    from pirlctl.runtime.build import run_end

    planned = counters.get("planned_iterations")
    env_steps = int(counters.get("env_steps", 0))
    return run_end(cfg, env_steps, iteration, planned if isinstance(planned, int) else None) is not None


def _read(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError:
        return ""


def _last_error_line(output: str) -> str:
    """The last ``error: ...`` line of a child's output (its one-line failure), else its last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    line = (errors or lines or ["no output"])[-1]
    return line.removeprefix("error:").strip()


def _folder_stamp(folder: Path) -> list[tuple[str, int, int]]:
    """Name, size and modification time of each file of a policy folder: a cached evaluation of the folder is
    reused only while its files are unchanged."""
    if not folder.is_dir():
        return []
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())


def _count(files: list[Path]) -> int:
    return sum(read_progress_file(f) for f in files)


def _wait_reporting(procs: list[subprocess.Popen], report: Callable[[], None], every_s: float = 0.5) -> list[str]:
    """Wait for child processes, calling ``report()`` every ``every_s``; returns their stdout. When one fails the
    others are killed (their output is then incomplete)."""
    outs = [""] * len(procs)
    pending = set(range(len(procs)))
    while pending:
        for i in sorted(pending):
            try:
                out, _ = procs[i].communicate(timeout=every_s / len(pending))
            except subprocess.TimeoutExpired:
                continue  # communicate() keeps what it read so far; the next call goes on
            outs[i] = out or ""
            pending.discard(i)
            if procs[i].returncode != 0:
                for j in pending:
                    procs[j].kill()
                    procs[j].communicate()
                pending.clear()
                break
        report()
    return outs


def _rl_wall(records: list[dict[str, Any]], fallback: float) -> float:
    """RL wall-clock from the metrics: the sum of each learner session's running time (``metrics.running_seconds``),
    so a reused or restarted run reports the time it really ran; ``fallback`` when nothing was recorded."""
    seconds = M.running_seconds(records)
    return seconds if seconds > 0 else fallback
