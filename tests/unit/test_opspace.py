"""pirlctl's copy of gym_hil's arm controller gives gym_hil's torques and trajectories, and refuses to stand in
when it does not. Run in a child process: one GL context per process (pick_cube.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CHILD = r"""
import json
import numpy as np
from pirlctl.config.run_config import EnvSettings
from pirlctl.envs.opspace import GymHilOpspace, OpspaceController, install_fast_controller, matches_gym_hil
from pirlctl.envs.pick_cube import make_env, reset_episode

settings = EnvSettings(cube_range=0.03, image_size=16, cameras=["front", "wrist"], max_episode_steps=100)
env = make_env(settings, fast_controller=False)
base = env.unwrapped
low, high = env.action_space.low, env.action_space.high
actions = np.random.default_rng(1).uniform(low, high, size=(12, len(low))).astype(np.float32)
actions[:8, 3], actions[8:, 3] = 1.0, 2.0  # hold (free-space moves), then close the gripper (contacts)

def roll():
    reset_episode(env, 5)
    states = []
    for a in actions:
        env.step(a)
        states.append(np.concatenate([base._data.qpos, base._data.qvel, base._data.ctrl]).tolist())
    return np.asarray(states)

reference = roll()
out = {"class_loop": "apply_action" not in vars(base), "moved": float(np.abs(reference[7] - reference[0]).max())}
# gym_hil's own function inside pirlctl's substep loop: isolates the loop
out["loop_installed"] = install_fast_controller(
    base, GymHilOpspace(base._model, base._pinch_site_id, base._panda_dof_ids)
)
out["loop_diff"] = float(np.abs(roll() - reference).max())
del base.apply_action
out["installed"] = install_fast_controller(base)
fast = roll()
out["free_space_diff"] = float(np.abs(fast[:8] - reference[:8]).max())

controller = OpspaceController(base._model, base._pinch_site_id, base._panda_dof_ids)
out["matches"] = matches_gym_hil(base, controller, trials=32)
controller.kp_pos = 150.0
out["other_gains_match"] = matches_gym_hil(base, controller)
out["default_env_fast"] = "apply_action" in vars(make_env(settings).unwrapped)
print("RESULT" + json.dumps(out))
"""


def _run() -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line is not None, proc.stderr[-3000:]
    return json.loads(line[len("RESULT") :])


# slow (12 s): steps gym_hil's own controller beside ours
@pytest.mark.slow
def test_fast_controller_reproduces_gym_hil() -> None:
    out = _run()
    assert out["class_loop"] and out["loop_installed"] and out["installed"] and out["default_env_fast"]
    # pirlctl's substep loop around gym_hil's own controller: bit for bit what gym_hil's apply_action does
    assert out["loop_diff"] == 0.0
    # the fast controller: gym_hil's torques to 1e-9 on random arm states, and eight free-space env steps
    # (400 physics steps) to rounding. (Once the fingers touch, contact amplifies 1e-13 differences as any
    # reordering of floating-point sums would, so the later steps are not compared.)
    assert out["matches"]
    assert out["moved"] > 0.05
    assert out["free_space_diff"] < 1e-9, out["free_space_diff"]
    # a controller with other gains fails the install-time check, so gym_hil's own loop stays
    assert not out["other_gains_match"]


def test_install_declines_what_it_does_not_know() -> None:
    from gym_hil.mujoco_gym_env import FrankaGymEnv

    from pirlctl.envs.opspace import install_fast_controller

    class OwnLoop(FrankaGymEnv):
        def apply_action(self, action):
            raise NotImplementedError

    own = OwnLoop.__new__(OwnLoop)  # no simulator needed: the override is seen first
    assert install_fast_controller(own) is False
    assert "apply_action" not in vars(own)
    bare = FrankaGymEnv.__new__(FrankaGymEnv)  # gym_hil's loop, but none of the attributes the copy reads
    assert install_fast_controller(bare) is False
    assert "apply_action" not in vars(bare)
