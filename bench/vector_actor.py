"""Actor loop FPS with ``runtime.envs_per_actor`` = 1, 2, 4 on pick-cube (the default job's config) and on LeRobot's
pusht (the tiny X-VLA at 64 px, LeRobot's 300-step episodes): one batched policy call per chunk for all envs against
one call per env (issue 20).

The actor's own loop body (``Actor.collect_and_send``, as ``pirlctl profile-actor`` times it) with a stand-in
learner client, in one process. Loop FPS = env steps of all envs ÷ wall time of collecting, encoding and sending.
"per-env calls" splits each ``act`` / ``value`` batch into single-observation calls — what an actor without the
batched call does — and is otherwise the same code. Configurations alternate repeat by repeat (a shared machine's
load hits all of them alike).

    python -m bench.vector_actor [--env pick_cube pusht] [--envs 1 2 4] [--steps 240] [--repeats 3] [--write]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import DOC, fmt, machine, replace_section, stats


def one_call_per_env(algo: Any) -> None:
    """Shadow ``algo.act`` / ``algo.value`` with versions that make one call per observation (``del algo.act``,
    ``del algo.value`` restore the batched methods)."""
    import torch

    from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PolicyStep

    act, value = algo.act, algo.value

    def rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
        b = next(iter(batch.values())).shape[0]
        return [{k: v[i : i + 1] for k, v in batch.items()} for i in range(b)]

    def act_each(batch: dict[str, Any], generator: Any = None) -> Any:
        steps = [act(r, generator=generator) for r in rows(batch)]
        return PolicyStep(*(torch.cat([getattr(s, f.name) for s in steps]) for f in fields(PolicyStep)))

    def value_each(batch: dict[str, Any]) -> Any:
        return torch.cat([value(r) for r in rows(batch)])

    algo.act, algo.value = act_each, value_each


ENV_TYPES = ("pick_cube", "pusht")


def run_config(env_type: str, folder: Path) -> Path:
    """The config measured for ``env_type``: the default job's for pick-cube; for pusht the tests' tiny X-VLA sized
    to it (64 px image, 2-d state and action) with LeRobot's own 300-step episodes."""
    from tests.env_configs import tiny_run_config

    from pirlctl.configs import DEFAULT_RUN_CONFIG

    if env_type == "pick_cube":
        return Path(DEFAULT_RUN_CONFIG)
    return tiny_run_config(folder, env_type, env={"episode_length": 300})


def build_actor(config: Path, n_envs: int, steps: int) -> Any:
    import math

    from pirlctl.config.run_config import load_run_config
    from pirlctl.diagnostics.profile_actor import StandInSender
    from pirlctl.runtime.actor import Actor

    cfg = load_run_config(config, [f"--runtime.envs_per_actor={n_envs}"])
    cfg = copy.deepcopy(cfg)
    actor = Actor(cfg, 0)
    actor.client.close()
    actor.client = StandInSender()  # type: ignore[assignment]
    actor.version = 0
    # one segment per measurement: `steps` env steps over all envs
    cfg.runtime.rollout_chunks = max(1, math.ceil(steps / (n_envs * actor.algo.n_exec)))
    actor._reset()
    actor.collect_and_send()  # warm-up (first calls, caches)
    return actor


def loop_fps(actor: Any, batched: bool) -> float:
    if not batched:
        one_call_per_env(actor.algo)
    try:
        t = time.perf_counter()
        done = sum(actor.collect_and_send())
        return done / (time.perf_counter() - t)
    finally:
        if not batched:
            del actor.algo.act, actor.algo.value


def measure(config: Path, envs: list[int], steps: int, repeats: int) -> dict[tuple[int, bool], list[float]]:
    import torch

    torch.set_num_threads(1)  # the default job's runtime.torch_threads
    actors = {n: build_actor(config, n, steps) for n in envs}
    fps: dict[tuple[int, bool], list[float]] = {(n, b): [] for n in envs for b in (True, False)}
    for _ in range(repeats):
        for n in envs:
            for batched in (True, False):
                if n == 1 and not batched:
                    continue  # one env: the two are the same call
                fps[(n, batched)].append(loop_fps(actors[n], batched))
    for actor in actors.values():
        for env in actor.envs:
            env.close()
    fps[(1, False)] = fps[(1, True)]
    return fps


def table(results: dict[str, dict[tuple[int, bool], list[float]]], envs: list[int], steps: int, repeats: int) -> str:
    lines = [
        f"_Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; {steps} env steps per measurement, "
        f"{repeats} repeats._",
        "",
        "| env | envs per actor | loop FPS, one batched call per chunk | loop FPS, one call per env "
        "| batched ÷ 1 env | batched ÷ one call per env |",
        "|---|---|---|---|---|---|",
    ]
    for env_type, fps in results.items():
        base = stats(fps[(1, True)])["median"]
        for n in envs:
            b, e = stats(fps[(n, True)]), stats(fps[(n, False)])
            ratio = b["median"] / base
            lines.append(
                f"| {env_type} | {n} | {fmt(b, 1)} | {fmt(e, 1)} | {ratio:.2f} | {b['median'] / e['median']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", nargs="+", choices=ENV_TYPES, default=list(ENV_TYPES), help="env types to measure")
    p.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--steps", type=int, default=240)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--write", action="store_true", help="replace the vector-actor section of docs/benchmarks.md")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = {e: measure(run_config(e, Path(folder)), a.envs, a.steps, a.repeats) for e in a.env}
    body = table(results, a.envs, a.steps, a.repeats)
    print(body)
    if a.write:
        DOC.write_text(replace_section(DOC.read_text(), "vector-actor", body))


if __name__ == "__main__":
    main()
