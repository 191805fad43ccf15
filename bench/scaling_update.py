"""PPO update time per sample with 1 and 2 learner ranks (issue 21, the sizing model's learner figure).

Each measurement is a fresh set of real rank processes started the way ``pirlctl train`` starts a learner
(``runtime.ranks.launch_prefix``: accelerate's launcher, gloo on CPU) running this file as the worker: every rank
calls ``start_ranks`` and ``attach`` as the learner does, builds the same seeded batch, and times
``PiRLAlgorithm.update`` (the minibatches split over the ranks by ``algorithms.pi_rl.data_parallel``, gradients
reduced by DDP). 1 rank is the plain learner process. Models: the tiny X-VLA of the default job and a "small" one,
the same config with hidden 256, depth 6, 8 heads (B1's small model). Configurations alternate repeat by repeat.

    python -m bench.scaling_update [--repeats 3] [--samples 256] [--write]
    python bench/scaling_update.py --worker OUT RANKS SAMPLES [overrides...]   (what the driver starts)
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

SMALL = ["--policy.hidden_size=256", "--policy.depth=6", "--policy.num_heads=8"]
MODELS = {"tiny X-VLA (hidden 64, depth 2)": [], "small X-VLA (hidden 256, depth 6)": SMALL}
# one epoch, every sample (no early stop), the critic trained with the policy from the first update
UPDATE = [
    "--algorithm.critic_warmup_iters=0",
    "--algorithm.target_kl=1000",
    "--algorithm.minibatch_size=64",
    "--algorithm.ppo_epochs=1",
]
TIMED = 3  # timed updates per process, after one warm-up update


def worker(out: str, ranks: int, samples: int, overrides: list[str]) -> None:
    import torch

    from pirlctl.config.run_config import load_run_config
    from pirlctl.configs import DEFAULT_RUN_CONFIG
    from pirlctl.diagnostics.sync_checks import policy_observations, sample_batch
    from pirlctl.runtime.build import build_algorithm
    from pirlctl.runtime.ranks import attach, start_ranks

    cfg = load_run_config(DEFAULT_RUN_CONFIG, [f"--runtime.learner_ranks={ranks}", *UPDATE, *overrides])
    group = start_ranks(cfg)
    torch.set_num_threads(1)
    algo = build_algorithm(cfg, "cpu")
    batch = sample_batch(algo, policy_observations(cfg, algo, samples, seed=3), seed=4)
    algo.make_optimizers_and_scheduler()
    if group is not None:
        attach(group, algo)
    times, epochs = [], 0
    for i in range(TIMED + 1):
        t = time.perf_counter()
        stats = algo.update(iter([batch]))
        if i:
            times.append(time.perf_counter() - t)
        epochs = int(stats.extra.get("epochs", cfg.algorithm.ppo_epochs))
    if group is not None:
        group.close()
    if group is None or group.rank == 0:
        params = sum(p.numel() for p in algo.policy.parameters())
        Path(out).write_text(json.dumps({"times": times, "epochs": epochs, "params": params}))


def one(model: list[str], ranks: int, samples: int, tmp: Path, tag: str) -> dict[str, Any]:
    from tests.integration.procs import env, free_port

    from pirlctl.runtime.ranks import launch_prefix

    out = tmp / f"{tag}.json"
    script = [str(Path(__file__).resolve()), "--worker", str(out), str(ranks), str(samples), *model]
    cmd = [sys.executable, *script] if ranks == 1 else [*launch_prefix(ranks, free_port()), *script]
    e = {**env(), "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.run(cmd, env=e, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    if proc.returncode:
        raise RuntimeError(f"{tag}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def measure(repeats: int, samples: int) -> dict[str, Any]:
    rows: dict[tuple[str, int], list[float]] = {}
    info: dict[str, Any] = {}
    loads = [os.getloadavg()[0]]
    with TemporaryDirectory() as tmp:
        for r in range(repeats):
            for name, model in MODELS.items():
                for ranks in (1, 2):
                    res = one(model, ranks, samples, Path(tmp), f"{r}-{ranks}-{len(model)}")
                    # seconds per sample per epoch: the figure the sizing model scales by batch and epochs
                    per = [t / (samples * res["epochs"]) for t in res["times"]]
                    rows.setdefault((name, ranks), []).extend(per)
                    info[name] = {"params": res["params"], "epochs": res["epochs"]}
                    loads.append(os.getloadavg()[0])
    return {"rows": rows, "info": info, "loads": loads, "samples": samples, "repeats": repeats}


def render(m: dict[str, Any]) -> str:
    from bench.common import fmt, machine, stats

    loads = m["loads"]
    lines = [
        f"_Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}; "
        f"{m['samples']} samples per update, minibatch 64, {m['repeats']} processes per row × {TIMED} timed updates; "
        f"1-min load average during the run {min(loads):.1f}–{max(loads):.1f}._",
        "",
        "| model | parameters | PPO epochs | 1 rank: ms per sample-epoch | 2 ranks: ms per sample-epoch | speed-up |",
        "|---|---:|---:|---|---|---:|",
    ]
    for name, info in m["info"].items():
        one_, two = (stats([x * 1e3 for x in m["rows"][(name, k)]]) for k in (1, 2))
        lines.append(
            f"| {name} | {info['params'] / 1e6:.2f} M | {info['epochs']} | {fmt(one_, 2)} | {fmt(two, 2)} | "
            f"{one_['median'] / two['median']:.2f}× |"
        )
    return "\n".join(lines)


ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--worker":
        worker(args[1], int(args[2]), int(args[3]), args[4:])
        sys.exit(0)
    sys.path.insert(0, str(ROOT))
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--write", action="store_true")
    a = p.parse_args(args)
    text = render(measure(a.repeats, a.samples))
    print(text)
    if a.write:
        from bench.common import DOC, replace_section

        DOC.write_text(replace_section(DOC.read_text(), "scaling-update", text))
