"""Split evaluations merge into the one-process result: counts and means pooled, the interval recomputed; the
evaluation loop's per-step hook."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pirlctl.config.run_config import load_run_config
from pirlctl.envs.pick_cube_task import PickCubeTaskEnv
from pirlctl.pipeline.evaluate import EvalReport, evaluate_algorithm, merge_eval_reports, wilson_interval
from pirlctl.policies.loading import CONFIGS_DIR
from pirlctl.policies.processors import build_processors


def _part(successes, episodes, mean_length, seconds, strip=None):
    lo, hi = wilson_interval(successes, episodes)
    return EvalReport(
        checkpoint="ckpt",
        episodes=episodes,
        successes=successes,
        success_rate=successes / episodes,
        ci95_low=lo,
        ci95_high=hi,
        mean_return=successes / episodes,
        mean_length=mean_length,
        env_steps=int(mean_length * episodes),
        seconds=seconds,
        strip=strip,
    )


def test_merged_report_pools_counts_and_recomputes_the_interval():
    merged = merge_eval_reports([_part(30, 50, 40.0, 61.0, strip="s.png"), _part(10, 50, 50.0, 58.0)])
    assert (merged.episodes, merged.successes, merged.success_rate) == (100, 40, 0.4)
    assert (merged.ci95_low, merged.ci95_high) == wilson_interval(40, 100)
    assert merged.ci95_high - merged.ci95_low < 0.2  # narrower than either half's interval
    assert merged.mean_return == pytest.approx(0.4)
    assert merged.mean_length == pytest.approx(45.0) and merged.env_steps == 4500
    assert merged.seconds == 61.0 and merged.strip == "s.png"


def test_merging_nothing_is_an_error():
    with pytest.raises(ValueError, match="no evaluation parts"):
        merge_eval_reports([])


class _ThreeStepEnv:
    """Episodes of 3 steps; the 2nd episode (seed offset 1) succeeds."""

    action_space = type("Box", (), {"low": -np.ones(4, np.float32), "high": np.full(4, 2.0, np.float32)})()

    def __init__(self):
        self.unwrapped = self

    def render(self):
        return [np.zeros((8, 8, 3), np.uint8)] * 2

    def reset(self, seed):
        self.seed, self.t = seed, 0
        return self._obs(), {}

    def _obs(self):
        return {"pixels": {"front": np.zeros((8, 8, 3), np.uint8)}, "agent_pos": np.zeros(18, np.float32)}

    def step(self, action):
        self.t += 1
        done = self.t == 3
        win = done and self.seed % 2 == 1
        return self._obs(), float(win), win, done and not win, {"succeed": win}


class _FixedChunkAlgo:
    device = torch.device("cpu")

    def __init__(self, cfg):
        self.processors = build_processors(cfg.policy, None)  # identity: the env gets the chunk as is

    def act(self, batch, deterministic, generator):
        assert deterministic
        return SimpleNamespace(actions=torch.tensor([[[5.0, 0.0, -5.0, 3.0], [0.5, 0.0, 0.0, 0.0]]]))


def test_on_step_sees_every_clipped_action_of_every_episode_before_it_is_stepped():
    # the pixel task: the stand-in env has no simulator to read the cube offset from
    cfg = load_run_config(CONFIGS_DIR / "pick_cube_tiny_pixels.json", ["--env.seed=0"])
    cfg.env.cameras = ["front"]
    seen = []
    report = evaluate_algorithm(
        _FixedChunkAlgo(cfg),
        cfg,
        episodes=2,
        env=PickCubeTaskEnv(cfg.env, gym_env=_ThreeStepEnv()),
        on_step=lambda j, env, a: seen.append((j, env.t, a)),
    )
    assert [(j, t) for j, t, _ in seen] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    np.testing.assert_array_equal(seen[0][2], [2.0, 0.0, -1.0, 2.0])  # clipped to the action space
    assert (report.episodes, report.successes, report.env_steps) == (2, 1, 6)


@pytest.mark.parametrize("episodes", [1, 7, 50, 100, 1000])
def test_the_wilson_interval_contains_the_rate_even_at_0_and_100_percent(episodes):
    for successes in (0, episodes // 2, episodes):
        lo, hi = wilson_interval(successes, episodes)
        assert 0.0 <= lo <= successes / episodes <= hi <= 1.0
    assert wilson_interval(episodes, episodes)[1] == 1.0  # not 0.9999999999999999: a plot's error bar was negative
    assert wilson_interval(0, episodes)[0] == 0.0


def test_on_episode_reports_each_finished_episode_for_the_progress_bar():
    cfg = load_run_config(CONFIGS_DIR / "pick_cube_tiny_pixels.json", ["--env.seed=0"])
    cfg.env.cameras = ["front"]
    seen: list[tuple[int, int]] = []
    evaluate_algorithm(
        _FixedChunkAlgo(cfg),
        cfg,
        episodes=3,
        env=PickCubeTaskEnv(cfg.env, gym_env=_ThreeStepEnv()),
        on_episode=lambda done, n: seen.append((done, n)),
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
