"""LeRobot 0.6.1 SAC run config -> PI-RL run config, with a report of what changed and what the user must decide.

The input is the JSON that ``lerobot-train-rl`` reads (``lerobot.rl.train_rl.TrainRLServerPipelineConfig``, encoded
by draccus): ``policy.type = "gaussian_actor"`` plus ``algorithm.type = "sac"`` (or a pre-0.6 ``policy.type = "sac"``
that carried the SAC hyperparameters itself), and usually a ``gym_manipulator`` env (HIL-SERL on gym_hil or a real
robot). It is read as a plain dict: parsing it into LeRobot's dataclasses would run their ``validate``, which has
known 0.6.1 defects (``dataset: null`` crashes it, upstream issue 1546; a ``processor.reset`` block cannot even be
encoded by draccus), and those defects must not stop a migration.

Every SAC field ends up in one of three groups: *changes* (moved, rewritten or dropped, with the reason), *stays the
same*, and *you must decide* (a SAC setting with no PI-RL equivalent whose value mattered, or a choice PI-RL needs
that SAC's value cannot make). Fields the migration does not recognise are never dropped silently: a non-empty one
lands in *you must decide*.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import draccus
from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, PolicyFeature

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.config.run_config import (
    EnvSettings,
    PiRLRunConfig,
    RuntimeSettings,
    encode_run_config,
    policy_state_dim,
)
from pirlctl.errors import one_line
from pirlctl.migrate.report import MigrationError, MigrationItem, MigrationReport
from pirlctl.migrate.rules import (
    ACTION_KEY,
    DROPPED_POLICY,
    DROPPED_TOP,
    GYM_HIL_ACTION_DIM,
    GYM_HIL_CAMERAS,
    GYM_HIL_FPS,
    GYM_HIL_TIME_LIMIT,
    GYM_HIL_VARIANTS,
    IMAGE_PREFIX,
    LOOPBACK,
    OPTIONAL_FEATURES,
    PICK_CUBE_TASK,
    SAC_DECISIONS,
    SAC_POLICY_TYPES,
    STATE_KEY,
    SUPPORTED_POLICIES,
)
from pirlctl.policies.loading import TINY_XVLA_CONFIG, load_policy_config

# ---------------------------------------------------------------------------------------------------------------
# Reading and checking the input. Errors are raised outside `except` blocks on purpose: the CLI prints the root
# cause of an exception chain, and an implicit __context__ would replace these messages with the low-level one.
# ---------------------------------------------------------------------------------------------------------------


def read_sac_config(path: str | Path) -> dict[str, Any]:
    """The SAC run config as a dict; :class:`MigrationError` when it is missing, unreadable, not JSON or not SAC."""
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
    if problem is None:
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
    return data


def check_is_sac(data: Any, source: str = "input") -> None:
    """A SAC run config: ``algorithm.type == "sac"``, or no algorithm and a Gaussian-actor (or legacy SAC) policy."""
    fix = "pass a LeRobot SAC run config (algorithm.type 'sac', policy.type 'gaussian_actor')"
    if not isinstance(data, dict):
        raise MigrationError(f"{source} is not a run config (top level is a JSON {type(data).__name__}); {fix}")
    algo = data.get("algorithm")
    algo_type = algo.get("type") if isinstance(algo, dict) else None
    policy = data.get("policy")
    policy_type = policy.get("type") if isinstance(policy, dict) else None
    if algo_type == "pi_rl" or (algo_type is None and isinstance(data.get("runtime"), dict)):
        raise MigrationError(f"{source} is already a PI-RL run config; use it as is with `pirlctl learner`")
    if algo_type is not None and algo_type != "sac":
        raise MigrationError(f"{source} is not a SAC run config (algorithm.type={algo_type!r}); {fix}")
    if algo_type is None and policy_type not in SAC_POLICY_TYPES:
        raise MigrationError(f"{source} is not a SAC run config (no algorithm, policy.type={policy_type!r}); {fix}")
    if not isinstance(policy, dict):
        raise MigrationError(f"{source} has no policy section; {fix}")


# ---------------------------------------------------------------------------------------------------------------
# The flow policy
# ---------------------------------------------------------------------------------------------------------------


def load_flow_policy_config(policy: str, policy_path: str | Path | None) -> tuple[PreTrainedConfig, str]:
    """The X-VLA config to write: the tiny default, or the config.json of a local LeRobot checkpoint folder."""
    if policy not in SUPPORTED_POLICIES:
        raise MigrationError(f"--policy {policy!r} is not supported; use --policy xvla (the only flow policy adapted)")
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
        except (Exception, SystemExit) as err:  # draccus raises many kinds, and SystemExit, on a bad file
            problem = (
                f"--policy-path {cfg_file} is not a LeRobot policy config ({one_line(err)[:160]}); "
                "pass a checkpoint folder"
            )
    if problem is not None or cfg is None:
        raise MigrationError(problem or f"--policy-path {cfg_file} could not be read")
    if cfg.type != policy:
        raise MigrationError(
            f"--policy-path {folder} holds a {cfg.type!r} policy, not {policy!r}; pass an X-VLA checkpoint folder"
        )
    return cfg, str(folder.resolve())


def xvla_table_sizes(policy_cfg: Any, height: int, width: int) -> dict[str, int] | None:
    """Embedding-table sizes an X-VLA needs for ``height``×``width`` cameras; None for a non-native vision config.

    Each DaViT stage is a strided conv, out = (in + 2·pad − kernel) // stride + 1; Florence-2's projector then emits
    one spatial-mean token plus one token per final grid cell (``Florence2MultiModalProjector.forward``). So:

    - vision ``max_position_embeddings`` >= the final grid side (one learned row/column embedding per cell);
    - text ``max_position_embeddings`` >= tokens per camera + task tokens (the BART encoder reads the first camera);
    - ``max_len_seq`` >= chunk_size + cameras × tokens per camera + task tokens (X-VLA's action transformer).
    """
    vision = (getattr(policy_cfg, "florence_config", None) or {}).get("vision_config") or {}
    try:
        for k, s, p in zip(vision["patch_size"], vision["patch_stride"], vision["patch_padding"], strict=True):
            height = (height + 2 * int(p) - int(k)) // int(s) + 1
            width = (width + 2 * int(p) - int(k)) // int(s) + 1
    except (KeyError, TypeError, ValueError):
        return None
    per_view = 1 + height * width
    n_images = len(policy_cfg.image_features) + int(getattr(policy_cfg, "empty_cameras", 0))
    views = max(n_images, int(getattr(policy_cfg, "num_image_views", None) or 0), 1)
    text_len = int(getattr(policy_cfg, "tokenizer_max_length", 0))
    return {
        "florence_config.vision_config.max_position_embeddings": max(height, width),
        "florence_config.text_config.max_position_embeddings": per_view + text_len,
        "max_len_seq": int(policy_cfg.chunk_size) + views * per_view + text_len,
    }


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


def _plain(value: Any) -> Any:
    """JSON values (enums by value), for comparing with the SAC dict and for the report."""
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", str(v))))


def _processor_defaults() -> dict[str, Any]:
    """Defaults of each ``HILSerlProcessorConfig`` block, to tell a setting someone chose from one left alone.

    ``dataclasses.asdict`` rather than ``draccus.encode``: draccus 0.6.1 cannot encode ``ResetConfig``.
    """
    from lerobot.envs import configs as c

    top = c.HILSerlProcessorConfig()
    blocks = {
        "observation": c.ObservationConfig,
        "image_preprocessing": c.ImagePreprocessingConfig,
        "gripper": c.GripperConfig,
        "reset": c.ResetConfig,
        "inverse_kinematics": c.InverseKinematicsConfig,
        "reward_classifier": c.RewardClassifierConfig,
    }
    defaults = {name: _plain(dataclasses.asdict(cls())) for name, cls in blocks.items()}
    return {"control_mode": top.control_mode, "max_gripper_pos": top.max_gripper_pos, **defaults}


class _Migration:
    """Walks one SAC config dict and builds the PI-RL config plus the report. State only; no I/O."""

    def __init__(self, sac: dict[str, Any], policy_cfg: PreTrainedConfig, policy_source: str, custom_policy: bool):
        self.sac = sac
        self.policy_cfg: Any = policy_cfg
        self.policy_source = policy_source
        self.custom_policy = custom_policy  # --policy-path: the checkpoint's features are kept, not rewritten
        self.pol: dict[str, Any] = sac["policy"]
        self.changes: list[MigrationItem] = []
        self.same: list[MigrationItem] = []
        self.decide: list[MigrationItem] = []
        self.seen: set[str] = set()
        self.dropped: dict[str, dict[str, Any]] = {}  # reason -> {field: value}: one change per reason
        self.env = EnvSettings()
        self.runtime = RuntimeSettings()
        self.algorithm = PiRLConfig()
        self.output_dir = "runs/pi_rl"
        self.job_name: str | None = None
        self.seed = PiRLRunConfig.seed

    # -- recording ------------------------------------------------------------------------------------------
    def _add(self, group: list[MigrationItem], fld: str, old: Any, new: Any, target: str | None, why: str) -> None:
        group.append(MigrationItem(fld, old, new, target, why))
        self.seen.update(p.strip().removesuffix(" (images)") for p in fld.split(",") if p.strip())

    def change(self, fld: str, old: Any, new: Any, target: str | None, why: str) -> None:
        self._add(self.changes, fld, old, new, target, why)

    def stays(self, fld: str, value: Any, target: str | None, why: str) -> None:
        self._add(self.same, fld, value, value, target, why)

    def must_decide(self, fld: str, old: Any, new: Any, target: str | None, why: str) -> None:
        self._add(self.decide, fld, old, new, target, why)

    def drop(self, path: str, reason: str) -> None:
        self.dropped.setdefault(reason, {})[path] = _get(self.sac, path)
        self.seen.add(path)

    def drop_present(self, prefix: str, table: dict[str, list[str]]) -> None:
        section = _get(self.sac, prefix.rstrip(".")) if prefix else self.sac
        for reason, names in table.items():
            for name in names:
                if isinstance(section, dict) and name in section:
                    self.drop(f"{prefix}{name}", reason)

    def covered(self, path: str) -> bool:
        parts = path.split(".")
        return any(".".join(parts[:i]) in self.seen for i in range(1, len(parts) + 1))

    def sac_field(self, name: str) -> str | None:
        """Dotted path of a SAC hyperparameter: on ``algorithm`` (0.6.1), on the policy (pre-0.6), or top level."""
        for section in ("algorithm", "policy"):
            if isinstance(self.sac.get(section), dict) and name in self.sac[section]:
                return f"{section}.{name}"
        return name if name in self.sac else None

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
        pol = self.pol
        src = f"{self.policy_source}/config.json (kept as saved: its weights fix the shapes)"
        if not self.custom_policy:
            src = "configs/policy/tiny_xvla.json"
        self.change(
            "policy.type",
            pol.get("type"),
            self.policy_cfg.type,
            "policy",
            f"PI-RL fine-tunes a flow-matching policy; its config comes from {src}",
        )
        self._features()
        self.drop_present("policy.", DROPPED_POLICY)
        if pol.get("normalization_mapping") is not None or pol.get("dataset_stats") is not None:
            self.must_decide(
                "policy.normalization_mapping, policy.dataset_stats",
                {"normalization_mapping": pol.get("normalization_mapping"), "dataset_stats": pol.get("dataset_stats")},
                _plain(self.policy_cfg.normalization_mapping),
                "policy.normalization_mapping",
                "SAC normalised with these stats; the flow policy keeps its own mapping (the tiny X-VLA: IDENTITY; "
                "pirlctl scales gym_hil's gripper state to 0..1). Match what the policy was behaviour-cloned with",
            )
        hub: list[str] = [k for k in ("push_to_hub", "repo_id", "private", "tags", "license") if k in pol]
        if pol.get("push_to_hub") or pol.get("repo_id"):
            self.must_decide(
                ", ".join(f"policy.{k}" for k in hub),
                {k: pol[k] for k in hub},
                getattr(self.policy_cfg, "push_to_hub", None),
                "policy.push_to_hub",
                "pirlctl writes checkpoints to output_dir and never pushes; upload them yourself (hf upload)",
            )
        else:
            self.drop_present("policy.", {"nothing was pushed to the Hub; pirlctl never pushes": hub})
        for k in ("pretrained_path", "pretrained_revision"):
            if pol.get(k) is not None:
                self.must_decide(
                    f"policy.{k}",
                    pol[k],
                    self.policy_source if self.custom_policy else None,
                    "policy_path",
                    "a Gaussian-actor checkpoint cannot initialise a flow policy; behaviour-clone an X-VLA on the "
                    "demonstrations and pass it with --policy-path",
                )
            elif k in pol:
                self.drop(f"policy.{k}", "no pretrained Gaussian actor; the flow policy's weights are policy_path")

    def _features(self) -> None:
        pol = self.pol
        inputs, outputs = pol.get("input_features"), pol.get("output_features")
        self.seen.update(("policy.input_features", "policy.output_features"))
        if not (isinstance(inputs, dict) and inputs and isinstance(outputs, dict) and outputs):
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
        others = {k: v for k, v in inputs.items() if k not in images and k != STATE_KEY}
        action_shape = _shape(outputs.get(ACTION_KEY))
        # With num_discrete_actions, LeRobot's Gaussian actor outputs the continuous dims and appends the argmax of
        # a discrete gripper critic (GaussianActorPolicy.select_action): the env's action is one dim wider.
        n_discrete = pol.get("num_discrete_actions")
        env_action_dim = action_shape[0] + (n_discrete is not None) if action_shape else None
        if self.custom_policy:
            self._compare_checkpoint_features(images, inputs.get(STATE_KEY), env_action_dim)
        else:
            self._rewrite_features(images, _shape(inputs.get(STATE_KEY)), action_shape, env_action_dim, n_discrete)
        for key, feat in others.items():
            self.must_decide(
                f"policy.input_features.{key}",
                feat,
                None,
                None,
                "pirlctl's actor feeds the flow policy images and observation.state only; fold this input into the "
                "state or leave it out",
            )
        self._env_from_policy_features()

    def _rewrite_features(
        self,
        images: dict[str, Any],
        state_shape: list[int] | None,
        action_shape: list[int] | None,
        env_action_dim: int | None,
        n_discrete: Any,
    ) -> None:
        cfg = self.policy_cfg
        new_inputs: dict[str, PolicyFeature] = {}
        for key, feat in images.items():
            if (shape := _shape(feat)) is not None:
                new_inputs[key] = PolicyFeature(FeatureType.VISUAL, tuple(shape))
                fld = f"policy.input_features.{key}"
                self.stays(fld, {"type": "VISUAL", "shape": shape}, fld, "same camera and image shape")
        if not new_inputs:
            new_inputs.update(cfg.image_features)
            self.must_decide(
                "policy.input_features (images)",
                None,
                {k: list(f.shape) for k, f in cfg.image_features.items()},
                "policy.input_features",
                "the SAC policy saw no camera and X-VLA needs one: the tiny config's cameras are kept; the SFT "
                "demonstrations must contain them",
            )
        if state_shape:
            new_inputs[STATE_KEY] = PolicyFeature(FeatureType.STATE, tuple(state_shape))
            fld = f"policy.input_features.{STATE_KEY}"
            self.stays(fld, {"type": "STATE", "shape": state_shape}, fld, "same proprioceptive state")
            if cfg.max_state_dim != state_shape[0]:
                self.change(
                    "policy.input_features.observation.state",
                    cfg.max_state_dim,
                    state_shape[0],
                    "policy.max_state_dim",
                    "X-VLA pads or truncates the state to max_state_dim; sized to the state so nothing is cut",
                )
                cfg.max_state_dim = state_shape[0]
        else:
            cfg.use_proprio = False
            self.must_decide(
                f"policy.input_features.{STATE_KEY}",
                None,
                False,
                "policy.use_proprio",
                "the SAC policy had no observation.state, so the flow policy runs without proprioception; add the "
                "state if the demonstrations have it",
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
                    "SAC appended a discrete gripper action (the discrete critic's argmax) to its continuous output; "
                    "the flow policy outputs the whole env action, gripper included, as one continuous chunk",
                )
            else:
                fld = f"policy.output_features.{ACTION_KEY}"
                self.stays(fld, {"type": "ACTION", "shape": action_shape}, fld, "same action")
            if cfg.max_action_dim != env_action_dim:
                self.change(
                    f"policy.output_features.{ACTION_KEY}",
                    cfg.max_action_dim,
                    env_action_dim,
                    "policy.max_action_dim",
                    "X-VLA's 'auto' action mode pads the action to max_action_dim; sized to the real action",
                )
                cfg.max_action_dim = env_action_dim
        self._size_tables()

    def _size_tables(self) -> None:
        """Grow the tiny X-VLA's position tables where the SAC cameras give more tokens than it was sized for."""
        cfg = self.policy_cfg
        shapes = [tuple(f.shape) for f in cfg.image_features.values()]
        if not shapes:
            return
        height, width = max(s[-2] for s in shapes), max(s[-1] for s in shapes)
        for name, need in (xvla_table_sizes(cfg, height, width) or {}).items():
            *parents, leaf = name.split(".")
            holder = cfg.florence_config[parents[1]] if parents else None
            have = int(holder.get(leaf, 0)) if holder is not None else int(getattr(cfg, leaf))
            if have >= need:
                continue
            if holder is not None:
                holder[leaf] = need
            else:
                setattr(cfg, leaf, need)
            self.change(
                "policy.input_features (images)",
                have,
                need,
                f"policy.{name}",
                f"{height}×{width} cameras give X-VLA more tokens than the tiny config's tables hold",
            )

    def _compare_checkpoint_features(self, images: dict[str, Any], state: Any, env_action_dim: int | None) -> None:
        cfg = self.policy_cfg
        pairs = (
            ("policy.input_features (images)", {k: _shape(v) for k, v in images.items()}, "image"),
            (f"policy.input_features.{STATE_KEY}", _shape(state), "state"),
            (f"policy.output_features.{ACTION_KEY}", [env_action_dim] if env_action_dim else None, "action"),
        )
        ckpt = {
            "image": {k: list(f.shape) for k, f in cfg.image_features.items()},
            "state": list(cfg.robot_state_feature.shape) if cfg.robot_state_feature is not None else None,
            "action": list(cfg.action_feature.shape) if cfg.action_feature is not None else None,
        }
        for fld, sac_value, kind in pairs:
            target = fld.removesuffix(" (images)")
            if sac_value == ckpt[kind]:
                self.stays(fld, sac_value, target, "the checkpoint's policy has the same feature")
            else:
                self.must_decide(
                    fld,
                    sac_value,
                    ckpt[kind],
                    target,
                    "the checkpoint's feature differs from the SAC policy's (the action counts SAC's discrete "
                    "gripper); the checkpoint's is kept, since its weights fix it, and the env follows it",
                )

    def _env_from_policy_features(self) -> None:
        """env.cameras and env.image_size from the flow policy's image features: what the actor must render."""
        names = [k.removeprefix(IMAGE_PREFIX) for k in self.policy_cfg.image_features]
        shapes = [tuple(f.shape) for f in self.policy_cfg.image_features.values()]
        cams = [n for n in names if n in GYM_HIL_CAMERAS]
        unknown = [n for n in names if n not in GYM_HIL_CAMERAS]
        if cams:
            self.env.cameras = cams
            self.change(
                "policy.input_features (images)",
                [f"{IMAGE_PREFIX}{c}" for c in cams],
                cams,
                "env.cameras",
                "pirlctl's actor renders exactly the cameras the policy reads",
            )
        if unknown:
            self.must_decide(
                "policy.input_features (images)",
                unknown,
                self.env.cameras,
                "env.cameras",
                "pirlctl renders gym_hil's front and wrist cameras only; rename these policy features (and the "
                "demonstrations' keys) or the actor cannot feed them",
            )
        sides = {(s[-2], s[-1]) for s in shapes}
        if not sides:
            return
        height, width = max(sides)
        self.env.image_size = int(height)
        if len(sides) > 1 or height != width:
            self.must_decide(
                "policy.input_features (images)",
                [list(s) for s in shapes],
                height,
                "env.image_size",
                "gym_hil renders square images of one size for all cameras; make the policy's images square and equal",
            )
        else:
            self.change(
                "policy.input_features (images)",
                f"{height}×{width}",
                height,
                "env.image_size",
                "pirlctl renders gym_hil at the policy's image size",
            )

    # -- runtime --------------------------------------------------------------------------------------------
    def _runtime(self) -> None:
        alc = "policy.actor_learner_config"
        host, port = (
            _get(self.pol, "actor_learner_config.learner_host"),
            _get(self.pol, "actor_learner_config.learner_port"),
        )
        if host is not None:
            self.runtime.learner_host = str(host)
            remote = "" if str(host) in LOOPBACK else "; a non-loopback host needs --allow-remote and PIRL_TOKEN"
            self.change(
                f"{alc}.learner_host",
                host,
                str(host),
                "runtime.learner_host",
                f"runtime settings live in runtime: X-VLA's config has no actor_learner_config{remote}",
            )
        if port is not None:
            self.runtime.learner_port = int(port)
            self.change(f"{alc}.learner_port", port, int(port), "runtime.learner_port", "moved off the policy")
        if (freq := _get(self.pol, "actor_learner_config.policy_parameters_push_frequency")) is not None:
            self.change(
                f"{alc}.policy_parameters_push_frequency",
                freq,
                self.runtime.push,
                "runtime.push",
                "SAC pushed weights every N seconds; PPO needs each batch from one policy version, so the learner "
                "pushes after every PPO iteration, tagged with the new version",
            )
        if _get(self.pol, "actor_learner_config.queue_get_timeout") is not None:
            self.drop(
                f"{alc}.queue_get_timeout",
                "queue polling inside LeRobot's SAC learner; pirlctl's waits are runtime.batch_timeout_s and "
                "runtime.weights_wait_s",
            )
        if (steps := self.pol.get("online_steps")) is not None:
            self.runtime.total_env_steps = int(steps)
            self.change(
                "policy.online_steps",
                steps,
                int(steps),
                "runtime.total_env_steps",
                "the env-step budget, off the policy",
            )
        if (device := self.pol.get("device")) is not None:
            self.runtime.device = self.runtime.actor_device = str(device)
            self.change(
                "policy.device",
                device,
                str(device),
                "runtime.device, runtime.actor_device",
                "LeRobot's SAC actor and learner both ran on policy.device; pirlctl sets each process's device in "
                "runtime (the learner sets policy.device from it)",
            )

    # -- algorithm ------------------------------------------------------------------------------------------
    def _algorithm(self) -> None:
        a = self.algorithm
        self.change(
            "algorithm.type",
            _get(self.sac, "algorithm.type", "sac (LeRobot's default)"),
            "pi_rl",
            "algorithm",
            "PPO over the flow policy's stochastic denoising chain; every PI-RL hyperparameter starts at its default",
        )
        self.drop_present(
            "algorithm.", {"filled in by LeRobot at run time; pirlctl links algorithm and policy": ["policy_config"]}
        )
        n_exec = a.resolved_n_exec(int(self.policy_cfg.chunk_size), int(self.policy_cfg.n_action_steps))
        for names, targets, why in SAC_DECISIONS:
            paths = {name: path for name in names if (path := self.sac_field(name)) is not None}
            old = {name: _get(self.sac, path) for name, path in paths.items()}
            new = {t: getattr(a if t.startswith("algorithm.") else self.runtime, t.split(".", 1)[1]) for t in targets}
            discount = old.get("discount")
            per_chunk = round(float(discount) ** n_exec, 6) if isinstance(discount, (int, float)) else None
            self.must_decide(
                ", ".join(paths.values()) or ", ".join(names),
                old if len(old) != 1 else next(iter(old.values())),
                new if len(new) != 1 else next(iter(new.values())),
                ", ".join(targets),
                why.format(n_exec=n_exec, discount=discount, per_chunk=per_chunk),
            )
        # 0.6.1 keeps the discrete critic's network on both the policy (which owns it) and the algorithm (target).
        discrete = [
            f"{section}.{name}"
            for section, name in (
                ("policy", "num_discrete_actions"),
                ("policy", "discrete_critic_network_kwargs"),
                ("algorithm", "discrete_critic_network_kwargs"),
            )
            if isinstance(self.sac.get(section), dict) and name in self.sac[section]
        ]
        if self.pol.get("num_discrete_actions") is not None:
            self.must_decide(
                ", ".join(discrete),
                {p: _get(self.sac, p) for p in discrete},
                None,
                f"policy.output_features.{ACTION_KEY}",
                "SAC's discrete gripper critic has no PI-RL equivalent: the gripper is a continuous dim of the chunk. "
                "gym_hil reads it in [0, 2] (2 closes, 0 opens, 1 holds): the policy's action range and "
                "normalisation must reach 2, or the gripper never closes",
            )
        else:
            for path in discrete:
                self.drop(path, "no discrete gripper head (num_discrete_actions is null)")
        compile_path = self.sac_field("use_torch_compile")
        if compile_path and _get(self.sac, compile_path):
            self.must_decide(compile_path, True, None, None, "pirlctl does not torch.compile the flow policy")
        elif compile_path:
            self.drop(compile_path, "off in the SAC run; pirlctl does not compile the flow policy")

    # -- env ------------------------------------------------------------------------------------------------
    def _env(self) -> None:
        env = self.sac.get("env")
        if not isinstance(env, dict) or env.get("type") != "gym_manipulator":
            what = "no env" if not isinstance(env, dict) else f"env.type={env.get('type')!r}"
            self.must_decide(
                "env",
                env,
                _plain(dataclasses.asdict(self.env)),
                "env",
                f"the SAC config has {what}, which pirlctl cannot run: its actor runs gym_hil's pick-cube, the "
                "default task written here; check it is the task you mean",
            )
            self._pirl_only_env_settings(pick_cube=True)
            return
        sim = env.get("name") == "gym_hil" and env.get("robot") is None
        pick_cube = self._env_task(env, sim)
        self._env_timing(env)
        self._env_processor(env, sim)
        for name in ("robot", "teleop"):
            if env.get(name) is None and name in env:
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
                    "pirlctl's actor produces observation.images.<camera> and observation.state directly; rename "
                    "the policy's features instead of mapping the env's",
                )
        self.drop_present(
            "env.",
            {"gym vector-env options; pirlctl makes one env per actor": ["max_parallel_tasks", "disable_env_checker"]},
        )
        if sim and pick_cube:
            self._check_pick_cube_dims()
        self._pirl_only_env_settings(pick_cube=pick_cube)

    def _env_task(self, env: dict[str, Any], sim: bool) -> bool:
        """env.task (or the real-robot decision) and the HIL decision; True when the task is gym_hil's pick-cube."""
        task = env.get("task")
        base = str(task or "").removeprefix("gym_hil/")
        variant = next((v for v in GYM_HIL_VARIANTS if base.endswith(f"{v}-v0")), None) if sim else None
        self._env_hil(env, teleop_variant=variant in ("Keyboard", "Gamepad"))
        if not sim:
            self.must_decide(
                "env.type, env.name, env.robot, env.teleop, env.task",
                {k: env.get(k) for k in ("type", "name", "robot", "teleop", "task")},
                self.env.task,
                "env.task",
                "a real robot: pirlctl's actor drives gym_hil only, so the default simulated task is written; "
                "PI-RL on the robot needs an actor for it",
            )
            return True
        self.stays(
            "env.type, env.name",
            {"type": env.get("type"), "name": env.get("name")},
            "env",
            "LeRobot's HIL-SERL env on the gym_hil simulation; pirlctl's actor runs gym_hil too",
        )
        plain = base.replace(f"{variant}-v0", "-v0") if variant else base
        self.env.task = f"gym_hil/{plain}"
        why = "LeRobot prefixes gym_hil/ when it makes the env; pirlctl takes the full gymnasium id"
        if variant == "Base":
            why = "the Base variant breaks in LeRobot's make_robot_env (lerobot-runtime.md); the plain task is used"
        elif variant is not None:
            why = (
                f"the {variant} variant wraps the task for a human (teleop, display); PI-RL's actors run the policy "
                "alone, headless, on the plain task"
            )
        self.change("env.task", task, self.env.task, "env.task", why)
        if plain != PICK_CUBE_TASK:
            self.must_decide(
                "env.task",
                task,
                self.env.task,
                "env.task, env.instruction",
                f"pirlctl's env options, instruction and tests are for gym_hil {PICK_CUBE_TASK}; check that "
                f"{self.env.task} takes them and set env.instruction for it",
            )
        return plain == PICK_CUBE_TASK

    def _env_hil(self, env: dict[str, Any], *, teleop_variant: bool) -> None:
        """Human interventions (HIL-SERL's point) have no PI-RL counterpart: say so whenever the SAC run had them."""
        control_mode = _get(env, "processor.control_mode")
        teleop = env.get("teleop")
        if teleop_variant or teleop is not None or control_mode not in (None, _processor_defaults()["control_mode"]):
            fields = ["env.task"] if teleop_variant else []
            fields += [p for p, v in (("env.teleop", teleop), ("env.processor.control_mode", control_mode)) if v]
            self.must_decide(
                ", ".join(fields),
                {"task": env.get("task"), "teleop": teleop, "control_mode": control_mode},
                None,
                None,
                "HIL-SERL lets a human take over and learns from the interventions; PI-RL learns from the policy's "
                "own rollouts only. Put the human demonstrations into the SFT data instead",
            )
        elif control_mode is not None:
            self.drop("env.processor.control_mode", "teleoperation mode; PI-RL has no human interventions")

    def _env_timing(self, env: dict[str, Any]) -> None:
        fps = env.get("fps")
        if fps == GYM_HIL_FPS:
            self.stays("env.fps", fps, None, "gym_hil's 10 Hz control; pirlctl's env runs at it")
        else:
            self.must_decide(
                "env.fps",
                fps,
                None,
                None,
                "pirlctl's gym_hil env steps at 10 Hz; another rate changes what a step and the episode limit mean",
            )
        control_time = _get(env, "processor.reset.control_time_s")
        if control_time is not None and isinstance(fps, (int, float)) and fps > 0:
            self.env.max_episode_steps = max(1, int(float(control_time) * fps))
            self.change(
                "env.processor.reset.control_time_s",
                {"control_time_s": control_time, "fps": fps},
                self.env.max_episode_steps,
                "env.max_episode_steps",
                "the episode limit in env steps: LeRobot's TimeLimitProcessorStep uses int(control_time_s × fps)",
            )
        else:
            self.env.max_episode_steps = GYM_HIL_TIME_LIMIT
            self.stays(
                "env.processor.reset",
                GYM_HIL_TIME_LIMIT,
                "env.max_episode_steps",
                "no reset block: LeRobot ran gym_hil's own 100-step limit",
            )
        terminate = _get(env, "processor.reset.terminate_on_success")
        if terminate is True:
            self.stays("env.processor.reset.terminate_on_success", True, None, "episodes end on success")
        elif terminate is False:
            self.must_decide(
                "env.processor.reset.terminate_on_success",
                False,
                None,
                None,
                "pirlctl's pick-cube episodes end on success (sparse reward, terminated); going on needs an env change",
            )

    def _env_processor(self, env: dict[str, Any], sim: bool) -> None:
        proc = env.get("processor")
        if not isinstance(proc, dict):
            if proc is not None:
                self._processor_decision("env.processor", proc, sim)
            return
        gp = "env.processor.gripper"
        if (use_gripper := _get(proc, "gripper.use_gripper")) is True:
            self.stays(f"{gp}.use_gripper", True, None, "pirlctl's gym_hil action includes the gripper (dim 4)")
        elif use_gripper is False:
            self.must_decide(
                f"{gp}.use_gripper", False, None, None, "pirlctl's gym_hil env always takes the gripper action (dim 4)"
            )
        if (penalty := _get(proc, "gripper.gripper_penalty")) is not None and float(penalty) == 0.0:
            self.stays(f"{gp}.gripper_penalty", penalty, None, "no gripper penalty in either")
        elif penalty is not None:
            self.must_decide(
                f"{gp}.gripper_penalty",
                penalty,
                None,
                None,
                "gym_hil reports the penalty only in info['discrete_penalty'], which LeRobot fed to the discrete "
                "gripper critic; PI-RL's reward is the env reward alone",
            )
        if (resize := _get(proc, "image_preprocessing.resize_size")) is not None:
            rp = "env.processor.image_preprocessing.resize_size"
            if list(resize) == [self.env.image_size, self.env.image_size]:
                self.stays(rp, resize, "env.image_size", "same image size; pirlctl renders at it instead of resizing")
            else:
                self.must_decide(
                    rp,
                    resize,
                    self.env.image_size,
                    "env.image_size",
                    "differs from the policy's image features, which env.image_size follows; make them agree",
                )
        defaults = _processor_defaults()
        left = f"LeRobot env-processor setting left at its default or empty{'' if sim else ' (real-robot pipeline)'}"
        for block, value in proc.items():
            path = f"env.processor.{block}"
            if self.covered(path):
                continue
            if block not in defaults:
                self._leftover(path, value)  # a block this LeRobot version does not have: reported whole
            elif isinstance(value, dict):
                for key, sub in value.items():
                    if self.covered(f"{path}.{key}"):
                        continue
                    if _is_empty(sub) or sub == (defaults[block] or {}).get(key):
                        self.drop(f"{path}.{key}", left)
                    else:
                        self._processor_decision(f"{path}.{key}", sub, sim)
            elif _is_empty(value) or value == defaults[block]:
                self.drop(path, left)
            else:
                self._processor_decision(path, value, sim)

    def _processor_decision(self, path: str, value: Any, sim: bool) -> None:
        note = "LeRobot's gym_hil pipeline did not apply it either" if sim else "it shaped the robot's data"
        self.must_decide(
            path, value, None, None, f"a LeRobot env-processor setting pirlctl's env has no equivalent for ({note})"
        )

    def _check_pick_cube_dims(self) -> None:
        """The flow policy's state and action must be what pirlctl's pick-cube actor produces and consumes."""
        state_dim = policy_state_dim(self.env)
        for fld, feature, want in (
            (f"policy.input_features.{STATE_KEY}", self.policy_cfg.robot_state_feature, state_dim),
            (f"policy.output_features.{ACTION_KEY}", self.policy_cfg.action_feature, GYM_HIL_ACTION_DIM),
        ):
            got = list(feature.shape) if feature is not None else None
            if got != [want]:
                self.must_decide(
                    fld,
                    got,
                    got,
                    fld,
                    f"pirlctl's gym_hil pick-cube actor feeds an {state_dim}-dim state and takes a "
                    f"{GYM_HIL_ACTION_DIM}-dim action (dx, dy, dz, gripper); make this feature [{want}]",
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
                "new: the VLA is conditioned on an instruction; SFT, RL and eval must use the same text",
            )
        self.stays("", e.reward_type, "env.reward_type", "LeRobot made gym_hil with its default, sparse reward")
        self.change(
            "",
            False,
            e.random_block_position,
            "env.random_block_position",
            "LeRobot's gym_hil env never moves the cube (one replayed demo succeeds every time); pirlctl randomises "
            "it. Set false to train on the SAC run's fixed-cube task",
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
            "seed", seed, e.seed, "env.seed", "LeRobot seeds its envs from the run seed; episode i uses seed + i"
        )

    # -- top level ------------------------------------------------------------------------------------------
    def _top_level(self) -> None:
        s = self.sac
        self.job_name = s.get("job_name") if isinstance(s.get("job_name"), str) else None
        self.stays("job_name", self.job_name, "job_name", "the run's name (null: the output folder's name)")
        seed = s.get("seed")
        if isinstance(seed, int):
            self.seed = seed
            self.stays("seed", seed, "seed", "global seed (torch, numpy, python)")
        else:
            self.change("seed", seed, self.seed, "seed", "PI-RL needs an integer seed: PiRLRunConfig's default")
        out = s.get("output_dir")
        if isinstance(out, str) and out:
            self.output_dir = f"{out.rstrip('/')}_pi_rl"
            why = (
                "LeRobot's SAC checkpoints use the same checkpoints/<NNNNNN>/ and last layout; a folder of its own "
                "keeps a PI-RL run (and its resume) from reading or overwriting them"
            )
        else:
            self.output_dir = f"runs/{self.job_name or 'pi_rl'}"
            why = "LeRobot made a timestamped folder at start; pirlctl needs one named in the config"
        self.change("output_dir", out, self.output_dir, "output_dir", why)
        if s.get("resume"):
            self.change("resume", True, False, "resume", "a SAC checkpoint cannot be resumed as a PI-RL run")
        elif "resume" in s:
            self.stays("resume", False, "resume", "a fresh run")
        if isinstance(s.get("dataset"), dict):
            self.must_decide(
                "dataset, online_ratio, mixer",
                {
                    "repo_id": _get(s, "dataset.repo_id"),
                    "root": _get(s, "dataset.root"),
                    "online_ratio": s.get("online_ratio"),
                },
                None,
                "policy_path",
                "PI-RL is on-policy: no offline buffer, no online/offline mixing. Behaviour-clone (SFT) the flow "
                "policy on this dataset first, then pass the checkpoint with --policy-path",
            )
        else:
            self.drop_present("", {"no offline dataset in the SAC run": ["dataset", "online_ratio", "mixer"]})
        if s.get("save_freq") is not None:
            self.change(
                "save_freq",
                s["save_freq"],
                self.runtime.checkpoint_every,
                "runtime.checkpoint_every",
                "SAC saved every N optimisation steps; pirlctl every N PPO iterations (and always at the end)",
            )
        for name, why in OPTIONAL_FEATURES.items():
            if name not in s:
                continue
            value = s[name]
            on = {"wandb": bool(_get(value, "enable")), "job": _get(value, "target") is not None}
            if on.get(name, not _is_empty(value)):
                self.must_decide(name, value, None, None, why)
            else:
                self.drop(name, "off or empty in the SAC run; no pirlctl equivalent")
        self.drop_present("", DROPPED_TOP)

    # -- everything else ------------------------------------------------------------------------------------
    def _leftovers(self) -> None:
        """Fields this migration does not know (a newer LeRobot, a hand-edited file): never dropped silently."""

        def sweep(path: str, value: Any) -> None:
            if self.covered(path):
                return
            if isinstance(value, dict) and any(s.startswith(f"{path}.") for s in self.seen):
                for key, sub in value.items():  # a section some of whose fields were handled: look inside
                    sweep(f"{path}.{key}", sub)
            else:
                self._leftover(path, value)

        for key, value in self.sac.items():
            sweep(key, value)

    def _leftover(self, path: str, value: Any) -> None:
        if _is_empty(value):
            self.drop(path, "not recognised by migrate-config, and empty in the SAC config")
        else:
            self.must_decide(
                path,
                value,
                None,
                None,
                "not recognised by migrate-config (a newer LeRobot or a custom field); no PI-RL equivalent is "
                "known: decide whether the run needs it",
            )


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

    The dict is decoded and validated like :func:`pirlctl.config.run_config.load_run_config` (the learner's own
    loader) does before it is returned, so a migrated config that the learner would refuse is never written.
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
    """Decode the migrated dict as ``load_run_config`` does (draccus decode, then ``validate``); a failure is a
    migrate-config bug and is said so. ``draccus.decode`` rejects unknown fields like the learner's parse does,
    without the ~1 s of argparse set-up ``draccus.parse`` spends on every registered config class."""
    problem: str | None = None
    try:
        draccus.decode(PiRLRunConfig, json.loads(json.dumps(data, default=str))).validate()
    except Exception as err:  # noqa: BLE001 - reported as one line below
        problem = f"the migrated config does not load ({one_line(err)[:160]}); please report this migrate-config bug"
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
