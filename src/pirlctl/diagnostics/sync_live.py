"""verify-sync's live check: pushed weights through the actor's own receive and load code, hashed on both sides.

The receive path is the actor's (:func:`pirlctl.runtime.actor.receive_pushes`: ``LearnerClient.stream_parameters_into``
into a :class:`~pirlctl.runtime.transport.BufferPool`, then ``wire.decode_parameters``) and the load is the actor's
(:func:`pirlctl.runtime.actor.load_parameters`: fingerprint check, ``load_weights``, the learner's version as the
PPO iteration). Only the edges are stand-ins: an in-process ``PiRLLearnerService`` when no learner is given, and a
thread that lets a receive time out.
"""

from __future__ import annotations

import hashlib
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm, WeightsContractError
from pirlctl.errors import PirlError, one_line
from pirlctl.runtime.actor import load_parameters, receive_pushes
from pirlctl.runtime.transport import BufferPool, LearnerClient, PiRLLearnerService, TlsConfig, start_server
from pirlctl.runtime.wire import ParametersMessage, WireError, encode_parameters

Weights = dict[str, Any]

RECEIVE_TIMEOUT_S = 20.0  # seconds to wait for a push over gRPC


class VerifySyncError(PirlError, ValueError):
    """verify-sync cannot run (bad ``--learner``, learner unreachable); the message names the fix."""


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
    load_error: str | None  # what the actor's load (fingerprint check, load_weights) refused, naming the key
    tensors_compared: int
    mismatches: list[HashMismatch] = field(default_factory=list)
    # the actor's whole policy (frozen base, LoRA adapters, buffers) against the learner's after the load, tensor by
    # tensor ("whole_policy.<name>"): what the push plus the fingerprinted base must reproduce
    policy_tensors_compared: int = 0
    policy_mismatches: list[HashMismatch] = field(default_factory=list)


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


@dataclass
class Delivery:
    """One push as the actor got it."""

    message: ParametersMessage
    bytes: int
    seconds: float  # encode (when we published it) + transfer + decode
    encode_error: str | None = None  # the learner could not encode the push


class ParameterReceiver:
    """An actor-side ``StreamParameters`` subscription read through the actor's own receive path
    (:func:`~pirlctl.runtime.actor.receive_pushes`) from a background thread, so that a receive can time out."""

    def __init__(self, host: str, port: int, token: str | None = None, tls: TlsConfig | None = None) -> None:
        self.address = f"{host}:{port}"
        self.client = LearnerClient(host, port, token, tls)
        self.pool = BufferPool(keep=2)
        self._pushes: queue.Queue[tuple[ParametersMessage | WireError, int, float] | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, name="verify-sync-params", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for msg, _ in receive_pushes(self.client, self.pool):
                # a message's tensors stay views of its buffer, which is never given back: each push keeps its own
                self._pushes.put((msg, self.pool.size_hint, time.perf_counter()))
        except BaseException as err:  # noqa: BLE001 - handed to the reader (a closed channel ends here too)
            self._pushes.put(err)

    def receive(self, timeout: float = RECEIVE_TIMEOUT_S) -> tuple[ParametersMessage, int, float]:
        """The next push, decoded: (message, its size in bytes, ``perf_counter`` when it was decoded)."""
        try:
            item = self._pushes.get(timeout=timeout)
        except queue.Empty:
            raise VerifySyncError(
                f"no parameters from the learner at {self.address} within {timeout:.0f}s; is it running and has it "
                "published weights? (start it with `pirlctl learner`)"
            ) from None
        if isinstance(item, BaseException):
            raise VerifySyncError(
                f"parameter stream from {self.address} failed ({one_line(item)}); check --learner and PIRL_TOKEN"
            ) from item
        msg, nbytes, at = item
        if isinstance(msg, WireError):
            raise VerifySyncError(f"the learner at {self.address} pushed undecodable parameters: {msg}") from msg
        return msg, nbytes, at

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
    msg, nbytes, at = receiver.receive()
    return Delivery(msg, nbytes, at - t0)


def actor_load(actor: PiRLAlgorithm, msg: ParametersMessage) -> None:
    """Load a push into ``actor`` exactly as an actor process does (:func:`~pirlctl.runtime.actor.load_parameters`
    against its own frozen-part fingerprint)."""
    load_parameters(actor, msg, actor.frozen_fingerprint())


def live_check(
    delivery: Delivery, actor: PiRLAlgorithm, reference: Weights, source: str, learner: PiRLAlgorithm | None = None
) -> LiveCheck:
    """Load a delivered push into the actor and compare per-tensor sha256 with ``reference`` (the learner's); with
    ``learner``, also the actor's whole policy state against the learner's."""
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
    whole: tuple[int, list[HashMismatch]] = (0, [])
    if learner is not None and not load_error:
        whole = compare_hashes(
            {"whole_policy": learner.policy.state_dict()}, {"whole_policy": actor.policy.state_dict()}
        )
    return LiveCheck(
        passed=load_error is None and not mismatches and compared > 0 and not whole[1],
        source=source,
        version=msg.version,
        bytes=delivery.bytes,
        seconds=delivery.seconds,
        mb_per_s=delivery.bytes / 1e6 / max(delivery.seconds, 1e-9),
        load_seconds=load_s,
        load_error=load_error,
        tensors_compared=compared,
        mismatches=mismatches,
        policy_tensors_compared=whole[0],
        policy_mismatches=whole[1],
    )
