"""The walk's policy part: the Gaussian actor gives way to the flow policy, whose features follow the SAC run's.

With the tiny X-VLA (no ``--policy-path``) the features are rewritten to the SAC policy's cameras, state and action
and its position tables grown to fit; with a checkpoint (X-VLA, π0, π0.5 or SmolVLA: its ``type`` picks pirlctl's
adapter) they are kept as saved and compared. Either way the env's
cameras and image size follow the flow policy's image features: the actor renders what the policy reads.
"""

from __future__ import annotations

from typing import Any

from lerobot.configs.types import FeatureType, PolicyFeature

from pirlctl.migrate.rules import ACTION_KEY, DROPPED_POLICY, GYM_HIL_CAMERAS, IMAGE_PREFIX, STATE_KEY
from pirlctl.migrate.state import Migration, get, plain, shape_of


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


def walk_policy(m: Migration) -> None:
    pol = m.pol
    src = f"{m.policy_source}/config.json (kept as saved: its weights fix the shapes)"
    if not m.custom_policy:
        src = "configs/policy/tiny_xvla.json"
    m.change(
        "policy.type",
        pol.get("type"),
        m.policy_cfg.type,
        "policy",
        f"PI-RL fine-tunes a flow-matching policy; its config comes from {src}",
    )
    _features(m)
    m.drop_present("policy.", DROPPED_POLICY)
    if pol.get("normalization_mapping") is not None or pol.get("dataset_stats") is not None:
        m.must_decide(
            "policy.normalization_mapping, policy.dataset_stats",
            {"normalization_mapping": pol.get("normalization_mapping"), "dataset_stats": pol.get("dataset_stats")},
            plain(m.policy_cfg.normalization_mapping),
            "policy.normalization_mapping",
            "SAC normalised with these stats; the flow policy keeps its own mapping (the tiny X-VLA: IDENTITY; "
            "pirlctl scales gym_hil's gripper state to 0..1; a checkpoint: its config's mapping and the statistics "
            "in its processor files). Match what the policy was behaviour-cloned with",
        )
    hub: list[str] = [k for k in ("push_to_hub", "repo_id", "private", "tags", "license") if k in pol]
    if pol.get("push_to_hub") or pol.get("repo_id"):
        m.must_decide(
            ", ".join(f"policy.{k}" for k in hub),
            {k: pol[k] for k in hub},
            getattr(m.policy_cfg, "push_to_hub", None),
            "policy.push_to_hub",
            "pirlctl writes checkpoints to output_dir and never pushes; upload them yourself (hf upload)",
        )
    else:
        m.drop_present("policy.", {"nothing was pushed to the Hub; pirlctl never pushes": hub})
    for k in ("pretrained_path", "pretrained_revision"):
        if pol.get(k) is not None:
            m.must_decide(
                f"policy.{k}",
                pol[k],
                m.policy_source if m.custom_policy else None,
                "policy_path",
                "a Gaussian-actor checkpoint cannot initialise a flow policy; behaviour-clone a flow policy (X-VLA, "
                "π0, π0.5 or SmolVLA) on the demonstrations and pass its folder with --policy-path",
            )
        elif k in pol:
            m.drop(f"policy.{k}", "no pretrained Gaussian actor; the flow policy's weights are policy_path")


def _features(m: Migration) -> None:
    pol = m.pol
    inputs, outputs = pol.get("input_features"), pol.get("output_features")
    m.seen.update(("policy.input_features", "policy.output_features"))
    if not (isinstance(inputs, dict) and inputs and isinstance(outputs, dict) and outputs):
        m.must_decide(
            "policy.input_features, policy.output_features",
            {"input_features": inputs, "output_features": outputs},
            None,
            "policy.input_features, policy.output_features",
            "the SAC config names no features, so the flow policy keeps its own; check them against the env",
        )
        _env_from_policy_features(m)
        return
    images = {k: v for k, v in inputs.items() if get(v, "type") == "VISUAL" or k.startswith("observation.image")}
    others = {k: v for k, v in inputs.items() if k not in images and k != STATE_KEY}
    action_shape = shape_of(outputs.get(ACTION_KEY))
    # With num_discrete_actions, LeRobot's Gaussian actor outputs the continuous dims and appends the argmax of
    # a discrete gripper critic (GaussianActorPolicy.select_action): the env's action is one dim wider.
    n_discrete = pol.get("num_discrete_actions")
    env_action_dim = action_shape[0] + (n_discrete is not None) if action_shape else None
    if m.custom_policy:
        _compare_checkpoint_features(m, images, inputs.get(STATE_KEY), env_action_dim)
    else:
        _rewrite_features(m, images, shape_of(inputs.get(STATE_KEY)), action_shape, env_action_dim, n_discrete)
    for key, feat in others.items():
        m.must_decide(
            f"policy.input_features.{key}",
            feat,
            None,
            None,
            "pirlctl's actor feeds the flow policy images and observation.state only; fold this input into the "
            "state or leave it out",
        )
    _env_from_policy_features(m)


def _rewrite_features(
    m: Migration,
    images: dict[str, Any],
    state_shape: list[int] | None,
    action_shape: list[int] | None,
    env_action_dim: int | None,
    n_discrete: Any,
) -> None:
    cfg = m.policy_cfg
    new_inputs: dict[str, PolicyFeature] = {}
    for key, feat in images.items():
        if (shape := shape_of(feat)) is not None:
            new_inputs[key] = PolicyFeature(FeatureType.VISUAL, tuple(shape))
            fld = f"policy.input_features.{key}"
            m.stays(fld, {"type": "VISUAL", "shape": shape}, fld, "same camera and image shape")
    if not new_inputs:
        new_inputs.update(cfg.image_features)
        m.must_decide(
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
        m.stays(fld, {"type": "STATE", "shape": state_shape}, fld, "same proprioceptive state")
        if cfg.max_state_dim != state_shape[0]:
            m.change(
                "policy.input_features.observation.state",
                cfg.max_state_dim,
                state_shape[0],
                "policy.max_state_dim",
                "X-VLA pads or truncates the state to max_state_dim; sized to the state so nothing is cut",
            )
            cfg.max_state_dim = state_shape[0]
    else:
        cfg.use_proprio = False
        m.must_decide(
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
            m.change(
                f"policy.output_features.{ACTION_KEY}, policy.num_discrete_actions",
                {"shape": action_shape, "num_discrete_actions": n_discrete},
                {"shape": [env_action_dim]},
                f"policy.output_features.{ACTION_KEY}",
                "SAC appended a discrete gripper action (the discrete critic's argmax) to its continuous output; "
                "the flow policy outputs the whole env action, gripper included, as one continuous chunk",
            )
        else:
            fld = f"policy.output_features.{ACTION_KEY}"
            m.stays(fld, {"type": "ACTION", "shape": action_shape}, fld, "same action")
        if cfg.max_action_dim != env_action_dim:
            m.change(
                f"policy.output_features.{ACTION_KEY}",
                cfg.max_action_dim,
                env_action_dim,
                "policy.max_action_dim",
                "X-VLA's 'auto' action mode pads the action to max_action_dim; sized to the real action",
            )
            cfg.max_action_dim = env_action_dim
    _size_tables(m)


def _size_tables(m: Migration) -> None:
    """Grow the tiny X-VLA's position tables where the SAC cameras give more tokens than it was sized for."""
    cfg = m.policy_cfg
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
        m.change(
            "policy.input_features (images)",
            have,
            need,
            f"policy.{name}",
            f"{height}×{width} cameras give X-VLA more tokens than the tiny config's tables hold",
        )


def _compare_checkpoint_features(m: Migration, images: dict[str, Any], state: Any, env_action_dim: int | None) -> None:
    cfg = m.policy_cfg
    pairs = (
        ("policy.input_features (images)", {k: shape_of(v) for k, v in images.items()}, "image"),
        (f"policy.input_features.{STATE_KEY}", shape_of(state), "state"),
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
            m.stays(fld, sac_value, target, "the checkpoint's policy has the same feature")
        else:
            m.must_decide(
                fld,
                sac_value,
                ckpt[kind],
                target,
                "the checkpoint's feature differs from the SAC policy's (the action counts SAC's discrete "
                "gripper); the checkpoint's is kept, since its weights fix it, and the env follows it",
            )


def _env_from_policy_features(m: Migration) -> None:
    """env.cameras and env.image_size from the flow policy's image features: what the actor must render."""
    names = [k.removeprefix(IMAGE_PREFIX) for k in m.policy_cfg.image_features]
    shapes = [tuple(f.shape) for f in m.policy_cfg.image_features.values()]
    cams = [n for n in names if n in GYM_HIL_CAMERAS]
    unknown = [n for n in names if n not in GYM_HIL_CAMERAS]
    if cams:
        m.env.cameras = cams
        m.change(
            "policy.input_features (images)",
            [f"{IMAGE_PREFIX}{c}" for c in cams],
            cams,
            "env.cameras",
            "pirlctl's actor renders exactly the cameras the policy reads",
        )
    if unknown:
        m.must_decide(
            "policy.input_features (images)",
            unknown,
            m.env.cameras,
            "env.cameras",
            "pirlctl renders gym_hil's front and wrist cameras only; rename these policy features (and the "
            "demonstrations' keys) or the actor cannot feed them",
        )
    sides = {(s[-2], s[-1]) for s in shapes}
    if not sides:
        return
    height, width = max(sides)
    m.env.image_size = int(height)
    if len(sides) > 1 or height != width:
        m.must_decide(
            "policy.input_features (images)",
            [list(s) for s in shapes],
            height,
            "env.image_size",
            "gym_hil renders square images of one size for all cameras; make the policy's images square and equal",
        )
    else:
        m.change(
            "policy.input_features (images)",
            f"{height}×{width}",
            height,
            "env.image_size",
            "pirlctl renders gym_hil at the policy's image size",
        )
