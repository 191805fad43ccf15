"""Training-health alarms (collapse detection): pure functions over metric records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pirlctl import metrics as M


@dataclass
class AlarmState:
    first_value_loss: float | None = None
    successes: list[bool] = field(default_factory=list)


def train_alarms(rec: dict[str, Any], state: AlarmState, settings: Any) -> list[str]:
    """Alarms for one PPO-iteration record: approx_kl, clipfrac, value-loss explosion."""
    out = []
    it = rec.get(M.TRAIN_ITERATION)
    kl, clip, vl = rec.get(M.TRAIN_APPROX_KL), rec.get(M.TRAIN_CLIPFRAC), rec.get(M.TRAIN_VALUE_LOSS)
    if kl is not None and kl > settings.alarm_approx_kl:
        out.append(f"iter {it}: approx_kl {kl:.3f} > {settings.alarm_approx_kl} (lower actor_lr or ppo_epochs)")
    if clip is not None and clip > settings.alarm_clipfrac:
        out.append(f"iter {it}: clipfrac {clip:.2f} > {settings.alarm_clipfrac} (policy moving too fast)")
    if vl:
        if state.first_value_loss is None:
            state.first_value_loss = vl
        elif vl > settings.alarm_value_loss_factor * state.first_value_loss:
            out.append(
                f"iter {it}: value loss {vl:.3g} exploded (> {settings.alarm_value_loss_factor}x its first value)"
            )
    return out


def episode_alarms(rec: dict[str, Any], state: AlarmState, settings: Any, sft_success: float | None) -> list[str]:
    """Alarm when rolling training success collapses below the SFT level."""
    state.successes.append(bool(rec.get(M.ACTOR_SUCCESS)))
    w = settings.alarm_window
    if sft_success is None or len(state.successes) < w:
        return []
    rate = sum(state.successes[-w:]) / w
    if rate < sft_success - settings.alarm_success_drop:
        return [
            f"rolling success {rate:.0%} fell below the SFT level {sft_success:.0%} - {settings.alarm_success_drop:.0%}"
        ]
    return []
