"""Actor-loop FPS under PI-RL inference cost, without a learner (pitfall: "actor FPS collapse").

Runs the real actor loop body — PI-RL sampling (one ``act`` per chunk), n_exec env steps, segment encoding — with
weights from a checkpoint or a fresh seeded policy, and times each part: VLM prefix, denoise steps, log-prob and
value (the rest of ``act``), env steps, transport enqueue (encoding the segment for the wire). ``--sweep`` repeats
it for several K and recommends the largest K that keeps the loop at the control rate. ``--py-spy`` records a
flame graph of the loop.
"""

from __future__ import annotations

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
import torch

from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition, PiRLAlgorithm
from pirlctl.config.run_config import PiRLRunConfig
from pirlctl.envs.pick_cube import make_env, reset_episode, run_chunk
from pirlctl.errors import PirlError
from pirlctl.policies.xvla import tokenize_task
from pirlctl.runtime.actor import actor_observation
from pirlctl.runtime.wire import encode_segment

CONTROL_FPS = 10.0  # gym_hil pick-cube runs at 10 Hz


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


def _profile_k(
    algo: PiRLAlgorithm, env: Any, cfg: PiRLRunConfig, k: int, steps: int, tokens: torch.Tensor
) -> ProfileRow:
    algo.config.num_denoise_steps = k
    timed = TimedAdapter(algo.adapter)
    algo.adapter = timed
    low, high = env.action_space.low, env.action_space.high
    per_chunk_policy: list[float] = []
    env_s = enqueue_s = act_s = 0.0
    done_steps = chunks = 0
    obs = reset_episode(env, cfg.env.seed)
    segment: list[ChunkTransition] = []
    started = time.perf_counter()
    try:
        while done_steps < steps:
            pobs = actor_observation(env, obs, cfg, tokens[0])
            t0 = time.perf_counter()
            step = algo.act({k_: v.unsqueeze(0) for k_, v in pobs.items()})
            dt = time.perf_counter() - t0
            act_s += dt
            chunk = step.actions[0].numpy()
            t1 = time.perf_counter()
            out = run_chunk(env, chunk, low, high)
            env_s += time.perf_counter() - t1
            obs, n, ended = out.obs, out.steps, out.terminated or out.truncated
            per_chunk_policy.append(n / max(dt, 1e-9))
            done_steps += n
            chunks += 1
            t2 = time.perf_counter()
            segment.append(
                ChunkTransition(
                    pobs,
                    step.chain[0],
                    step.stochastic[0],
                    step.log_prob[0],
                    float(step.value[0]),
                    0.0,
                    ended,
                    False,
                    0.0,
                )
            )
            if len(segment) >= cfg.runtime.rollout_chunks:
                encode_segment(segment, actions=[torch.zeros(1)] * len(segment), env_steps=[1] * len(segment))
                segment = []
            enqueue_s += time.perf_counter() - t2
            if ended:
                obs = reset_episode(env, cfg.env.seed + chunks)
    finally:
        algo.adapter = timed.inner
    wall = time.perf_counter() - started
    p = np.asarray(per_chunk_policy)
    loop_fps = done_steps / wall
    return ProfileRow(
        num_denoise_steps=k,
        env_steps=done_steps,
        chunks=chunks,
        policy_fps_mean=done_steps / max(act_s, 1e-9),
        policy_fps_p10=float(np.percentile(p, 10)),
        policy_fps_p90=float(np.percentile(p, 90)),
        env_fps=done_steps / max(env_s, 1e-9),
        loop_fps=loop_fps,
        target_fps=CONTROL_FPS,
        holds_target=loop_fps >= CONTROL_FPS,
        seconds_per_chunk={
            "prefix": timed.prefix_s / chunks,
            "denoise": timed.denoise_s / chunks,
            "logprob_value": max(act_s - timed.prefix_s - timed.denoise_s, 0.0) / chunks,
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
    from pirlctl.runtime.build import build_algorithm

    if steps < 1:
        raise ProfileError(f"--steps={steps} is invalid; use 1 or more")
    ks = sweep or [cfg.pirl.num_denoise_steps]
    if any(k < 1 for k in ks):
        raise ProfileError(f"--sweep values {ks} are invalid; each num_denoise_steps must be >= 1")
    if cfg.runtime.torch_threads > 0:
        torch.set_num_threads(cfg.runtime.torch_threads)
    algo = build_algorithm(cfg, cfg.runtime.actor_device)
    if checkpoint is not None:
        info = ckpt.verify_checkpoint(checkpoint)
        ckpt.restore_checkpoint(info, policy=algo.policy, algorithm=algo, restore_rng=False)
    env = make_env(cfg.env)
    tokens = tokenize_task(cfg.env.instruction, cfg.policy, 1)[0]
    spy, status = (None, "off")
    if py_spy_svg is not None:
        spy, status = _start_py_spy(Path(py_spy_svg))
    rows = [_profile_k(algo, env, cfg, k, steps, tokens) for k in ks]
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
