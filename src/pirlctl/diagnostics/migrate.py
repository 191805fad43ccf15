"""LeRobot 0.6.1 SAC run config -> PI-RL run config, with a report of what changed and what the user must decide.

The input is the JSON that ``lerobot-train-rl`` reads (``lerobot.rl.train_rl.TrainRLServerPipelineConfig``, encoded
by draccus): ``policy.type = "gaussian_actor"`` plus ``algorithm.type = "sac"`` (or a pre-0.6 ``policy.type = "sac"``
that carried the SAC hyperparameters itself), and usually a ``gym_manipulator`` env (HIL-SERL on gym_hil or a real
robot). It is read as a plain dict: parsing it into LeRobot's dataclasses would run their ``validate``, which has
known 0.6.1 defects (``dataset: null`` crashes it, upstream issue 1546; a ``processor.reset`` block cannot even be
encoded by draccus), and those defects must not stop a migration.

Every SAC field ends up in exactly one of three groups: *changes* (moved, rewritten or dropped, with the reason),
*stays the same*, and *you must decide* (a SAC setting with no PI-RL equivalent whose value mattered, or a choice
PI-RL needs that SAC's value cannot make). Fields the migration does not recognise are never dropped silently:
a non-empty one lands in *you must decide*.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, PolicyFeature

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.config.run_config import EnvSettings, PiRLRunConfig, RuntimeSettings, encode_run_config, load_run_config
from pirlctl.policies.loading import TINY_XVLA_CONFIG, load_policy_config

SUPPORTED_POLICIES = ("xvla",)
SAC_POLICY_TYPES = ("gaussian_actor", "sac")  # "sac" is the pre-0.6 name of the Gaussian actor policy
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
GYM_HIL_CAMERAS = ("front", "wrist")  # what pirlctl's actor renders (EnvSettings.cameras)
GYM_HIL_FPS = 10  # gym_hil's control rate; pirlctl's env runs at it (lerobot-runtime.md)
GYM_HIL_TIME_LIMIT = 100  # gym_hil registers its tasks with max_episode_steps=100
# gym_hil pick-cube as pirlctl's actor feeds it (lerobot-runtime.md): agent_pos (18) and dx, dy, dz, gripper (4).
GYM_HIL_STATE_DIM = 18
GYM_HIL_ACTION_DIM = 4
GYM_HIL_TELEOP_SUFFIXES = ("Keyboard", "Gamepad", "Viewer", "Base")  # display/teleop variants of one task
PICK_CUBE_TASK = "PandaPickCube-v0"
LOOPBACK = ("127.0.0.1", "localhost", "::1")

# SAC hyperparameters: in 0.6.1 on `algorithm`, before that on the (then "sac") policy.
SAC_ALGORITHM_FIELDS = (
    "actor_lr",
    "critic_lr",
    "temperature_lr",
    "discount",
    "use_backup_entropy",
    "critic_target_update_weight",
    "num_critics",
    "num_subsample_critics",
    "critic_network_kwargs",
    "discrete_critic_network_kwargs",
    "temperature_init",
    "target_entropy",
    "utd_ratio",
    "policy_update_freq",
    "grad_clip_norm",
    "use_torch_compile",
    "policy_config",
)


class MigrationError(ValueError):
    """The migration cannot run; the message names the problem and the fix (one line)."""


@dataclass
class MigrationItem:
    """One line of the report: a SAC field (or fields), where it went, and why."""

    # SAC field(s), dotted from the top of the SAC config ("" for a PI-RL setting with no SAC source).
    field: str
    # Value in the SAC config.
    old: Any
    # Value written to the PI-RL config (None when nothing is written for it).
    new: Any
    # PI-RL field(s), dotted; None when the SAC field is not carried over.
    target: str | None
    # Why (for a change), or what to choose and how (for a decision).
    why: str


@dataclass
class MigrationReport:
    source: str
    output: str | None
    written: bool
    dry_run: bool
    # The flow policy written: the tiny X-VLA config, or the checkpoint folder given with --policy-path.
    policy: str
    # The SAC run's offline dataset (demonstrations); PI-RL does not read it (see you_must_decide).
    dataset_repo_id: str | None
    changes: list[MigrationItem] = field(default_factory=list)
    stays_the_same: list[MigrationItem] = field(default_factory=list)
    you_must_decide: list[MigrationItem] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# Reading and checking the input
# ---------------------------------------------------------------------------------------------------------------


def read_sac_config(path: str | Path) -> dict[str, Any]:
    """The SAC run config as a dict; :class:`MigrationError` when it is missing, unreadable, not JSON or not SAC.

    Errors are raised outside ``except`` blocks on purpose: the CLI prints the root cause of an exception chain,
    and an implicit ``__context__`` would replace this message with the low-level one.
    """
    p = Path(path)
    problem: str | None = None
    text = ""
    if not p.exists():
        problem = f"SAC config {p} not found; pass the JSON file lerobot-train-rl reads (its --config_path)"
    elif p.is_dir():
        hint = p / "train_config.json"
        fix = f"pass {hint}" if hint.is_file() else "pass the JSON file inside it (e.g. train_config.json)"
        problem = f"SAC config {p} is a directory; {fix}"
    else:
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problem = f"SAC config {p} is not JSON (not UTF-8 text); pass the JSON file lerobot-train-rl reads"
        except OSError as err:
            problem = f"SAC config {p} is unreadable ({err.strerror}); fix its permissions or pass a readable copy"
    if problem is not None:
        raise MigrationError(problem)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        problem = (
            f"SAC config {p} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
            "fix the file or pass the train_config.json LeRobot saved"
        )
    if problem is not None:
        raise MigrationError(problem)
    check_is_sac(data, str(p))
    return data  # type: ignore[no-any-return]


def check_is_sac(data: Any, source: str = "input") -> None:
    """A SAC run config: ``algorithm.type == "sac"``, or no algorithm and a Gaussian-actor/SAC policy."""
    fix = "pass a LeRobot SAC run config (algorithm.type 'sac', policy.type 'gaussian_actor')"
    if not isinstance(data, dict):
        raise MigrationError(f"{source} is not a run config (top level is a JSON {type(data).__name__}); {fix}")
    algo = data.get("algorithm")
    algo_type = algo.get("type") if isinstance(algo, dict) else None
    policy = data.get("policy")
    policy_type = policy.get("type") if isinstance(policy, dict) else None
    if algo_type == "pi_rl" or (isinstance(data.get("runtime"), dict) and algo_type is None):
        raise MigrationError(f"{source} is already a PI-RL run config; use it as is with `pirlctl learner`")
    if algo_type is not None and algo_type != "sac":
        raise MigrationError(f"{source} is not a SAC run config (algorithm.type={algo_type!r}); {fix}")
    if algo_type is None and policy_type not in SAC_POLICY_TYPES:
        raise MigrationError(
            f"{source} is not a SAC run config (no algorithm, policy.type={policy_type!r}); {fix}"
        )
    if not isinstance(policy, dict):
        raise MigrationError(f"{source} has no policy section; {fix}")


# ---------------------------------------------------------------------------------------------------------------
# The flow policy
# ---------------------------------------------------------------------------------------------------------------


def load_flow_policy_config(policy: str, policy_path: str | Path | None) -> tuple[PreTrainedConfig, str]:
    """The X-VLA config to write: the tiny default, or the config.json of a local LeRobot checkpoint folder."""
    if policy not in SUPPORTED_POLICIES:
        raise MigrationError(
            f"--policy {policy!r} is not supported; use --policy xvla (the only flow policy pirlctl adapts)"
        )
    if policy_path is None:
        return load_policy_config(TINY_XVLA_CONFIG), str(TINY_XVLA_CONFIG)
    folder = Path(policy_path)
    cfg_file = folder / "config.json"
    problem: str | None = None
    cfg: PreTrainedConfig | None = None
    if not folder.is_dir():
        problem = (
            f"--policy-path {folder} is not a directory; pass a local LeRobot checkpoint folder with config.json "
            "(e.g. .../checkpoints/last/pretrained_model)"
        )
    elif not cfg_file.is_file():
        problem = f"--policy-path {folder} has no config.json; pass the pretrained_model folder of a LeRobot checkpoint"
    else:
        try:
            cfg = load_policy_config(cfg_file)
        except BaseException as err:  # noqa: BLE001 - draccus raises many kinds (and SystemExit) on a bad file
            if isinstance(err, KeyboardInterrupt):
                raise
            from pirlctl.errors import one_line

            why = one_line(err)[:160]
            problem = f"--policy-path {cfg_file} is not a LeRobot policy config ({why}); pass a checkpoint folder"
    if problem is not None or cfg is None:
        raise MigrationError(problem or f"--policy-path {cfg_file} could not be read")
    if cfg.type != policy:
        raise MigrationError(
            f"--policy-path {folder} holds a {cfg.type!r} policy, not {policy!r}; pass an X-VLA checkpoint folder"
        )
    return cfg, str(folder.resolve())


def xvla_tokens_per_view(policy_cfg: Any, height: int, width: int) -> tuple[int, int, int] | None:
    """(tokens per camera, final grid height, final grid width) for X-VLA's Florence-2 encoder at this image size.

    Each DaViT stage is a strided conv: out = (in + 2·pad − kernel) // stride + 1. The projector emits one spatial
    mean token plus one token per final grid cell (``Florence2MultiModalProjector.forward``). None when the vision
    config is not in transformers' native format (an original Microsoft checkpoint config).
    """
    vision = (getattr(policy_cfg, "florence_config", None) or {}).get("vision_config") or {}
    try:
        kernels, strides, pads = vision["patch_size"], vision["patch_stride"], vision["patch_padding"]
        for k, s, p in zip(kernels, strides, pads, strict=True):
            height = (height + 2 * int(p) - int(k)) // int(s) + 1
            width = (width + 2 * int(p) - int(k)) // int(s) + 1
    except (KeyError, TypeError, ValueError):
        return None
    return 1 + height * width, height, width


def xvla_table_sizes(policy_cfg: Any, height: int, width: int) -> dict[str, int] | None:
    """The embedding-table sizes an X-VLA needs for these images (see :func:`xvla_tokens_per_view`).

    - vision ``max_position_embeddings``: one learned row/column embedding per final grid cell;
    - text ``max_position_embeddings``: the BART encoder reads the first camera's tokens then the task tokens;
    - ``max_len_seq``: the action transformer reads the action chunk, every camera's tokens and the task tokens.
    """
    tokens = xvla_tokens_per_view(policy_cfg, height, width)
    if tokens is None:
        return None
    per_view, grid_h, grid_w = tokens
    n_images = len(getattr(policy_cfg, "image_features", {}) or {}) + int(getattr(policy_cfg, "empty_cameras", 0))
    views = max(n_images, int(getattr(policy_cfg, "num_image_views", None) or 0), 1)
    text_len = int(getattr(policy_cfg, "tokenizer_max_length", 0))
    return {
        "vision_max_position_embeddings": max(grid_h, grid_w),
        "text_max_position_embeddings": per_view + text_len,
        "max_len_seq": int(policy_cfg.chunk_size) + views * per_view + text_len,
    }


def _xvla_current_sizes(policy_cfg: Any) -> dict[str, int]:
    florence = getattr(policy_cfg, "florence_config", None) or {}
    return {
        "vision_max_position_embeddings": int((florence.get("vision_config") or {}).get("max_position_embeddings", 0)),
        "text_max_position_embeddings": int((florence.get("text_config") or {}).get("max_position_embeddings", 0)),
        "max_len_seq": int(getattr(policy_cfg, "max_len_seq", 0)),
    }


def _set_xvla_size(policy_cfg: Any, name: str, value: int) -> str:
    """Set one table size on the config; returns the dotted PI-RL field it lives in."""
    if name == "max_len_seq":
        policy_cfg.max_len_seq = value
        return "policy.max_len_seq"
    section = "vision_config" if name.startswith("vision") else "text_config"
    policy_cfg.florence_config[section]["max_position_embeddings"] = value
    return f"policy.florence_config.{section}.max_position_embeddings"


# ---------------------------------------------------------------------------------------------------------------
# The migration
# ---------------------------------------------------------------------------------------------------------------


def _get(data: Any, path: str, default: Any = None) -> Any:
    cur = data
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _shape(feature: Any) -> list[int] | None:
    shape = feature.get("shape") if isinstance(feature, dict) else None
    return [int(s) for s in shape] if isinstance(shape, (list, tuple)) else None


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == {} or value == [] or value == ""


def _dataclass_defaults(cls: type) -> dict[str, Any]:
    """A LeRobot dataclass's defaults as JSON values (``dataclasses.asdict``: draccus cannot encode ResetConfig)."""
    return json.loads(json.dumps(dataclasses.asdict(cls()), default=str))  # type: ignore[no-any-return]


def _processor_defaults() -> dict[str, Any]:
    """Defaults of each ``HILSerlProcessorConfig`` block, to tell a setting someone chose from one left alone."""
    from lerobot.envs import configs as env_configs

    return {
        "control_mode": env_configs.HILSerlProcessorConfig().control_mode,
        "max_gripper_pos": env_configs.HILSerlProcessorConfig().max_gripper_pos,
        "observation": _dataclass_defaults(env_configs.ObservationConfig),
        "image_preprocessing": _dataclass_defaults(env_configs.ImagePreprocessingConfig),
        "gripper": _dataclass_defaults(env_configs.GripperConfig),
        "reset": _dataclass_defaults(env_configs.ResetConfig),
        "inverse_kinematics": _dataclass_defaults(env_configs.InverseKinematicsConfig),
        "reward_classifier": _dataclass_defaults(env_configs.RewardClassifierConfig),
    }


class _Migration:
    """Walks one SAC config dict and builds the PI-RL config plus the report. State only; no I/O."""

    def __init__(self, sac: dict[str, Any], policy_cfg: PreTrainedConfig, policy_source: str, custom_policy: bool):
        self.sac = sac
        self.policy_cfg: Any = policy_cfg
        self.policy_source = policy_source
        self.custom_policy = custom_policy  # --policy-path: the checkpoint's features are kept, not rewritten
        self.changes: list[MigrationItem] = []
        self.same: list[MigrationItem] = []
        self.decide: list[MigrationItem] = []
        self.seen: set[str] = set()
        self.dropped: dict[str, dict[str, Any]] = {}  # reason -> {field: value}, reported as one change per reason
        self.env = EnvSettings()
        self.runtime = RuntimeSettings()
        self.algorithm = PiRLConfig()
        # Legacy (pre-0.6) configs kept SAC hyperparameters on the policy; 0.6.1 keeps them on `algorithm`.
        self.sac_section = "algorithm" if isinstance(sac.get("algorithm"), dict) else "policy"

    # -- recording ------------------------------------------------------------------------------------------
    def _mark(self, *paths: str) -> None:
        self.seen.update(paths)

    def change(self, fld: str, old: Any, new: Any, target: str | None, why: str, *marks: str) -> None:
        self.changes.append(MigrationItem(fld, old, new, target, why))
        self._mark(*(marks or tuple(p.strip() for p in fld.split(",") if p.strip())))

    def stays(self, fld: str, value: Any, target: str | None, why: str, *marks: str) -> None:
        self.same.append(MigrationItem(fld, value, value, target, why))
        self._mark(*(marks or tuple(p.strip() for p in fld.split(",") if p.strip())))

    def must_decide(self, fld: str, old: Any, new: Any, target: str | None, why: str, *marks: str) -> None:
        self.decide.append(MigrationItem(fld, old, new, target, why))
        self._mark(*(marks or tuple(p.strip() for p in fld.split(",") if p.strip())))

    def drop(self, path: str, reason: str) -> None:
        self.dropped.setdefault(reason, {})[path] = _get(self.sac, path)
        self._mark(path)

    def covered(self, path: str) -> bool:
        parts = path.split(".")
        return any(".".join(parts[:i]) in self.seen for i in range(1, len(parts) + 1))

    def sac_field(self, name: str) -> tuple[str, Any]:
        """(dotted path, value) of a SAC hyperparameter, wherever this config version keeps it."""
        for section in (self.sac_section, "policy"):
            if isinstance(self.sac.get(section), dict) and name in self.sac[section]:
                return f"{section}.{name}", self.sac[section][name]
        return f"{self.sac_section}.{name}", None

    # -- the walk -------------------------------------------------------------------------------------------
    def run(self) -> tuple[PiRLRunConfig, str | None]:
        self._policy()
        self._runtime()
        self._algorithm()
        self._env()
        self._top_level()
        self._leftovers()
        for reason, fields in self.dropped.items():
            self.changes.append(MigrationItem(", ".join(fields), fields, None, None, reason))
        cfg = PiRLRunConfig(
            policy=self.policy_cfg,
            policy_path=self.policy_source if self.custom_policy else None,
            algorithm=self.algorithm,
            env=self.env,
            runtime=self.runtime,
            output_dir=self.output_dir,
            job_name=self.job_name,
            seed=self.seed,
            resume=False,
        )
        repo_id = _get(self.sac, "dataset.repo_id")
        return cfg, str(repo_id) if repo_id is not None else None

    # -- policy ---------------------------------------------------------------------------------------------
    def _policy(self) -> None:
        pol = self.sac["policy"]
        src = "configs/policy/tiny_xvla.json" if not self.custom_policy else f"{self.policy_source}/config.json"
        self.change(
            "policy.type",
            pol.get("type"),
            self.policy_cfg.type,
            "policy",
            f"PI-RL fine-tunes a flow-matching policy; the config comes from {src}"
            + (" (kept as saved: its weights fix the shapes)" if self.custom_policy else ""),
        )
        self._features(pol)
        if "policy_config" in pol:
            self.drop("policy.policy_config", "filled in by LeRobot at run time; pirlctl links algorithm and policy")
        architecture = (
            "vision_encoder_name",
            "freeze_vision_encoder",
            "image_encoder_hidden_dim",
            "shared_encoder",
            "image_embedding_pooling_dim",
            "state_encoder_hidden_dim",
            "latent_dim",
            "actor_network_kwargs",
            "policy_kwargs",
            "n_obs_steps",
            "use_amp",
            "use_peft",
        )
        for name in architecture:
            if name in pol:
                self.drop(
                    f"policy.{name}",
                    "the Gaussian actor's architecture is replaced by the flow policy's config; which X-VLA parts "
                    "train is algorithm.trainable (default: action expert, VLM frozen)",
                )
        buffer = ("online_buffer_capacity", "offline_buffer_capacity", "async_prefetch", "online_step_before_learning")
        for name in (*buffer, "storage_device"):
            if name in pol:
                self.drop(
                    f"policy.{name}",
                    "PI-RL is on-policy: no replay buffer; each PPO batch is runtime.num_actors × "
                    "runtime.rollout_chunks fresh chunks",
                )
        if "concurrency" in pol:
            self.drop(
                "policy.concurrency",
                "pirlctl runs the learner and each actor as separate processes (`pirlctl learner`, `pirlctl actor`)",
            )
        if pol.get("normalization_mapping") is not None or pol.get("dataset_stats") is not None:
            self.must_decide(
                "policy.normalization_mapping, policy.dataset_stats",
                {"normalization_mapping": pol.get("normalization_mapping"), "dataset_stats": pol.get("dataset_stats")},
                {"normalization_mapping": _plain(self.policy_cfg.normalization_mapping)},
                "policy.normalization_mapping",
                "SAC normalised with these stats; the flow policy keeps its own mapping (the tiny X-VLA: IDENTITY; "
                "pirlctl scales gym_hil's gripper state to 0..1). Match what the policy was behaviour-cloned with",
            )
        pushed = {k: pol.get(k) for k in ("push_to_hub", "repo_id", "private", "tags", "license") if k in pol}
        if pol.get("push_to_hub") or pol.get("repo_id"):
            self.must_decide(
                ", ".join(f"policy.{k}" for k in pushed),
                pushed,
                {"push_to_hub": getattr(self.policy_cfg, "push_to_hub", None)},
                "policy.push_to_hub",
                "pirlctl writes checkpoints to output_dir and never pushes; upload them yourself (hf upload)",
            )
        else:
            for k in pushed:
                self.drop(f"policy.{k}", "nothing was pushed to the Hub; pirlctl never pushes")
        for k in ("pretrained_path", "pretrained_revision"):
            if k not in pol:
                continue
            if pol.get(k) is not None:
                self.must_decide(
                    f"policy.{k}",
                    pol.get(k),
                    self.policy_source if self.custom_policy else None,
                    "policy_path",
                    "a Gaussian-actor checkpoint cannot initialise a flow policy; behaviour-clone an X-VLA on the "
                    "demonstrations and pass it with --policy-path",
                )
            else:
                self.drop(f"policy.{k}", "no pretrained Gaussian actor; the flow policy's weights come from policy_path")

    def _features(self, pol: dict[str, Any]) -> None:
        inputs = pol.get("input_features") if isinstance(pol.get("input_features"), dict) else None
        outputs = pol.get("output_features") if isinstance(pol.get("output_features"), dict) else None
        self._mark("policy.input_features", "policy.output_features")
        if not inputs or not outputs:
            self.must_decide(
                "policy.input_features, policy.output_features",
                {"input_features": inputs, "output_features": outputs},
                None,
                "policy.input_features, policy.output_features",
                "the SAC config names no features, so the flow policy keeps its own; check them against the env",
            )
            self._env_from_policy_features()
            return
        images = {k: v for k, v in inputs.items() if _get(v, "type") == "VISUAL" or k.startswith("observation.image")}
        state = inputs.get(STATE_KEY)
        others = {k: v for k, v in inputs.items() if k not in images and k != STATE_KEY}
        action_shape = _shape(outputs.get(ACTION_KEY))
        n_discrete = pol.get("num_discrete_actions")
        self._mark("policy.num_discrete_actions", "policy.discrete_critic_network_kwargs")
        # With num_discrete_actions, LeRobot's Gaussian actor outputs the continuous dims and appends the argmax of
        # a discrete gripper critic (modeling_gaussian_actor.select_action): the env's action is one wider.
        env_action_dim = None
        if action_shape:
            env_action_dim = action_shape[0] + (1 if n_discrete is not None else 0)
        if self.custom_policy:
            self._compare_checkpoint_features(images, state, env_action_dim)
        else:
            self._rewrite_features(images, state, action_shape, env_action_dim, n_discrete)
        for key, feat in others.items():
            self.must_decide(
                f"policy.input_features.{key}",
                feat,
                None,
                None,
                "pirlctl's actor feeds the flow policy images and observation.state only; fold this input into the "
                "state or drop it",
            )
        self._env_from_policy_features()

    def _rewrite_features(
        self,
        images: dict[str, Any],
        state: Any,
        action_shape: list[int] | None,
        env_action_dim: int | None,
        n_discrete: Any,
    ) -> None:
        cfg = self.policy_cfg
        new_inputs: dict[str, PolicyFeature] = {}
        if images:
            for key, feat in images.items():
                shape = _shape(feat)
                if shape is None:
                    continue
                new_inputs[key] = PolicyFeature(FeatureType.VISUAL, tuple(shape))
                self.stays(
                    f"policy.input_features.{key}",
                    {"type": "VISUAL", "shape": shape},
                    f"policy.input_features.{key}",
                    "same camera and image shape for the flow policy",
                )
        if not new_inputs:
            kept = {k: list(f.shape) for k, f in cfg.image_features.items()}
            new_inputs.update(cfg.image_features)
            self.must_decide(
                "policy.input_features (images)",
                None,
                kept,
                "policy.input_features, env.cameras",
                "the SAC policy saw no camera, X-VLA needs at least one: the tiny config's cameras are kept; "
                "the demonstrations for SFT must contain them",
            )
        state_shape = _shape(state)
        if state_shape:
            new_inputs[STATE_KEY] = PolicyFeature(FeatureType.STATE, tuple(state_shape))
            self.stays(
                f"policy.input_features.{STATE_KEY}",
                {"type": "STATE", "shape": state_shape},
                f"policy.input_features.{STATE_KEY}",
                "same proprioceptive state for the flow policy",
            )
            if cfg.max_state_dim != state_shape[0]:
                self.change(
                    "policy.input_features.observation.state",
                    cfg.max_state_dim,
                    state_shape[0],
                    "policy.max_state_dim",
                    "X-VLA pads or truncates the state to max_state_dim; sized to the state so nothing is cut",
                    "policy.input_features",
                )
                cfg.max_state_dim = state_shape[0]
        else:
            cfg.use_proprio = False
            self.must_decide(
                f"policy.input_features.{STATE_KEY}",
                None,
                False,
                "policy.use_proprio",
                "the SAC policy had no observation.state, so the flow policy runs without proprioception "
                "(use_proprio=false); add the state if the demonstrations have it",
            )
        cfg.input_features = new_inputs
        if action_shape and env_action_dim is not None:
            cfg.output_features = {ACTION_KEY: PolicyFeature(FeatureType.ACTION, (env_action_dim,))}
            if n_discrete is not None:
                self.change(
                    f"policy.output_features.{ACTION_KEY}, policy.num_discrete_actions",
                    {"shape": action_shape, "num_discrete_actions": n_discrete},
                    {"shape": [env_action_dim]},
                    f"policy.output_features.{ACTION_KEY}",
                    "SAC appended a discrete gripper action (argmax of the discrete critic) to its continuous "
                    "output; the flow policy outputs the whole env action, gripper included, as one continuous chunk",
                )
            else:
                self.stays(
                    f"policy.output_features.{ACTION_KEY}",
                    {"type": "ACTION", "shape": action_shape},
                    f"policy.output_features.{ACTION_KEY}",
                    "same action (the flow policy outputs chunks of it)",
                )
            if cfg.max_action_dim != env_action_dim:
                self.change(
                    f"policy.output_features.{ACTION_KEY}",
                    cfg.max_action_dim,
                    env_action_dim,
                    "policy.max_action_dim",
                    "X-VLA's 'auto' action mode pads the action to max_action_dim; sized to the real action",
                    "policy.output_features",
                )
                cfg.max_action_dim = env_action_dim
        self._size_tables()

    def _size_tables(self) -> None:
        """Grow the tiny X-VLA's position tables when the SAC images are larger than the ones it was sized for."""
        cfg = self.policy_cfg
        sizes = [tuple(f.shape) for f in cfg.image_features.values()]
        if not sizes:
            return
        height = max(s[-2] for s in sizes)
        width = max(s[-1] for s in sizes)
        needed = xvla_table_sizes(cfg, height, width)
        if needed is None:
            return
        current = _xvla_current_sizes(cfg)
        for name, need in needed.items():
            if current[name] < need:
                target = _set_xvla_size(cfg, name, need)
                self.change(
                    "policy.input_features (images)",
                    current[name],
                    need,
                    target,
                    f"{height}×{width} images give X-VLA more tokens than the tiny config's tables hold",
                    "policy.input_features",
                )

    def _compare_checkpoint_features(self, images: dict[str, Any], state: Any, env_action_dim: int | None) -> None:
        cfg = self.policy_cfg
        ckpt_images = {k: list(f.shape) for k, f in cfg.image_features.items()}
        sac_images = {k: _shape(v) for k, v in images.items()}
        ckpt_state = list(cfg.robot_state_feature.shape) if cfg.robot_state_feature is not None else None
        ckpt_action = list(cfg.action_feature.shape) if cfg.action_feature is not None else None
        pairs = (
            ("policy.input_features (images)", sac_images, ckpt_images),
            (f"policy.input_features.{STATE_KEY}", _shape(state), ckpt_state),
            (
                f"policy.output_features.{ACTION_KEY}",
                [env_action_dim] if env_action_dim is not None else None,
                ckpt_action,
            ),
        )
        for fld, sac_value, ckpt_value in pairs:
            if sac_value == ckpt_value:
                self.stays(fld, sac_value, fld, "the checkpoint's policy has the same feature")
            else:
                self.must_decide(
                    fld,
                    sac_value,
                    ckpt_value,
                    fld,
                    "the checkpoint's feature differs from what the SAC policy saw (for the action: including SAC's "
                    "discrete gripper); the checkpoint's is kept because its weights fix it, and env follows it",
                )

    def _env_from_policy_features(self) -> None:
        """env.cameras and env.image_size from the flow policy's image features: what the actor must render."""
        cfg = self.policy_cfg
        cams: list[str] = []
        unknown: list[str] = []
        shapes: list[tuple[int, ...]] = []
        for key, feat in cfg.image_features.items():
            name = key.removeprefix(IMAGE_PREFIX) if key.startswith(IMAGE_PREFIX) else key
            (cams if name in GYM_HIL_CAMERAS else unknown).append(name)
            shapes.append(tuple(feat.shape))
        if cams:
            self.change(
                "policy.input_features (images)",
                [f"{IMAGE_PREFIX}{c}" for c in cams],
                cams,
                "env.cameras",
                "pirlctl's actor renders exactly the cameras the policy reads",
                "policy.input_features",
            )
            self.env.cameras = cams
        if unknown:
            self.must_decide(
                "policy.input_features (images)",
                unknown,
                self.env.cameras,
                "env.cameras",
                f"pirlctl renders gym_hil's {' and '.join(GYM_HIL_CAMERAS)} cameras only; rename these policy "
                "features (and the demonstrations' keys) or the actor cannot feed them",
            )
        if shapes:
            sides = {(s[-2], s[-1]) for s in shapes if len(s) >= 2}
            height, width = max(sides)
            if len(sides) > 1 or height != width:
                self.must_decide(
                    "policy.input_features (images)",
                    [list(s) for s in shapes],
                    height,
                    "env.image_size",
                    "gym_hil renders square images of one size for all cameras; make the policy's image shapes "
                    "square and equal",
                )
            else:
                self.change(
                    "policy.input_features (images)",
                    f"{height}×{width}",
                    height,
                    "env.image_size",
                    "pirlctl renders gym_hil at the policy's image size",
                    "policy.input_features",
                )
            self.env.image_size = int(height)

    # -- runtime --------------------------------------------------------------------------------------------
    def _runtime(self) -> None:
        pol = self.sac["policy"]
        host = _get(pol, "actor_learner_config.learner_host")
        port = _get(pol, "actor_learner_config.learner_port")
        if host is not None:
            self.runtime.learner_host = str(host)
            remote = str(host) not in LOOPBACK
            self.change(
                "policy.actor_learner_config.learner_host",
                host,
                str(host),
                "runtime.learner_host",
                "runtime settings live in runtime, not on the policy (X-VLA's config has no actor_learner_config)"
                + ("; a non-loopback host needs `pirlctl learner --allow-remote` and PIRL_TOKEN" if remote else ""),
            )
        if port is not None:
            self.runtime.learner_port = int(port)
            self.change(
                "policy.actor_learner_config.learner_port",
                port,
                int(port),
                "runtime.learner_port",
                "moved off the policy into runtime",
            )
        freq = _get(pol, "actor_learner_config.policy_parameters_push_frequency")
        if freq is not None:
            self.change(
                "policy.actor_learner_config.policy_parameters_push_frequency",
                freq,
                self.runtime.push,
                "runtime.push",
                "SAC pushed weights every N seconds; PPO needs each batch from one policy version, so the learner "
                "pushes after every PPO iteration, tagged with the new version",
            )
        if _get(pol, "actor_learner_config.queue_get_timeout") is not None:
            self.drop(
                "policy.actor_learner_config.queue_get_timeout",
                "internal queue polling of LeRobot's SAC learner; pirlctl's waits are runtime.batch_timeout_s and "
                "runtime.weights_wait_s",
            )
        self._mark("policy.actor_learner_config")
        steps = pol.get("online_steps")
        if steps is not None:
            self.runtime.total_env_steps = int(steps)
            self.change(
                "policy.online_steps",
                steps,
                int(steps),
                "runtime.total_env_steps",
                "the env-step budget; moved off the policy into runtime",
            )
        device = pol.get("device")
        if device is not None:
            self.runtime.device = str(device)
            self.runtime.actor_device = str(device)
            self.change(
                "policy.device",
                device,
                str(device),
                "runtime.device, runtime.actor_device",
                "LeRobot's SAC actor and learner both ran on policy.device; pirlctl sets each process's device "
                "in runtime (the learner overrides policy.device with it)",
            )

    # -- algorithm ------------------------------------------------------------------------------------------
    def _algorithm(self) -> None:
        a = self.algorithm
        n_exec = a.resolved_n_exec(int(self.policy_cfg.chunk_size), int(self.policy_cfg.n_action_steps))
        self.change(
            "algorithm.type",
            _get(self.sac, "algorithm.type", "sac (default)"),
            "pi_rl",
            "algorithm",
            "PPO over the flow policy's stochastic denoising chain; every PI-RL hyperparameter starts at PiRLConfig's "
            "defaults",
            "algorithm.type",
        )
        if isinstance(self.sac.get("algorithm"), dict) and "policy_config" in self.sac["algorithm"]:
            self.drop("algorithm.policy_config", "filled in by LeRobot at run time; pirlctl links algorithm and policy")

        def fields(*names: str) -> tuple[str, dict[str, Any]]:
            paths, values = [], {}
            for name in names:
                path, value = self.sac_field(name)
                paths.append(path)
                values[name] = value
            return ", ".join(paths), values

        fld, old = fields("actor_lr")
        self.must_decide(
            fld,
            old["actor_lr"],
            a.actor_lr,
            "algorithm.actor_lr",
            "SAC's rate suits a small MLP actor trained from scratch; PI-RL's default suits a pretrained VLA "
            "(RLinf: 5e-6). A freshly behaviour-cloned tiny X-VLA takes ~3e-4 (configs/pick_cube_tiny.json)",
        )
        fld, old = fields("critic_lr")
        self.must_decide(
            fld,
            old["critic_lr"],
            a.value_lr,
            "algorithm.value_lr",
            "SAC's twin-Q critics become one PPO value head (RLinf: 1e-4; the tiny configs use 1e-3)",
        )
        fld, old = fields("temperature_lr", "temperature_init", "target_entropy", "use_backup_entropy")
        self.must_decide(
            fld,
            old,
            {"noise_method": a.noise_method, "noise_level": a.noise_level, "entropy_coef": a.entropy_coef},
            "algorithm.noise_method, algorithm.noise_level, algorithm.entropy_coef",
            "no entropy temperature in PI-RL: exploration is the denoising chain's noise (flow_sde noise_level, or "
            "a learned σ with flow_noise plus an entropy bonus)",
        )
        fld, old = fields("discount")
        discount = old["discount"]
        per_chunk = None
        if isinstance(discount, (int, float)) and 0 < discount <= 1:
            per_chunk = round(float(discount) ** n_exec, 6)
        self.must_decide(
            fld,
            discount,
            a.gamma,
            "algorithm.gamma",
            f"SAC discounts per env step, PI-RL per chunk of n_exec={n_exec} steps: the same horizon is "
            f"{discount}^{n_exec} = {per_chunk}; the default {a.gamma} per chunk looks further ahead",
        )
        fld, old = fields("utd_ratio", "policy_update_freq")
        batch_size = self.sac.get("batch_size")
        if "batch_size" in self.sac:
            fld = f"{fld}, batch_size"
            old["batch_size"] = batch_size
        self.must_decide(
            fld,
            old,
            {
                "ppo_epochs": a.ppo_epochs,
                "minibatch_size": a.minibatch_size,
                "rollout_chunks": self.runtime.rollout_chunks,
                "num_actors": self.runtime.num_actors,
            },
            "algorithm.ppo_epochs, algorithm.minibatch_size, runtime.rollout_chunks, runtime.num_actors",
            "SAC samples replay batches (utd_ratio updates per env step); PPO makes ppo_epochs passes over "
            "num_actors × rollout_chunks fresh chunks in minibatches of minibatch_size chunks",
        )
        fld, old = fields("num_critics", "num_subsample_critics", "critic_network_kwargs", "critic_target_update_weight")
        self.must_decide(
            fld,
            old,
            {"value_head": a.value_head, "value_hidden_dim": a.value_hidden_dim},
            "algorithm.value_head, algorithm.value_hidden_dim",
            "PPO has one value head on the policy's features and no target network; choose where it reads "
            "(vlm_prefix or action_expert) and its width",
        )
        fld, old = fields("grad_clip_norm")
        self.must_decide(
            fld,
            old["grad_clip_norm"],
            a.grad_clip_norm,
            "algorithm.grad_clip_norm",
            "SAC's clip (LeRobot default 40) was for MLPs; PPO on a VLA clips actor and critic separately (RLinf: 1.0)",
        )
        pol = self.sac["policy"]
        n_discrete = pol.get("num_discrete_actions")
        # 0.6.1 keeps the discrete critic's network on both the policy (which owns it) and the algorithm (target).
        dc = {
            f"{section}.discrete_critic_network_kwargs": self.sac[section]["discrete_critic_network_kwargs"]
            for section in ("policy", "algorithm")
            if isinstance(self.sac.get(section), dict) and "discrete_critic_network_kwargs" in self.sac[section]
        }
        if n_discrete is not None:
            self.must_decide(
                ", ".join(["policy.num_discrete_actions", *dc]),
                {"policy.num_discrete_actions": n_discrete, **dc},
                None,
                f"policy.output_features.{ACTION_KEY}",
                "SAC's discrete gripper critic has no PI-RL equivalent: the gripper is a continuous action dim of "
                "the chunk. gym_hil reads it in [0, 2] (2 closes, 0 opens, 1 holds): the policy's action range and "
                "normalisation must reach 2, or the gripper never closes",
            )
        else:
            for path in dc:
                self.drop(path, "no discrete gripper head (num_discrete_actions is null)")
        compile_path, compile_value = self.sac_field("use_torch_compile")
        if compile_value:
            self.must_decide(
                compile_path,
                compile_value,
                None,
                None,
                "pirlctl does not torch.compile the flow policy; drop it or compile in your own fork",
            )
        elif compile_path.split(".", 1)[0] in self.sac and compile_value is not None:
            self.drop(compile_path, "off in the SAC run; pirlctl does not compile the flow policy")
        self._mark(*(f"{self.sac_section}.{name}" for name in SAC_ALGORITHM_FIELDS))

    # -- env ------------------------------------------------------------------------------------------------
    def _env(self) -> None:
        env = self.sac.get("env")
        if not isinstance(env, dict):
            self.must_decide(
                "env",
                env,
                dataclasses.asdict(self.env),
                "env",
                "the SAC config has no env; pirlctl's default gym_hil pick-cube task is written, check it is the "
                "task you mean",
                "env",
            )
            self._pirl_only_env_settings(pick_cube=True)
            return
        env_type = env.get("type")
        if env_type != "gym_manipulator":
            self.must_decide(
                "env",
                env,
                dataclasses.asdict(self.env),
                "env",
                f"env.type={env_type!r} has no pirlctl equivalent: pirlctl's actor runs gym_hil's pick-cube; the "
                "default task is written",
                "env",
            )
            self._pirl_only_env_settings(pick_cube=True)
            return
        sim = env.get("name") == "gym_hil" and env.get("robot") is None
        pick_cube = self._env_task(env, sim)
        self._env_timing(env)
        self._env_processor(env, sim)
        for name in ("robot", "teleop"):
            if env.get(name) is not None:
                self._mark(f"env.{name}")  # reported with the real-robot decision in _env_task
            else:
                self.drop(f"env.{name}", "no robot or teleoperator in the simulated env")
        for name in ("features", "features_map"):
            if _is_empty(env.get(name)):
                self.drop(f"env.{name}", "empty; the policy's features define what the actor produces")
            else:
                self.must_decide(
                    f"env.{name}",
                    env.get(name),
                    None,
                    "policy.input_features",
                    "pirlctl's actor produces observation.images.<camera> and observation.state directly; "
                    "rename the policy's features instead of mapping the env's",
                )
        for name in ("max_parallel_tasks", "disable_env_checker"):
            if name in env:
                self.drop(f"env.{name}", "gym vector-env options; pirlctl makes one env per actor process")
        if sim and pick_cube:
            self._check_pick_cube_dims()
        self._pirl_only_env_settings(pick_cube=pick_cube)

    def _check_pick_cube_dims(self) -> None:
        """The flow policy's state and action must be what pirlctl's pick-cube actor produces and consumes."""
        cfg = self.policy_cfg
        state = cfg.robot_state_feature
        action = cfg.action_feature
        for fld, feature, want in (
            (f"policy.input_features.{STATE_KEY}", state, GYM_HIL_STATE_DIM),
            (f"policy.output_features.{ACTION_KEY}", action, GYM_HIL_ACTION_DIM),
        ):
            got = list(feature.shape) if feature is not None else None
            if got != [want]:
                self.must_decide(
                    fld,
                    got,
                    got,
                    fld,
                    f"pirlctl's gym_hil pick-cube actor feeds a {GYM_HIL_STATE_DIM}-dim state and sends a "
                    f"{GYM_HIL_ACTION_DIM}-dim action (dx, dy, dz, gripper); make this feature [{want}]",
                    f"{fld}#dims",
                )

    def _env_task(self, env: dict[str, Any], sim: bool) -> bool:
        """env.task (and the real-robot decision); True when the task is gym_hil's pick-cube."""
        task = env.get("task")
        name = env.get("name")
        self._mark("env.task")
        if sim:
            self.stays(
                "env.type, env.name",
                {"type": env.get("type"), "name": name},
                "env",
                "LeRobot's HIL-SERL env on the gym_hil simulation; pirlctl's actor runs gym_hil too",
            )
        else:
            self.must_decide(
                "env.type, env.name, env.robot, env.teleop, env.task",
                {"type": env.get("type"), "name": name, "robot": env.get("robot"), "teleop": env.get("teleop"), "task": task},
                self.env.task,
                "env.task",
                "a real robot: pirlctl's actor drives gym_hil only, so the default simulated task is written; "
                "running PI-RL on the robot needs an actor for it",
            )
            return True
        base = str(task or "").removeprefix("gym_hil/")
        variant = next((s for s in GYM_HIL_TELEOP_SUFFIXES if base.endswith(f"{s}-v0")), None)
        headless = base.replace(f"{variant}-v0", "-v0") if variant else base
        self.env.task = f"gym_hil/{headless}"
        why = "LeRobot prefixes gym_hil/ when it makes the env; pirlctl takes the full gymnasium id"
        if variant in ("Keyboard", "Gamepad", "Viewer"):
            why = (
                f"the {variant} variant wraps the task for human teleoperation and needs a display; PI-RL's actors "
                "run the policy alone, headless, on the plain task"
            )
        elif variant == "Base":
            why = "the Base variant breaks in LeRobot's make_robot_env and lacks the EE wrappers; the plain task is used"
        self.change("env.task", task, self.env.task, "env.task", why)
        control_mode = _get(env, "processor.control_mode")
        if variant in ("Keyboard", "Gamepad") or control_mode not in (None, _processor_defaults()["control_mode"]):
            self.must_decide(
                "env.task, env.processor.control_mode",
                {"task": task, "control_mode": control_mode},
                None,
                None,
                "HIL-SERL lets a human take over and stores the interventions; PI-RL learns from the policy's own "
                "rollouts only. Put the human demonstrations into the SFT data instead",
            )
        else:
            self.drop("env.processor.control_mode", "teleoperation mode; PI-RL has no human interventions")
        self._mark("env.processor.control_mode")
        pick_cube = headless == PICK_CUBE_TASK
        if not pick_cube:
            self.must_decide(
                "env.task",
                task,
                self.env.task,
                "env.task, env.instruction",
                f"pirlctl's env setup, instruction and tests are for gym_hil {PICK_CUBE_TASK}; check that "
                f"{self.env.task} accepts its options and set env.instruction for it",
            )
        return pick_cube

    def _env_timing(self, env: dict[str, Any]) -> None:
        fps = env.get("fps")
        self._mark("env.fps")
        if fps == GYM_HIL_FPS:
            self.stays("env.fps", fps, None, "gym_hil's 10 Hz control; pirlctl's env runs at it")
        else:
            self.must_decide(
                "env.fps",
                fps,
                GYM_HIL_FPS,
                None,
                "pirlctl's gym_hil env steps at 10 Hz; a different rate changes what an env step and the episode "
                "length mean",
            )
        control_time = _get(env, "processor.reset.control_time_s")
        if control_time is not None and isinstance(fps, (int, float)) and fps > 0:
            steps = max(1, int(float(control_time) * fps))  # LeRobot's TimeLimitProcessorStep: int(time_s × fps)
            self.env.max_episode_steps = steps
            self.change(
                "env.processor.reset.control_time_s, env.fps",
                {"control_time_s": control_time, "fps": fps},
                steps,
                "env.max_episode_steps",
                "the episode limit in env steps (LeRobot computes int(control_time_s × fps))",
                "env.processor.reset.control_time_s",
            )
        else:
            self.env.max_episode_steps = GYM_HIL_TIME_LIMIT
            self.stays(
                "env.processor.reset",
                None,
                "env.max_episode_steps",
                f"no reset block: gym_hil's own limit of {GYM_HIL_TIME_LIMIT} steps, as env.max_episode_steps",
                "env.processor.reset.control_time_s",
            )
            self.same[-1].new = GYM_HIL_TIME_LIMIT
        terminate = _get(env, "processor.reset.terminate_on_success")
        self._mark("env.processor.reset.terminate_on_success")
        if terminate is False:
            self.must_decide(
                "env.processor.reset.terminate_on_success",
                False,
                True,
                None,
                "pirlctl's pick-cube episodes end on success (sparse reward, terminated); continuing after success "
                "needs a change to the env",
            )
        elif terminate is True:
            self.stays("env.processor.reset.terminate_on_success", True, None, "episodes end on success")

    def _env_processor(self, env: dict[str, Any], sim: bool) -> None:
        proc = env.get("processor")
        if not isinstance(proc, dict):
            if proc is not None:
                self._processor_decision("env.processor", proc, sim)
            self._mark("env.processor")
            return
        defaults = _processor_defaults()
        use_gripper = _get(proc, "gripper.use_gripper")
        penalty = _get(proc, "gripper.gripper_penalty")
        if use_gripper is not None:
            self._mark("env.processor.gripper.use_gripper")
            if use_gripper:
                self.stays(
                    "env.processor.gripper.use_gripper",
                    True,
                    None,
                    "pirlctl's gym_hil action includes the gripper (4 dims: dx, dy, dz, gripper)",
                )
            else:
                self.must_decide(
                    "env.processor.gripper.use_gripper",
                    False,
                    None,
                    None,
                    "pirlctl's gym_hil env always has the gripper action (4 dims); a 3-dim policy cannot drive it",
                )
        if penalty is not None:
            self._mark("env.processor.gripper.gripper_penalty")
            if float(penalty) == 0.0:
                self.stays("env.processor.gripper.gripper_penalty", penalty, None, "no gripper penalty in either")
            else:
                self.must_decide(
                    "env.processor.gripper.gripper_penalty",
                    penalty,
                    None,
                    None,
                    "gym_hil reports the penalty only in info['discrete_penalty'] and LeRobot fed it to the discrete "
                    "gripper critic; PI-RL's reward is the env reward alone",
                )
        resize = _get(proc, "image_preprocessing.resize_size")
        self._mark("env.processor.image_preprocessing.resize_size")
        if resize is not None:
            if list(resize) == [self.env.image_size, self.env.image_size]:
                self.stays(
                    "env.processor.image_preprocessing.resize_size",
                    resize,
                    "env.image_size",
                    "same image size; pirlctl renders at it instead of resizing",
                )
            else:
                self.must_decide(
                    "env.processor.image_preprocessing.resize_size",
                    resize,
                    self.env.image_size,
                    "env.image_size",
                    "differs from the policy's image features, which env.image_size follows; make them agree",
                )
        why_real = "" if sim else " (real-robot pipeline)"
        for block, value in proc.items():
            path = f"env.processor.{block}"
            default = defaults.get(block)
            if block not in defaults and not self.covered(path):
                self._leftover(path, value)  # a processor block this LeRobot version does not have: reported whole
            elif isinstance(value, dict):
                sub_defaults = default if isinstance(default, dict) else {}
                for key, sub in value.items():
                    sub_path = f"{path}.{key}"
                    if self.covered(sub_path):
                        continue
                    if sub == sub_defaults.get(key) or _is_empty(sub):
                        self.drop(sub_path, f"LeRobot processor setting left at its default or empty{why_real}")
                    else:
                        self._processor_decision(sub_path, sub, sim)
                self._mark(path)
            elif not self.covered(path):
                if value == default or _is_empty(value):
                    self.drop(path, f"LeRobot processor setting left at its default or empty{why_real}")
                else:
                    self._processor_decision(path, value, sim)
        self._mark("env.processor")

    def _processor_decision(self, path: str, value: Any, sim: bool) -> None:
        note = (
            "LeRobot's gym_hil pipeline did not apply it either, so the SAC run did not use it"
            if sim
            else "it shaped the real robot's observations or actions"
        )
        self.must_decide(
            path,
            value,
            None,
            None,
            f"a LeRobot env-processor setting with no PI-RL equivalent ({note}); pirlctl's env applies none",
        )

    def _pirl_only_env_settings(self, *, pick_cube: bool) -> None:
        """EnvSettings with no SAC field: what LeRobot's gym_hil env did, and what pirlctl does instead."""
        e = self.env
        if pick_cube:
            self.change(
                "",
                None,
                e.instruction,
                "env.instruction",
                "new: the VLA is conditioned on a task instruction; SFT, RL and eval must use the same text",
            )
        self.stays(
            "",
            "sparse (gym_hil's default)",
            "env.reward_type",
            "LeRobot made gym_hil with its default sparse reward (1 when the cube is lifted)",
        )
        self.same[-1].new = e.reward_type
        self.change(
            "",
            False,
            e.random_block_position,
            "env.random_block_position",
            "LeRobot's gym_hil env never moves the cube (one replayed demo succeeds every time); pirlctl randomises "
            "its position. Set it to false to train on the SAC run's fixed-cube task",
        )
        self.change(
            "",
            "on (MuJoCo default)",
            {"shadows": e.shadows, "multisamples": e.multisamples},
            "env.shadows, env.multisamples",
            "about 4× faster CPU rendering; images differ, so SFT demos, training and eval must agree",
        )
        seed = self.sac.get("seed")
        e.seed = int(seed) if isinstance(seed, int) else e.seed
        self.change(
            "seed",
            seed,
            e.seed,
            "env.seed",
            "LeRobot seeds its envs from the run seed; pirlctl seeds episode i with env.seed + i",
            "seed",
        )

    # -- top level ------------------------------------------------------------------------------------------
    def _top_level(self) -> None:
        s = self.sac
        self.job_name = s.get("job_name") if isinstance(s.get("job_name"), str) else None
        self.stays("job_name", self.job_name, "job_name", "the run's name (null: the output folder's name)")
        seed = s.get("seed")
        self.seed = int(seed) if isinstance(seed, int) else PiRLRunConfig.seed
        if isinstance(seed, int):
            self.stays("seed", seed, "seed", "global seed (torch, numpy, python)")
        else:
            self.change("seed", seed, self.seed, "seed", "PI-RL needs an integer seed; PiRLRunConfig's default")
        out = s.get("output_dir")
        if isinstance(out, str) and out:
            self.output_dir = f"{out.rstrip('/')}_pi_rl"
            why = (
                "LeRobot's SAC checkpoints use the same checkpoints/<NNNNNN>/ and last layout; a separate folder "
                "keeps a PI-RL run (and its resume) from reading or overwriting them"
            )
        else:
            self.output_dir = f"runs/{self.job_name or 'pi_rl'}"
            why = "LeRobot generated a timestamped folder; pirlctl needs one named in the config"
        self.change("output_dir", out, self.output_dir, "output_dir", why)
        if s.get("resume"):
            self.change(
                "resume", True, False, "resume", "a SAC checkpoint cannot be resumed as a PI-RL run; start fresh"
            )
        elif "resume" in s:
            self.stays("resume", False, "resume", "a fresh run")
        self._dataset()
        if s.get("save_freq") is not None:
            self.change(
                "save_freq",
                s.get("save_freq"),
                self.runtime.checkpoint_every,
                "runtime.checkpoint_every",
                "SAC saved every N optimisation steps; pirlctl every N PPO iterations (and always at the end)",
            )
        for name in ("wandb", "peft", "reward_model", "sample_weighting", "rename_map", "job"):
            self._optional_feature(name)
        if s.get("save_checkpoint_to_hub"):
            self.must_decide(
                "save_checkpoint_to_hub",
                True,
                None,
                None,
                "pirlctl never pushes checkpoints; upload output_dir/checkpoints yourself",
            )
        elif "save_checkpoint_to_hub" in s:
            self.drop("save_checkpoint_to_hub", "off in the SAC run; pirlctl never pushes")
        trainer = (
            "cudnn_deterministic",
            "num_workers",
            "prefetch_factor",
            "persistent_workers",
            "dataloader_multiprocessing_context",
            "steps",
            "env_eval_freq",
            "log_freq",
            "eval_steps",
            "max_eval_samples",
            "tolerance_s",
            "save_checkpoint",
            "use_policy_training_preset",
            "optimizer",
            "scheduler",
            "eval",
            "checkpoint_path",
        )
        for name in trainer:
            if name in s:
                self.drop(
                    name,
                    "offline-trainer, DataLoader and eval settings: pirlctl's learner trains on rollouts, logs every "
                    "PPO iteration and checkpoints by runtime.checkpoint_every (SAC's learner ignored most of these)",
                )

    def _dataset(self) -> None:
        s = self.sac
        ds = s.get("dataset")
        if isinstance(ds, dict):
            self.must_decide(
                "dataset, online_ratio, mixer",
                {"repo_id": ds.get("repo_id"), "root": ds.get("root"), "online_ratio": s.get("online_ratio")},
                None,
                "policy_path",
                "PI-RL is on-policy: no offline buffer and no online/offline mixing. Behaviour-clone (SFT) the flow "
                "policy on this dataset first, then pass the checkpoint with --policy-path",
                "dataset",
                "online_ratio",
                "mixer",
            )
        else:
            for name in ("dataset", "online_ratio", "mixer"):
                if name in s:
                    self.drop(name, "no offline dataset in the SAC run; PI-RL has no replay mixing")

    def _optional_feature(self, name: str) -> None:
        s = self.sac
        if name not in s:
            return
        value = s[name]
        active = {
            "wandb": bool(_get(value, "enable")),
            "job": _get(value, "target") is not None,
        }.get(name, not _is_empty(value))
        if not active:
            self.drop(name, "off or empty in the SAC run; no pirlctl equivalent")
            return
        why = {
            "wandb": "pirlctl logs metrics to output_dir/metrics.jsonl, not W&B; forward them yourself if needed",
            "peft": "PI-RL trains the parts chosen by algorithm.trainable; LoRA/PEFT is not wired",
            "reward_model": "PI-RL's reward is the env's (gym_hil: success when the cube is lifted); a learned "
            "reward classifier is not wired",
            "sample_weighting": "weights offline samples; PI-RL has no offline samples",
            "rename_map": "rename the policy's features instead; pirlctl feeds observation.images.<camera>",
            "job": "HF Jobs dispatch is lerobot-train's; run pirlctl learner/actor where they should run",
        }[name]
        self.must_decide(name, value, None, None, why)

    # -- everything else ------------------------------------------------------------------------------------
    def _leftovers(self) -> None:
        """Fields this migration does not know (a newer LeRobot, a hand-edited file): never dropped silently."""
        sections: list[tuple[str, Any]] = [("", self.sac)]
        for name in ("policy", "algorithm", "env"):
            if isinstance(self.sac.get(name), dict):
                sections.append((f"{name}.", self.sac[name]))
        for prefix, section in sections:
            for key, value in section.items():
                path = f"{prefix}{key}"
                if self.covered(path) or (prefix == "" and key in ("policy", "algorithm", "env")):
                    continue
                self._leftover(path, value)

    def _leftover(self, path: str, value: Any) -> None:
        if _is_empty(value):
            self.drop(path, "not recognised by migrate-config, and empty in the SAC config")
        else:
            self.must_decide(
                path,
                value,
                None,
                None,
                "not recognised by migrate-config (newer LeRobot or a custom field); no PI-RL equivalent is known, "
                "decide whether the run needs it",
            )


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", str(v))))


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------


def migrate(
    sac: dict[str, Any],
    *,
    policy: str = "xvla",
    policy_path: str | Path | None = None,
    source: str = "input",
) -> tuple[MigrationReport, dict[str, Any]]:
    """Migrate a SAC run config dict; returns the report and the PI-RL run config as a JSON-able dict.

    The dict is checked to load with :func:`pirlctl.config.run_config.load_run_config` (the learner's own loader)
    before it is returned, so a migrated config that the learner would refuse is never written.
    """
    check_is_sac(sac, source)
    policy_cfg, policy_source = load_flow_policy_config(policy, policy_path)
    m = _Migration(sac, policy_cfg, policy_source, custom_policy=policy_path is not None)
    cfg, repo_id = m.run()
    data = encode_run_config(cfg)
    check_loadable(data)
    report = MigrationReport(
        source=source,
        output=None,
        written=False,
        dry_run=False,
        policy=policy_source,
        dataset_repo_id=repo_id,
        changes=m.changes,
        stays_the_same=m.same,
        you_must_decide=m.decide,
    )
    return report, data


def check_loadable(data: dict[str, Any]) -> None:
    """Round-trip the migrated dict through ``load_run_config``; a failure is a migrate-config bug, said so."""
    with tempfile.TemporaryDirectory(prefix="pirl-migrate-") as tmp:
        path = Path(tmp) / "run.json"
        path.write_text(json.dumps(data, indent=2, default=str))
        problem: str | None = None
        try:
            load_run_config(path)
        except Exception as err:  # noqa: BLE001 - reported as one line below
            from pirlctl.errors import one_line

            problem = f"the migrated config does not load ({one_line(err)}); please report this migrate-config bug"
    if problem is not None:
        raise MigrationError(problem)


def write_config(data: dict[str, Any], output: str | Path, *, force: bool) -> None:
    """Write the JSON atomically (temp file + rename); an existing file is replaced only with ``force``."""
    out = Path(output)
    if out.is_dir():
        raise MigrationError(f"output {out} is a directory; pass a file path with -o (e.g. {out / 'pirl.json'})")
    if out.exists() and not force:
        raise MigrationError(f"output {out} exists; pass --force to overwrite it, or choose another -o path")
    problem: str | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(data, indent=2, default=str) + "\n")
            if force:
                os.replace(tmp, out)
            else:
                os.link(tmp, out)  # fails if the file appeared meanwhile: never overwrite without --force
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except FileExistsError:
        problem = f"output {out} exists; pass --force to overwrite it, or choose another -o path"
    except OSError as err:
        problem = f"cannot write {out} ({err.strerror}); choose another -o path"
    if problem is not None:
        raise MigrationError(problem)


def migrate_config_file(
    source: str | Path,
    output: str | Path | None,
    *,
    policy: str = "xvla",
    policy_path: str | Path | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> tuple[MigrationReport, dict[str, Any]]:
    """Read ``source``, migrate it, and write ``output`` (unless ``dry_run``); returns the report and the config."""
    if output is None and not dry_run:
        raise MigrationError("no output file; pass -o PIRL.json, or --dry-run to only print the report")
    if policy not in SUPPORTED_POLICIES:  # before reading anything: the cheapest problem to name first
        load_flow_policy_config(policy, None)
    sac = read_sac_config(source)
    if output is not None and Path(output).resolve() == Path(source).resolve():
        raise MigrationError(f"output {output} is the SAC input itself; choose another -o path")
    if output is not None and not dry_run and not force and Path(output).exists():
        raise MigrationError(f"output {output} exists; pass --force to overwrite it, or choose another -o path")
    report, data = migrate(sac, policy=policy, policy_path=policy_path, source=str(source))
    report.output = str(output) if output is not None else None
    report.dry_run = dry_run
    if not dry_run and output is not None:
        write_config(data, output, force=force)
        report.written = True
    return report, data


__all__ = [
    "MigrationError",
    "MigrationItem",
    "MigrationReport",
    "check_is_sac",
    "check_loadable",
    "migrate",
    "migrate_config_file",
    "read_sac_config",
    "write_config",
    "xvla_table_sizes",
]
