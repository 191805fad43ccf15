"""LearnerService over real gRPC on loopback: broadcast to every stream, late joiners, token auth, the negotiated
parameters layout, the exclusive port."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
import torch

from pirlctl.runtime.transport import (
    PARAMS_LAYOUT_HEADER,
    RAW_LAYOUT,
    LearnerBindError,
    LearnerClient,
    PiRLLearnerService,
    bind_server,
    start_server,
)

from ..integration.procs import free_port


@pytest.fixture
def served():
    shutdown = threading.Event()
    got: list[bytes] = []
    svc = PiRLLearnerService(shutdown, lambda b, p: got.append(b), lambda b, p: got.append(b), token="s3cret")
    port = free_port()
    server = start_server(svc, "127.0.0.1", port, num_actors=2)
    yield svc, port, got
    shutdown.set()
    server.stop(0)


def _first(client: LearnerClient, n: int) -> list[bytes]:
    out = []
    for blob in client.stream_parameters():
        out.append(blob)
        if len(out) == n:
            break
    return out


def test_every_stream_gets_every_push_and_a_late_joiner_starts_current(served):
    svc, port, got = served
    a, b = LearnerClient("127.0.0.1", port, "s3cret"), LearnerClient("127.0.0.1", port, "s3cret")
    svc.publish(0, b"v0")
    results: dict[str, list[bytes]] = {}
    ta = threading.Thread(target=lambda: results.__setitem__("a", _first(a, 3)))
    tb = threading.Thread(target=lambda: results.__setitem__("b", _first(b, 3)))
    ta.start()
    tb.start()

    time.sleep(0.5)
    svc.publish(1, b"v1")
    time.sleep(0.3)
    svc.publish(2, b"v2" * 2_000_000)  # > one 2 MiB chunk: reassembled
    ta.join(10)
    tb.join(10)
    assert results["a"][:2] == results["b"][:2] == [b"v0", b"v1"]
    assert results["a"][2] == results["b"][2] == b"v2" * 2_000_000
    late = LearnerClient("127.0.0.1", port, "s3cret")
    assert _first(late, 1) == [b"v2" * 2_000_000]
    late.send_transitions(b"payload")
    assert got == [b"payload"]


def test_wrong_or_missing_token_is_unauthenticated(served):
    _, port, got = served
    for token in (None, "wrong"):
        client = LearnerClient("127.0.0.1", port, token)
        with pytest.raises(grpc.RpcError) as err:
            client.ready()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            client.send_transitions(b"x")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert got == []
    LearnerClient("127.0.0.1", port, "s3cret").ready()


class _Context:
    def invocation_metadata(self):
        return ((PARAMS_LAYOUT_HEADER, RAW_LAYOUT),)  # as LearnerClient asks

    def peer(self):
        return "test"

    def is_active(self):
        return True


def test_send_buffers_are_reused_but_never_the_newest_push_or_one_a_stream_is_sending():
    from lerobot.transport import services_pb2

    from pirlctl.runtime.wire import decode_parameters, encode_parameters

    svc = PiRLLearnerService(threading.Event(), lambda b, p: None, lambda b, p: None)
    w = {"p": {"w": torch.zeros(1_000_000)}}  # 4 MB: several chunks
    v1 = encode_parameters(1, w, out=svc.send_buffer())
    svc.publish(1, v1)
    assert svc.send_buffer() is not v1.obj  # the newest push: a stream may start sending it any moment
    stream = svc.StreamParameters(services_pb2.Empty(), _Context())
    first_chunk = next(stream)  # a stream is now part-way through v1
    assert first_chunk.transfer_state == services_pb2.TransferState.TRANSFER_BEGIN
    v2 = encode_parameters(2, {"p": {"w": torch.ones(1_000_000)}}, out=svc.send_buffer())
    svc.publish(2, v2)
    assert v2.obj is not v1.obj
    spare = svc.send_buffer()  # v1 is being sent, v2 is the newest: neither may be overwritten
    assert spare is not v1.obj and spare is not v2.obj
    chunks = [first_chunk]
    while chunks[-1].transfer_state != services_pb2.TransferState.TRANSFER_END:
        chunks.append(next(stream))
    assert decode_parameters(b"".join(c.data for c in chunks)).weights["p"]["w"].sum() == 0  # v1 arrived intact
    stream.close()  # the stream ends (client gone): v1's buffer is free again
    assert svc.send_buffer() is v1.obj


def test_weights_slot_gives_back_a_replaced_message_only_if_the_loop_never_took_it():
    from pirlctl.runtime.actor import WeightsSlot
    from pirlctl.runtime.transport import BufferPool
    from pirlctl.runtime.wire import ParametersMessage

    pool = BufferPool(keep=4)
    slot = WeightsSlot(pool)
    bufs = [bytearray(8) for _ in range(3)]
    slot.put(ParametersMessage(1, False, {}), bufs[0])
    slot.put(ParametersMessage(2, False, {}), bufs[1])  # v1 never taken: its buffer is free again
    assert pool.take(8) is bufs[0]
    seq, msg, buf = slot.wait_new(0, timeout=1, stop=threading.Event())
    assert (msg.version, buf) == (2, bufs[1])
    slot.put(ParametersMessage(3, False, {}), bufs[2])  # v2 is being loaded by the loop: not handed out
    assert pool.take(8) is not bufs[1]


class _LeRobotClient:
    """A LeRobot 0.6.1 client: its own stub, chunk receiver and ``bytes_to_state_dict``; one open stream."""

    def __init__(self, port: int, metadata=None) -> None:
        from lerobot.transport import services_pb2, services_pb2_grpc

        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = services_pb2_grpc.LearnerServiceStub(self.channel)
        self.stream = stub.StreamParameters(services_pb2.Empty(), metadata=metadata)

    def next(self) -> dict:
        from lerobot.transport.utils import bytes_to_state_dict, receive_bytes_in_chunks

        return bytes_to_state_dict(receive_bytes_in_chunks(self.stream, None, threading.Event()))

    def close(self) -> None:
        self.channel.close()


def test_a_client_that_does_not_ask_for_the_raw_layout_gets_lerobots_state_dict_encoded_once_per_push():
    from pirlctl.runtime.wire import decode_parameters, encode_parameters

    shutdown = threading.Event()
    svc = PiRLLearnerService(shutdown, lambda b, p: None, lambda b, p: None)
    port = free_port()
    server = start_server(svc, "127.0.0.1", port, num_actors=2)
    try:
        v1 = {"policy": {"w": torch.randn(700_000), "b": torch.arange(5)}, "critic": {"v": torch.randn(3, 4)}}
        svc.publish(1, encode_parameters(1, v1))
        raw_blob = next(iter(LearnerClient("127.0.0.1", port).stream_parameters()))
        assert decode_parameters(raw_blob).version == 1  # our client still gets the raw layout
        assert svc.lerobot_encodes == 0  # nothing encoded for LeRobot while no such client is subscribed
        a, b = _LeRobotClient(port), _LeRobotClient(port)
        for got in (a.next(), b.next()):
            assert got.keys() == v1.keys()
            for group, sd in v1.items():
                assert got[group].keys() == sd.keys()
                for k, t in sd.items():
                    assert torch.equal(got[group][k], t), (group, k)
        assert svc.lerobot_encodes == 1  # two clients, one push: one encode
        svc.publish(2, encode_parameters(2, {"policy": {"w": torch.zeros(3)}}))
        assert torch.equal(a.next()["policy"]["w"], torch.zeros(3))
        assert torch.equal(b.next()["policy"]["w"], torch.zeros(3))
        assert svc.lerobot_encodes == 2
        a.close()
        b.close()
        deadline = time.monotonic() + 10
        while svc._lerobot_blob is not None and time.monotonic() < deadline:
            time.sleep(0.1)  # the streams notice their clients left within their 0.5 s wait
        assert svc._lerobot_blob is None  # no LeRobot client left: its copy of the weights is dropped
    finally:
        shutdown.set()
        server.stop(0)


def test_an_unknown_parameters_layout_is_refused_with_a_hint():
    shutdown = threading.Event()
    svc = PiRLLearnerService(shutdown, lambda b, p: None, lambda b, p: None)
    port = free_port()
    server = start_server(svc, "127.0.0.1", port, num_actors=1)
    try:
        client = _LeRobotClient(port, metadata=[(PARAMS_LAYOUT_HEADER, "raw/9")])
        with pytest.raises(grpc.RpcError) as err:
            client.next()
        client.close()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "raw/9" in err.value.details() and "same pirlctl" in err.value.details()
    finally:
        shutdown.set()
        server.stop(0)


def test_a_held_port_cannot_be_bound_again_and_the_error_names_port_and_fix(capfd):
    port = free_port()
    held = bind_server("127.0.0.1", port, num_actors=1)
    try:
        with pytest.raises(LearnerBindError) as err:
            bind_server("127.0.0.1", port, num_actors=1)  # gRPC's default SO_REUSEPORT would have let this bind
        msg = str(err.value)
        assert f"127.0.0.1:{port}" in msg and "--port" in msg and "runtime.learner_port" in msg
        assert "Address already in use" in msg
        assert "add_port" not in capfd.readouterr().err  # gRPC core's own log line is not shown
    finally:
        held.release()
    bind_server("127.0.0.1", port, num_actors=1).release()  # given back: free again
