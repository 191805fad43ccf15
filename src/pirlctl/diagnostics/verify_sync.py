"""``verify-sync``: does the actor sample with exactly the weights the learner trains? Three checks, one report.

- **static**: the learner's :meth:`~PiRLAlgorithm.get_weights` against what the actor's
  :meth:`~PiRLAlgorithm.load_weights` consumes (:meth:`~PiRLAlgorithm.expected_weights`), key by key (missing,
  unexpected, shape, dtype, device, finiteness), plus the fingerprint of the frozen part that is never pushed.
- **live**: the same weights through the real path: ``wire.encode_parameters`` → ``PiRLLearnerService`` over gRPC
  on loopback (or a running learner's current push) → ``LearnerClient`` → ``wire.decode_parameters`` → the actor's
  ``load_weights``; then a sha256 per tensor on both sides, and bytes / seconds / MB/s.
- **numeric**: the actor samples chunks with ``act``; the learner re-scores them (``evaluate``) and runs one PPO
  ``update`` at learning rate 0. On-policy data must give ratio 1: max |Δ log-prob| < 1e-5 and clipfrac 0
  (pitfalls-research.md, Pitfall 1: an actor that "runs but performance stalls").

Both sides are built with :func:`pirlctl.runtime.build.build_algorithm` (seeded), exactly as the learner and
actor processes build them. The actor side mirrors ``runtime.actor.Actor._load``: it checks the fingerprint and
calls ``load_weights`` and nothing else.

Planted-fault hooks for tests: ``tamper`` rewrites the weights dict before it is sent / consumed, ``perturb_learner``
shifts one learner parameter after the weights are loaded, so the numeric check must fail.
"""

from __future__ import annotations

import copy
import hashlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PRIVILEGED_STATE_KEY
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm, RolloutBatch, WeightsContractError
from pirlctl.config.run_config import PiRLRunConfig
from pirlctl.errors import PirlError, one_line
from pirlctl.policies.xvla import LANGUAGE_TOKENS_KEY, tokenize_task
from pirlctl.runtime.transport import LearnerClient, PiRLLearnerService, TlsConfig, start_server
from pirlctl.runtime.wire import ParametersMessage, WireError, decode_parameters, encode_parameters

Weights = dict[str, Any]
Tamper = Callable[[Weights], Weights]

LOG_PROB_TOLERANCE = 1e-5  # |Δ log-prob| between actor sampling and learner re-scoring; fp32 gives exactly 0 today
NUMERIC_CHUNKS = 8  # chunk decisions the numeric check samples
RECEIVE_TIMEOUT_S = 20.0  # seconds to wait for a push over gRPC


class VerifySyncError(PirlError, ValueError):
    """verify-sync cannot run (bad ``--learner``, learner unreachable); the message names the fix."""


# ---------------------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------------------


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
class HashMismatch:
    key: str
    learner_sha256: str
    actor_sha256: str


@dataclass
class LiveCheck:
    passed: bool
    source: str  # "in-process learner 127.0.0.1:PORT" or "learner HOST:PORT"
    version: int | None  # the policy version received
    bytes: int
    seconds: float  # encode (in-process only) + gRPC transfer + decode
    mb_per_s: float
    load_seconds: float
    load_error: str | None  # what the actor's load_weights (or the fingerprint check) refused, naming the key
    tensors_compared: int
    mismatches: list[HashMismatch] = field(default_factory=list)


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


@dataclass
class VerifySyncReport:
    config: str
    passed: bool
    static: StaticCheck
    live: LiveCheck
    numeric: NumericCheck


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
# Live gRPC path
# ---------------------------------------------------------------------------------------------------------------


def tensor_sha256(t: Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes."""
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def weight_hashes(weights: Weights) -> dict[str, str]:
    return {
        f"{group}.{name}": tensor_sha256(t)
        for group, sd in weights.items()
        if isinstance(sd, dict)
        for name, t in sd.items()
        if isinstance(t, Tensor)
    }


def compare_hashes(reference: Weights, actor: Weights) -> tuple[int, list[HashMismatch]]:
    """Per-tensor sha256 of ``reference`` against ``actor``: (tensors compared, mismatches)."""
    ref, got = weight_hashes(reference), weight_hashes(actor)
    mismatches = [
        HashMismatch(k, ref.get(k, "—"), got.get(k, "—"))
        for k in sorted(set(ref) | set(got))
        if ref.get(k) != got.get(k)
    ]
    return len(ref), mismatches


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) → (host, port); :class:`VerifySyncError` otherwise."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not (1 <= int(port) <= 65535):
        raise VerifySyncError(f"--learner {address!r} is not HOST:PORT; pass e.g. --learner 127.0.0.1:50061")
    return host, int(port)


class ParameterReceiver:
    """An actor-side ``StreamParameters`` subscription (:class:`LearnerClient`) read from a background thread,
    so that a receive can time out."""

    def __init__(self, host: str, port: int, token: str | None = None, tls: TlsConfig | None = None) -> None:
        self.address = f"{host}:{port}"
        self.client = LearnerClient(host, port, token, tls)
        self._blobs: queue.Queue[bytes | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, name="verify-sync-params", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for blob in self.client.stream_parameters():
                self._blobs.put(blob)
        except BaseException as err:  # noqa: BLE001 - handed to the reader (a closed channel ends here too)
            self._blobs.put(err)

    def receive(self, timeout: float = RECEIVE_TIMEOUT_S) -> bytes:
        try:
            item = self._blobs.get(timeout=timeout)
        except queue.Empty:
            raise VerifySyncError(
                f"no parameters from the learner at {self.address} within {timeout:.0f}s; is it running and has it "
                "published weights? (start it with `pirlctl learner`)"
            ) from None
        if isinstance(item, BaseException):
            raise VerifySyncError(
                f"parameter stream from {self.address} failed ({one_line(item)}); check --learner and PIRL_TOKEN"
            ) from item
        return item

    def close(self) -> None:
        self.client.close()
        self._thread.join(timeout=2.0)


class InProcessLearner:
    """LeRobot's ``LearnerService`` (pirlctl's broadcast servicer) on a free loopback port, in this process."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.shutdown = threading.Event()
        self.service = PiRLLearnerService(self.shutdown, self._ignore, self._ignore)
        self.host, self.port = host, free_port(host)
        self.server = start_server(self.service, host, self.port, num_actors=1)

    @staticmethod
    def _ignore(blob: bytes, peer: str) -> None:
        return None

    def close(self) -> None:
        self.shutdown.set()
        self.server.stop(0)


@dataclass
class Delivery:
    """One push as the actor got it."""

    message: ParametersMessage
    bytes: int
    seconds: float  # encode (when we published it) + transfer + decode
    encode_error: str | None = None  # the learner could not encode the push


def detached_copy(weights: Weights) -> Weights:
    """``{group: {name: tensor.clone()}}``: what a tamper hook may rewrite without touching the learner's tensors
    (``get_weights`` on CPU shares storage with the parameters)."""
    return {
        g: {k: t.clone() if isinstance(t, Tensor) else t for k, t in sd.items()} if isinstance(sd, dict) else sd
        for g, sd in weights.items()
    }


def publish_and_receive(
    learner: InProcessLearner, receiver: ParameterReceiver, version: int, weights: Weights, fingerprint: str
) -> Delivery:
    """Encode ``weights`` as the learner does, publish them, and receive + decode them as the actor does."""
    t0 = time.perf_counter()
    blob = encode_parameters(version, weights, base_fingerprint=fingerprint)
    learner.service.publish(version, blob)
    got = receiver.receive()
    msg = decode_parameters(got)
    return Delivery(msg, len(got), time.perf_counter() - t0)


def actor_load(actor: PiRLAlgorithm, msg: ParametersMessage) -> None:
    """What ``runtime.actor.Actor._load`` does with a push: fingerprint check, then ``load_weights``."""
    if msg.base_fingerprint and msg.base_fingerprint != actor.frozen_fingerprint():
        raise WireError("frozen-part fingerprint differs: the learner's base policy is not the actor's")
    actor.load_weights(msg.weights)


def live_check(delivery: Delivery, actor: PiRLAlgorithm, reference: Weights, source: str) -> LiveCheck:
    """Load a delivered push into the actor and compare per-tensor sha256 with ``reference`` (the learner's)."""
    msg = delivery.message
    load_error: str | None = None
    t0 = time.perf_counter()
    if delivery.encode_error is not None:
        load_error = f"the learner could not send it: {delivery.encode_error}"
    else:
        try:
            actor_load(actor, msg)
        except (WeightsContractError, WireError, RuntimeError, KeyError) as err:
            load_error = one_line(err)
    load_s = time.perf_counter() - t0
    compared, mismatches = (0, []) if load_error else compare_hashes(reference, actor.get_weights())
    return LiveCheck(
        passed=load_error is None and not mismatches and compared > 0,
        source=source,
        version=msg.version,
        bytes=delivery.bytes,
        seconds=delivery.seconds,
        mb_per_s=delivery.bytes / 1e6 / max(delivery.seconds, 1e-9),
        load_seconds=load_s,
        load_error=load_error,
        tensors_compared=compared,
        mismatches=mismatches,
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
    batch = sample_batch(actor, synthetic_observations(cfg, chunks, seed=cfg.seed), seed=cfg.seed)
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


# ---------------------------------------------------------------------------------------------------------------
# The whole check
# ---------------------------------------------------------------------------------------------------------------


def verify_sync(
    cfg: PiRLRunConfig,
    *,
    config_path: str = "",
    learner_address: str | None = None,
    token: str | None = None,
    tls: TlsConfig | None = None,
    tamper: Tamper | None = None,
    perturb_learner: float = 0.0,
    chunks: int = NUMERIC_CHUNKS,
) -> VerifySyncReport:
    """Run the static, live and numeric checks for ``cfg``.

    Without ``learner_address`` the learner side is built here and serves its weights from an in-process
    ``PiRLLearnerService`` on a free loopback port. With it, the pushed weights are the running learner's current
    push (read with :class:`LearnerClient`), and a local learner-side algorithm loads them for the re-score.
    ``tamper`` rewrites the weights dict before it is sent (or, with a running learner, consumed).
    """
    from pirlctl.runtime.build import build_algorithm

    rt = cfg.runtime
    learner = build_algorithm(cfg, rt.device)
    actor = build_algorithm(cfg, rt.actor_device)
    if learner_address is None:
        reference = learner.get_weights()
        fingerprint = learner.frozen_fingerprint()
        pushed = tamper(detached_copy(reference)) if tamper is not None else reference
        served = InProcessLearner()
        receiver = ParameterReceiver(served.host, served.port)
        source = f"in-process learner {served.host}:{served.port}"
        try:
            delivery = publish_and_receive(served, receiver, learner.iteration, pushed, fingerprint)
        except WireError as err:  # the learner cannot even encode it (e.g. a meta tensor): nothing reaches the actor
            delivery = Delivery(ParametersMessage(learner.iteration, False, {}, fingerprint), 0, 0.0)
            delivery.encode_error = one_line(err)
        finally:
            receiver.close()
            served.close()
    else:
        host, port = parse_address(learner_address)
        receiver = ParameterReceiver(host, port, token, tls)
        t0 = time.perf_counter()
        try:
            blob = receiver.receive()
        finally:
            receiver.close()
        try:
            msg = decode_parameters(blob)
        except WireError as err:
            raise VerifySyncError(f"the learner at {learner_address} pushed undecodable parameters: {err}") from err
        delivery = Delivery(msg, len(blob), time.perf_counter() - t0)
        reference = msg.weights
        fingerprint = msg.base_fingerprint
        if tamper is not None:
            msg.weights = tamper(detached_copy(msg.weights))
        pushed = msg.weights
        source = f"learner {host}:{port}"
        # the local learner side stands in for the running one: same weights, same iteration (noise schedule)
        try:
            learner.load_weights(reference)
        except WeightsContractError as err:
            raise VerifySyncError(
                f"the learner at {learner_address} runs another policy/algorithm than {config_path or 'this config'} "
                f"({one_line(err)}); pass the run config the learner was started with"
            ) from err
        learner.optimization_step = msg.version
    static = static_check(pushed, fingerprint, actor)
    live = live_check(delivery, actor, reference, source)
    if live.load_error is None:
        numeric = numeric_check(cfg, actor, learner, chunks=chunks, perturb_learner=perturb_learner)
    else:
        numeric = NumericCheck(
            False,
            0,
            None,
            LOG_PROB_TOLERANCE,
            None,
            None,
            None,
            None,
            None,
            None,
            skipped="the actor could not load the push (see live)",
        )
    return VerifySyncReport(
        config=config_path,
        passed=static.passed and live.passed and numeric.passed,
        static=static,
        live=live,
        numeric=numeric,
    )
