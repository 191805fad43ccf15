"""gym_hil pick-cube, headless, as the policy sees it.

Traps handled here (shared/reference/lerobot-runtime.md): ``MUJOCO_GL`` must be set before MuJoCo loads (we
default it to osmesa); the 1 s reset delay is switched off; the cube position comes from numpy's global RNG, so
each episode seeds it; shadows and multisampling are set on a fresh renderer; only one image env per process
(closing a second one silently breaks rendering in the first), so callers keep one env for the process lifetime.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pirlctl.envs.base import ChunkOutcome, shaped_reward  # noqa: F401  (shaped_reward: re-exported)
from pirlctl.envs.opspace import install_fast_controller
from pirlctl.envs.pick_cube_config import (
    CUBE_OFFSET_DIM,
    PRIVILEGED_STATE_DIM,
    RENDER_GEOM_GROUPS,
)
from pirlctl.envs.pick_cube_config import PickCubeEnv as EnvSettings

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

log = logging.getLogger("pirlctl.env")

STATE_KEY = "observation.state"
GRIPPER_STATE_INDEX = 14  # commanded gripper, raw 0..255 in gym_hil
GRIPPER_SCALE = 255.0
ACTION_DIM = 4  # dx, dy, dz in [-1, 1] (× 2.5 cm), gripper in [0, 2] (0 open, 1 hold, 2 close)


def image_key(camera: str) -> str:
    return f"observation.images.{camera}"


def make_env(settings: EnvSettings, *, fast_controller: bool = True) -> Any:
    """The gymnasium env with images on, configured for CPU rendering. ``fast_controller`` swaps in
    :class:`pirlctl.envs.opspace.OpspaceController`, gym_hil's arm controller without its per-call overhead (same
    torques; checked against gym_hil's at install)."""
    import gym_hil  # noqa: F401  (registers the gym_hil ids)
    import gymnasium as gym
    from gym_hil.mujoco_gym_env import GymRenderingSpec

    env = gym.make(
        settings.task,
        **settings.gym_kwargs,
        render_spec=GymRenderingSpec(height=settings.image_size, width=settings.image_size),
        # gymnasium's passive checker inspects the first step's observation, which run_chunk leaves unrendered
        disable_env_checker=True,
    )
    configure_renderer(env.unwrapped, settings)
    _install_render_switch(env.unwrapped)
    if fast_controller and not install_fast_controller(env.unwrapped):
        log.warning(
            "gym_hil's arm controller differs from pirlctl's copy (gym_hil %s); stepping with gym_hil's own, slower",
            _gym_hil_version(),
        )
    set_cube_range(settings.cube_range)
    return env


def _gym_hil_version() -> str:
    from importlib.metadata import version

    return version("gym-hil")


def _install_render_switch(base_env: Any) -> None:
    """Let :func:`run_chunk` skip the cameras on the steps whose observation nobody reads. gym_hil renders every
    camera inside every ``step``; with the switch off its observation carries ``None`` frames instead."""
    render = base_env.render

    def switched_render() -> list[Any]:
        return render() if base_env.pirl_render else [None] * len(base_env.camera_id)

    base_env.pirl_render = True
    base_env.render = switched_render


def camera_frames(env: Any) -> dict[str, np.ndarray]:
    """Every camera's frame of the simulator's current state, rendered now (gym_hil's cameras: front, wrist), also
    from inside :func:`run_chunk` (whose switch may be off for the step)."""
    base = env.unwrapped
    switch = getattr(base, "pirl_render", True)
    base.pirl_render = True
    try:
        front, wrist = base.render()
    finally:
        base.pirl_render = switch
    return {"front": front, "wrist": wrist}


def render_observation(env: Any, obs: dict[str, Any]) -> dict[str, Any]:
    """``obs`` with its camera frames rendered now, exactly as the step that produced it would have."""
    return {**obs, "pixels": camera_frames(env)}


def run_chunk(
    env: Any,
    actions: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    on_step: Callable[[np.ndarray], None] | None = None,
) -> ChunkOutcome:
    """Execute a chunk's actions in order (clipped to [low, high]) until the episode ends.

    The policy reads only the observation after the chunk, so the cameras render once per chunk, not once per
    env step: rendering is most of an env step on CPU (bench/render_speed.py). Physics, rewards and the returned
    observation are exactly those of stepping with rendering on. ``on_step(action)`` runs before each step.
    """
    base = env.unwrapped
    reward, terminated, truncated, success, n = 0.0, False, False, False, 0
    obs: dict[str, Any] = {}
    try:
        for i, a in enumerate(actions):
            action = np.clip(a, low, high)
            if on_step is not None:
                on_step(action)
            base.pirl_render = i == len(actions) - 1
            obs, r, terminated, truncated, info = env.step(action)
            reward += float(r)
            n += 1
            if terminated or truncated:
                success = is_success(float(r), bool(terminated), info)
                break
    finally:
        base.pirl_render = True
    if n < len(actions):
        obs = render_observation(env, obs)
    return ChunkOutcome(obs, reward, bool(terminated), bool(truncated), success, n)


GYM_HIL_CUBE_BOUNDS = ((0.3, -0.15), (0.5, 0.15))
CUBE_CENTRE = (0.4, 0.0)


def set_cube_range(half_width: float | None) -> None:
    """Cube xy sampling square. gym_hil reads a module constant at every reset: one env per process, so setting
    it for the process is setting it for the env."""
    from gym_hil.envs import panda_pick_gym_env as pick

    if half_width is None:
        pick._SAMPLING_BOUNDS = np.asarray(GYM_HIL_CUBE_BOUNDS)
    else:
        cx, cy = CUBE_CENTRE
        pick._SAMPLING_BOUNDS = np.asarray([[cx - half_width, cy - half_width], [cx + half_width, cy + half_width]])


def render_geom_groups(geometry: str) -> tuple[int, ...]:
    try:
        return RENDER_GEOM_GROUPS[geometry]
    except KeyError:
        raise ValueError(
            f"env.render_geometry={geometry!r} is not known; use one of {sorted(RENDER_GEOM_GROUPS)}"
        ) from None


def configure_renderer(base_env: Any, settings: EnvSettings) -> None:
    """Rebuild the env's renderer with the configured multisampling, shadows and robot geometry.

    gym_hil renders with ``update_scene(data, camera=...)`` and no scene option, which falls back to the
    renderer's own ``_scene_option``: the geom-group mask is set there.
    """
    import mujoco

    groups = render_geom_groups(settings.render_geometry)
    model = base_env._model
    model.vis.quality.offsamples = int(settings.multisamples)
    if base_env._viewer is not None:
        base_env._viewer.close()
    renderer = mujoco.Renderer(model, height=settings.image_size, width=settings.image_size)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(bool(settings.shadows))
    option = renderer._scene_option
    for g in range(len(option.geomgroup)):
        option.geomgroup[g] = int(g in groups)
    base_env._viewer = renderer


def reset_episode(env: Any, seed: int) -> dict[str, Any]:
    """Reset with a reproducible cube position: gym_hil draws it from numpy's global RNG."""
    np.random.seed(seed % (2**32))
    obs, _ = env.reset(seed=seed)
    return obs


def observation_to_policy(obs: dict[str, Any], settings: EnvSettings, env: Any = None) -> dict[str, torch.Tensor]:
    """gym_hil observation -> LeRobot policy keys, unbatched: images [3,H,W] in [0,1], state [18] (with
    ``settings.observe_cube``, [21]: the gripper-to-cube offset read from ``env``, whose state must be that of
    ``obs``)."""
    out: dict[str, torch.Tensor] = {}
    for cam in settings.cameras:
        if obs["pixels"][cam] is None:
            raise ValueError(
                f"camera {cam!r} was not rendered for this observation; step with run_chunk, which renders the "
                "observation after each chunk, or call render_observation(env, obs)"
            )
        img = np.asarray(obs["pixels"][cam])
        out[image_key(cam)] = torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)
    state = torch.as_tensor(np.asarray(obs["agent_pos"], dtype=np.float32)).clone()
    state[GRIPPER_STATE_INDEX] = state[GRIPPER_STATE_INDEX] / GRIPPER_SCALE
    if settings.observe_cube:
        if env is None:
            raise ValueError("env.observe_cube is on: pass the env to observation_to_policy to read the cube offset")
        state = torch.cat([state, torch.from_numpy(cube_offset(privileged_pose(env)))])
    out[STATE_KEY] = state
    return out


def is_success(reward: float, terminated: bool, info: dict[str, Any]) -> bool:
    return bool(info.get("succeed", False)) or (terminated and reward >= 1.0)


@dataclass
class CubePose:
    cube: np.ndarray  # xyz
    tcp: np.ndarray  # xyz of the pinch point


def privileged_pose(env: Any) -> CubePose:
    """Cube and gripper positions from the simulator, for the scripted demonstrator, the reward shaping and the
    asymmetric critic (the policy sees it only with ``env.observe_cube``)."""
    data = env.unwrapped._data
    return CubePose(np.array(data.sensor("block_pos").data), np.array(data.sensor("2f85/pinch_pos").data))


def progress_potential(env: Any) -> float:
    """Phi(s) in [0, 1] for potential-based shaping: gym_hil's dense pick-cube reward (0.3 * exp(-20 * distance
    gripper-cube) + 0.7 * lift fraction), read from the simulator, never shown to the policy."""
    pose = privileged_pose(env)
    close = float(np.exp(-20.0 * np.linalg.norm(pose.cube - pose.tcp)))
    return 0.3 * close + 0.7 * lift_fraction(env, pose)


def lift_fraction(env: Any, pose: CubePose) -> float:
    """How far the cube is lifted towards gym_hil's success height, in [0, 1]."""
    base = env.unwrapped
    return float(np.clip((pose.cube[2] - base._z_init) / (base._z_success - base._z_init), 0.0, 1.0))


def cube_offset(pose: CubePose) -> np.ndarray:
    """Cube minus pinch point, in decimetres (``CUBE_OFFSET_DIM`` numbers): what ``env.observe_cube`` shows the
    policy, and the first part of the critic's privileged state."""
    out = (10.0 * (pose.cube - pose.tcp)).astype(np.float32)
    assert out.shape == (CUBE_OFFSET_DIM,)
    return out


def privileged_state(env: Any) -> np.ndarray:
    """The asymmetric critic's simulator-only input (``PRIVILEGED_STATE_DIM`` numbers): the gripper-to-cube offset
    in decimetres and the lift fraction. The policy does not read it (with ``env.observe_cube`` it reads the same
    offset in its state); evaluation does not use it."""
    pose = privileged_pose(env)
    out = np.concatenate([cube_offset(pose), [lift_fraction(env, pose)]]).astype(np.float32)
    assert out.shape == (PRIVILEGED_STATE_DIM,)
    return out


class ScriptedPicker:
    """EE-delta demonstrator: hover 5 cm above the cube, descend, close within ~8 mm, lift; re-open on a miss.

    :meth:`act` returns ``(executed, label)``. ``noise_std`` perturbs the *executed* xyz command while the label
    stays the controller's clean command (DART-style noise injection: the demos visit off-nominal states and show
    how to recover from them). ``aim_error`` offsets the believed cube xy per episode, so the labels themselves are
    imperfect: behaviour cloning on a few such demos gives a mediocre policy. ``aim_bias`` (xyz metres) is a constant
    offset of the believed cube position, a miscalibrated demonstrator: every label aims beside the cube.
    ``aim_scale`` is a scale error of the believed cube xy about the table centre (a camera whose scale is off): the
    demonstrator aims at ``cube + aim_scale * (cube - centre)``, on target at the centre and further beside the cube
    the further out it lies. With ``retry`` a missed lift re-opens and tries again; without it the first miss is
    final (:attr:`missed`).
    """

    STEP = 0.025  # metres per unit action

    def __init__(
        self,
        noise_std: float = 0.0,
        aim_error: float = 0.0,
        aim_bias: list[float] | None = None,
        seed: int = 0,
        retry: bool = True,
        aim_scale: float = 0.0,
    ) -> None:
        self.noise_std, self.aim_error, self.retry, self.aim_scale = noise_std, aim_error, retry, aim_scale
        self.aim_bias = np.zeros(3) if aim_bias is None else np.asarray(aim_bias, dtype=float)
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.phase = "approach"
        self.timer = 0
        self.missed = False  # a lift that left the cube on the table (without retry, the episode is lost)
        self.offset = self.aim_bias.copy()
        if self.aim_error > 0:
            self.offset[:2] += self.rng.normal(0.0, self.aim_error, size=2)

    def act(self, env: Any) -> tuple[np.ndarray, np.ndarray]:
        pose = privileged_pose(env)
        cube = pose.cube + self.offset
        cube[:2] += self.aim_scale * (pose.cube[:2] - np.asarray(CUBE_CENTRE))
        gripper = 1.0
        if self.phase == "approach":
            target = cube + np.array([0.0, 0.0, 0.05])
            gripper = 0.0
            if np.linalg.norm((target - pose.tcp)[:2]) < 0.01 and abs(target[2] - pose.tcp[2]) < 0.02:
                self.phase = "descend"
        elif self.phase == "descend":
            target = cube.copy()
            gripper = 0.0
            if np.linalg.norm(target - pose.tcp) < 0.008 or self.timer > 12:
                self.phase, self.timer = "close", 0
        elif self.phase == "close":
            target = pose.tcp
            gripper = 2.0
            if self.timer >= 3:
                self.phase, self.timer = "lift", 0
        else:  # lift
            target = pose.tcp + np.array([0.0, 0.0, 0.05])
            gripper = 2.0
            if self.timer > 8 and pose.cube[2] < 0.04:  # missed: re-open and retry
                self.missed = True
                if self.retry:
                    self.phase, self.timer = "approach", 0
        self.timer += 1
        xyz = np.clip((target - pose.tcp) / self.STEP, -1.0, 1.0)
        label = np.concatenate([xyz, [gripper]]).astype(np.float32)
        executed = label.copy()
        if self.noise_std > 0:
            executed[:3] = np.clip(xyz + self.rng.normal(0.0, self.noise_std, size=3), -1.0, 1.0)
        return executed, label
