"""B4 weight sync: one push end to end (serialise, gRPC on loopback, deserialise, load into the actor's tensors),
pirlctl's path next to LeRobot 0.6.1's own (torch.save through its LearnerService), in the same run."""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
from typing import Any

import torch
from lerobot.rl.learner_service import LearnerService
from lerobot.transport import services_pb2, services_pb2_grpc
from lerobot.transport.utils import bytes_to_state_dict, receive_bytes_in_chunks, state_to_bytes

from pirlctl.runtime.transport import CHANNEL_OPTIONS, LearnerClient, PiRLLearnerService, start_server
from pirlctl.runtime.wire import decode_parameters, encode_parameters

from .common import fmt, stats


def make_weights(total_mb: int, n_tensors: int = 64) -> dict[str, dict[str, torch.Tensor]]:
    per = total_mb * 1024 * 1024 // 4 // n_tensors
    return {"policy": {f"layer{i}.weight": torch.randn(per) for i in range(n_tensors)}}


def load_into(target: dict[str, dict[str, torch.Tensor]], got: dict[str, Any]) -> None:
    with torch.no_grad():
        for group, sd in target.items():
            for k, t in sd.items():
                t.copy_(got[group][k])


def pirlctl_push(weights: dict, target: dict, port: int) -> float:
    shutdown = threading.Event()
    svc = PiRLLearnerService(shutdown, lambda b, p: None, lambda b, p: None)
    server = start_server(svc, "127.0.0.1", port, num_actors=1)
    client = LearnerClient("127.0.0.1", port)
    try:
        t0 = time.perf_counter()
        svc.publish(1, encode_parameters(1, weights))
        blob = next(client.stream_parameters())
        load_into(target, decode_parameters(blob).weights)
        return time.perf_counter() - t0
    finally:
        shutdown.set()
        client.close()
        server.stop(0)


def lerobot_push(weights: dict, target: dict, port: int) -> float:
    from concurrent import futures

    import grpc

    shutdown = mp.Event()
    params_q: Any = queue.Queue()
    svc = LearnerService(shutdown, params_q, 0.0, queue.Queue(), queue.Queue(), queue_get_timeout=0.01)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=3), options=CHANNEL_OPTIONS)
    services_pb2_grpc.add_LearnerServiceServicer_to_server(svc, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
    stub = services_pb2_grpc.LearnerServiceStub(channel)
    try:
        t0 = time.perf_counter()
        params_q.put(state_to_bytes(weights))
        stream = stub.StreamParameters(services_pb2.Empty())
        blob = receive_bytes_in_chunks(stream, None, shutdown)
        got = bytes_to_state_dict(blob)
        load_into(target, got)
        return time.perf_counter() - t0
    finally:
        shutdown.set()
        channel.close()
        server.stop(0)


def b4(sizes_mb: tuple[int, ...] = (1, 1024), repeats: int = 3) -> list[dict[str, Any]]:
    from tests.integration.procs import free_port

    rows = []
    for mb in sizes_mb:
        weights = make_weights(mb)
        target = {g: {k: torch.empty_like(t) for k, t in sd.items()} for g, sd in weights.items()}
        ours, theirs = [], []
        for _ in range(repeats):  # interleaved
            ours.append(pirlctl_push(weights, target, free_port()))
            theirs.append(lerobot_push(weights, target, free_port()))
        rows.append(
            {
                "mb": mb,
                "pirlctl_s": stats(ours),
                "lerobot_s": stats(theirs),
                "pirlctl_mbps": stats([mb / t for t in ours]),
                "lerobot_mbps": stats([mb / t for t in theirs]),
            }
        )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| state dict | pirlctl s | pirlctl MB/s | LeRobot 0.6.1 s | LeRobot MB/s | goal ≥ 500 MB/s (1 GB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        goal = ("met" if r["pirlctl_mbps"]["median"] >= 500 else "not met") if r["mb"] >= 1024 else "—"
        lines.append(
            f"| {r['mb']} MB | {fmt(r['pirlctl_s'])} | {fmt(r['pirlctl_mbps'], 0)} | {fmt(r['lerobot_s'])} | "
            f"{fmt(r['lerobot_mbps'], 0)} | {goal} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(b4()))
