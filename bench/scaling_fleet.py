"""Actor fleets of 1, 2 and 4 actors around one learner (issue 21, the sizing model's actor figures).

Real processes over gRPC on loopback, the default job's config (tiny X-VLA, pick-cube, one env per actor) with the
same PPO batch for every fleet size: ``runtime.rollout_chunks`` = BATCH_CHUNKS ÷ actors, so the learner's update is
the same work and only the collection is spread. Per actor: loop FPS (env steps ÷ collect + send + load seconds,
B2's definition) and the share of its wall time spent waiting for the next policy version (the on-policy sync).
The learner's idle share comes from its metrics.jsonl: between the end of its first PPO iteration and the end of
its last, the share of wall time not spent building a batch and updating (``train/update_seconds``), i.e. waiting
for rollouts (the weight push and the gRPC serving count as idle here: they run on the learner's other threads).

    python -m bench.scaling_fleet [--iterations 4] [--write]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BATCH_CHUNKS = 64  # chunks per PPO iteration, the same for every fleet size
FLEETS = (1, 2, 4)


def one_run(actors: int, iterations: int, out: Path) -> dict[str, Any]:
    from tests.integration.procs import env, free_port

    from pirlctl.configs import DEFAULT_RUN_CONFIG, read_config_dict
    from pirlctl.metrics import TRAIN_UPDATE_SECONDS, read_metrics

    cfg = read_config_dict(DEFAULT_RUN_CONFIG)
    chunk = cfg["policy"]["n_action_steps"]
    per_actor = BATCH_CHUNKS // actors
    common = [
        "--config_path",
        str(DEFAULT_RUN_CONFIG),
        "--json",
        f"--output_dir={out}",
        f"--runtime.learner_port={free_port()}",
        f"--runtime.num_actors={actors}",
        f"--runtime.rollout_chunks={per_actor}",
        f"--runtime.total_env_steps={iterations * BATCH_CHUNKS * chunk}",
        "--runtime.checkpoint_every=1000",
    ]
    e = {**env(), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "pirlctl"]
    load0 = os.getloadavg()[0]
    learner = subprocess.Popen([*base, "learner", *common], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=e)
    procs = [
        subprocess.Popen(
            [*base, "actor", "--actor-id", str(i), *common], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=e
        )
        for i in range(actors)
    ]
    reports = [json.loads(p.communicate(timeout=1800)[0]) for p in procs]
    learner.communicate(timeout=300)
    train = read_metrics(out / "metrics.jsonl", "train")
    window = train[-1]["time"] - train[0]["time"]
    busy = sum(r[TRAIN_UPDATE_SECONDS] for r in train[1:])
    loop = [r["collect_s"] + r["send_s"] + r["load_s"] for r in reports]
    return {
        "actors": actors,
        "iterations": len(train),
        "loop_fps": [r["env_steps"] / s for r, s in zip(reports, loop, strict=True)],
        "env_fps": [r["env_steps"] / r["env_s"] for r in reports],
        "infer_ms_per_step": [1e3 * r["infer_s"] / r["env_steps"] for r in reports],
        "wait_share": [r["wait_s"] / (s + r["wait_s"]) for r, s in zip(reports, loop, strict=True)],
        "learner_idle": 1 - busy / window if window > 0 else float("nan"),
        "update_s": [r[TRAIN_UPDATE_SECONDS] for r in train[1:]],
        # env steps the fleet delivered per second between the first and the last update (steady state)
        "fleet_fps": (len(train) - 1) * BATCH_CHUNKS * chunk / window if window > 0 else float("nan"),
        "load": (load0 + os.getloadavg()[0]) / 2,
    }


def measure(iterations: int) -> list[dict[str, Any]]:
    with TemporaryDirectory() as tmp:
        return [one_run(n, iterations, Path(tmp) / f"fleet{n}") for n in FLEETS]


def render(runs: list[dict[str, Any]]) -> str:
    from bench.common import fmt, machine, stats

    lines = [
        f"_Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}; default job (tiny X-VLA, "
        f"pick-cube, 1 env per actor), {BATCH_CHUNKS} chunks per PPO iteration whatever the fleet, "
        f"{runs[0]['iterations']} iterations per run; one run per fleet size._",
        "",
        "| actors | loop FPS per actor | fleet env steps/s (steady state) | env steps/s per actor (env time only) | "
        "policy ms per env step | actor wall share waiting for the next version | learner idle share | "
        "learner update s | load average |",
        "|---:|---|---:|---|---|---|---:|---|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['actors']} | {fmt(stats(r['loop_fps']), 1)} | {r['fleet_fps']:.1f} | "
            f"{fmt(stats(r['env_fps']), 1)} | "
            f"{fmt(stats(r['infer_ms_per_step']), 1)} | {fmt(stats(r['wait_share']), 2)} | {r['learner_idle']:.2f} | "
            f"{fmt(stats(r['update_s']), 1)} | {r['load']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    text = render(measure(a.iterations))
    print(text)
    if a.write:
        from bench.common import DOC, replace_section

        DOC.write_text(replace_section(DOC.read_text(), "scaling-fleet", text))
