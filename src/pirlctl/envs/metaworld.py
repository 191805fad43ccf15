"""MetaWorld's state observation and its scripted experts, for ``env.type = "metaworld"``.

LeRobot 0.6.1's ``MetaworldEnv`` renders a camera on every step and every reset (3-9 steps/s on 2 CPU cores, at any
image size: shared/reference/lerobot-envs.md) and refuses ``obs_type="state"``. :class:`MetaworldStateEnv` is that env
with MetaWorld's whole 39-number observation (hand xyz, gripper opening, the objects' poses, the previous frame of
those, the goal) as ``agent_pos`` and no rendering: ~200-400 steps/s. pirlctl's flow policies (X-VLA, π0, SmolVLA)
all require a camera, so it also gives a constant black frame under ``pixels`` (a placeholder that costs nothing and
carries nothing); :meth:`render` still renders the real camera, for evaluation strips.

:class:`MetaworldExpert` is the demonstrator of ``pirlctl train``'s demos: MetaWorld's shipped scripted policy for
the task (``metaworld.policies``, as LeRobot's ``TASK_POLICY_MAPPING`` names it), degraded as pick-cube's is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lerobot.envs.metaworld import MetaworldEnv

from pirlctl.envs.lerobot_env import LeRobotTaskEnv

STATE_DIM = 39  # MetaWorld v3's flat observation
OBJECT_POS = slice(4, 7)  # the first object's xyz in that observation (the puck of push-v3)
PLACEHOLDER_SIDE = 32  # default side (pixels) of the placeholder frame
# progress potential (shaping): weights of reaching the object and of bringing it to the target, as gym_hil's
# pick-cube weighs closeness and lift (0.3 / 0.7); the hand-to-object distance at which reaching counts nothing
REACH_WEIGHT, PLACE_WEIGHT, REACH_SCALE = 0.3, 0.7, 0.3


class MetaworldStateEnv(MetaworldEnv):
    """LeRobot's ``MetaworldEnv`` observing MetaWorld's state instead of a camera (see the module docstring).

    ``reward_type="sparse"`` pays 1 on the success step and 0 otherwise. MetaWorld's own reward is dense and
    positive (up to 10 per step) while LeRobot ends the episode on success, so with it a return-maximising policy
    would rather linger near the goal than finish."""

    def __init__(self, task: str, reward_type: str = "dense", placeholder_side: int = PLACEHOLDER_SIDE, **kwargs: Any):
        super().__init__(task, obs_type="pixels_agent_pos", **kwargs)  # LeRobot's class refuses "state"
        from gymnasium import spaces

        self.obs_type = "state"
        self.reward_type = reward_type
        self.placeholder = np.zeros((placeholder_side, placeholder_side, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, self.placeholder.shape, dtype=np.uint8),
                "agent_pos": spaces.Box(-1000.0, 1000.0, (STATE_DIM,), dtype=np.float64),
            }
        )

    def _format_raw_obs(self, raw_obs: np.ndarray) -> dict[str, Any]:
        return {"pixels": self.placeholder.copy(), "agent_pos": np.asarray(raw_obs, dtype=np.float64)}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        if self.reward_type == "sparse":
            reward = float(info["is_success"])
        return obs, float(reward), terminated, truncated, info


class MetaworldTaskEnv(LeRobotTaskEnv):
    """LeRobot's metaworld behind the env interface, with a progress potential for reward shaping."""

    has_progress = True

    def progress_potential(self) -> float:
        """Phi(s) in [0, 1]: ``0.3 * reach + 0.7 * place``, reach = 1 - min(1, |hand - object| / 0.3 m), place =
        1 - min(1, |object - target| / |object's initial position - target|) (the distances MetaWorld's own v3
        rewards measure; a function of the state, unlike that reward, which also reads the action)."""
        inner = self.gym_env.unwrapped._env
        obj = np.asarray(inner._get_pos_objects()[:3])
        target = np.asarray(inner._target_pos)
        reach = 1.0 - min(1.0, float(np.linalg.norm(inner.tcp_center - obj)) / REACH_SCALE)
        start = max(float(np.linalg.norm(np.asarray(inner.obj_init_pos)[:3] - target)), 1e-6)
        place = 1.0 - min(1.0, float(np.linalg.norm(obj - target)) / start)
        return REACH_WEIGHT * reach + PLACE_WEIGHT * place


def create_state_envs(task: str, n_envs: int, **env_kwargs: Any) -> dict[str, dict[int, Any]]:
    """``EnvConfig.create_envs`` for the state observation: ``{"metaworld": {0: SyncVectorEnv}}`` of one task (the
    shape LeRobot's ``make_env`` returns)."""
    import gymnasium as gym

    name = task.removeprefix("metaworld-")
    return {"metaworld": {0: gym.vector.SyncVectorEnv([lambda: MetaworldStateEnv(name, **env_kwargs)] * n_envs)}}


def expert_observation(gym_env: Any) -> np.ndarray:
    """The 39-number observation MetaWorld's scripted policies read, taken from the simulator now (whatever the env
    shows the policy), without MetaWorld's ``_get_obs`` side effect on its frame stack."""
    inner = gym_env.unwrapped._env
    goal = np.zeros(3) if inner._partially_observable else inner._get_pos_goal()
    return np.hstack((inner._get_curr_obs_combined_no_goal(), inner._prev_obs, goal)).astype(np.float64)


class MetaworldExpert:
    """MetaWorld's scripted policy for ``task``, degraded as pick-cube's demonstrator is (envs/pick_cube.py).

    :meth:`act` returns ``(executed, label)``, both within the action bounds [-1, 1]. ``aim_bias`` (xyz metres) is a
    constant offset of where the expert believes the task's object is (a miscalibrated demonstrator: every label aims
    beside it; behaviour cloning copies that, reward does not pay for it); ``aim_error`` adds a per-episode xy offset
    (std, metres); ``noise_std`` perturbs the *executed* xyz command while the label stays the expert's clean command
    (DART-style: the demos visit off-nominal states and show the way back). Seeded: the same seed and episodes give
    the same actions."""

    def __init__(
        self, task: str, *, noise_std: float = 0.0, aim_error: float = 0.0, aim_bias: Any = None, seed: int = 0
    ) -> None:
        from lerobot.envs.metaworld import TASK_POLICY_MAPPING

        self.policy = TASK_POLICY_MAPPING[task.removeprefix("metaworld-")]()
        self.noise_std, self.aim_error = noise_std, aim_error
        self.aim_bias = np.zeros(3) if aim_bias is None else np.asarray(aim_bias, dtype=float)
        self.rng = np.random.default_rng(seed)
        self.offset = self.aim_bias.copy()

    def reset(self, seed: int) -> None:
        """A new episode: draw its aiming error (from the expert's own stream, so recording is reproducible)."""
        self.offset = self.aim_bias.copy()
        if self.aim_error > 0:
            self.offset[:2] += self.rng.normal(0.0, self.aim_error, size=2)

    def act(self, env: Any, obs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        believed = expert_observation(env.gym_env)
        believed[OBJECT_POS] += self.offset
        label = np.clip(self.policy.get_action(believed), -1.0, 1.0).astype(np.float32)
        executed = label.copy()
        if self.noise_std > 0:
            executed[:3] = np.clip(label[:3] + self.rng.normal(0.0, self.noise_std, size=3), -1.0, 1.0)
        return executed, label
