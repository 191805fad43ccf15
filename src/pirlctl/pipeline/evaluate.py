"""ODE evaluation: the one evaluation everyone uses (flow_ode with the training K, fixed episode seeds).

Success rate with a Wilson 95% interval, mean return, optional PNG strip of the first episode. Episode j's seed is
``env.seed + EVAL_SEED_OFFSET + j``, for the cube position and for the ODE's initial noise: every policy evaluated
with the same settings meets the same episodes (a paired comparison), disjoint from demo and training seeds, and an
evaluation split over processes (:func:`merge_eval_reports`) gives exactly the result of one process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pirlctl.config.run_config import PiRLRunConfig
from pirlctl.envs.base import TaskEnv
from pirlctl.policies.xvla import LANGUAGE_TOKENS_KEY, tokenize_task

EVAL_SEED_OFFSET = 1_000_000


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval for a binomial proportion (well-behaved at 0 and 1, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the interval contains p; in floats centre + half falls 1e-16 short of 1 at p = 1 (and a plot's error bar
    # then has a negative length)
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


@dataclass
class EvalReport:
    checkpoint: str
    episodes: int
    successes: int
    success_rate: float
    ci95_low: float
    ci95_high: float
    mean_return: float
    mean_length: float
    env_steps: int
    seconds: float
    strip: str | None = None


def evaluate_algorithm(
    algo: Any,
    cfg: PiRLRunConfig,
    *,
    episodes: int,
    first_episode: int = 0,
    label: str = "",
    strip_path: str | Path | None = None,
    env: TaskEnv | None = None,
    on_step: Callable[[int, Any, np.ndarray], None] | None = None,
    on_episode: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Run ODE episodes ``first_episode ..< first_episode + episodes`` of ``algo`` (a PiRLAlgorithm) and summarise
    them in ``env`` (None: one built from ``cfg.env``); the strip shows the first of them. ``on_step(episode,
    gym_env, action)`` is called before every env step (the clipped action; ``gym_env`` the gymnasium env under the
    task env), for tools that read the simulator during evaluation (bench/grasp_errors.py);
    ``on_episode(done, episodes)`` after every episode (progress)."""
    started = time.monotonic()
    task_env: TaskEnv = env if env is not None else cfg.env.build_task_env()
    processors = algo.processors  # the policy's LeRobot pre/post-processors (runtime.build.build_algorithm)
    instruction = task_env.instruction
    tokens = None if processors.tokenizes else tokenize_task(instruction, cfg.policy, 1)[0][0]
    successes, returns, lengths, steps = 0, [], [], 0
    frames: list[np.ndarray] = []
    generator = torch.Generator(device=algo.device)
    for j in range(first_episode, first_episode + episodes):
        seed = cfg.env.seed + EVAL_SEED_OFFSET + j
        obs = task_env.reset(seed)
        generator.manual_seed(seed)
        ret, length, done, success = 0.0, 0, False, False
        strip_episode = j == first_episode and strip_path is not None

        def before_step(action: np.ndarray, j: int = j, strip_episode: bool = strip_episode) -> None:
            nonlocal length
            if strip_episode and length % 3 == 0:
                now = task_env.camera_frames()  # renders every camera once
                if now:
                    frames.append(np.concatenate(list(now.values()), axis=1))
            if on_step is not None:
                on_step(j, task_env.gym_env, action)
            length += 1

        while not done:
            raw = task_env.policy_observation(obs)
            if tokens is not None:
                raw[LANGUAGE_TOKENS_KEY] = tokens
            # as the actor: preprocess -> act -> postprocess (the env gets actions in its own units)
            pobs = processors.preprocess_one(raw, instruction)
            batch = {k: v.unsqueeze(0).to(algo.device) for k, v in pobs.items()}
            chunk = processors.env_action(algo.act(batch, deterministic=True, generator=generator).actions)
            out = task_env.step_chunk(chunk, on_step=before_step)
            obs, ret, done, success = out.obs, ret + out.reward, out.terminated or out.truncated, out.success
        successes += int(success)
        returns.append(ret)
        lengths.append(length)
        steps += length
        if on_episode is not None:
            on_episode(len(lengths), episodes)
    lo, hi = wilson_interval(successes, episodes)
    strip = None
    if strip_path is not None and frames:
        from PIL import Image

        Image.fromarray(np.concatenate(frames[:12], axis=0)).save(strip_path)
        strip = str(strip_path)
    return EvalReport(
        checkpoint=label,
        episodes=episodes,
        successes=successes,
        success_rate=successes / max(episodes, 1),
        ci95_low=lo,
        ci95_high=hi,
        mean_return=float(np.mean(returns)) if returns else 0.0,
        mean_length=float(np.mean(lengths)) if lengths else 0.0,
        env_steps=steps,
        seconds=time.monotonic() - started,
        strip=strip,
    )


def merge_eval_reports(parts: list[EvalReport]) -> EvalReport:
    """One report from evaluations of consecutive episode ranges (run side by side): counts and means pooled,
    the interval recomputed from the pooled count, wall time that of the slowest part."""
    if not parts:
        raise ValueError("no evaluation parts to merge")
    n = sum(p.episodes for p in parts)
    successes = sum(p.successes for p in parts)
    lo, hi = wilson_interval(successes, n)
    return EvalReport(
        checkpoint=parts[0].checkpoint,
        episodes=n,
        successes=successes,
        success_rate=successes / max(n, 1),
        ci95_low=lo,
        ci95_high=hi,
        mean_return=sum(p.mean_return * p.episodes for p in parts) / max(n, 1),
        mean_length=sum(p.mean_length * p.episodes for p in parts) / max(n, 1),
        env_steps=sum(p.env_steps for p in parts),
        seconds=max(p.seconds for p in parts),
        strip=next((p.strip for p in parts if p.strip), None),
    )


def evaluate_policy_dir(
    cfg: PiRLRunConfig,
    policy_dir: str | Path,
    *,
    episodes: int,
    first_episode: int = 0,
    strip_path: str | Path | None = None,
    on_episode: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """ODE evaluation of a LeRobot policy folder (an SFT output, a checkpoint's pretrained_model or a
    ``lerobot-train`` folder), through the processors saved in it."""
    from pirlctl.runtime.build import apply_torch_threads, build_algorithm

    cfg.policy_path = str(policy_dir)
    # like the actor: one intra-op thread (side-by-side evaluation processes otherwise oversubscribe the cores)
    apply_torch_threads(cfg)
    torch.manual_seed(cfg.seed)
    algo = build_algorithm(cfg, cfg.runtime.actor_device)
    return evaluate_algorithm(
        algo,
        cfg,
        episodes=episodes,
        first_episode=first_episode,
        label=str(policy_dir),
        strip_path=strip_path,
        on_episode=on_episode,
    )
