"""verify-sync's static and numeric checks: the weight contract key by key, and actor sampling against learner
re-scoring (pitfalls-research.md, Pitfall 1: an actor that "runs but performance stalls").

- **static**: the learner's :meth:`~PiRLAlgorithm.get_weights` against what the actor's
  :meth:`~PiRLAlgorithm.load_weights` consumes (:meth:`~PiRLAlgorithm.expected_weights`), key by key (missing,
  unexpected, shape, dtype, device, finiteness), plus the fingerprint of the frozen part that is never pushed.
- **numeric**: the actor samples chunks with ``act`` (observations through its preprocessor); the learner
  re-scores them (``evaluate``) and runs one PPO ``update`` at learning rate 0. On-policy data must give ratio 1:
  max |Δ log-prob| < 1e-5 and clipfrac 0.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PRIVILEGED_STATE_KEY
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm, RolloutBatch
from pirlctl.config.run_config import PiRLRunConfig
from pirlctl.policies.xvla import LANGUAGE_TOKENS_KEY, tokenize_task

Weights = dict[str, Any]

LOG_PROB_TOLERANCE = 1e-5  # |Δ log-prob| between actor sampling and learner re-scoring; fp32 gives exactly 0 today
NUMERIC_CHUNKS = 8  # chunk decisions the numeric check samples


@dataclass
class KeyProblem:
    """One pushed tensor that the actor would not load as is."""

    # "group.name", e.g. "policy.model.transformer.norm.weight"
    key: str
    # missing | unexpected | shape | dtype | device | not a tensor | non-finite
    problem: str
    # what the learner pushes ("—" when it does not push the key)
    pushed: str
    # what the actor's load_weights consumes ("—" when it does not consume the key)
    expected: str


@dataclass
class StaticCheck:
    passed: bool
    keys_pushed: int
    keys_expected: int
    problems: list[KeyProblem]
    learner_fingerprint: str  # sha256 of the frozen policy part the learner has (or announces, with --learner)
    actor_fingerprint: str
    fingerprint_match: bool


@dataclass
class NumericCheck:
    passed: bool
    chunks: int
    # actor's act vs the learner's evaluate on the same chains (None when skipped)
    max_abs_delta_log_prob: float | None
    tolerance: float
    # of one PPO update at lr 0 over the same batch
    ratio_min: float | None
    ratio_max: float | None
    clipfrac: float | None
    approx_kl: float | None
    # Flow-SDE noise level each side samples / re-scores with (the schedule follows the policy version)
    actor_noise_level: float | None
    learner_noise_level: float | None
    perturbed: str | None = None  # the learner parameter shifted by a planted fault, if any
    skipped: str | None = None  # why the check did not run (the actor could not load the push)


# ---------------------------------------------------------------------------------------------------------------
# Static contract
# ---------------------------------------------------------------------------------------------------------------


def _describe(t: Any) -> str:
    if not isinstance(t, Tensor):
        return type(t).__name__
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')} {t.device.type}"


def _spec(shape: tuple[int, ...], dtype: torch.dtype) -> str:
    return f"{shape} {str(dtype).removeprefix('torch.')} cpu"


def compare_contract(
    pushed: Weights, expected: dict[str, dict[str, tuple[tuple[int, ...], torch.dtype]]]
) -> list[KeyProblem]:
    """Every way ``pushed`` (``{group: {name: tensor}}``) differs from what ``load_weights`` consumes, per key."""
    problems: list[KeyProblem] = []
    for group in sorted(set(pushed) | set(expected)):
        got = pushed.get(group)
        spec = expected.get(group, {})
        if not isinstance(got, dict):
            if got is not None:
                problems.append(KeyProblem(group, "not a tensor", type(got).__name__, "a dict of tensors"))
            got = {}
        for name in sorted(set(got) | set(spec)):
            key = f"{group}.{name}"
            if name not in got:
                shape, dtype = spec[name]
                problems.append(KeyProblem(key, "missing", "—", _spec(shape, dtype)))
                continue
            t = got[name]
            if name not in spec:
                problems.append(KeyProblem(key, "unexpected", _describe(t), "—"))
                continue
            shape, dtype = spec[name]
            want = _spec(shape, dtype)
            if not isinstance(t, Tensor):
                problems.append(KeyProblem(key, "not a tensor", _describe(t), want))
                continue
            if tuple(t.shape) != shape:
                problems.append(KeyProblem(key, "shape", _describe(t), want))
            if t.dtype != dtype:
                problems.append(KeyProblem(key, "dtype", _describe(t), want))
            if t.device.type != "cpu":
                problems.append(KeyProblem(key, "device", _describe(t), want))
            elif t.is_floating_point() and not bool(torch.isfinite(t).all()):
                problems.append(KeyProblem(key, "non-finite", _describe(t), want))
    return problems


def static_check(pushed: Weights, learner_fingerprint: str, actor: PiRLAlgorithm) -> StaticCheck:
    expected = actor.expected_weights()
    problems = compare_contract(pushed, expected)
    actor_fp = actor.frozen_fingerprint()
    match = bool(learner_fingerprint) and learner_fingerprint == actor_fp
    return StaticCheck(
        passed=not problems and match,
        keys_pushed=sum(len(v) for v in pushed.values() if isinstance(v, dict)),
        keys_expected=sum(len(v) for v in expected.values()),
        problems=problems,
        learner_fingerprint=learner_fingerprint,
        actor_fingerprint=actor_fp,
        fingerprint_match=match,
    )


# ---------------------------------------------------------------------------------------------------------------
# Numeric: actor sampling vs learner re-scoring
# ---------------------------------------------------------------------------------------------------------------


def synthetic_observations(cfg: PiRLRunConfig, batch_size: int, seed: int = 0) -> dict[str, Tensor]:
    """A batch of observations of the policy's shapes: images in [0, 1], a Gaussian state, the task's tokens."""
    policy_cfg: Any = cfg.policy
    g = torch.Generator().manual_seed(seed)
    obs: dict[str, Tensor] = {}
    for key, feat in policy_cfg.input_features.items():
        shape = (batch_size, *tuple(feat.shape))
        obs[key] = (
            torch.rand(shape, generator=g) if key.startswith("observation.images") else torch.randn(shape, generator=g)
        )
    obs[LANGUAGE_TOKENS_KEY] = tokenize_task(cfg.env.instruction, policy_cfg, batch_size)[0]
    if cfg.pirl.critic_privileged_dim:
        obs[PRIVILEGED_STATE_KEY] = torch.randn((batch_size, cfg.pirl.critic_privileged_dim), generator=g)
    return obs


def policy_observations(cfg: PiRLRunConfig, algo: PiRLAlgorithm, batch_size: int, seed: int = 0) -> dict[str, Tensor]:
    """:func:`synthetic_observations` through ``algo``'s LeRobot preprocessor, on the CPU: the policy's inputs as
    the actor scores and sends them (normalised; the pipeline's own steps and tokens)."""
    raw = synthetic_observations(cfg, batch_size, seed)
    return {k: v.cpu() for k, v in algo.processors.preprocess(raw, task=cfg.env.instruction).items()}


def sample_batch(actor: PiRLAlgorithm, obs: dict[str, Tensor], seed: int = 0) -> RolloutBatch:
    """A PPO batch the actor sampled with ``act`` (on-policy), with seeded advantages and returns."""
    device = actor.device
    step = actor.act({k: v.to(device) for k, v in obs.items()}, generator=_generator(device, seed))
    g = torch.Generator().manual_seed(seed + 1)
    n = step.value.shape[0]
    return RolloutBatch(
        observations={k: v.cpu() for k, v in obs.items()},
        chain=step.chain.cpu(),
        stochastic=step.stochastic.cpu(),
        old_log_prob=step.log_prob.cpu(),
        old_values=step.value.cpu(),
        advantages=torch.randn(n, generator=g),
        returns=torch.randn(n, generator=g),
    )


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def perturb_one_parameter(algo: PiRLAlgorithm, amount: float) -> str:
    """Shift the smallest trainable policy tensor (an output bias; X-VLA's action-decoder bias) by ``amount``."""
    params = algo.trainable_policy_parameters()
    name = min(params, key=lambda n: params[n].numel())
    with torch.no_grad():
        params[name].add_(amount)
    return f"policy.{name}"


def numeric_check(
    cfg: PiRLRunConfig,
    actor: PiRLAlgorithm,
    learner: PiRLAlgorithm,
    *,
    chunks: int = NUMERIC_CHUNKS,
    perturb_learner: float = 0.0,
) -> NumericCheck:
    """Actor samples, learner re-scores and runs one PPO update at lr 0 (on a copy of its config)."""
    perturbed = perturb_one_parameter(learner, perturb_learner) if perturb_learner else None
    batch = sample_batch(actor, policy_observations(cfg, actor, chunks, seed=cfg.seed), seed=cfg.seed)
    learner.policy.eval()  # as update() does: no dropout in the re-score
    dev = learner.device
    on_dev = RolloutBatch(
        observations={k: v.to(dev) for k, v in batch.observations.items()},
        chain=batch.chain.to(dev),
        stochastic=batch.stochastic.to(dev),
        old_log_prob=batch.old_log_prob.to(dev),
        old_values=batch.old_values.to(dev),
        advantages=batch.advantages.to(dev),
        returns=batch.returns.to(dev),
    )
    with torch.no_grad():
        log_prob, _, _ = learner.evaluate(on_dev)
    delta = float((log_prob.cpu() - batch.old_log_prob).abs().max())
    learner_noise = learner.noise_level()
    actor_noise = actor.noise_level()
    # one PPO iteration that cannot move anything: its ratios are the sync error PPO itself would see
    zero_lr = copy.copy(learner.config)
    zero_lr.actor_lr = 0.0
    zero_lr.value_lr = 0.0
    saved_config, saved_opts = learner.config, learner.optimizers
    learner.config, learner.optimizers = zero_lr, {}
    try:
        stats = learner.update(_once(batch))
    finally:
        learner.config, learner.optimizers = saved_config, saved_opts
    clipfrac = float(stats.extra["clipfrac"])
    return NumericCheck(
        passed=delta < LOG_PROB_TOLERANCE and clipfrac == 0.0,
        chunks=len(batch),
        max_abs_delta_log_prob=delta,
        tolerance=LOG_PROB_TOLERANCE,
        ratio_min=float(stats.extra["ratio_min"]),
        ratio_max=float(stats.extra["ratio_max"]),
        clipfrac=clipfrac,
        approx_kl=float(stats.extra["approx_kl"]),
        actor_noise_level=actor_noise,
        learner_noise_level=learner_noise,
        perturbed=perturbed,
    )


def _once(batch: RolloutBatch) -> Iterator[RolloutBatch]:
    yield batch
