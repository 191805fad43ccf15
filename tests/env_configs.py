"""Run configs of each env type with the tiny X-VLA sized to the env's observation and action (tests only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pirlctl.configs import CONFIGS_DIR, DEFAULT_RUN_CONFIG
from pirlctl.policies.loading import TINY_XVLA_CONFIG

# per LeRobot env type: the tiny policy's inputs (the image as LeRobot's preprocess_observation names it, the
# state width) and action width, and the env settings that keep the test small (images, episode limit)
TINY_ENVS: dict[str, dict[str, Any]] = {
    "pusht": {
        "image": "observation.image",
        "state": 2,
        "action": 2,
        "env": {"observation_height": 64, "observation_width": 64, "episode_length": 10},
    },
    "metaworld": {
        "image": "observation.image",
        "state": 4,
        "action": 4,
        "env": {"observation_height": 64, "observation_width": 64, "episode_length": 10},
    },
    "aloha": {  # gym_aloha renders 480x640 whatever it is told: the adapter resizes to the config's size
        "image": "observation.images.top",
        "state": 14,
        "action": 14,
        "env": {"observation_height": 48, "observation_width": 64, "episode_length": 10},
    },
}


def tiny_run_config(
    folder: Path, env_type: str, *, env: dict[str, Any] | None = None, runtime: dict[str, Any] | None = None
) -> Path:
    """Write ``folder/<env_type>.json`` (and the policy it names) and return its path: pick-cube is the shipped
    tiny config with its episode limit cut to 10 steps; the LeRobot env types get the tiny X-VLA reading the env's
    one image (at ``TINY_ENVS``' size) and state, acting at its width. ``env``/``runtime`` entries override."""
    folder.mkdir(parents=True, exist_ok=True)
    if env_type == "pick_cube":
        run = json.loads(Path(DEFAULT_RUN_CONFIG).read_text())
        run["policy"]["base"] = str(CONFIGS_DIR / run["policy"]["base"])
        run["env"] = {**run["env"], "max_episode_steps": 10, **(env or {})}
        run["runtime"] = {**run["runtime"], **(runtime or {})}
        run.pop("pipeline", None)
    else:
        spec = TINY_ENVS[env_type]
        size = [3, spec["env"]["observation_height"], spec["env"]["observation_width"]]
        policy = json.loads(Path(TINY_XVLA_CONFIG).read_text())
        policy["input_features"] = {
            spec["image"]: {"type": "VISUAL", "shape": size},
            "observation.state": {"type": "STATE", "shape": [spec["state"]]},
        }
        policy["output_features"] = {"action": {"type": "ACTION", "shape": [spec["action"]]}}
        policy["max_state_dim"], policy["max_action_dim"] = spec["state"], spec["action"]
        (folder / f"{env_type}_policy.json").write_text(json.dumps(policy))
        run = {
            "policy": {"base": f"{env_type}_policy.json"},
            "algorithm": {"type": "pi_rl", "n_exec": 4},
            "env": {"type": env_type, **spec["env"], **(env or {})},
            "runtime": runtime or {},
        }
    run["output_dir"] = str(folder / "run")
    path = folder / f"{env_type}.json"
    path.write_text(json.dumps(run))
    return path
