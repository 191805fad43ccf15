"""Training-health alarms: pure functions over metric records, evaluated once, in the learner.

The learner feeds every PPO-iteration record (kind ``train``) and every episode record (kind ``episode``) through an
:class:`AlarmMonitor` and writes each alarm it raises as an ``alarm`` record to metrics.jsonl; the dashboard and the
report only read those records. The thresholds live here, with the code that uses them (not in the run config):
they were calibrated by replaying recorded healthy and faulty runs (tests/fixtures/alarms, docs/benchmarks.md
"Alarms on recorded runs").
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass, field
from typing import Any

from pirlctl import metrics as M


@dataclass(frozen=True)
class AlarmThresholds:
    # approx_kl of a PPO iteration above this: the policy moved too far in one update (lr x100 reads 0.1-1).
    approx_kl: float = 0.05
    # Clip fraction of a PPO iteration above this.
    clipfrac: float = 0.4
    # On an on-policy batch, the learner's first re-score differs from the actor's log-probs by more than this
    # (max |log ratio|): the actor sampled with other weights or another sampler than the learner scores.
    onpolicy_log_ratio: float = 1e-3
    # Value loss above this multiple of its reference level: the critic diverges.
    value_loss_factor: float = 10.0
    # The reference level is the median value loss of this many iterations, taken after `value_loss_skip` ones: the
    # critic warm-up (critic_warmup_iters, 1 in the default) fits the SFT policy's returns to ~0.001, then the
    # first policy updates move the returns and the loss settles at 0.02-0.06 (the old "x its first value" rule
    # raised 14 false alarms per healthy run from that).
    value_loss_skip: int = 2
    value_loss_ref_iters: int = 3
    # ... and never below this floor (returns of pick-cube lie in about [0, 2]): a critic with nothing to fit yet
    # (a policy at 0% success: returns ~0, loss ~1e-5) would otherwise alarm when the first successes arrive.
    value_loss_floor: float = 0.05
    # Rolling training success (last `window` episodes) this far below the first policy version's own training
    # success (the SFT policy under the same stochastic sampler).
    success_drop: float = 0.2
    # Episodes in the rolling success window: about one PPO update's worth in the default job. Replayed over the
    # logged runs, 20 raised false alarms in runs that never collapsed (a 20-episode rate wanders by +-11 points);
    # 50 still fires in every run whose training success did collapse (docs/benchmarks.md).
    window: int = 50


THRESHOLDS = AlarmThresholds()
SUCCESS_WINDOW = THRESHOLDS.window  # the rolling window of training success, also the learning curve's


@dataclass(frozen=True)
class Alarm:
    name: str  # approx_kl | clipfrac | value_loss | onpolicy_log_ratio | success_collapse
    iteration: int | None  # the PPO iteration (policy version) it was raised at
    message: str

    def record(self) -> dict[str, Any]:
        """The fields of its ``alarm`` record in metrics.jsonl."""
        return {M.ALARM_ITERATION: self.iteration, M.ALARM_NAME: self.name, M.ALARM_MESSAGE: self.message}


def format_alarm(rec: dict[str, Any]) -> str:
    """One display line for an ``alarm`` record: ``iter 3: approx_kl 0.412 > 0.05 (...)``."""
    it = rec.get(M.ALARM_ITERATION)
    return f"iter {it}: {rec.get(M.ALARM_MESSAGE)}" if it is not None else str(rec.get(M.ALARM_MESSAGE))


@dataclass
class AlarmState:
    value_losses: list[float] = field(default_factory=list)  # per iteration, in order
    value_loss_ref: float | None = None
    successes: list[bool] = field(default_factory=list)
    # the SFT level *under the stochastic training sampler* (the ODE evaluation of the SFT policy differs, so
    # comparing against it would alarm from the start): the success rate of all the episodes of the first policy
    # version, fixed when an episode of a later version arrives. Not the first window of arrivals: successful
    # episodes are shorter and finish first, so the first 20 to arrive overstate the level (70% against 50%).
    baseline: float | None = None
    first_version: int | None = None
    first_version_successes: list[bool] = field(default_factory=list)
    collapsed: bool = False


def value_loss_alarm(vl: float, state: AlarmState, t: AlarmThresholds) -> str | None:
    """Value loss against a robust reference: the median of iterations ``skip+1 .. skip+ref_iters`` (after the
    critic warm-up has fitted and the first updates have moved the returns), at least ``value_loss_floor``."""
    state.value_losses.append(vl)
    if state.value_loss_ref is None and len(state.value_losses) == t.value_loss_skip + t.value_loss_ref_iters:
        state.value_loss_ref = statistics.median(state.value_losses[t.value_loss_skip :])
    # before the reference exists, the floor: a critic that diverges from its first update alarms at once
    level = max(state.value_loss_ref or 0.0, t.value_loss_floor)
    if vl > t.value_loss_factor * level:
        return (
            f"value loss {vl:.3g} > {t.value_loss_factor:g}x its reference level {level:.3g}: the critic diverges "
            "(lower value_lr, keep value_clip)"
        )
    return None


def train_alarms(rec: dict[str, Any], state: AlarmState, t: AlarmThresholds = THRESHOLDS) -> list[Alarm]:
    """Alarms for one PPO-iteration record: actor/learner mismatch, approx_kl, clipfrac, value-loss divergence."""
    out = []
    it = rec.get(M.TRAIN_ITERATION)
    onpolicy = it is not None and rec.get(M.DATA_BATCH_VERSIONS) == [it - 1]
    mismatch = rec.get(M.TRAIN_ONPOLICY_LOG_RATIO)
    if onpolicy and mismatch is not None and mismatch > t.onpolicy_log_ratio:
        msg = (
            f"on-policy |log ratio| {mismatch:.2g} > {t.onpolicy_log_ratio:g} before any step (actor and learner "
            "disagree: check weight sync with `pirlctl verify-sync`)"
        )
        out.append(Alarm("onpolicy_log_ratio", it, msg))
    kl, clip, vl = rec.get(M.TRAIN_APPROX_KL), rec.get(M.TRAIN_CLIPFRAC), rec.get(M.TRAIN_VALUE_LOSS)
    if kl is not None and kl > t.approx_kl:
        out.append(Alarm("approx_kl", it, f"approx_kl {kl:.3f} > {t.approx_kl:g} (lower actor_lr or ppo_epochs)"))
    if clip is not None and clip > t.clipfrac:
        out.append(Alarm("clipfrac", it, f"clipfrac {clip:.2f} > {t.clipfrac:g} (policy moving too fast)"))
    if vl is not None:
        vl_msg = value_loss_alarm(float(vl), state, t)
        if vl_msg:
            out.append(Alarm("value_loss", it, vl_msg))
    return out


def episode_alarms(
    rec: dict[str, Any], state: AlarmState, t: AlarmThresholds = THRESHOLDS, iteration: int | None = None
) -> list[Alarm]:
    """Alarm once when rolling training success falls ``success_drop`` below the starting level; re-arms when it
    recovers to within half that drop. ``iteration``: the learner's policy version when the episode arrived."""
    ok = bool(rec.get(M.ACTOR_SUCCESS))
    state.successes.append(ok)
    w = t.window
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
    below = rate < state.baseline - t.success_drop
    fire = below and not state.collapsed
    # hysteresis: a rolling rate of a few dozen Bernoulli episodes wanders by ~10 points, so once collapsed the
    # alarm re-arms only after recovering to half the drop, not on every crossing of the threshold
    recovered = rate >= state.baseline - t.success_drop / 2
    state.collapsed = below or (state.collapsed and not recovered)
    if fire:
        msg = (
            f"rolling success {rate:.0%} fell more than {t.success_drop:.0%} below its starting level "
            f"{state.baseline:.0%} (same sampler): training is collapsing; lower actor_lr or resume an earlier "
            "checkpoint"
        )
        return [Alarm("success_collapse", iteration if iteration is not None else version, msg)]
    return []


class AlarmMonitor:
    """The learner's alarm state: train records from its loop, episode records from the gRPC threads (locked)."""

    def __init__(self, thresholds: AlarmThresholds = THRESHOLDS) -> None:
        self.thresholds = thresholds
        self.state = AlarmState()
        self._lock = threading.Lock()

    def on_train(self, rec: dict[str, Any]) -> list[Alarm]:
        with self._lock:
            return train_alarms(rec, self.state, self.thresholds)

    def on_episode(self, rec: dict[str, Any], iteration: int | None = None) -> list[Alarm]:
        with self._lock:
            return episode_alarms(rec, self.state, self.thresholds, iteration)

    def replay(self, records: list[dict[str, Any]]) -> list[Alarm]:
        """Feed recorded metrics (train and episode records, in file order); returns every alarm they raise. The
        learner primes its state this way on resume (and drops the alarms: they were raised the first time)."""
        out: list[Alarm] = []
        iteration: int | None = 0  # the learner's policy version before its first update
        for rec in records:
            if rec.get("kind") == "train":
                iteration = rec.get(M.TRAIN_ITERATION)
                out += self.on_train(rec)
            elif rec.get("kind") == "episode":
                out += self.on_episode(rec, iteration)
        return out
