"""Training-health alarms (collapse detection): pure functions over metric records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pirlctl import metrics as M


@dataclass
class AlarmState:
    first_value_loss: float | None = None
    successes: list[bool] = field(default_factory=list)
    # the SFT level *under the stochastic training sampler* (the ODE evaluation of the SFT policy differs, so
    # comparing against it would alarm from the start): the success rate of all the episodes of the first policy
    # version, fixed when an episode of a later version arrives. Not the first window of arrivals: successful
    # episodes are shorter and finish first, so the first 20 to arrive overstate the level (70% against 50%).
    baseline: float | None = None
    first_version: int | None = None
    first_version_successes: list[bool] = field(default_factory=list)
    collapsed: bool = False


def train_alarms(rec: dict[str, Any], state: AlarmState, settings: Any) -> list[str]:
    """Alarms for one PPO-iteration record: approx_kl, clipfrac, value-loss explosion, actor/learner mismatch."""
    out = []
    it = rec.get(M.TRAIN_ITERATION)
    onpolicy = it is not None and rec.get(M.DATA_BATCH_VERSIONS) == [it - 1]
    mismatch = rec.get(M.TRAIN_ONPOLICY_LOG_RATIO)
    if onpolicy and mismatch is not None and mismatch > settings.alarm_onpolicy_log_ratio:
        out.append(
            f"iter {it}: on-policy |log ratio| {mismatch:.2g} > {settings.alarm_onpolicy_log_ratio:g} before any "
            "step (actor and learner disagree: check weight sync with `pirlctl verify-sync`)"
        )
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


def episode_alarms(rec: dict[str, Any], state: AlarmState, settings: Any) -> list[str]:
    """Alarm once when rolling training success falls ``alarm_success_drop`` below the starting level; re-arms
    when it recovers to within half that drop."""
    ok = bool(rec.get(M.ACTOR_SUCCESS))
    state.successes.append(ok)
    w = settings.alarm_window
    version = rec.get(M.ACTOR_POLICY_VERSION)
    if state.baseline is None and version is not None:
        if state.first_version is None:
            state.first_version = version
        if version == state.first_version:
            state.first_version_successes.append(ok)
            return []
        first = state.first_version_successes
        state.baseline = sum(first) / len(first)
        state.successes = [ok]  # the rolling window covers later policies (the first one's failures come last)
    if len(state.successes) < w:
        return []
    rate = sum(state.successes[-w:]) / w
    if state.baseline is None:  # records without a policy version: the first window is the baseline
        state.baseline = rate
        return []
    below = rate < state.baseline - settings.alarm_success_drop
    fire = below and not state.collapsed
    # hysteresis: a rolling rate of a few dozen Bernoulli episodes wanders by ~10 points, so once collapsed the
    # alarm re-arms only after recovering to half the drop, not on every crossing of the threshold
    recovered = rate >= state.baseline - settings.alarm_success_drop / 2
    state.collapsed = below or (state.collapsed and not recovered)
    if fire:
        return [
            f"rolling success {rate:.0%} fell more than {settings.alarm_success_drop:.0%} below its starting level "
            f"{state.baseline:.0%} (same sampler): training is collapsing; lower actor_lr or resume an earlier "
            "checkpoint"
        ]
    return []
