"""pipeline.demo_aim_bias: a miscalibrated demonstrator aims at a constant offset from the cube; its labels carry
the offset, the demo cache key tells biased and unbiased demos apart, and bad values are refused in one line."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pirlctl.config.run_config import RunConfigError, load_run_config
from pirlctl.envs.pick_cube import ScriptedPicker
from pirlctl.pipeline.train_job import TrainJob
from pirlctl.policies.loading import DEFAULT_RUN_CONFIG


def _env(cube, tcp):
    sensors = {"block_pos": np.asarray(cube, float), "2f85/pinch_pos": np.asarray(tcp, float)}
    data = SimpleNamespace(sensor=lambda name: SimpleNamespace(data=sensors[name]))
    return SimpleNamespace(unwrapped=SimpleNamespace(_data=data))


def _descend_label(bias):
    """The clean label once the picker hovers above where it believes the cube is."""
    picker = ScriptedPicker(aim_bias=bias)
    cube = np.array([0.40, 0.0, 0.02])
    believed = cube + np.asarray(bias or [0, 0, 0])
    picker.act(_env(cube, believed + [0, 0, 0.05]))  # hovering above the believed cube: switches to descend
    assert picker.phase == "descend"
    _, label = picker.act(_env(cube, believed + [0, 0, 0.05]))
    return label


def test_a_biased_demonstrator_descends_beside_the_cube_and_an_unbiased_one_onto_it():
    unbiased = _descend_label(None)
    assert unbiased[:2] == pytest.approx([0.0, 0.0])  # straight down onto the cube
    assert unbiased[2] < 0
    biased = _descend_label([0.0, 0.015, 0.0])
    assert biased[:3] == pytest.approx(unbiased[:3])  # it descends the same way, 1.5 cm beside the cube
    picker = ScriptedPicker(aim_bias=[0.0, 0.015, 0.0])
    _, label = picker.act(_env([0.40, 0.0, 0.02], [0.40, 0.0, 0.07]))  # above the true cube: moves to +y
    assert label[1] == pytest.approx(0.015 / ScriptedPicker.STEP)


def test_the_bias_is_part_of_the_demo_and_sft_cache_keys():
    keys = {
        bias: TrainJob(load_run_config(DEFAULT_RUN_CONFIG, [f"--pipeline.demo_aim_bias={bias}"]))
        for bias in ("[0.0,0.0,0.0]", "[0.0,0.02,0.0]", "[0.0,0.0275,0.0]")
    }
    assert len({job.demo_key for job in keys.values()}) == 3
    assert len({job.sft_key for job in keys.values()}) == 3
    default = TrainJob(load_run_config(DEFAULT_RUN_CONFIG))
    assert default.demo_key == keys["[0.0,0.0275,0.0]"].demo_key  # the shipped default: 2.75 cm along +y


@pytest.mark.parametrize("value", ["[0.0,0.01]", "[0.0,NaN,0.0]"])
def test_a_bad_bias_is_refused_naming_the_field(value):
    with pytest.raises(RunConfigError, match=r"pipeline.demo_aim_bias=.* is invalid; give three finite offsets"):
        load_run_config(DEFAULT_RUN_CONFIG, [f"--pipeline.demo_aim_bias={value}"])


def _missed_lift(retry):
    """Drive the picker through a grasp that leaves the cube on the table."""
    picker = ScriptedPicker(retry=retry)
    cube = np.array([0.40, 0.0, 0.02])
    picker.phase, picker.timer = "lift", 0
    for _ in range(10):
        picker.act(_env(cube, cube + [0, 0, 0.06]))
    return picker


def test_without_retry_the_first_missed_lift_is_final():
    again = _missed_lift(retry=True)
    assert again.missed and again.phase == "approach"  # re-opens and tries again
    final = _missed_lift(retry=False)
    assert final.missed and final.phase == "lift"  # no second attempt: record_demos drops the episode
    _, label = final.act(_env([0.40, 0.0, 0.02], [0.40, 0.0, 0.08]))
    assert label[3] == 2.0  # it never re-opens
    jobs = [TrainJob(load_run_config(DEFAULT_RUN_CONFIG, [f"--pipeline.demo_retry={r}"])) for r in ("true", "false")]
    assert jobs[0].demo_key != jobs[1].demo_key and jobs[0].sft_key != jobs[1].sft_key
