"""B5 learning: PI-RL (Flow-SDE, Flow-Noise) next to LeRobot's own SAC on the default task, same demos, same
wall-clock budget, several seeds, one plot.

Per seed: ``pirlctl train`` with the shipped Flow-SDE config, then the Flow-Noise config (demos, SFT policy and
its evaluation reused from the cache), then SAC through LeRobot's learner and actor (``bench.b5_sac``) from the
same demos, stopped when it has run as long as the Flow-SDE run's RL phase (first to last episode record). Every
method's curve is its own training episodes (its own exploration sampler), rolling success over 20 episodes, x =
cumulative env steps or seconds since its first episode record. PI-RL's runs also carry ODE evaluations (SFT and
after RL, 50 episodes); SAC's has none (LeRobot's actor has no deterministic evaluation path).

``python -m bench.b5_learning --seeds 0 1 2`` (about 20 minutes per seed here) runs and then rewrites the
``learning`` section of docs/benchmarks.md and docs/b5_learning.png; ``--report-only`` redraws from the run
folders already under ``--root``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pirlctl.configs import CONFIGS_DIR

ROOT = Path(__file__).resolve().parents[1]
PIXELS = CONFIGS_DIR / "pick_cube_tiny_pixels.json"  # B5 was measured on the pixel task
# method -> (run config, overrides)
METHODS: dict[str, tuple[Path, list[str]]] = {
    "flow_sde": (PIXELS, []),
    "flow_noise": (PIXELS, ["--algorithm.noise_method=flow_noise"]),
}
START = {
    "flow_sde": "SFT policy",
    "flow_noise": "SFT policy",
    "sac": "scratch, demos in its offline buffer",
}
WINDOW = 20  # rolling window (episodes), the dashboard's
FINAL = 50  # last training episodes that give each run's final success


def _env() -> dict[str, str]:
    e = dict(os.environ)
    e.setdefault("MUJOCO_GL", "osmesa")
    e.setdefault("HF_HUB_OFFLINE", "1")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def _seed_args(seed: int) -> list[str]:
    return [f"--seed={seed}", f"--env.seed={seed}"]


def run_pirl(root: Path, method: str, seed: int) -> Path:
    name = f"b5_s{seed}_{method}"
    out = root / name
    if (out / "report.md").is_file():
        return out
    config, overrides = METHODS[method]
    cmd = [sys.executable, "-m", "pirlctl", "train", "--config_path", str(config), "--no-dashboard", *overrides]
    cmd += [f"--output_dir={out}", *_seed_args(seed)]
    subprocess.run(cmd, check=True, env=_env(), cwd=ROOT)
    return out


def episode_span(run: Path) -> float:
    eps = _episodes(run)
    return eps[-1]["time"] - eps[0]["time"]


def run_sac(root: Path, seed: int, budget_s: float, port: int) -> Path:
    from bench.b5_sac import sac_demos
    from pirlctl.config.run_config import load_run_config
    from pirlctl.pipeline.train_job import TrainJob

    out = root / f"b5_s{seed}_sac"
    if (out / "done.json").is_file():
        return out
    cfg = load_run_config(METHODS["flow_sde"][0], _seed_args(seed))
    demos = sac_demos(ROOT / TrainJob(cfg).demo_dir, root / f"demos_sac_s{seed}")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    base = [sys.executable, "-m", "bench.b5_sac"]
    args = ["--out", str(out), "--demos", str(demos), "--port", str(port), "--seed", str(seed)]
    with open(out / "learner.log", "w") as llog, open(out / "actor.log", "w") as alog:
        learner = subprocess.Popen([*base, "learner", *args], env=_env(), cwd=ROOT, stdout=llog, stderr=llog)
        time.sleep(10)  # LeRobot's actor gives up if the learner is not serving yet
        actor = subprocess.Popen([*base, "actor", *args], env=_env(), cwd=ROOT, stdout=alog, stderr=alog)
        first = None
        while True:
            time.sleep(2)
            for role, proc in (("learner", learner), ("actor", actor)):
                if proc.poll() is not None:
                    raise RuntimeError(f"SAC {role} exited ({proc.returncode}): see {out}")
            eps = _episodes(out)
            if eps and first is None:
                first = eps[0]["time"]
            if first is not None and time.time() - first >= budget_s:
                break
        for p in (actor, learner):
            p.send_signal(signal.SIGINT)  # LeRobot's ProcessSignalHandler shuts down cleanly
        for p in (actor, learner):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    (out / "done.json").write_text(json.dumps({"budget_s": budget_s, "episodes": len(_episodes(out))}))
    return out


def _episodes(run: Path) -> list[dict[str, Any]]:
    from pirlctl.metrics import read_metrics

    return read_metrics(run / "metrics.jsonl", "episode")


def curve(run: Path) -> dict[str, list[float]]:
    """Cumulative env steps, seconds since the first episode record, rolling training success."""
    from pirlctl import metrics as M
    from pirlctl.reporting.plots import cumulative_env_steps, rolling

    eps = _episodes(run)
    succ = [float(bool(r.get(M.ACTOR_SUCCESS))) for r in eps]
    return {
        "steps": cumulative_env_steps(eps),
        "seconds": [r["time"] - eps[0]["time"] for r in eps],
        "success": rolling(succ, WINDOW),
        "raw": succ,
    }


def render(root: Path, seeds: list[int], png: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [*METHODS, "sac"]
    colors = {"flow_sde": "tab:blue", "flow_noise": "tab:orange", "sac": "tab:green"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    rows = [
        "| seed | method | starts from | episodes | env steps | wall (min) | first 50 episodes | last 50 episodes "
        "| SFT ODE eval | after-RL ODE eval |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for seed in seeds:
        for m in methods:
            run = root / f"b5_s{seed}_{m}"
            if not (run / "metrics.jsonl").is_file():
                continue
            c = curve(run)
            if not c["steps"]:
                continue
            label = m if seed == seeds[0] else None
            axes[0].plot(c["steps"], c["success"], color=colors[m], alpha=0.8, label=label)
            axes[1].plot([s / 60 for s in c["seconds"]], c["success"], color=colors[m], alpha=0.8, label=label)
            raw = c["raw"]
            first, last = sum(raw[:FINAL]) / len(raw[:FINAL]), sum(raw[-FINAL:]) / len(raw[-FINAL:])
            sft = rl = "—"
            if (run / "eval_sft.json").is_file() and (run / "eval_rl.json").is_file():
                s, r = (json.loads((run / f).read_text()) for f in ("eval_sft.json", "eval_rl.json"))
                sft = f"{s['success_rate']:.0%} [{s['ci95_low']:.0%}, {s['ci95_high']:.0%}]"
                rl = f"{r['success_rate']:.0%} [{r['ci95_low']:.0%}, {r['ci95_high']:.0%}]"
            rows.append(
                f"| {seed} | {m} | {START[m]} | {len(raw)} | {c['steps'][-1]} | {c['seconds'][-1] / 60:.1f} "
                f"| {first:.0%} | {last:.0%} | {sft} | {rl} |"
            )
    axes[0].set_xlabel("env steps")
    axes[1].set_xlabel("wall clock since first episode (min)")
    axes[0].set_ylabel(f"training success (rolling {WINDOW} episodes)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(loc="lower right")
    fig.suptitle("B5: PI-RL (from the SFT policy) vs LeRobot SAC (from the same demos), pick-cube ±3 cm")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return "\n".join(rows) + f"\n\n![B5 learning curves]({png.name})"


def main(argv: list[str] | None = None) -> int:
    from bench.common import DOC, machine, replace_section

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", choices=[*METHODS, "sac"], default=[*METHODS, "sac"])
    ap.add_argument("--root", type=Path, default=ROOT / "runs" / "b5")
    ap.add_argument("--port", type=int, default=50071)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # as every learner/actor process of the runs (the stamp reports it)
    if not args.report_only:
        for seed in args.seeds:
            for m in METHODS:
                if m in args.methods:
                    run_pirl(args.root, m, seed)
            if "sac" in args.methods:
                budget = episode_span(run_pirl(args.root, "flow_sde", seed))
                run_sac(args.root, seed, budget, args.port)
    stamp = f"_Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}._"
    body = render(args.root, args.seeds, DOC.parent / "b5_learning.png")
    DOC.write_text(replace_section(DOC.read_text(), "learning", stamp + "\n\n" + body))
    print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
