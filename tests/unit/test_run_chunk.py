"""run_chunk renders the cameras once per chunk, and what it returns is exactly what stepping with rendering on
gives. Rendered in a child process: one GL context per process (pick_cube.py)."""

from __future__ import annotations

CHILD = r"""
import json
import numpy as np
from pirlctl.config.run_config import EnvSettings
from pirlctl.envs.pick_cube import camera_frames, make_env, observation_to_policy, reset_episode, run_chunk

settings = EnvSettings(cube_range=0.03, image_size=32, cameras=["front", "wrist"], max_episode_steps=6)
env = make_env(settings)
low, high = env.action_space.low, env.action_space.high
renders = []
viewer = env.unwrapped._viewer
inner = viewer.render
viewer.render = lambda: renders.append(1) or inner()
actions = np.random.default_rng(0).uniform(-1, 1, size=(8, 4)).astype(np.float32)
actions[:, 3] = 0.0

def snapshot(obs):
    return {"front": np.asarray(obs["pixels"]["front"]).tolist(), "wrist": np.asarray(obs["pixels"]["wrist"]).tolist(),
            "state": np.asarray(obs["agent_pos"]).tolist()}

out = {"eager": [], "chunked": []}
reset_episode(env, 3)
for a in actions[:6]:
    obs, r, term, trunc, info = env.step(np.clip(a, low, high))
    out["eager"].append(dict(snapshot(obs), trunc=bool(trunc)))
reset_episode(env, 3)
renders.clear()
first = run_chunk(env, actions[:4], low, high)
second = run_chunk(env, actions[4:8], low, high)  # the time limit (6 steps) cuts it after 2 actions
out["chunked"] = [dict(snapshot(first.obs), steps=first.steps, trunc=first.truncated),
                  dict(snapshot(second.obs), steps=second.steps, trunc=second.truncated)]
out["renders"] = len(renders)
# frames read from inside a chunk (the evaluation strip does) are rendered whatever the step's switch
reset_episode(env, 3)
seen = []
run_chunk(env, actions[:4], low, high, on_step=lambda a: seen.append(camera_frames(env)["front"].tolist()))
out["inside"] = seen
# a skipped observation is refused with the fix named, not read as frames
env.unwrapped.pirl_render = False
reset_episode(env, 3)
blind, *_ = env.step(actions[0])
env.unwrapped.pirl_render = True
try:
    observation_to_policy(blind, settings)
    out["refused"] = ""
except ValueError as e:
    out["refused"] = str(e)
print(json.dumps(out))
"""


def test_run_chunk_renders_once_per_chunk_and_returns_what_eager_stepping_returns(child_json):
    out = child_json(CHILD)
    eager, (first, second) = out["eager"], out["chunked"]
    assert (first["steps"], first["trunc"], second["steps"], second["trunc"]) == (4, False, 2, True)
    for key in ("front", "wrist", "state"):
        assert first[key] == eager[3][key]  # after the chunk's last step
        assert second[key] == eager[5][key]  # after the step the time limit ended, mid-chunk
    assert eager[5]["trunc"]
    # 2 cameras x (the first chunk's last step + the episode's last step), not 2 x 6
    assert out["renders"] == 4
    assert "was not rendered" in out["refused"] and "run_chunk" in out["refused"]
    # before steps 1..3 of the chunk: the observations eager stepping gave after steps 0..2
    assert out["inside"][1:] == [eager[i]["front"] for i in range(3)]
