"""pipeline.demo_aim_scale and pipeline.demo_keep_failures: a demonstrator whose believed cube position has a scale
error about the table centre aims on target at the centre and beside the cube further out; its failed episodes can
be kept as recorded; both settings are part of the demo cache key, and a bad scale is refused in one line."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pirlctl.config.run_config import RunConfigError, load_run_config
from pirlctl.envs.pick_cube import CUBE_CENTRE, ScriptedPicker
from pirlctl.pipeline.train_job import TrainJob
from pirlctl.policies.loading import DEFAULT_RUN_CONFIG


def _env(cube, tcp):
    sensors = {"block_pos": np.asarray(cube, float), "2f85/pinch_pos": np.asarray(tcp, float)}
    data = SimpleNamespace(sensor=lambda name: SimpleNamespace(data=sensors[name]))
    return SimpleNamespace(unwrapped=SimpleNamespace(_data=data))


def _approach_label(scale, cube_xy):
    """The clean label while the gripper hovers 5 cm above the true cube."""
    cube = np.array([*cube_xy, 0.02])
    _, label = ScriptedPicker(aim_scale=scale).act(_env(cube, cube + [0, 0, 0.05]))
    return label


def test_a_scale_error_aims_on_target_at_the_centre_and_beside_the_cube_further_out():
    cx, cy = CUBE_CENTRE
    assert _approach_label(1.0, (cx, cy))[:3] == pytest.approx([0.0, 0.0, 0.0])  # centre: already above it
    out = _approach_label(1.0, (cx + 0.01, cy - 0.02))  # 1 cm forward, 2 cm right: aims 1 cm / 2 cm further
    assert out[:2] == pytest.approx([0.01 / ScriptedPicker.STEP, -0.02 / ScriptedPicker.STEP])
    half = _approach_label(0.5, (cx + 0.01, cy - 0.02))
    assert half[:2] == pytest.approx(out[:2] / 2)
    assert _approach_label(0.0, (cx + 0.01, cy - 0.02))[:2] == pytest.approx([0.0, 0.0])  # no error: on target


def test_scale_and_keep_failures_are_part_of_the_demo_and_sft_cache_keys():
    flipped = str(not load_run_config(DEFAULT_RUN_CONFIG).pipeline.demo_keep_failures).lower()
    variants = ([], ["--pipeline.demo_aim_scale=1.0"], [f"--pipeline.demo_keep_failures={flipped}"])
    jobs = [TrainJob(load_run_config(DEFAULT_RUN_CONFIG, v)) for v in variants]
    assert len({j.demo_key for j in jobs}) == len({j.sft_key for j in jobs}) == 3


@pytest.mark.parametrize("value", ["NaN", "inf"])
def test_a_bad_scale_is_refused_naming_the_field(value):
    with pytest.raises(RunConfigError, match=r"pipeline.demo_aim_scale=.* is invalid; give a finite scale error"):
        load_run_config(DEFAULT_RUN_CONFIG, [f"--pipeline.demo_aim_scale={value}"])


CHILD = r"""
import json, sys
from pirlctl.config.run_config import EnvSettings
from pirlctl.pipeline.demos import record_demos

settings = EnvSettings(cube_range=0.03, image_size=16, cameras=["front"], max_episode_steps=30, observe_cube=True,
                       render_geometry="collision")
out = {}
for keep in (False, True):
    # a scale error of 3: the demonstrator misses everywhere but at the very centre
    rep = record_demos(settings, f"{sys.argv[1]}/k{int(keep)}", episodes=2, noise_std=0.0, aim_error=0.0,
                       aim_scale=3.0, keep_failures=keep)
    out[str(keep)] = {"episodes": rep.episodes, "successes": rep.successes, "attempts": rep.attempts}
print(json.dumps(out))
"""


# slow (16 s): records demos in a child process
@pytest.mark.slow
def test_keep_failures_records_every_attempt_and_the_default_only_successes(tmp_path, child_json):
    out = child_json(CHILD, str(tmp_path))
    kept, curated = out["True"], out["False"]
    assert kept["episodes"] == kept["attempts"] == 2  # every attempt kept, as recorded
    assert kept["successes"] < 2  # ... failures included
    assert curated["episodes"] == curated["successes"] == 2  # successes only
    assert curated["attempts"] > 2  # it played (and dropped) failed attempts to get them
