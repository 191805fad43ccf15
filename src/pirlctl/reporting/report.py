"""The final Markdown report of ``pirlctl train``; every number comes from the eval JSONs and metrics.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pirlctl import metrics as M


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def write_report(
    report: Any,
    cfg: Any,
    path: Path,
    *,
    sft_eval: dict[str, Any],
    rl_eval: dict[str, Any],
    train: list[dict[str, Any]],
) -> str:
    last = train[-1] if train else {}
    ev = last.get(M.TRAIN_EXPLAINED_VARIANCE)
    ev = float("nan") if ev is None else ev
    lift = rl_eval["success_rate"] - sft_eval["success_rate"]
    start = "start policy (--policy_path)" if getattr(report, "stages_skipped", None) else "SFT (few-shot BC)"
    overlap = not (rl_eval["ci95_low"] > sft_eval["ci95_high"] or sft_eval["ci95_low"] > rl_eval["ci95_high"])
    lines = [
        f"# pirlctl train report: {Path(report.run_dir).name}",
        "",
        "| | success (ODE) | 95% CI (Wilson) | mean return | episodes |",
        "|---|---|---|---|---|",
        f"| {start} | {_pct(sft_eval['success_rate'])} | {_pct(sft_eval['ci95_low'])} – "
        f"{_pct(sft_eval['ci95_high'])} | {sft_eval['mean_return']:.3f} | {sft_eval['episodes']} |",
        f"| after PI-RL | {_pct(rl_eval['success_rate'])} | {_pct(rl_eval['ci95_low'])} – "
        f"{_pct(rl_eval['ci95_high'])} | {rl_eval['mean_return']:.3f} | {rl_eval['episodes']} |",
        "",
        f"Lift: **{100 * lift:+.1f} points**; the 95% intervals {'overlap' if overlap else 'do not overlap'}.",
        "",
        "| | |",
        "|---|---|",
        f"| method | {cfg.pirl.noise_method} ({cfg.pirl.resolved_sampling}), K={cfg.pirl.num_denoise_steps} |",
        f"| env steps | {report.env_steps} |",
        f"| PPO iterations | {report.iterations} |",
        f"| RL wall clock (sum of learner sessions) | {report.rl_wall_seconds / 60:.1f} min |",
        f"| learner sessions | {report.rl_sessions} |",
        f"| whole job wall clock (this invocation) | {report.total_wall_seconds / 60:.1f} min |",
        f"| actors | {cfg.runtime.num_actors} |",
        f"| last approx_kl / clipfrac / explained var. | {last.get(M.TRAIN_APPROX_KL, float('nan')):.4f} / "
        f"{last.get(M.TRAIN_CLIPFRAC, float('nan')):.3f} / {ev:.2f} |",
        f"| machine | {report.machine} |",
        f"| stages reused from cache | {', '.join(report.stages_reused) or 'none'} |",
        *(
            [f"| stages skipped | {', '.join(report.stages_skipped)} (started from {report.start_policy}) |"]
            if report.stages_skipped
            else []
        ),
        "",
        "Learning curve: `learning_curve.png` in the run folder.",
        "",
        cfg.env.describe(),
    ]
    alarm_log = Path(report.run_dir) / "alarms.log"
    alarms = alarm_log.read_text().splitlines() if alarm_log.is_file() else []
    if alarms:
        lines += ["", f"**Alarms raised: {len(alarms)}** (all in `alarms.log`):", ""]
        lines += [f"- {a}" for a in alarms[:5]] + ([f"- … {len(alarms) - 5} more"] if len(alarms) > 5 else [])
    if report.resume_notes:
        lines += ["", "**Resumed by fallback** (`last` failed verification):", ""]
        lines += [f"- {note}" for note in report.resume_notes]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text
