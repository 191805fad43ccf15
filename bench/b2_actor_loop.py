"""B2 actor-loop efficiency: the default job's learner and actors as real processes over gRPC on loopback.

Efficiency = loop FPS while rolling out ÷ 1 / (env step time + inference time per step), i.e.
(env + inference seconds) ÷ (collect + send + load seconds), from each actor's own time accounting
(``ActorReport``). The wait for the next policy version (the learner's PPO update: on-policy PPO's sync point)
is reported next to it, not counted as loop overhead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from pirlctl.configs import DEFAULT_RUN_CONFIG, read_config_dict

from .common import fmt, stats

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = DEFAULT_RUN_CONFIG


def one_run(iterations: int, port: int, out: Path) -> list[dict[str, Any]]:
    cfg = read_config_dict(DEFAULT)  # the complete config: base and policy merged in
    rt = cfg["runtime"]
    n_actors = rt["num_actors"]
    # a budget of `iterations` PPO iterations of the default job (chunk length from the policy config)
    chunk = cfg["policy"]["n_action_steps"]
    budget = iterations * n_actors * rt["rollout_chunks"] * chunk
    common = [
        "--config_path",
        str(DEFAULT),
        "--json",
        f"--output_dir={out}",
        f"--runtime.learner_port={port}",
        f"--runtime.total_env_steps={budget}",
    ]
    base = [sys.executable, "-m", "pirlctl"]
    learner = subprocess.Popen([*base, "learner", *common], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    actors = [
        subprocess.Popen(
            [*base, "actor", "--actor-id", str(i), *common], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        for i in range(n_actors)
    ]
    reports = [json.loads(a.communicate(timeout=1800)[0]) for a in actors]
    learner.communicate(timeout=300)
    return reports


def efficiency(r: dict[str, Any]) -> float:
    return (r["infer_s"] + r["env_s"]) / (r["collect_s"] + r["send_s"] + r["load_s"])


def b2(repeats: int = 3, iterations: int = 3) -> dict[str, Any]:
    from tests.integration.procs import free_port

    reports: list[dict[str, Any]] = []
    with TemporaryDirectory() as tmp:
        for i in range(repeats):
            reports += one_run(iterations, free_port(), Path(tmp) / f"run{i}")
    share = {
        k: stats([r[k] / (r["collect_s"] + r["send_s"] + r["load_s"]) for r in reports]) for k in ("send_s", "load_s")
    }
    other = stats(
        [(r["collect_s"] - r["infer_s"] - r["env_s"]) / (r["collect_s"] + r["send_s"] + r["load_s"]) for r in reports]
    )
    return {
        "actors": len(reports),
        "efficiency": stats([efficiency(r) for r in reports]),
        "loop_fps": stats([r["env_steps"] / (r["collect_s"] + r["send_s"] + r["load_s"]) for r in reports]),
        "ideal_fps": stats([r["env_steps"] / (r["infer_s"] + r["env_s"]) for r in reports]),
        "send_share": share["send_s"],
        "load_share": share["load_s"],
        "other_share": other,
        "wait_share": stats(
            [r["wait_s"] / (r["collect_s"] + r["send_s"] + r["load_s"] + r["wait_s"]) for r in reports]
        ),
    }


def render(r: dict[str, Any]) -> str:
    met = "met" if r["efficiency"]["median"] >= 0.95 else "not met"
    return "\n".join(
        [
            "| figure | median (min–max) over actor runs |",
            "|---|---|",
            f"| loop efficiency (goal ≥ 0.95: {met}) | {fmt(r['efficiency'])} |",
            f"| loop FPS (collect + send + load) | {fmt(r['loop_fps'], 1)} |",
            f"| 1 / (env + inference time per step) | {fmt(r['ideal_fps'], 1)} |",
            f"| share: observation/transition bookkeeping | {fmt(r['other_share'])} |",
            f"| share: encode + send segments | {fmt(r['send_share'])} |",
            f"| share: load pushed weights | {fmt(r['load_share'])} |",
            f"| wall share waiting for the next version (on-policy sync, not counted above) | {fmt(r['wait_share'])} |",
            "",
            f"_{r['actors']} actor runs (default job, 2 actors per run, 3 PPO iterations each)._",
        ]
    )


if __name__ == "__main__":
    print(render(b2()))
