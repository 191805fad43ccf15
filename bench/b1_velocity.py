"""B1 for π0, π0.5 and SmolVLA (tiny builds): PI-RL's actor call (chain, log-prob, value) over the policy's own
``predict_action_chunk`` at the same K, inputs and weights. Goal ≤ 1.10 at K = 1, 4, 10.

``predict_action_chunk`` walks the policy into eval mode at every call (``self.eval()``, ~0.2–0.4 ms on these tiny
builds); PI-RL's act skips the walk when nothing is in train mode. That saving is not sampling work, so a row meets
the goal only when both ratios do: the calls as a user makes them, and both calls without the eval() walk (the
chunk call's time less its measured eval() cost).

    python -m bench.b1_velocity            # prints the Markdown table
    python -m bench.b1_velocity --write    # also rewrites the velocity-b1 section of docs/benchmarks.md

The machine this project runs on is shared (2 cores, load average often 3–10), so one timing of a ~10 ms call is
noise. Each row is ``pairs`` interleaved pairs, the order alternating (ABBA) so neither side always runs first; each
side of a pair is ``number`` calls. The ratio is the median of the per-pair ratios. Two clocks: the calling thread's
CPU time (``time.thread_time``; torch runs on 1 thread here, so it is all the work, and a core taken by another
process does not count), the figure the goal is judged on, and wall time, which the load inflates and spreads.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import torch

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm
from pirlctl.configs import CONFIGS_DIR
from pirlctl.policies.language import LANGUAGE_MASK_KEY, LANGUAGE_TOKENS_KEY, tokenize_task
from pirlctl.policies.loading import build_policy, load_policy_config

from .common import DOC, machine, replace_section, stats

STEPS_FIELD = {"pi0": "num_inference_steps", "pi05": "num_inference_steps", "smolvla": "num_steps"}
METHODS = (("flow_sde", "hybrid"), ("flow_noise", "full_chain"))


def obs_for(cfg: Any) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {k: torch.rand(1, *f.shape, generator=g) for k, f in cfg.input_features.items()}
    out[LANGUAGE_TOKENS_KEY] = tokenize_task("pick up the cube", cfg, 1)[0]
    out[LANGUAGE_MASK_KEY] = out[LANGUAGE_TOKENS_KEY] != 0  # the processor path: both sides read the same prompt
    return out


def build(kind: str, K: int, method: str, sampling: str) -> tuple[Any, PiRLAlgorithm, dict[str, torch.Tensor]]:
    cfg = copy.deepcopy(load_policy_config(CONFIGS_DIR / "policy" / f"tiny_{kind}.json"))
    setattr(cfg, STEPS_FIELD[kind], K)
    torch.manual_seed(0)
    policy = build_policy(cfg).eval()
    algo = PiRLAlgorithm(policy, PiRLConfig(num_denoise_steps=K, noise_method=method, sampling=sampling))
    return policy, algo, obs_for(cfg)


def interleaved(
    base: Callable[[], Any], pirl: Callable[[], Any], *, pairs: int, number: int, warmup: int = 3
) -> dict[str, list[float]]:
    """Seconds per call for both sides, ``pairs`` interleaved pairs (ABBA order), CPU and wall clocks."""
    for _ in range(warmup):
        base()
        pirl()
    out: dict[str, list[float]] = {"base_cpu": [], "pirl_cpu": [], "base_wall": [], "pirl_wall": []}

    def one(fn: Callable[[], Any], side: str) -> None:
        c, w = time.thread_time(), time.perf_counter()
        for _ in range(number):
            fn()
        out[f"{side}_cpu"].append((time.thread_time() - c) / number)
        out[f"{side}_wall"].append((time.perf_counter() - w) / number)

    for i in range(pairs):
        order = ((base, "base"), (pirl, "pirl")) if i % 2 == 0 else ((pirl, "pirl"), (base, "base"))
        for fn, side in order:
            one(fn, side)
    return out


def dispatched_ops(fn: Callable[[], Any]) -> int:
    """ATen ops one call dispatches: a load-independent measure of the work of a small model's call, where the
    per-op cost (dispatch, allocation) dominates the arithmetic."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def eval_switch_cpu(policy: Any, calls: int = 400) -> list[float]:
    """CPU seconds of one ``policy.eval()`` on a policy already in eval mode, per batch of 20 calls: the module-tree
    walk ``predict_action_chunk`` makes at every call and PI-RL's act skips when nothing is in train mode."""
    out = []
    for _ in range(calls // 20):
        c = time.thread_time()
        for _ in range(20):
            policy.eval()
        out.append((time.thread_time() - c) / 20)
    return out


def measure(kind: str, K: int, method: str, sampling: str, *, pairs: int, number: int) -> dict[str, Any]:
    policy, algo, obs = build(kind, K, method, sampling)
    t = interleaved(lambda: policy.predict_action_chunk(obs), lambda: algo.act(obs), pairs=pairs, number=number)
    switch = stats(eval_switch_cpu(policy))["median"]
    row: dict[str, Any] = {"kind": kind, "K": K, "method": method, "sampling": sampling}
    row["base_ops"] = dispatched_ops(lambda: policy.predict_action_chunk(obs))
    row["pirl_ops"] = dispatched_ops(lambda: algo.act(obs))
    for clock in ("cpu", "wall"):
        b, p = t[f"base_{clock}"], t[f"pirl_{clock}"]
        row[f"base_{clock}_ms"] = stats([1000 * x for x in b])
        row[f"pirl_{clock}_ms"] = stats([1000 * x for x in p])
        row[f"ratio_{clock}"] = stats([y / x for x, y in zip(b, p, strict=True)])
    row["eval_us"] = 1e6 * switch
    row["ratio_cpu_no_switch"] = stats([y / (x - switch) for x, y in zip(t["base_cpu"], t["pirl_cpu"], strict=True)])
    return row


def render(rows: list[dict[str, Any]], load: tuple[float, float], pairs: int, number: int) -> str:
    f = lambda s, d=1: f"{s['median']:.{d}f} ({s['min']:.{d}f}–{s['max']:.{d}f})"  # noqa: E731
    lines = [
        f"_Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; load average (1 min) "
        f"{load[0]:.1f} before, {load[1]:.1f} after; {pairs} interleaved pairs × {number} calls per row._",
        "",
        "| policy | K | method | predict_action_chunk CPU ms | PI-RL act CPU ms | ratio CPU, median (min–max) | "
        "ratio wall, median (min–max) | ATen ops: chunk / act (ratio) | chunk's eval() µs | "
        "ratio CPU, both without eval() | goal ≤ 1.10 (both ratios) |",
        "|---|---:|---|---:|---:|---|---|---|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {r['K']} | {r['method']} ({r['sampling']}) | {r['base_cpu_ms']['median']:.2f} | "
            f"{r['pirl_cpu_ms']['median']:.2f} | {f(r['ratio_cpu'], 3)} | {f(r['ratio_wall'], 3)} | "
            f"{r['base_ops']} / {r['pirl_ops']} ({r['pirl_ops'] / r['base_ops']:.2f}) | "
            f"{r['eval_us']:.0f} | {r['ratio_cpu_no_switch']['median']:.3f} | "
            f"{'met' if max(r['ratio_cpu']['median'], r['ratio_cpu_no_switch']['median']) <= 1.10 else 'not met'} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--number", type=int, default=5)
    ap.add_argument("--policies", nargs="+", default=["pi0", "pi05", "smolvla"])
    ap.add_argument("--ks", nargs="+", type=int, default=[1, 4, 10])
    ap.add_argument("--methods", nargs="+", default=[m for m, _ in METHODS])
    ap.add_argument("--write", action="store_true", help="rewrite the velocity-b1 section of docs/benchmarks.md")
    args = ap.parse_args()
    torch.set_num_threads(1)  # thread CPU time is then all the work of a call
    load0 = os.getloadavg()[0]
    rows = []
    for kind in args.policies:
        for K in args.ks:
            for method, sampling in METHODS:
                if method in args.methods:
                    rows.append(measure(kind, K, method, sampling, pairs=args.pairs, number=args.number))
                    print(rows[-1], flush=True)
    table = render(rows, (load0, os.getloadavg()[0]), args.pairs, args.number)
    print(table)
    if args.write:
        DOC.write_text(replace_section(DOC.read_text(), "velocity-b1", table))


if __name__ == "__main__":
    main()
