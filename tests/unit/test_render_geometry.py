"""env.render_geometry: the cameras draw the Panda's visual meshes or its collision hulls; the scene is otherwise
the same (cube, floor, physics). Rendered in a child process: one GL context per process (pick_cube.py)."""

from __future__ import annotations

import pytest

from pirlctl.config.run_config import RunConfigError, load_run_config
from pirlctl.envs.pick_cube import render_geom_groups
from pirlctl.policies.loading import DEFAULT_RUN_CONFIG

CHILD = r"""
import json, sys
import numpy as np
from pirlctl.config.run_config import EnvSettings
from pirlctl.envs.pick_cube import configure_renderer, make_env, reset_episode

settings = EnvSettings(cube_range=0.03, image_size=64, cameras=["front", "wrist"], render_geometry="visual")
env = make_env(settings)
out = {}
for geometry in ("visual", "collision", "visual"):
    settings.render_geometry = geometry
    configure_renderer(env.unwrapped, settings)
    obs = reset_episode(env, 7)
    front = np.asarray(obs["pixels"]["front"]).astype(int)
    # the cube is the only purple thing in the scene (rgba 0.6 0.3 0.6)
    purple = (front[..., 0] > front[..., 1] + 40) & (front[..., 2] > front[..., 1] + 40)
    out.setdefault(geometry, []).append({"front": front.tolist(), "purple": int(purple.sum())})
print(json.dumps(out))
"""


def test_collision_geometry_changes_the_robot_only_and_is_deterministic(child_json):
    out = child_json(CHILD)
    import numpy as np

    visual_a, visual_b = (np.asarray(r["front"]) for r in out["visual"])
    collision = np.asarray(out["collision"][0]["front"])
    assert (visual_a == visual_b).all()  # switching back restores the original images exactly
    changed = np.abs(visual_a - collision).sum(-1) > 0
    assert 0.01 < changed.mean() < 0.5  # the robot changes, the floor around it does not
    assert out["visual"][0]["purple"] > 0
    assert out["collision"][0]["purple"] == out["visual"][0]["purple"]  # same cube, same pixels


def test_render_geometry_groups_and_refusal():
    assert render_geom_groups("collision") == (0, 3)
    assert 2 in render_geom_groups("visual")
    with pytest.raises(ValueError, match="render_geometry"):
        render_geom_groups("wireframe")
    with pytest.raises(RunConfigError, match=r"env.render_geometry='wireframe' is invalid"):
        load_run_config(DEFAULT_RUN_CONFIG, ["--env.render_geometry=wireframe"])
