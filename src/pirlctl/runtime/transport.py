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
- Weight pushes avoid fresh allocations (B4 in docs/benchmarks.md): the learner encodes each push into one of a few
  send buffers no stream is reading, streams frame it chunk by chunk (no whole-message copy), and the actor
  assembles it into a receive buffer it hands back after loading (:class:`BufferPool`).
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
from lerobot.transport.utils import CHUNK_SIZE, grpc_channel_options, send_bytes_in_chunks

from pirlctl.runtime.wire import (
    MAX_INTERACTION_BYTES,
    MAX_PARAMETERS_BYTES,
    MAX_TRANSITIONS_BYTES,
    WireError,
    parameters_size,
)

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


Buffer = bytes | bytearray | memoryview


def chunk_messages(blob: Buffer, message_class: Any, chunk_size: int = CHUNK_SIZE) -> Iterator[Any]:
    """LeRobot's BEGIN/MIDDLE/END framing of ``blob``, copying one chunk at a time (never the whole message)."""
    mv = memoryview(blob)
    n = len(mv)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        if stop == n:
            state = TransferState.TRANSFER_END
        else:
            state = TransferState.TRANSFER_BEGIN if start == 0 else TransferState.TRANSFER_MIDDLE
        yield message_class(transfer_state=state, data=bytes(mv[start:stop]))


class BufferPool:
    """Reusable bytearrays for weight pushes. A buffer comes back only when its holder says it is done with it
    (``give_back``): a buffer never handed back is simply not reused. Counts fresh allocations (B4)."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._free: list[bytearray] = []
        self._lock = threading.Lock()
        self.size_hint = 0  # the last message's size: the next one is usually the same
        self.allocations = 0

    def take(self, nbytes: int = 0) -> bytearray:
        nbytes = max(nbytes, self.size_hint)
        with self._lock:
            buf = self._free.pop() if self._free else None
        if buf is not None and len(buf) >= nbytes:
            return buf
        self.allocations += 1
        return bytearray(nbytes)

    def give_back(self, buf: object) -> None:
        if isinstance(buf, bytearray):
            with self._lock:
                if len(self._free) < self.keep and all(b is not buf for b in self._free):
                    self._free.append(buf)


def _grow(buf: bytearray, used: int, need: int) -> bytearray:
    """``buf`` with room for ``need`` bytes, keeping its first ``used``; in place unless views of it exist."""
    target = max(need, 2 * len(buf))
    try:
        buf.extend(bytes(target - len(buf)))
        return buf
    except BufferError:  # exported (tensor views alive): copy into a new buffer
        new = bytearray(target)
        new[:used] = buf[:used]
        return new


def iter_messages_into(
    request_iterator: Iterator[Any],
    limit: int,
    pool: BufferPool,
    size_of: Callable[[bytes], int | None] | None = None,
) -> Iterator[memoryview]:
    """As :func:`iter_messages`, assembling each message into a buffer from ``pool`` (written in place, no join).
    Yields a view whose ``.obj`` is the buffer; give it back to the pool when done with the decoded message.
    ``size_of(first chunk)``, when it knows the message's size, sizes the buffer once (a size over ``limit`` is
    refused before anything is allocated); otherwise the buffer grows as chunks arrive."""
    buf: bytearray | None = None
    size = 0
    for item in request_iterator:
        state, data = getattr(item, "transfer_state", None), getattr(item, "data", None)
        if not isinstance(data, bytes | bytearray):
            raise WireError(f"chunk data must be bytes, got {type(data).__name__}")
        if state not in (TransferState.TRANSFER_BEGIN, TransferState.TRANSFER_MIDDLE, TransferState.TRANSFER_END):
            shown = state if isinstance(state, int) and -(2**31) <= state < 2**31 else type(state).__name__
            raise WireError(f"unknown transfer state {shown}")
        if state == TransferState.TRANSFER_BEGIN or buf is None:
            size = 0
            announced = size_of(bytes(data[:64])) if size_of is not None else None
            if announced is not None and announced > limit:
                raise WireError(f"message exceeds {limit} bytes (announces {announced})")
            if buf is None or (announced is not None and len(buf) < announced):
                if buf is not None:
                    pool.give_back(buf)
                buf = pool.take(announced or 0)
        need = size + len(data)
        if need > limit:
            raise WireError(f"message exceeds {limit} bytes")
        if need > len(buf):
            buf = _grow(buf, size, need)
        buf[size:need] = data
        size = need
        if state == TransferState.TRANSFER_END:
            pool.size_hint = size
            yield memoryview(buf)[:size]
            buf, size = None, 0


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
        self._latest: tuple[int, Buffer] | None = None
        self._seq = 0  # bumps on every publish: a stop push may repeat the last version
        self.streams_served = 0
        self._send_buffers: list[bytearray] = []  # encode targets reused across pushes
        self._sending: dict[int, int] = {}  # id(buffer) -> streams sending it now

    # -- weights broadcast ------------------------------------------------------------------------------
    def publish(self, version: int, blob: Buffer) -> None:
        """Make ``blob`` (encoded parameters of ``version``) the newest; every stream will send it. A view of a
        bytearray (``encode_parameters(out=service.send_buffer())``) joins the reusable send buffers."""
        with self._cond:
            self._seq += 1
            self._latest = (version, blob)
            owner = blob.obj if isinstance(blob, memoryview) else None
            if isinstance(owner, bytearray) and all(b is not owner for b in self._send_buffers):
                self._send_buffers.append(owner)
                if len(self._send_buffers) > 3:  # forget the oldest idle one (a slow stream made us allocate)
                    idle = [b for b in self._send_buffers if b is not owner and not self._sending.get(id(b))]
                    if idle:
                        self._send_buffers.remove(idle[0])
            self._cond.notify_all()

    def send_buffer(self) -> bytearray:
        """A buffer to encode the next push into: one that no stream is sending and that is not the newest push
        (a stream may start sending it at any moment). Two cover the steady state; an empty new one otherwise
        (``encode_parameters`` sizes it)."""
        with self._cond:
            latest = self._latest[1] if self._latest is not None else None
            newest = latest.obj if isinstance(latest, memoryview) else None
            for buf in self._send_buffers:
                if buf is not newest and not self._sending.get(id(buf)):
                    return buf
        return bytearray()

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
                # counted under the lock that made it the newest: send_buffer() never hands it out meanwhile
                key = id(blob.obj) if isinstance(blob, memoryview) else id(blob)
                self._sending[key] = self._sending.get(key, 0) + 1
            try:
                yield from chunk_messages(blob, services_pb2.Parameters)
            finally:
                with self._cond:
                    self._sending[key] -= 1
                    if not self._sending[key]:
                        del self._sending[key]
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
        """Each pushed message, whole."""
        responses = self.stub.StreamParameters(services_pb2.Empty(), metadata=self.metadata)
        yield from iter_messages(responses, limit=MAX_PARAMETERS_BYTES)

    def stream_parameters_into(self, pool: BufferPool) -> Iterator[memoryview]:
        """Each pushed message assembled into a buffer of ``pool`` (see :func:`iter_messages_into`)."""
        responses = self.stub.StreamParameters(services_pb2.Empty(), metadata=self.metadata)
        yield from iter_messages_into(responses, MAX_PARAMETERS_BYTES, pool, parameters_size)

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
