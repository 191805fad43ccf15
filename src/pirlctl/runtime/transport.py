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
- The parameters layout is negotiated: a stream whose call carries ``x-pirl-params: raw/1`` (pirlctl's own actor and
  diagnostics) gets the raw layout above; any other client gets LeRobot's own format (``state_to_bytes``:
  ``torch.save`` of the same weights, as ``bytes_to_state_dict`` decodes), encoded once per push and only when such
  a client is subscribed. LeRobot tooling talking to our learner is part of the wire contract.
- The port is bound exclusively (gRPC sets SO_REUSEPORT by default: a second learner on a held port would bind it
  too and split the actors between the two without a word), and before the learner builds its model.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from lerobot.transport import services_pb2, services_pb2_grpc
from lerobot.transport.utils import CHUNK_SIZE, grpc_channel_options, send_bytes_in_chunks, state_to_bytes

from pirlctl.errors import PirlError
from pirlctl.runtime.wire import (
    MAX_INTERACTION_BYTES,
    MAX_PARAMETERS_BYTES,
    MAX_TRANSITIONS_BYTES,
    WireError,
    decode_parameters,
    parameters_size,
)

logger = logging.getLogger(__name__)

TransferState = services_pb2.TransferState
# LeRobot caps messages at 4 MiB and sends 2 MiB chunks; the same options on both sides.
CHANNEL_OPTIONS = grpc_channel_options()
# The server binds its port alone: with gRPC's default SO_REUSEPORT a second learner would bind a held port too.
SERVER_OPTIONS = [*CHANNEL_OPTIONS, ("grpc.so_reuseport", 0)]
AUTH_HEADER = "authorization"
# StreamParameters metadata asking for pirlctl's raw layout (runtime/wire.py); without it a client gets LeRobot's
# torch.save state dict. The number after the slash is the layout's version: a learner refuses one it does not know.
PARAMS_LAYOUT_HEADER = "x-pirl-params"
RAW_LAYOUT = "raw/1"


class LearnerBindError(PirlError, OSError):
    """The learner's address cannot be bound (usually: another learner holds the port)."""


class LearnerUnreachableError(PirlError, ConnectionError):
    """An actor found no learner at its address within ``runtime.connect_timeout_s``."""


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
        self._lerobot_lock = threading.Lock()  # one LeRobot-format encode per push, however many such clients
        self._lerobot_blob: tuple[int, bytes] | None = None  # (push sequence, torch.save bytes)
        self._lerobot_streams = 0  # LeRobot-format streams open now
        self.lerobot_encodes = 0

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
        layout = dict(context.invocation_metadata()).get(PARAMS_LAYOUT_HEADER)
        if layout is not None and layout != RAW_LAYOUT:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"parameters layout {layout!r} is unknown to this learner (it speaks {RAW_LAYOUT!r}); run the same "
                "pirlctl on learner and actors",
            )
        raw = layout == RAW_LAYOUT
        logger.info("actor %s subscribed to parameters (%s)", peer, "raw" if raw else "LeRobot torch.save")
        self.streams_served += 1
        if raw:
            yield from self._stream(context, raw=True)
            return
        with self._lerobot_lock:
            self._lerobot_streams += 1
        try:
            yield from self._stream(context, raw=False)
        finally:
            with self._lerobot_lock:
                self._lerobot_streams -= 1
                if not self._lerobot_streams:  # the last LeRobot client left: drop its copy of the weights
                    self._lerobot_blob = None

    def _stream(self, context: grpc.ServicerContext, *, raw: bool) -> Iterator[Any]:
        """Chunks of the newest push, then of each newer one, until shutdown or the client leaves."""
        peer = context.peer()
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
            payload: bytes | None = None
            try:
                if raw:
                    yield from chunk_messages(blob, services_pb2.Parameters)
                else:
                    payload = self._lerobot_payload(seq, blob)
            finally:
                with self._cond:
                    self._sending[key] -= 1
                    if not self._sending[key]:
                        del self._sending[key]
            if payload is not None:  # its own bytes: the send buffer is free again while a slow client reads
                yield from chunk_messages(payload, services_pb2.Parameters)
            sent = seq
            logger.debug("sent parameters v%d to %s", version, peer)

    def _lerobot_payload(self, seq: int, blob: Buffer) -> bytes | None:
        """Push ``seq`` in LeRobot's format (``state_to_bytes`` of the same weights), encoded by the first stream
        that needs it and shared by the others. None (logged) if ``blob`` is not a parameters message."""
        with self._lerobot_lock:
            if self._lerobot_blob is not None and self._lerobot_blob[0] == seq:
                return self._lerobot_blob[1]
            try:
                weights = decode_parameters(blob).weights  # views of blob; state_to_bytes copies them
            except WireError as err:
                logger.warning("cannot send push %d in LeRobot's format: %s", seq, err)
                return None
            payload = state_to_bytes(weights)  # a dict of state dicts, as get_weights() returns them
            self._lerobot_blob = (seq, payload)
            self.lerobot_encodes += 1
            return payload

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


@contextlib.contextmanager
def _stderr_to(sink: Any) -> Iterator[None]:
    """Send file descriptor 2 to ``sink`` meanwhile: gRPC core logs a failed bind there itself, and the learner's
    error must be one line."""
    saved = os.dup(2)
    try:
        os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class BoundServer:
    """A gRPC server that holds its port but does not answer yet (:func:`bind_server`, then :func:`serve`)."""

    server: grpc.Server
    description: str  # "host:port (security, N workers)" for the log

    def release(self) -> None:
        """Give the port back without serving. (gRPC frees a port only when its server has started and stopped; a
        server with no services answers UNIMPLEMENTED for that instant.)"""
        self.server.start()
        self.server.stop(None).wait()


def bind_server(host: str, port: int, num_actors: int, tls: TlsConfig | None = None) -> BoundServer:
    """A server holding host:port alone (no SO_REUSEPORT), not started: bind before building anything, so that a
    held port fails in a second and before anything is written. The pool is sized for ``num_actors`` (3 RPC kinds
    each, plus spares); over TLS when ``tls`` is given."""
    workers = 4 * max(1, num_actors) + 4
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=SERVER_OPTIONS)
    address = f"{host}:{port}"
    credentials = tls.server_credentials() if tls else None
    with tempfile.TemporaryFile("w+") as grpc_log:
        with _stderr_to(grpc_log):
            try:
                bound = (
                    server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
                )
            except RuntimeError:
                bound = 0
        grpc_log.seek(0)
        why = re.search(r"Error in bind for address '[^']*': ([^)]*)\)", grpc_log.read())
    if bound == 0:
        reason = why.group(1) if why else "is the port in use?"
        raise LearnerBindError(
            f"cannot bind the learner to {address} ({reason}); another learner may hold port {port}: pick another "
            "with --port (or runtime.learner_port) and give the actors the same"
        )
    security = ("mutual TLS" if tls.ca else "TLS") if tls else "plaintext"
    return BoundServer(server, f"{address} ({security}, {workers} workers)")


def serve(bound: BoundServer, service: PiRLLearnerService) -> grpc.Server:
    """Start answering ``service``'s RPCs on a server from :func:`bind_server`."""
    services_pb2_grpc.add_LearnerServiceServicer_to_server(service, bound.server)
    bound.server.start()
    logger.info("learner serving on %s", bound.description)
    return bound.server


def start_server(
    service: PiRLLearnerService, host: str, port: int, num_actors: int, tls: TlsConfig | None = None
) -> grpc.Server:
    """:func:`bind_server` and :func:`serve` in one step."""
    return serve(bind_server(host, port, num_actors, tls), service)


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

    def _raw_parameters(self) -> Any:
        """A ``StreamParameters`` call asking for the raw layout (else the learner sends LeRobot's format)."""
        metadata = [*(self.metadata or []), (PARAMS_LAYOUT_HEADER, RAW_LAYOUT)]
        return self.stub.StreamParameters(services_pb2.Empty(), metadata=metadata)

    def stream_parameters(self) -> Iterator[bytes]:
        """Each pushed message (raw layout), whole."""
        yield from iter_messages(self._raw_parameters(), limit=MAX_PARAMETERS_BYTES)

    def stream_parameters_into(self, pool: BufferPool) -> Iterator[memoryview]:
        """Each pushed message (raw layout) assembled into a buffer of ``pool`` (see :func:`iter_messages_into`)."""
        responses = self._raw_parameters()
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
