"""What learner, actor and the diagnostics share when they start: the process set-up (logging, threads, run
folder), the algorithm built from a run config (policy + PI-RL through LeRobot's ``make_algorithm``, with the
policy's LeRobot processors as ``algo.processors``), and the observation shapes the learner accepts on the wire.
One module, so that a diagnostic builds exactly what the runtime builds."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from lerobot.rl.algorithms.factory import make_algorithm

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PRIVILEGED_STATE_KEY, planned_iterations
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm
from pirlctl.config.run_config import PiRLRunConfig
from pirlctl.policies.loading import build_policy
from pirlctl.policies.processors import PolicyProcessors, build_processors, load_processors


def expected_observation_shapes(
    policy_cfg: Any,
    token_len: int,
    privileged_dim: int = 0,
    processors: PolicyProcessors | None = None,
    task: str | None = None,
) -> dict[str, tuple[int, ...]]:
    """Observation key -> per-transition shape the learner accepts: the policy's input features, the task tokens
    and, for an asymmetric critic, the simulator state. With ``processors``: every tensor the actor's preprocess
    makes of such an observation (``task`` its instruction), e.g. X-VLA's ``domain_id`` [] and, when the pipeline
    tokenises, ``observation.language.attention_mask``, so that the learner re-scores what the actor saw."""
    shapes = {k: tuple(f.shape) for k, f in policy_cfg.input_features.items()}
    shapes["observation.language.tokens"] = (token_len,)
    if privileged_dim:
        shapes[PRIVILEGED_STATE_KEY] = (privileged_dim,)
    if processors is None:
        return shapes
    raw = {k: torch.zeros(1, *s) for k, s in shapes.items() if k != "observation.language.tokens"}
    out = processors.preprocess(raw, task=task)
    return {k: tuple(v.shape[1:]) for k, v in out.items()}


def run_processors(cfg: PiRLRunConfig) -> PolicyProcessors:
    """The policy's LeRobot processors: those saved in ``policy_path`` (a pirlctl SFT folder or checkpoint, or a
    ``lerobot-train`` folder), else pirlctl's own pipeline with no statistics (a fresh policy normalises nothing).
    Refuses (one line) a folder whose processor files are missing or whose statistics do not fit the policy."""
    if cfg.policy_path is not None:
        return load_processors(cfg.policy_path, cfg.policy)
    return build_processors(cfg.policy, None)


def apply_torch_threads(cfg: PiRLRunConfig) -> None:
    """``runtime.torch_threads`` intra-op threads for this process (0 leaves torch's default): learner, actors,
    evaluation, profile-actor and the demos/SFT stages all run at the same setting."""
    if cfg.runtime.torch_threads > 0:
        torch.set_num_threads(cfg.runtime.torch_threads)


def run_end(cfg: PiRLRunConfig, env_steps: int, iteration: int, planned: int | None) -> str | None:
    """Why a run that has taken ``env_steps`` and made ``iteration`` of its ``planned`` updates is over: "budget"
    (``runtime.total_env_steps`` spent) or "schedule" (the actor lr has annealed to a final 0,
    ``PiRLConfig.policy_frozen_after``); None while it goes on. The learner's loop and a rerun of the job (from a
    checkpoint's counters; ``planned`` None for checkpoints that predate the counter) both ask this."""
    if env_steps >= cfg.runtime.total_env_steps:
        return "budget"
    if planned is not None and cfg.pirl.policy_frozen_after(iteration, planned):
        return "schedule"
    return None


def setup_process(cfg: PiRLRunConfig, role: str, log_level: str = "INFO") -> Path:
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    apply_torch_threads(cfg)
    root = logging.getLogger()
    root.setLevel(log_level)
    fmt = logging.Formatter(f"%(asctime)s {role} %(levelname)s %(message)s", "%H:%M:%S")
    if not any(getattr(h, "_pirl", False) for h in root.handlers):
        for h in list(root.handlers):  # lerobot's import installs a plain handler: one format, no duplicates
            root.removeHandler(h)
        fh = logging.FileHandler(out / f"{role}.log")
        sh = logging.StreamHandler()
        for h in (fh, sh):
            h.setFormatter(fmt)
            setattr(h, "_pirl", True)  # noqa: B010 - marks our handlers so setup is idempotent
            root.addHandler(h)
    return out


def build_algorithm(cfg: PiRLRunConfig, device: str) -> PiRLAlgorithm:
    """Policy (fresh or from ``policy_path``) and PI-RL algorithm through LeRobot's own ``make_algorithm``.

    Seeded with ``cfg.seed`` so that learner and actors build identical weights when there is no checkpoint:
    only the trainable part is pushed, the frozen part must already agree (checked by fingerprint). The run's
    planned PPO iterations, the time axis of the noise and learning-rate schedules, are set here, once, from the
    run config, so that learner, actors, evaluation and diagnostics anneal alike. ``algo.processors`` is the
    policy's pre/post-processor pair (:func:`run_processors`, on ``device``): observations go through
    ``processors.preprocess`` before ``act``, the env gets ``processors.postprocess(step.actions)``.
    """
    cfg.policy.device = device  # type: ignore[union-attr]
    torch.manual_seed(cfg.seed)
    policy = build_policy(cfg.policy, cfg.policy_path)
    processors = run_processors(cfg)
    algo = make_algorithm(cfg.pirl, policy)
    assert isinstance(algo, PiRLAlgorithm)
    algo.processors = processors
    rt = cfg.runtime
    algo.planned_iterations = planned_iterations(
        rt.total_env_steps, rt.num_actors * rt.envs_per_actor, rt.rollout_chunks, algo.n_exec
    )
    return algo
