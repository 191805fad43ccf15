"""Actor-loop FPS under PI-RL inference cost, without a learner (pitfall: "actor FPS collapse").

Times the actor's own loop (:class:`pirlctl.runtime.actor.Actor`, its ``collect_and_send``: one ``act`` per chunk,
n_exec env steps, the segment encoded and sent) with a stand-in sender in place of the learner client, with weights
from a checkpoint or a fresh seeded policy, and splits each chunk's time: VLM prefix, denoise steps, log-prob and
value (the rest of the actor's inference: ``act`` and the bootstrap values), env steps and resets, transport
enqueue (encoding the segment and handing it to the sender). ``--sweep`` repeats it for several K and recommends
the largest K that keeps the loop at the control rate. ``--py-spy`` records a flame graph of the loop.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pirlctl.config.run_config import PiRLRunConfig
from pirlctl.errors import PirlError
from pirlctl.runtime.actor import Actor
from pirlctl.runtime.build import apply_torch_threads


class ProfileError(PirlError):
    pass


class TimedAdapter:
    """Wraps a flow adapter to time the prefix and the denoise steps (everything else passes through)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.prefix_s = 0.0
        self.denoise_s = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, batch: Any) -> Any:
        t = time.perf_counter()
        out = self.inner.encode(batch)
        self.prefix_s += time.perf_counter() - t
        return out

    def denoise_fn(self, prefix: Any) -> Any:
        fn = self.inner.denoise_fn(prefix)

        def timed(*args: Any) -> Any:
            t = time.perf_counter()
            out = fn(*args)
            self.denoise_s += time.perf_counter() - t
            return out

        return timed


@dataclass
class ProfileRow:
    num_denoise_steps: int
    env_steps: int
    chunks: int
    policy_fps_mean: float  # executed actions per second of inference time
    policy_fps_p10: float
    policy_fps_p90: float
    env_fps: float
    loop_fps: float
    target_fps: float
    holds_target: bool
    seconds_per_chunk: dict[str, float] = field(default_factory=dict)  # prefix, denoise, logprob_value, env, enqueue


@dataclass
class ProfileReport:
    rows: list[ProfileRow]
    recommended_num_denoise_steps: int | None
    flame_graph: str | None
    py_spy: str  # "recorded", "off", or why not


class StandInSender:
    """The actor's learner client with no learner behind it: sends are accepted and counted, nothing is sent."""

    address = "stand-in (no learner)"

    def __init__(self) -> None:
        self.segments = 0
        self.bytes = 0

    def send_transitions(self, blob: bytes, timeout: float = 60.0) -> None:
        self.segments += 1
        self.bytes += len(blob)

    def send_interaction(self, blob: bytes, timeout: float = 10.0) -> None:
        self.bytes += len(blob)

    def close(self) -> None:
        return None


class TimedAct:
    """Wraps an algorithm's ``act`` to record each call's seconds (one per chunk)."""

    def __init__(self, act: Any) -> None:
        self.act = act
        self.seconds: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        out = self.act(*args, **kwargs)
        self.seconds.append(time.perf_counter() - t)
        return out


def _profile_k(actor: Actor, k: int, steps: int) -> ProfileRow:
    """Run the actor's own loop body (:meth:`Actor.collect_and_send`: ``act`` per chunk, n_exec env steps, the
    segment encoded and handed to the stand-in sender) until ``steps`` env steps, and split its time."""
    algo = actor.algo
    algo.config.num_denoise_steps = k
    timed = TimedAdapter(algo.adapter)
    algo.adapter = timed
    timed_act = TimedAct(algo.act)
    algo.act = timed_act  # type: ignore[method-assign]  # an instance attribute shadows the method until deleted
    infer0, env0, send0 = actor.infer_time, actor.env_time, actor.report.send_s
    per_chunk_steps: list[int] = []
    actor._reset()
    started = time.perf_counter()
    try:
        while sum(per_chunk_steps) < steps:
            per_chunk_steps += actor.collect_and_send()
    finally:
        algo.adapter = timed.inner
        del algo.act
    wall = time.perf_counter() - started
    done_steps, chunks = sum(per_chunk_steps), len(per_chunk_steps)
    infer_s, env_s = actor.infer_time - infer0, actor.env_time - env0
    enqueue_s = actor.report.send_s - send0
    p = np.asarray([n / max(dt, 1e-9) for n, dt in zip(per_chunk_steps, timed_act.seconds, strict=True)])
    loop_fps = done_steps / wall
    return ProfileRow(
        num_denoise_steps=k,
        env_steps=done_steps,
        chunks=chunks,
        policy_fps_mean=done_steps / max(infer_s, 1e-9),
        policy_fps_p10=float(np.percentile(p, 10)),
        policy_fps_p90=float(np.percentile(p, 90)),
        env_fps=done_steps / max(env_s, 1e-9),
        loop_fps=loop_fps,
        target_fps=float(actor.cfg.env.fps),  # the env's control rate (pick-cube: 10 Hz)
        holds_target=loop_fps >= actor.cfg.env.fps,
        seconds_per_chunk={
            "prefix": timed.prefix_s / chunks,
            "denoise": timed.denoise_s / chunks,
            "logprob_value": max(infer_s - timed.prefix_s - timed.denoise_s, 0.0) / chunks,
            "env": env_s / chunks,
            "enqueue": enqueue_s / chunks,
        },
    )


def _start_py_spy(out_svg: Path) -> tuple[subprocess.Popen | None, str]:
    beside = Path(sys.executable).with_name("py-spy")  # the venv's own, when the venv is not activated
    exe = str(beside) if beside.is_file() else shutil.which("py-spy")
    if exe is None:
        return None, "py-spy not installed (pip install py-spy)"
    proc = subprocess.Popen(
        [exe, "record", "--pid", str(os.getpid()), "--output", str(out_svg), "--rate", "100", "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    if proc.poll() is not None:
        err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
        reason = err[-1] if err else f"exit {proc.returncode}"
        if "ermission" in reason or "ptrace" in reason.lower():
            reason = (
                f"py-spy lacks permission to attach ({reason}); run as root or set "
                "kernel.yama.ptrace_scope=0 (sudo sysctl kernel.yama.ptrace_scope=0)"
            )
        return None, reason
    return proc, "recording"


def profile_actor(
    cfg: PiRLRunConfig,
    *,
    steps: int = 100,
    sweep: list[int] | None = None,
    py_spy_svg: str | Path | None = None,
    checkpoint: str | Path | None = None,
) -> ProfileReport:
    from pirlctl.runtime import checkpoint as ckpt
    from pirlctl.runtime.actor import Actor

    if steps < 1:
        raise ProfileError(f"--steps={steps} is invalid; use 1 or more")
    ks = sweep or [cfg.pirl.num_denoise_steps]
    if any(k < 1 for k in ks):
        raise ProfileError(f"--sweep values {ks} are invalid; each num_denoise_steps must be >= 1")
    apply_torch_threads(cfg)
    cfg = copy.deepcopy(cfg)  # the K sweep and the segment length below change it
    actor = Actor(cfg, 0)
    actor.client.close()
    actor.client = StandInSender()  # type: ignore[assignment]
    if checkpoint is not None:
        info = ckpt.verify_checkpoint(checkpoint)
        ckpt.restore_checkpoint(info, policy=actor.algo.policy, algorithm=actor.algo, restore_rng=False)
    actor.version = actor.algo.iteration
    # segments as long as the run's, but no longer than the measured steps need: each one is encoded and sent
    cfg.runtime.rollout_chunks = max(1, min(cfg.runtime.rollout_chunks, math.ceil(steps / actor.algo.n_exec)))
    spy, status = (None, "off")
    if py_spy_svg is not None:
        spy, status = _start_py_spy(Path(py_spy_svg))
    rows = [_profile_k(actor, k, steps) for k in ks]
    for env in actor.envs:
        env.close()
    flame = None
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
        if Path(py_spy_svg).is_file():  # type: ignore[arg-type]
            flame, status = str(py_spy_svg), "recorded"
        else:
            status = "py-spy wrote no flame graph"
    holding = [r.num_denoise_steps for r in rows if r.holds_target]
    return ProfileReport(rows, max(holding) if holding else None, flame, status)
