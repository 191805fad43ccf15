"""B4 weight sync: pushes end to end (serialise, gRPC on loopback, deserialise, load into the actor's tensors),
pirlctl's path next to LeRobot 0.6.1's own (torch.save through its LearnerService), interleaved in one run; a
LeRobot client of a pirlctl learner (no raw-layout header: it gets LeRobot's format, encoded from the raw push); and
the bytes a trainable-only push sends for an X-VLA-0.9B-shaped policy.

Each path keeps one server and one parameter stream open, as a learner and an actor do, and pushes several
times: the first push pays for fresh buffers ("cold"), later ones show the steady state ("warm").
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import torch
from lerobot.rl.learner_service import LearnerService
from lerobot.transport import services_pb2, services_pb2_grpc
from lerobot.transport.utils import bytes_to_state_dict, receive_bytes_in_chunks, state_to_bytes

from pirlctl.runtime.transport import CHANNEL_OPTIONS, BufferPool, LearnerClient, PiRLLearnerService, start_server
from pirlctl.runtime.wire import decode_parameters, encode_parameters

from .common import fmt, stats

Weights = dict[str, dict[str, torch.Tensor]]


def make_weights(total_mb: float, n_tensors: int = 64) -> Weights:
    per = int(total_mb * 1024 * 1024) // 4 // n_tensors
    return {"policy": {f"layer{i}.weight": torch.randn(per) for i in range(n_tensors)}}


def tiny_xvla_weights() -> Weights:
    """What the default job pushes: ``PiRLAlgorithm.get_weights()`` of the tiny X-VLA (VLM frozen)."""
    from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
    from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm
    from pirlctl.policies.loading import TINY_XVLA_CONFIG, build_policy, load_policy_config

    algo = PiRLAlgorithm(build_policy(load_policy_config(TINY_XVLA_CONFIG)), PiRLConfig())
    return {g: {k: v.clone() for k, v in sd.items()} for g, sd in algo.get_weights().items()}


def nbytes(weights: Weights) -> int:
    return sum(t.numel() * t.element_size() for sd in weights.values() for t in sd.values())


def load_into(target: Weights, got: dict[str, Any]) -> None:
    with torch.no_grad():
        for group, sd in target.items():
            for k, t in sd.items():
                t.copy_(got[group][k])


class PirlctlPath:
    """pirlctl: raw encoding into reusable send buffers, chunked from them, assembled into pooled receive buffers,
    decoded as views, copied into the model."""

    def __init__(self, port: int) -> None:
        self.shutdown = threading.Event()
        self.svc = PiRLLearnerService(self.shutdown, lambda b, p: None, lambda b, p: None)
        self.server = start_server(self.svc, "127.0.0.1", port, num_actors=1)
        self.client = LearnerClient("127.0.0.1", port)
        self.pool = BufferPool(keep=2)
        self.stream = self.client.stream_parameters_into(self.pool)
        self.version = 0

    def push(self, weights: Weights, target: Weights) -> float:
        self.version += 1
        t0 = time.perf_counter()
        self.svc.publish(self.version, encode_parameters(self.version, weights, out=self.svc.send_buffer()))
        blob = next(self.stream)
        load_into(target, decode_parameters(blob).weights)
        elapsed = time.perf_counter() - t0
        self.pool.give_back(blob.obj)
        return elapsed

    def close(self) -> None:
        self.shutdown.set()
        self.client.close()
        self.server.stop(0)


class LeRobotPath:
    """LeRobot 0.6.1: ``state_to_bytes`` (torch.save) into its ``LearnerService`` queue, ``receive_bytes_in_chunks``
    on the actor's stream, ``bytes_to_state_dict`` (torch.load)."""

    def __init__(self, port: int) -> None:
        self.shutdown = mp.Event()
        self.params_q: Any = queue.Queue()
        svc = LearnerService(self.shutdown, self.params_q, 0.0, queue.Queue(), queue.Queue(), queue_get_timeout=0.01)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=3), options=CHANNEL_OPTIONS)
        services_pb2_grpc.add_LearnerServiceServicer_to_server(svc, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
        stub = services_pb2_grpc.LearnerServiceStub(self.channel)
        self.stream = stub.StreamParameters(services_pb2.Empty())

    def push(self, weights: Weights, target: Weights) -> float:
        t0 = time.perf_counter()
        self.params_q.put(state_to_bytes(weights))
        blob = receive_bytes_in_chunks(self.stream, None, self.shutdown)
        load_into(target, bytes_to_state_dict(blob))
        return time.perf_counter() - t0

    def close(self) -> None:
        self.shutdown.set()
        self.channel.close()
        self.server.stop(0)


class LeRobotClientOfPirlctlPath:
    """A client with only LeRobot's helpers (no ``x-pirl-params`` header) on pirlctl's learner service: the learner
    publishes its raw push as for an actor and encodes LeRobot's format from it for this stream."""

    def __init__(self, port: int) -> None:
        self.shutdown = threading.Event()
        self.svc = PiRLLearnerService(self.shutdown, lambda b, p: None, lambda b, p: None)
        self.server = start_server(self.svc, "127.0.0.1", port, num_actors=1)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)
        self.stream = services_pb2_grpc.LearnerServiceStub(self.channel).StreamParameters(services_pb2.Empty())
        self.version = 0

    def push(self, weights: Weights, target: Weights) -> float:
        self.version += 1
        t0 = time.perf_counter()
        self.svc.publish(self.version, encode_parameters(self.version, weights, out=self.svc.send_buffer()))
        blob = receive_bytes_in_chunks(self.stream, None, self.shutdown)
        load_into(target, bytes_to_state_dict(blob))
        return time.perf_counter() - t0

    def close(self) -> None:
        self.shutdown.set()
        self.channel.close()
        self.server.stop(0)


def _row_stats(ts: list[float], mb: float) -> dict[str, Any]:
    warm = ts[2:] if len(ts) > 2 else ts
    return {"cold_s": ts[0], "warm_s": stats(warm), "warm_mbps": stats([mb / t for t in warm])}


def b4(pushes: int = 6) -> list[dict[str, Any]]:
    from tests.integration.procs import free_port

    sizes: list[tuple[str, Callable[[], Weights]]] = [
        ("tiny X-VLA push", tiny_xvla_weights),
        ("1 GB state dict", lambda: make_weights(1024)),
    ]
    rows = []
    for label, make in sizes:
        weights = make()
        mb = nbytes(weights) / 2**20
        target = {g: {k: torch.empty_like(t) for k, t in sd.items()} for g, sd in weights.items()}
        ours, theirs = PirlctlPath(free_port()), LeRobotPath(free_port())
        times: dict[str, list[float]] = {"pirlctl": [], "lerobot": []}
        try:
            for _ in range(pushes):  # interleaved
                times["pirlctl"].append(ours.push(weights, target))
                times["lerobot"].append(theirs.push(weights, target))
        finally:
            ours.close()
            theirs.close()
        row: dict[str, Any] = {"label": label, "mb": mb, "receive_allocations": ours.pool.allocations}
        for path, ts in times.items():
            row[path] = _row_stats(ts, mb)
        # after the interleaved pair (memory: a third server and client at once would hold ~3 more copies)
        mixed = LeRobotClientOfPirlctlPath(free_port())
        try:
            row["lerobot_client"] = _row_stats([mixed.push(weights, target) for _ in range(pushes)], mb)
        finally:
            mixed.close()
        rows.append(row)
    return rows


def xvla_push_bytes() -> list[dict[str, Any]]:
    """Bytes per push for an X-VLA-0.9B-shaped policy (Florence-2-large VLM + 24-block soft-prompted transformer),
    built on the meta device (no weights needed), under each trainable scope."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.xvla.configuration_xvla import XVLAConfig
    from lerobot.policies.xvla.modeling_xvla import XVLAPolicy

    from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
    from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm

    florence_large = {
        "vision_config": {
            "depths": [1, 1, 9, 1],
            "patch_size": [7, 3, 3, 3],
            "patch_stride": [4, 2, 2, 2],
            "patch_padding": [3, 1, 1, 1],
            "patch_prenorm": [False, True, True, True],
            "embed_dim": [256, 512, 1024, 2048],
            "num_heads": [8, 16, 32, 64],
            "num_groups": [8, 16, 32, 64],
            "window_size": 12,
            "projection_dim": 1024,
            "max_position_embeddings": 50,
            "max_temporal_embeddings": 100,
        },
        "text_config": {
            "vocab_size": 51289,
            "d_model": 1024,
            "encoder_layers": 12,
            "decoder_layers": 12,
            "encoder_attention_heads": 16,
            "decoder_attention_heads": 16,
            "encoder_ffn_dim": 4096,
            "decoder_ffn_dim": 4096,
            "max_position_embeddings": 1024,
        },
    }
    cfg = XVLAConfig(florence_config=florence_large, device="cpu")
    cfg.input_features = {
        "observation.images.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 224, 224)),
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(8,)),
    }
    cfg.output_features = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(7,))}
    rows = []
    for scope, blocks in (("all", 0), ("action_expert", 0), ("action_expert", 6)):
        with torch.device("meta"):
            policy = XVLAPolicy(cfg)
            algo = PiRLAlgorithm(policy, PiRLConfig(trainable=scope, trainable_blocks=blocks))
        full = sum(p.numel() * p.element_size() for p in policy.parameters())
        pushed = sum(
            torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
            for sd in algo.expected_weights().values()
            for shape, dtype in sd.values()
        )
        rows.append({"scope": scope, "trainable_blocks": blocks, "full_bytes": full, "pushed_bytes": pushed})
    return rows


def render(rows: list[dict[str, Any]], xvla: list[dict[str, Any]]) -> str:
    lines = [
        "| push | size | pirlctl cold s | pirlctl warm s | pirlctl warm MB/s | LeRobot cold s | LeRobot warm s "
        "| LeRobot warm MB/s | goal ≥ 500 MB/s (1 GB, warm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours, theirs = r["pirlctl"], r["lerobot"]
        goal = ("met" if ours["warm_mbps"]["median"] >= 500 else "not met") if r["mb"] >= 1000 else "—"
        lines.append(
            f"| {r['label']} | {r['mb']:.2f} MB | {ours['cold_s']:.3f} | {fmt(ours['warm_s'])} "
            f"| {fmt(ours['warm_mbps'], 0)} | {theirs['cold_s']:.3f} | {fmt(theirs['warm_s'])} "
            f"| {fmt(theirs['warm_mbps'], 0)} | {goal} |"
        )
    lines += [
        "",
        "| push | size | LeRobot client of a pirlctl learner: cold s | warm s | warm MB/s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        mixed = r["lerobot_client"]
        lines.append(
            f"| {r['label']} | {r['mb']:.2f} MB | {mixed['cold_s']:.3f} | {fmt(mixed['warm_s'])} "
            f"| {fmt(mixed['warm_mbps'], 0)} |"
        )
    lines += [
        "",
        "| X-VLA-0.9B-shaped policy, trainable scope | bytes per push | whole policy | fewer bytes | goal ≥ 10× |",
        "|---|---|---|---|---|",
    ]
    for x in xvla:
        scope = x["scope"] + (f", trainable_blocks={x['trainable_blocks']}" if x["trainable_blocks"] else "")
        ratio = x["full_bytes"] / x["pushed_bytes"]
        lines.append(
            f"| {scope} | {x['pushed_bytes'] / 2**20:,.0f} MB | {x['full_bytes'] / 2**20:,.0f} MB | {ratio:.1f}× "
            f"| {'met' if ratio >= 10 else 'not met'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(b4(), xvla_push_bytes()))
