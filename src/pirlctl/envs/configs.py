"""The run config's ``env``: a LeRobot ``EnvConfig`` chosen by ``env.type``.

:class:`TaskEnvConfig` is pirlctl's registry of env types (draccus ``ChoiceRegistry``, as LeRobot's ``EnvConfig``
is): ``pick_cube`` (pirlctl's own fast gym_hil builder, :mod:`pirlctl.envs.pick_cube_config`) and LeRobot 0.6.1's
``pusht``, ``metaworld``, ``aloha`` and ``libero`` configs, each subclassed once to add what an RL actor needs (the
instruction, the episode seed, the shaping weight) and to pass the image size to the gym env where LeRobot does not
(shared/reference/lerobot-envs.md). A config without ``type`` is pick-cube, so configs written before env types
existed load unchanged. Each type checks itself before any process starts (:meth:`TaskEnvConfig.check`): a missing
package names its pip extra, a MetaWorld v2 task name its v3 one, a missing LIBERO assets folder how to provide it.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import draccus
from lerobot.envs.configs import AlohaEnv, LiberoEnv, MetaworldEnv, PushtEnv

from pirlctl.envs.base import EnvSetupError

if TYPE_CHECKING:
    from pirlctl.envs.base import Demonstrator, TaskEnv

DEFAULT_ENV_TYPE = "pick_cube"


@dataclass
class TaskEnvConfig(draccus.ChoiceRegistry):
    """The settings every pirlctl env type has, and its registry. Each type is also a LeRobot ``EnvConfig`` (this
    class comes first in its bases, so ``type`` names come from pirlctl's registry, LeRobot's keeps its own)."""

    if TYPE_CHECKING:  # from the LeRobot EnvConfig every registered type also is
        task: str | None = None
        fps: int = 30

        @property
        def gym_kwargs(self) -> dict: ...

        def get_env_processors(self) -> Any: ...

    # Natural-language instruction given to the VLA when the env has none of its own (MetaWorld and LIBERO tasks
    # carry a `task_description`, which wins). Empty: the gym task id.
    instruction: str = ""
    # Potential-based reward shaping weight w (Ng, Harada & Russell 1999), 0 = off; needs an env type with a
    # progress potential (pick_cube).
    shaping: float = 0.0
    # Seed of the first episode; episode i uses seed + i.
    seed: int = 0

    # capabilities of the type (class constants, not settings)
    privileged_dim: ClassVar[int] = 0  # width of the simulator state an asymmetric critic may read; 0 = none
    has_progress: ClassVar[bool] = False  # a progress potential for reward shaping
    has_demonstrator: ClassVar[bool] = False  # a scripted demonstrator for `pirlctl train`'s demos
    package: ClassVar[str | None] = None  # the import that provides the gym env
    pip: ClassVar[str | None] = None  # what `pip install` needs to provide it (LeRobot's extra for its envs)

    @classmethod
    def default_choice_name(cls) -> str | None:
        return DEFAULT_ENV_TYPE

    @property
    def type(self) -> str:
        return TaskEnvConfig.get_choice_name(self.__class__)

    @property
    def episode_limit(self) -> int | None:
        """Env steps after which the adapter ends an episode as truncated (LIBERO never truncates by itself)."""
        limit = getattr(self, "episode_length", None)
        return int(limit) if limit else None

    def policy_state_dim(self) -> int | None:
        """Length of the policy's ``observation.state`` this env feeds (LeRobot's ``agent_pos`` feature); None = not
        checked against the policy."""
        return _flat_dim(getattr(self, "features", {}).get("agent_pos"))

    def describe(self) -> str:
        """One sentence for reports: the task and its episode limit."""
        limit = f"{self.episode_limit} steps" if self.episode_limit else "the env's own"
        return f"Task: {self.type} {self.task}, episode limit {limit}."

    def env_action_dim(self) -> int | None:
        """Length of the action this env takes (LeRobot's ``action`` feature); None = not checked."""
        return _flat_dim(getattr(self, "features", {}).get("action"))

    def check(self, *, policy: Any, critic_privileged_dim: int) -> None:
        """Raise :class:`EnvSetupError` (one line naming the fix) if this env cannot run as configured."""
        if not (isinstance(self.shaping, int | float) and 0.0 <= self.shaping < float("inf")):
            raise EnvSetupError(f"env.shaping={self.shaping!r} is invalid; use a weight >= 0 (0 turns it off)")
        if self.shaping and not self.has_progress:
            raise EnvSetupError(
                f"env.shaping={self.shaping} needs a progress potential, which env.type={self.type} does not have; "
                "set env.shaping=0"
            )
        if critic_privileged_dim not in (0, self.privileged_dim):
            have = f"use {self.privileged_dim} (asymmetric critic) or 0" if self.privileged_dim else "set it to 0"
            raise EnvSetupError(
                f"algorithm.critic_privileged_dim={critic_privileged_dim!r} does not match env.type={self.type}'s "
                f"privileged state ({self.privileged_dim} numbers); {have} (0: the critic reads policy features only)"
            )
        state_feature = getattr(policy, "robot_state_feature", None)
        want = self.policy_state_dim()
        if want is not None and state_feature is not None and tuple(state_feature.shape) != (want,):
            raise EnvSetupError(
                f"policy.input_features.observation.state has shape {list(state_feature.shape)} but env.type="
                f"{self.type} feeds {want} numbers; set the state feature (and max_state_dim) to [{want}]"
            )
        action_feature = getattr(policy, "action_feature", None)
        act = self.env_action_dim()
        if act is not None and action_feature is not None and tuple(action_feature.shape) != (act,):
            raise EnvSetupError(
                f"policy.output_features.action has shape {list(action_feature.shape)} but env.type={self.type} "
                f"takes {act} numbers; set it (and max_action_dim) to [{act}]"
            )
        self.check_installed()

    def check_installed(self) -> None:
        if self.package is not None and importlib.util.find_spec(self.package) is None:
            raise EnvSetupError(
                f"env.type={self.type} needs the {self.package!r} package, which is not installed; install it: "
                f"pip install {self.pip}"
            )

    def build_task_env(self) -> TaskEnv:
        """One env of this type behind the :class:`pirlctl.envs.base.TaskEnv` interface."""
        from pirlctl.envs.lerobot_env import LeRobotTaskEnv

        return LeRobotTaskEnv(self)

    def prepare_gym_env(self, gym_env: Any) -> None:
        """Called once on each gym env LeRobot's ``make_env`` made, before its first reset."""

    def make_demonstrator(
        self, *, noise_std: float, aim_error: float, aim_bias: list[float], seed: int
    ) -> Demonstrator:
        """The type's scripted demonstrator for ``pirlctl train``'s demos (``has_demonstrator``), degraded by the
        ``pipeline.demo_*`` settings of those names."""
        raise EnvSetupError(
            f"env.type={self.type} has no scripted demonstrator for pirlctl's demos; start from your own SFT "
            "policy instead: set policy_path to a LeRobot policy folder (e.g. lerobot-train on your dataset)"
        )


def _flat_dim(feature: Any) -> int | None:
    shape = getattr(feature, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) == 1 else None


@TaskEnvConfig.register_subclass("pusht")
@dataclass
class PushtTaskConfig(TaskEnvConfig, PushtEnv):
    """LeRobot's pusht. ``observation_height``/``observation_width`` reach gym_pusht here (LeRobot 0.6.1 leaves
    it at 96 px whatever they say)."""

    instruction: str = "push the T-shaped block onto the target"
    observation_height: int = 96
    observation_width: int = 96

    package: ClassVar[str | None] = "gym_pusht"
    pip: ClassVar[str | None] = "'lerobot[pusht]'"

    @property
    def gym_kwargs(self) -> dict:
        return {
            **super().gym_kwargs,
            "observation_height": self.observation_height,
            "observation_width": self.observation_width,
        }


@TaskEnvConfig.register_subclass("aloha")
@dataclass
class AlohaTaskConfig(TaskEnvConfig, AlohaEnv):
    """LeRobot's aloha (gym_aloha renders three 480x640 cameras every step: ~5 steps/s on CPU). Its image reaches
    the policy at ``observation_height`` x ``observation_width``, resized after rendering (gym_aloha ignores them)."""

    package: ClassVar[str | None] = "gym_aloha"
    pip: ClassVar[str | None] = "'lerobot[aloha]'"


@cache
def metaworld_tasks() -> dict[str, Any]:
    """LeRobot's MetaWorld task table (``lerobot/envs/metaworld_config.json``), read without importing MetaWorld."""
    import lerobot.envs

    return json.loads((Path(lerobot.envs.__file__).parent / "metaworld_config.json").read_text())


@TaskEnvConfig.register_subclass("metaworld")
@dataclass
class MetaworldTaskConfig(TaskEnvConfig, MetaworldEnv):
    """LeRobot's metaworld with a v3 task (MetaWorld 3.0 has no v2 tasks), a settable image size (LeRobot
    0.6.1 always renders 480 px), a state observation without rendering, and MetaWorld's scripted experts as the
    demonstrator (:mod:`pirlctl.envs.metaworld`)."""

    task: str = "metaworld-push-v3"
    # "pixels_agent_pos" (LeRobot's: a rendered camera and the hand's 4 numbers), "pixels" (the camera only) or
    # "state" (pirlctl's: MetaWorld's whole 39-number observation, objects and goal included, and no rendering,
    # ~50x the env steps per second on CPU; the policy's camera then sees a constant black placeholder frame of
    # observation_height x observation_width, since pirlctl's flow policies all require one).
    obs_type: str = "pixels_agent_pos"
    # "dense" (MetaWorld's shaped reward, up to 10 per step) or "sparse" (1 on the success step; obs_type="state"
    # only). The episode ends on success, so the dense reward pays a policy for lingering short of it.
    reward_type: str = "dense"
    observation_height: int = 480
    observation_width: int = 480

    package: ClassVar[str | None] = "metaworld"
    pip: ClassVar[str | None] = "'lerobot[metaworld]'"
    has_demonstrator: ClassVar[bool] = True
    has_progress: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.obs_type == "state":  # LeRobot's config refuses it: the features of pirlctl's state env
            from lerobot.configs.types import FeatureType, PolicyFeature

            self.features["agent_pos"] = PolicyFeature(type=FeatureType.STATE, shape=(39,))
            self.features["pixels/top"] = PolicyFeature(type=FeatureType.VISUAL, shape=(480, 480, 3))
        else:
            super().__post_init__()
        for key, feature in self.features.items():
            if key in ("top", "pixels/top"):
                feature.shape = (self.observation_height, self.observation_width, 3)

    @property
    def gym_kwargs(self) -> dict:
        return {
            **super().gym_kwargs,
            "observation_height": self.observation_height,
            "observation_width": self.observation_width,
        }

    @property
    def task_names(self) -> list[str]:
        """The single tasks ``task`` names (a comma list of tasks or difficulty groups)."""
        table = metaworld_tasks()
        names: list[str] = []
        for group in (t.strip().removeprefix("metaworld-") for t in self.task.split(",") if t.strip()):
            names += table["DIFFICULTY_TO_TASKS"].get(group, [group])
        return names

    def create_envs(self, n_envs: int, use_async_envs: bool = False) -> dict:
        if self.obs_type != "state":
            return super().create_envs(n_envs, use_async_envs)
        from pirlctl.envs.metaworld import create_state_envs

        return create_state_envs(
            self.task_names[0],
            n_envs,
            reward_type=self.reward_type,
            placeholder_side=self.observation_height,
        )

    def build_task_env(self) -> TaskEnv:
        from pirlctl.envs.metaworld import MetaworldTaskEnv

        return MetaworldTaskEnv(self)

    def make_demonstrator(
        self, *, noise_std: float, aim_error: float, aim_bias: list[float], seed: int
    ) -> Demonstrator:
        from pirlctl.envs.metaworld import MetaworldExpert

        return MetaworldExpert(
            self.task_names[0], noise_std=noise_std, aim_error=aim_error, aim_bias=aim_bias, seed=seed
        )

    def check(self, *, policy: Any, critic_privileged_dim: int) -> None:
        if self.obs_type not in ("pixels", "pixels_agent_pos", "state"):
            raise EnvSetupError(
                f"env.obs_type={self.obs_type!r} is invalid; use 'state', 'pixels_agent_pos' or 'pixels'"
            )
        if self.reward_type not in ("dense", "sparse") or (self.reward_type == "sparse" and self.obs_type != "state"):
            raise EnvSetupError(
                f"env.reward_type={self.reward_type!r} is invalid with env.obs_type={self.obs_type!r}; use 'dense', "
                "or 'sparse' with env.obs_type='state'"
            )
        if self.obs_type == "state" and self.observation_height != self.observation_width:
            raise EnvSetupError(
                f"env.observation_height={self.observation_height} and observation_width={self.observation_width} "
                "differ; with env.obs_type='state' the placeholder frame is square: set both to one size, e.g. 32"
            )
        known = metaworld_tasks()["TASK_DESCRIPTIONS"]
        for name in self.task_names:
            if name in known:
                continue
            v3 = name[: -len("-v2")] + "-v3" if name.endswith("-v2") else None
            if v3 in known:
                raise EnvSetupError(
                    f"env.task={self.task!r} names the MetaWorld v2 task {name!r}; MetaWorld 3.0 has v3 tasks only: "
                    f"set env.task=metaworld-{v3}"
                )
            close = difflib.get_close_matches(name, list(known), n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else "see lerobot/envs/metaworld_config.json"
            raise EnvSetupError(f"env.task={self.task!r}: MetaWorld has no task {name!r}; {hint}")
        super().check(policy=policy, critic_privileged_dim=critic_privileged_dim)

    def prepare_gym_env(self, gym_env: Any) -> None:
        if self.obs_type == "state":
            return  # nothing rendered for observations; render() keeps LeRobot's 480 px for strips
        from pirlctl.envs.lerobot_env import size_metaworld_renderer

        size_metaworld_renderer(gym_env.unwrapped, self.observation_width, self.observation_height)


def libero_config_dir() -> Path:
    """Where LIBERO reads ``config.yaml`` (``LIBERO_CONFIG_PATH``, else ``~/.libero``)."""
    return Path(os.environ.get("LIBERO_CONFIG_PATH", os.path.expanduser("~/.libero")))


def libero_assets_dir() -> Path | None:
    """The assets folder LIBERO will load scenes from: ``config.yaml``'s ``assets``, else the package's default
    (``libero/libero/assets``, which hf-libero does not ship). None when neither is known."""
    import yaml

    config = libero_config_dir() / "config.yaml"
    if config.is_file():
        assets = (yaml.safe_load(config.read_text()) or {}).get("assets")
        if assets:
            return Path(assets)
    spec = importlib.util.find_spec("libero")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "libero" / "assets"


@TaskEnvConfig.register_subclass("libero")
@dataclass
class LiberoTaskConfig(TaskEnvConfig, LiberoEnv):
    """LeRobot's libero. Needs LIBERO's assets folder locally (hf-libero ships none and the first reset would
    download it from the hub); its interactive first-run question is answered before LIBERO is imported."""

    package: ClassVar[str | None] = "libero"
    pip: ClassVar[str | None] = "'lerobot[libero]'"

    def check(self, *, policy: Any, critic_privileged_dim: int) -> None:
        super().check(policy=policy, critic_privileged_dim=critic_privileged_dim)
        check_libero_assets()

    def build_task_env(self) -> TaskEnv:
        from pirlctl.envs.lerobot_env import LeRobotTaskEnv, answer_libero_first_run

        check_libero_assets()
        answer_libero_first_run()
        return LeRobotTaskEnv(self)


def check_libero_assets() -> None:
    assets = libero_assets_dir()
    if assets is None or not assets.is_dir() or not any(assets.iterdir()):
        where = assets if assets is not None else libero_config_dir() / "config.yaml"
        raise EnvSetupError(
            f"LIBERO's assets folder {where} is missing (hf-libero does not ship it and the hub is unreachable); copy "
            f"LIBERO's assets/ (scenes, meshes, textures) there, or set `assets:` in "
            f"{libero_config_dir() / 'config.yaml'} (or LIBERO_CONFIG_PATH's config.yaml) to a copy"
        )
