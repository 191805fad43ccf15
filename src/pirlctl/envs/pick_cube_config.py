"""``env.type = "pick_cube"``: gym_hil's Panda pick-cube through pirlctl's own fast builder, with all its settings.

LeRobot's own gym_hil path (``gym_manipulator``) forces on-screen rendering, a fixed cube, a 1 s sleep per reset and
no seed (1.2 steps/s here against 20-60 for this builder: shared/reference/lerobot-envs.md), so pick-cube is an
``EnvConfig`` of its own. The env itself is :mod:`pirlctl.envs.pick_cube`; this module stays cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from lerobot.envs.configs import EnvConfig

from pirlctl.envs.base import EnvSetupError
from pirlctl.envs.configs import TaskEnvConfig

if TYPE_CHECKING:
    from pirlctl.envs.base import TaskEnv

# env.render_geometry -> the MuJoCo geom groups the cameras draw, in gym_hil's pick-cube scene: 0 = floor, cube and
# target; 2 = the Panda's visual meshes; 3 = its collision hulls and finger pads.
RENDER_GEOM_GROUPS: dict[str, tuple[int, ...]] = {"visual": (0, 1, 2), "collision": (0, 3)}
# Width of pick-cube's simulator-only critic input (envs.pick_cube.privileged_state): the gripper-to-cube offset
# (3) and the lift fraction (1). `algorithm.critic_privileged_dim` is 0 or this.
PRIVILEGED_STATE_DIM = 4
AGENT_STATE_DIM = 18  # gym_hil agent_pos: joint pos (7), joint vel (7), gripper (1), TCP xyz (3)
CUBE_OFFSET_DIM = 3  # env.observe_cube: gripper-to-cube offset appended to the policy's state


@TaskEnvConfig.register_subclass("pick_cube")
@dataclass
class PickCubeEnv(TaskEnvConfig, EnvConfig):
    """The MuJoCo task the actor runs by default: gym_hil pick-cube, headless."""

    # gymnasium id; gym_hil/PandaPickCube-v0 works headless (the Base/Keyboard/Gamepad variants do not).
    task: str = "gym_hil/PandaPickCube-v0"
    # Control rate (Hz) of gym_hil's pick-cube.
    fps: int = 10
    # Natural-language instruction given to the VLA.
    instruction: str = "pick up the cube"
    # Randomise the cube's xy (the registered task never moves it: one demo replayed open-loop succeeds 100%).
    random_block_position: bool = True
    # Half-width (metres) of the square the cube's xy is drawn from, centred on (0.4, 0). None = gym_hil's own
    # range, [0.3, 0.5] x [-0.15, 0.15]. A narrow range makes a closer, easier variant of the same task.
    cube_range: float | None = None
    # Rendered image side in pixels (square). Must match the policy's image features.
    image_size: int = 64
    # Cameras the policy sees, out of gym_hil's "front" and "wrist".
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    # Software shadows cost ~4x render time on CPU; demos, training and eval must agree on this.
    shadows: bool = False
    # Off-screen multisampling (MuJoCo offsamples). 0 nearly doubles CPU render speed.
    multisamples: int = 0
    # Robot geometry the cameras draw: "visual" (gym_hil's detailed meshes, ~190 k triangles) or "collision" (the
    # Panda's convex collision hulls and finger pads; the cube and floor are the same in both). On CPU, software
    # rasterisation cost follows the triangle count: "collision" renders ~2.4x faster per camera. Physics is
    # identical; demos, training and eval must agree on this.
    render_geometry: str = "visual"
    # Episode time limit in env steps (10 Hz control). gym_hil registers 100; the scripted picker needs ~20, and a
    # failed episode costs its full length in rendering, so the CPU default is 60.
    max_episode_steps: int = 60
    # "sparse" (1 on lift, the success signal) or "dense".
    reward_type: str = "sparse"
    # Potential-based reward shaping weight w (Ng, Harada & Russell 1999): each chunk's reward gains
    # w * (gamma * Phi(s') - Phi(s)), Phi = gym_hil's dense progress (0.3 closeness + 0.7 lift, in [0, 1]) and 0
    # after a terminal step. It leaves the optimal policy unchanged and gives the critic a signal between sparse
    # successes. Logged returns and success stay the env's own. 0 = off.
    shaping: float = 0.0
    # Append the gripper-to-cube offset (simulator, decimetres, 3 numbers) to the policy's state: the state-based
    # variant of the task, which takes cube localisation out of what the policy must learn from pixels. The
    # policy's state feature then has AGENT_STATE_DIM + CUBE_OFFSET_DIM entries. Off: images and robot state only.
    observe_cube: bool = False
    # Seed of the first episode; episode i uses seed + i (the cube comes from numpy's global RNG, seeded per reset).
    seed: int = 0

    privileged_dim: ClassVar[int] = PRIVILEGED_STATE_DIM
    has_progress: ClassVar[bool] = True
    has_demonstrator: ClassVar[bool] = True
    package: ClassVar[str | None] = "gym_hil"
    pip: ClassVar[str | None] = "gym-hil"

    @property
    def gym_kwargs(self) -> dict:
        """``gym.make`` keyword arguments besides the render spec (envs.pick_cube.make_env adds it)."""
        return {
            "image_obs": True,
            "random_block_position": self.random_block_position,
            "reward_type": self.reward_type,
            "reset_delay_seconds": 0.0,
            "max_episode_steps": self.max_episode_steps,
        }

    @property
    def episode_limit(self) -> int | None:
        return self.max_episode_steps  # gym's TimeLimit truncates there

    def describe(self) -> str:
        return (
            f"Task: {self.task}, random cube position: {self.random_block_position}, images {self.image_size}px "
            f"{'+'.join(self.cameras)}, episode limit {self.max_episode_steps} steps."
        )

    def policy_state_dim(self) -> int:
        return policy_state_dim(self)

    def check(self, *, policy: Any, critic_privileged_dim: int) -> None:
        bad = [c for c in self.cameras if c not in ("front", "wrist")]
        if bad or not self.cameras:
            raise EnvSetupError(f"env.cameras={self.cameras!r} is invalid; use 'front' and/or 'wrist'")
        if self.reward_type not in ("sparse", "dense"):
            raise EnvSetupError(f"env.reward_type={self.reward_type!r} is invalid; use 'sparse' or 'dense'")
        if self.render_geometry not in RENDER_GEOM_GROUPS:
            raise EnvSetupError(
                f"env.render_geometry={self.render_geometry!r} is invalid; use one of {sorted(RENDER_GEOM_GROUPS)}"
            )
        state_feature = getattr(policy, "robot_state_feature", None)
        want = policy_state_dim(self)
        if state_feature is not None and tuple(state_feature.shape) != (want,):
            raise EnvSetupError(
                f"policy.input_features.observation.state has shape {list(state_feature.shape)} but "
                f"env.observe_cube={self.observe_cube} feeds {want} numbers; set the state feature (and "
                f"max_state_dim) to [{want}] or flip env.observe_cube"
            )
        super().check(policy=policy, critic_privileged_dim=critic_privileged_dim)

    def build_task_env(self) -> TaskEnv:
        from pirlctl.envs.pick_cube_task import PickCubeTaskEnv

        return PickCubeTaskEnv(self)


def policy_state_dim(env: PickCubeEnv) -> int:
    """Length of the policy's ``observation.state`` for pick-cube: the robot state, plus the cube offset with
    ``env.observe_cube``."""
    return AGENT_STATE_DIM + (CUBE_OFFSET_DIM if env.observe_cube else 0)
