"""LearnerService over real gRPC on loopback: broadcast to every stream, late joiners, token auth."""

from __future__ import annotations

import threading

import grpc
import pytest

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
