"""``verify-sync``: does the actor sample with exactly the weights the learner trains? Three checks, one report.

- **static** (:mod:`~pirlctl.diagnostics.sync_checks`): the pushed weights against what the actor's
  ``load_weights`` consumes, key by key, plus the fingerprint of the frozen part that is never pushed.
- **live** (:mod:`~pirlctl.diagnostics.sync_live`): the same weights through the real path:
  ``wire.encode_parameters`` → ``PiRLLearnerService`` over gRPC on loopback (or a running learner's current push) →
  the actor's own receive code (``stream_parameters_into``, pooled buffers, ``decode_parameters``) → the actor's own
  load code (fingerprint check, ``load_weights``, the learner's version as the PPO iteration); then a sha256 per
  tensor on both sides, of the push and of the whole policy state (under ``trainable="lora"`` the push is adapters
  only: base + adapters must equal the learner's), and bytes / seconds / MB/s.
- **numeric** (:mod:`~pirlctl.diagnostics.sync_checks`): the actor samples chunks with ``act``; the learner re-scores
  them and runs one PPO ``update`` at learning rate 0. On-policy data must give ratio 1.

Both sides are built with :func:`pirlctl.runtime.build.build_algorithm` (seeded), exactly as the learner and
actor processes build them; the actor side then receives and loads through :mod:`pirlctl.runtime.actor`'s own
functions, so a version-dependent setting the actor applies (noise annealing) is applied here too.

Planted-fault hooks for tests: ``tamper`` rewrites the weights dict before it is sent / consumed, ``perturb_learner``
shifts one learner parameter after the weights are loaded, so the numeric check must fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm, WeightsContractError
from pirlctl.config.run_config import PiRLRunConfig
from pirlctl.diagnostics.sync_checks import (
    LOG_PROB_TOLERANCE,
    NUMERIC_CHUNKS,
    NumericCheck,
    StaticCheck,
    Weights,
    numeric_check,
    static_check,
)
from pirlctl.diagnostics.sync_live import (
    Delivery,
    InProcessLearner,
    LiveCheck,
    ParameterReceiver,
    VerifySyncError,
    detached_copy,
    live_check,
    parse_address,
    publish_and_receive,
)
from pirlctl.errors import one_line
from pirlctl.runtime.transport import TlsConfig
from pirlctl.runtime.wire import ParametersMessage, WireError

Tamper = Callable[[Weights], Weights]


@dataclass
class VerifySyncReport:
    config: str
    passed: bool
    static: StaticCheck
    live: LiveCheck
    numeric: NumericCheck


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
    push (received as an actor receives it), and a local learner-side algorithm loads them for the re-score.
    ``tamper`` rewrites the weights dict before it is sent (or, with a running learner, consumed).
    """
    from pirlctl.runtime.build import build_algorithm

    rt = cfg.runtime
    learner = build_algorithm(cfg, rt.device)
    actor = build_algorithm(cfg, rt.actor_device)
    if learner_address is None:
        source, delivery, reference, fingerprint = _push_from_here(learner, tamper)
    else:
        source, delivery, reference, fingerprint = _push_from_learner(learner_address, token, tls, tamper)
        # the local learner side stands in for the running one: same weights, same iteration (noise schedule)
        try:
            learner.load_weights(reference)
        except WeightsContractError as err:
            raise VerifySyncError(
                f"the learner at {learner_address} runs another policy/algorithm than {config_path or 'this config'} "
                f"({one_line(err)}); pass the run config the learner was started with"
            ) from err
        learner.optimization_step = delivery.message.version
    static = static_check(delivery.message.weights, fingerprint, actor)
    live = live_check(delivery, actor, reference, source, learner)
    if live.load_error is None:
        numeric = numeric_check(cfg, actor, learner, chunks=chunks, perturb_learner=perturb_learner)
    else:
        numeric = NumericCheck(
            passed=False,
            chunks=0,
            max_abs_delta_log_prob=None,
            tolerance=LOG_PROB_TOLERANCE,
            ratio_min=None,
            ratio_max=None,
            clipfrac=None,
            approx_kl=None,
            actor_noise_level=None,
            learner_noise_level=None,
            skipped="the actor could not load the push (see live)",
        )
    return VerifySyncReport(
        config=config_path,
        passed=static.passed and live.passed and numeric.passed,
        static=static,
        live=live,
        numeric=numeric,
    )


def _push_from_here(learner: PiRLAlgorithm, tamper: Tamper | None) -> tuple[str, Delivery, Weights, str]:
    """``learner``'s weights (tampered, if asked) published by an in-process learner service and received by the
    actor's code: (source, delivery, the learner's own weights, its fingerprint)."""
    reference = learner.get_weights()
    fingerprint = learner.frozen_fingerprint()
    pushed = tamper(detached_copy(reference)) if tamper is not None else reference
    served = InProcessLearner()
    receiver = ParameterReceiver(served.host, served.port)
    source = f"in-process learner {served.host}:{served.port}"
    try:
        delivery = publish_and_receive(served, receiver, learner.iteration, pushed, fingerprint)
    except WireError as err:  # the learner cannot even encode it (e.g. a meta tensor): nothing reaches the actor
        delivery = Delivery(ParametersMessage(learner.iteration, False, pushed, fingerprint), 0, 0.0)
        delivery.encode_error = one_line(err)
    finally:
        receiver.close()
        served.close()
    return source, delivery, reference, fingerprint


def _push_from_learner(
    address: str, token: str | None, tls: TlsConfig | None, tamper: Tamper | None
) -> tuple[str, Delivery, Weights, str]:
    """The running learner's current push, received by the actor's code (tampered after decoding, if asked):
    (source, delivery, the weights as pushed, the announced fingerprint)."""
    host, port = parse_address(address)
    receiver = ParameterReceiver(host, port, token, tls)
    t0 = time.perf_counter()
    try:
        msg, nbytes, at = receiver.receive()
    finally:
        receiver.close()
    reference = msg.weights
    if tamper is not None:
        msg.weights = tamper(detached_copy(msg.weights))
    return f"learner {host}:{port}", Delivery(msg, nbytes, at - t0), reference, msg.base_fingerprint
