"""Learning-curve PNG: rolling training success and return vs env steps and vs wall clock, SFT level marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pirlctl import metrics as M
from pirlctl.metrics import read_metrics


def rolling(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def cumulative_env_steps(episodes: list[dict[str, Any]]) -> list[int]:
    """Env steps across all actors after each episode record: the honest global x-axis of a learning curve."""
    total, xs = 0, []
    for r in episodes:
        total += int(r.get(M.ACTOR_EPISODE_LENGTH) or 0)
        xs.append(total)
    return xs


def learning_curve(
    metrics_path: str | Path,
    out_png: str | Path,
    *,
    sft_success: float | None,
    rl_eval: dict[str, Any] | None = None,
    window: int = 20,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episodes = read_metrics(metrics_path, "episode")
    t0 = min((r["time"] for r in read_metrics(metrics_path)), default=0.0)
    xs = cumulative_env_steps(episodes)
    wall = [(r["time"] - t0) / 60.0 for r in episodes]
    succ = rolling([float(bool(r.get(M.ACTOR_SUCCESS))) for r in episodes], window)
    ret = rolling([float(r.get(M.ACTOR_EPISODE_RETURN) or 0.0) for r in episodes], window)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey="row")
    for col, (x, label) in enumerate(((xs, "env steps (all actors)"), (wall, "wall clock since start (min)"))):
        axes[0, col].plot(x, succ, color="tab:blue", label=f"training success (rolling {window} episodes, SDE)")
        axes[1, col].plot(x, ret, color="tab:green", label=f"episode return (rolling {window})")
        if sft_success is not None:
            axes[0, col].axhline(sft_success, color="tab:red", ls="--", label=f"SFT ODE eval {sft_success:.0%}")
        if rl_eval is not None and x:
            axes[0, col].errorbar(
                [x[-1]],
                [rl_eval["success_rate"]],
                yerr=[
                    [rl_eval["success_rate"] - rl_eval["ci95_low"]],
                    [rl_eval["ci95_high"] - rl_eval["success_rate"]],
                ],
                fmt="o",
                color="black",
                capsize=4,
                label=f"final ODE eval {rl_eval['success_rate']:.0%} (95% CI)",
            )
        axes[1, col].set_xlabel(label)
    axes[0, 0].set_ylabel("success rate")
    axes[1, 0].set_ylabel("return")
    axes[0, 0].set_ylim(-0.02, 1.02)
    axes[0, 0].legend(loc="lower right", fontsize=8)
    axes[1, 0].legend(loc="lower right", fontsize=8)
    fig.suptitle("PI-RL training episodes (stochastic sampler) and the final ODE evaluation")
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
