"""`make bench`: regenerate the measured sections of docs/benchmarks.md (between their markers).

Sections: B1/B3 (sampling overhead, re-scoring cost), B2 (actor-loop efficiency: real learner and actor processes),
B4 (weight sync next to LeRobot's path; push bytes for an X-VLA-0.9B shape) and B5 (learning: PI-RL next to
LeRobot's SAC, 3 seeds, about 1.5 hours here; bench/b5_learning.py) are measured here; the main-job section is
collected from run folders given with --runs (each produced by `pirlctl train`). `--only b4` (etc.) runs a subset.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bench.common import DOC, replace_section


def _job_minutes(run: Path) -> str:
    """Whole-job wall clock of the invocation that finished the run (its report.json; runs older than it: "—")."""
    report = run / "report.json"
    if not report.exists():
        return "—"
    return f"{json.loads(report.read_text())['total_wall_seconds'] / 60:.1f} min"


def _demos(cfg: dict) -> str:
    """Count, demonstrator error, and whether failed episodes were kept."""
    p = cfg.get("pipeline", {})
    bias = p.get("demo_aim_bias") or [0, 0, 0]
    parts = [str(p.get("demo_episodes", "?"))]
    if any(bias):
        parts.append("bias " + ", ".join(f"{axis} {100 * b:+.3g} cm" for axis, b in zip("xyz", bias, strict=True) if b))
    if p.get("demo_aim_scale"):
        parts.append(f"scale error {p['demo_aim_scale']:g}")
    if not any(bias) and not p.get("demo_aim_scale"):
        parts.append("exact")
    parts.append("failures kept" if p.get("demo_keep_failures") else "successes only")
    return ", ".join(parts)


def _noise(algo: dict) -> str:
    if algo.get("noise_method") == "flow_noise":
        return "learned"
    a, final = algo.get("noise_level"), algo.get("noise_level_final")
    annealed = algo.get("noise_anneal_frac") or algo.get("noise_anneal_iters")  # *_iters: runs before 2026-12
    return f"{a:g}" if final is None or not annealed else f"{a:g}→{final:g}"


def _actor_lr(algo: dict) -> str:
    lr, final = algo.get("actor_lr"), algo.get("actor_lr_final")
    annealed = algo.get("lr_anneal_frac") or algo.get("lr_anneal_iters")
    return f"{lr:g}" if final is None or not annealed else f"{lr:g}→{final:g}"


def main_job_table(runs: list[Path]) -> str:
    lines = [
        "| run | seed | method | policy sees | demos | render | noise a | actor lr | critic | chunks / update "
        "| time limit | SFT success [95% CI] | after PI-RL [95% CI] | lift | CIs overlap | eval eps | env steps "
        "| RL wall | job wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        sft = json.loads((run / "eval_sft.json").read_text())
        rl = json.loads((run / "eval_rl.json").read_text())
        cfg = json.loads((run / "run_config.json").read_text())
        algo = cfg["algorithm"]
        train = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
        wall = (train[-1]["time"] - train[0]["time"]) / 60 if len(train) > 1 else float("nan")
        overlap = not (rl["ci95_low"] > sft["ci95_high"] or sft["ci95_low"] > rl["ci95_high"])
        lines.append(
            f"| {run.name} | {cfg.get('seed')} | {algo.get('noise_method')} "
            f"| {'images, state, cube offset' if cfg['env'].get('observe_cube') else 'images, state'} | {_demos(cfg)} "
            f"| {cfg['env'].get('render_geometry', 'visual')} | {_noise(algo)} | {_actor_lr(algo)} "
            f"| {'+ sim state' if algo.get('critic_privileged_dim') else 'features'} "
            f"| {cfg['runtime']['num_actors'] * cfg['runtime']['rollout_chunks']} "
            # runs from before algorithm.bootstrap_time_limit existed bootstrapped at the time limit
            f"| {'bootstrap' if algo.get('bootstrap_time_limit', True) else 'ends'} "
            f"| {sft['success_rate']:.0%} [{sft['ci95_low']:.0%}, {sft['ci95_high']:.0%}] "
            f"| {rl['success_rate']:.0%} [{rl['ci95_low']:.0%}, {rl['ci95_high']:.0%}] "
            f"| {100 * (rl['success_rate'] - sft['success_rate']):+.0f} pts | {'yes' if overlap else 'no'} "
            f"| {rl['episodes']} | {train[-1]['train/env_steps'] if train else 0} | {wall:.1f} min "
            f"| {_job_minutes(run)} |"
        )
    return "\n".join(lines)


def main_job_plot(runs: list[Path], out_png: Path, window: int = 50) -> Path:
    """Each run's training success (its own stochastic sampler, rolling ``window`` episodes) vs env steps, with its
    SFT and after-RL ODE evaluations as dashed/dotted levels, one panel per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pirlctl import metrics as M
    from pirlctl.metrics import read_metrics
    from pirlctl.reporting.plots import cumulative_env_steps, rolling

    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), sharey=True, squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        episodes = read_metrics(run / "metrics.jsonl", "episode")
        success = [float(bool(r.get(M.ACTOR_SUCCESS))) for r in episodes]
        ax.plot(cumulative_env_steps(episodes), rolling(success, window), label=f"training (rolling {window})")
        sft = json.loads((run / "eval_sft.json").read_text())["success_rate"]
        rl = json.loads((run / "eval_rl.json").read_text())["success_rate"]
        ax.axhline(sft, ls="--", color="gray", label=f"SFT, ODE eval {sft:.0%}")
        ax.axhline(rl, ls=":", color="tab:red", label=f"after RL, ODE eval {rl:.0%}")
        ax.set_title(run.name)
        ax.set_xlabel("env steps")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
    axes[0][0].set_ylabel("success rate")
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


def main() -> None:
    from bench.b1_b3_sampling import b1, b3, render
    from bench.common import machine

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="run folders of `pirlctl train`")
    parser.add_argument("--only", nargs="*", choices=["b1b3", "b2", "b4", "b5"], default=["b1b3", "b2", "b4", "b5"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    stamp = f"_Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}._"
    sections: list[tuple[str, str]] = []
    if "b1b3" in args.only:
        sections.append(("sampling", render(b1(), b3())))
    if "b4" in args.only:
        from bench import b4_weight_sync as b4

        sections.append(("weight-sync", b4.render(b4.b4(), b4.xvla_push_bytes())))
    if "b2" in args.only:
        from bench import b2_actor_loop as b2

        sections.append(("actor-loop", b2.render(b2.b2())))
    if "b5" in args.only:  # writes its own section and plot (runs/b5/, reused where a run is complete)
        from bench import b5_learning

        b5_learning.main([])
    if args.runs:
        png = main_job_plot(args.runs, DOC.parent / "main_job_curves.png")
        sections.append(("main-job", main_job_table(args.runs) + f"\n\n![main-job learning curves]({png.name})"))
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    for name, body in sections:  # each section is written as soon as all are measured
        text = replace_section(text, name, stamp + "\n\n" + body)
    DOC.write_text(text)
    print(f"wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
