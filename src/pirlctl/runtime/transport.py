"""LeRobot's ``LearnerService`` proto, served and called for PI-RL.

Same proto and chunking as LeRobot 0.6.1 (``lerobot.transport``). What differs from LeRobot's servicer, and why:

- Weights are *broadcast*: every ``StreamParameters`` stream sends the newest version as soon as it connects (a
  late or replacement actor starts from the current weights) and then every newer version. LeRobot drains one
  shared queue per stream, so with two actors each push reaches only one of them, and a second actor can hang at
  ``Ready`` (upstream issue 3979).
- The thread pool is sized from the number of actors (LeRobot: 3 workers total, one per RPC kind).
- Streams end when the client goes away (``context.is_active()``), releasing their worker.
- Every RPC can require a shared token (``authorization: Bearer <token>`` metadata), checked with a constant-time
  compare; a wrong or missing token is refused with UNAUTHENTICATED (LeRobot: "TODO: authorize the request").
- Or TLS (``TlsConfig``): the learner serves a certificate; with a CA set it also requires client certificates
  (mutual TLS). LeRobot only opens insecure ports and channels.
- Incoming byte streams are size-bounded while they are assembled.
"""

from __future__ import annotations

import functools
import hmac
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from lerobot.transport import services_pb2, services_pb2_grpc
from lerobot.transport.utils import grpc_channel_options, send_bytes_in_chunks

from pirlctl.runtime.wire import MAX_INTERACTION_BYTES, MAX_TRANSITIONS_BYTES, WireError

logger = logging.getLogger(__name__)

TransferState = services_pb2.TransferState
# LeRobot caps messages at 4 MiB and sends 2 MiB chunks; the same options on both sides.
CHANNEL_OPTIONS = grpc_channel_options()
AUTH_HEADER = "authorization"


@dataclass(frozen=True)
class TlsConfig:
    """PEM bytes for one side of the channel (read by ``OperatorSettings.resolved_tls``).

    Learner: ``cert`` + ``key`` are what it serves; with ``ca`` set, actors must present a certificate signed by
    it (mutual TLS). Actor: ``ca`` is what it trusts for the learner (None: the system roots); ``cert`` + ``key``,
    if set, are its client certificate; ``server_name`` overrides the host name expected in the learner's
    certificate (e.g. when connecting by IP to a certificate issued for a name).
    """

    cert: bytes | None = None
    key: bytes | None = None
    ca: bytes | None = None
    server_name: str | None = None

    def server_credentials(self) -> grpc.ServerCredentials:
        if not (self.cert and self.key):
            raise ValueError("a TLS learner needs a certificate and its key: set PIRL_TLS_CERT and PIRL_TLS_KEY")
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=self.ca is not None
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        pair = (self.key, self.cert) if self.cert and self.key else (None, None)
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=pair[0], certificate_chain=pair[1])


def iter_messages(request_iterator: Iterator[Any], limit: int) -> Iterator[bytes]:
    """Reassemble BEGIN/MIDDLE/END chunks into whole messages, refusing any larger than ``limit`` bytes.

    As LeRobot's ``receive_bytes_in_chunks``: a message that fits one chunk is a lone END, BEGIN starts over, a
    stream that ends mid-message yields nothing for it. An unknown state or non-bytes data is a :class:`WireError`.
    """
    # Chunks are kept as received and joined once at the end: growing a bytearray re-copies the message as it
    # grows and bytes(buf) copies it once more (B4 in docs/benchmarks.md measured this path at half of LeRobot's).
    parts: list[bytes] = []
    size = 0
    for item in request_iterator:
        state, data = getattr(item, "transfer_state", None), getattr(item, "data", None)
        if not isinstance(data, bytes | bytearray):
            raise WireError(f"chunk data must be bytes, got {type(data).__name__}")
        if state == TransferState.TRANSFER_BEGIN:
            parts, size = [bytes(data)], len(data)
        elif state in (TransferState.TRANSFER_MIDDLE, TransferState.TRANSFER_END):
            parts.append(bytes(data))
            size += len(data)
        else:
            shown = state if isinstance(state, int) and -(2**31) <= state < 2**31 else type(state).__name__
            raise WireError(f"unknown transfer state {shown}")
        if size > limit:
            raise WireError(f"message exceeds {limit} bytes")
        if state == TransferState.TRANSFER_END:
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            parts, size = [], 0


class PiRLLearnerService(services_pb2_grpc.LearnerServiceServicer):
    """Learner side of the wire. Callbacks receive raw bytes; decoding and validation happen in them."""

    def __init__(
        self,
        shutdown: threading.Event,
        on_transitions: Callable[[bytes, str], None],
        on_interaction: Callable[[bytes, str], None],
        token: str | None = None,
    ) -> None:
        self.shutdown = shutdown
        self.on_transitions = on_transitions
        self.on_interaction = on_interaction
        self._token = token
        self._cond = threading.Condition()
        self._latest: tuple[int, bytes] | None = None
        self._seq = 0  # bumps on every publish: a stop push may repeat the last version
        self.streams_served = 0

    # -- weights broadcast ------------------------------------------------------------------------------
    def publish(self, version: int, blob: bytes) -> None:
        """Make ``blob`` (encoded parameters of ``version``) the newest; every stream will send it."""
        with self._cond:
            self._seq += 1
            self._latest = (version, blob)
            self._cond.notify_all()

    @property
    def latest_version(self) -> int | None:
        with self._cond:
            return None if self._latest is None else self._latest[0]

    def _authorize(self, context: grpc.ServicerContext) -> None:
        if self._token is None:
            return
        given = dict(context.invocation_metadata()).get(AUTH_HEADER, "")
        expected = f"Bearer {self._token}"
        if not hmac.compare_digest(str(given).encode(), expected.encode()):
            logger.warning("refused an RPC from %s: missing or wrong token", context.peer())
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong pirlctl token")

    def StreamParameters(self, request, context):  # noqa: N802
        self._authorize(context)
        peer = context.peer()
        logger.info("actor %s subscribed to parameters", peer)
        self.streams_served += 1
        sent = 0

        def has_news(last: int) -> bool:
            return self.shutdown.is_set() or self._seq > last

        while not self.shutdown.is_set() and context.is_active():
            with self._cond:
                self._cond.wait_for(functools.partial(has_news, sent), timeout=0.5)
                seq, latest = self._seq, self._latest
            if latest is None or seq <= sent:
                continue
            version, blob = latest
            yield from send_bytes_in_chunks(blob, services_pb2.Parameters, silent=True)
            sent = seq
            logger.debug("sent parameters v%d to %s", version, peer)

    def SendTransitions(self, request_iterator, context):  # noqa: N802
        self._authorize(context)
        try:
            for blob in iter_messages(request_iterator, MAX_TRANSITIONS_BYTES):
                self.on_transitions(blob, context.peer())
        except WireError as err:
            logger.warning("rejected transitions from %s: %s", context.peer(), err)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return services_pb2.Empty()

    def SendInteractions(self, request_iterator, context):  # noqa: N802
        self._authorize(context)
        try:
            for blob in iter_messages(request_iterator, MAX_INTERACTION_BYTES):
                self.on_interaction(blob, context.peer())
        except WireError as err:
            logger.warning("rejected interaction from %s: %s", context.peer(), err)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return services_pb2.Empty()

    def Ready(self, request, context):  # noqa: N802
        self._authorize(context)
        return services_pb2.Empty()


def start_server(
    service: PiRLLearnerService, host: str, port: int, num_actors: int, tls: TlsConfig | None = None
) -> grpc.Server:
    """Serve ``service`` on host:port with a pool sized for ``num_actors`` (3 RPC kinds each, plus spares); over
    TLS when ``tls`` is given."""
    workers = 4 * max(1, num_actors) + 4
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=CHANNEL_OPTIONS)
    services_pb2_grpc.add_LearnerServiceServicer_to_server(service, server)
    address = f"{host}:{port}"
    try:
        bound = server.add_secure_port(address, tls.server_credentials()) if tls else server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise OSError(f"cannot bind the learner to {address}; is the port in use? pick another --port")
    server.start()
    security = ("mutual TLS" if tls.ca else "TLS") if tls else "plaintext"
    logger.info("learner serving on %s (%s, %d workers)", address, security, workers)
    return server


class LearnerClient:
    """Actor side: a channel to the learner (TLS when ``tls`` is given) with the token (if any) on every call."""

    def __init__(self, host: str, port: int, token: str | None = None, tls: TlsConfig | None = None) -> None:
        self.address = f"{host}:{port}"
        if tls is None:
            self.channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        else:
            options = list(CHANNEL_OPTIONS)
            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            self.channel = grpc.secure_channel(self.address, tls.channel_credentials(), options=options)
        self.stub = services_pb2_grpc.LearnerServiceStub(self.channel)
        self.metadata = [(AUTH_HEADER, f"Bearer {token}")] if token else None

    def ready(self, timeout: float = 5.0) -> None:
        self.stub.Ready(services_pb2.Empty(), timeout=timeout, metadata=self.metadata)

    def stream_parameters(self) -> Iterator[bytes]:
        responses = self.stub.StreamParameters(services_pb2.Empty(), metadata=self.metadata)
        yield from iter_messages(responses, limit=2**62)

    def send_transitions(self, blob: bytes, timeout: float = 60.0) -> None:
        self.stub.SendTransitions(
            send_bytes_in_chunks(blob, services_pb2.Transition, silent=True), timeout=timeout, metadata=self.metadata
        )

    def send_interaction(self, blob: bytes, timeout: float = 10.0) -> None:
        self.stub.SendInteractions(
            send_bytes_in_chunks(blob, services_pb2.InteractionMessage, silent=True),
            timeout=timeout,
            metadata=self.metadata,
        )

    def close(self) -> None:
        self.channel.close()
