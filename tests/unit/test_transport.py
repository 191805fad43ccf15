"""LearnerService over real gRPC on loopback: broadcast to every stream, late joiners, token auth."""

from __future__ import annotations

import threading

import grpc
import pytest
import torch

from pirlctl.runtime.transport import LearnerClient, PiRLLearnerService, start_server

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
    import time

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
        return ()

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
