"""The walk's env part: LeRobot's ``gym_manipulator`` env (HIL-SERL) becomes pirlctl's gym_hil env settings.

The task, its control rate and episode limit, the env-processor blocks (a setting someone chose is never dropped
silently: it is compared with LeRobot's default) and the settings pirlctl has that LeRobot's env had not.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pirlctl.config.run_config import policy_state_dim
from pirlctl.migrate.rules import (
    ACTION_KEY,
    GYM_HIL_ACTION_DIM,
    GYM_HIL_FPS,
    GYM_HIL_TIME_LIMIT,
    GYM_HIL_VARIANTS,
    PICK_CUBE_TASK,
    STATE_KEY,
)
from pirlctl.migrate.state import Migration, get, is_empty, plain


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
    defaults = {name: plain(dataclasses.asdict(cls())) for name, cls in blocks.items()}
    return {"control_mode": top.control_mode, "max_gripper_pos": top.max_gripper_pos, **defaults}


def walk_env(m: Migration) -> None:
    env = m.sac.get("env")
    if not isinstance(env, dict) or env.get("type") != "gym_manipulator":
        what = "no env" if not isinstance(env, dict) else f"env.type={env.get('type')!r}"
        m.must_decide(
            "env",
            env,
            plain(dataclasses.asdict(m.env)),
            "env",
            f"the SAC config has {what}, which pirlctl cannot run: its actor runs gym_hil's pick-cube, the "
            "default task written here; check it is the task you mean",
        )
        _pirl_only_env_settings(m, pick_cube=True)
        return
    sim = env.get("name") == "gym_hil" and env.get("robot") is None
    pick_cube = _env_task(m, env, sim)
    _env_timing(m, env)
    _env_processor(m, env, sim)
    for name in ("robot", "teleop"):
        if env.get(name) is None and name in env:
            m.drop(f"env.{name}", "no robot or teleoperator in the simulated env")
    for name in ("features", "features_map"):
        if is_empty(env.get(name)):
            m.drop(f"env.{name}", "empty; the policy's features define what the actor produces")
        else:
            m.must_decide(
                f"env.{name}",
                env.get(name),
                None,
                "policy.input_features",
                "pirlctl's actor produces observation.images.<camera> and observation.state directly; rename "
                "the policy's features instead of mapping the env's",
            )
    m.drop_present(
        "env.",
        {"gym vector-env options; pirlctl makes one env per actor": ["max_parallel_tasks", "disable_env_checker"]},
    )
    if sim and pick_cube:
        _check_pick_cube_dims(m)
    _pirl_only_env_settings(m, pick_cube=pick_cube)


def _env_task(m: Migration, env: dict[str, Any], sim: bool) -> bool:
    """env.task (or the real-robot decision) and the HIL decision; True when the task is gym_hil's pick-cube."""
    task = env.get("task")
    base = str(task or "").removeprefix("gym_hil/")
    variant = next((v for v in GYM_HIL_VARIANTS if base.endswith(f"{v}-v0")), None) if sim else None
    _env_hil(m, env, teleop_variant=variant in ("Keyboard", "Gamepad"))
    if not sim:
        m.must_decide(
            "env.type, env.name, env.robot, env.teleop, env.task",
            {k: env.get(k) for k in ("type", "name", "robot", "teleop", "task")},
            m.env.task,
            "env.task",
            "a real robot: pirlctl's actor drives gym_hil only, so the default simulated task is written; "
            "PI-RL on the robot needs an actor for it",
        )
        return True
    m.stays(
        "env.type, env.name",
        {"type": env.get("type"), "name": env.get("name")},
        "env",
        "LeRobot's HIL-SERL env on the gym_hil simulation; pirlctl's actor runs gym_hil too",
    )
    plain = base.replace(f"{variant}-v0", "-v0") if variant else base
    m.env.task = f"gym_hil/{plain}"
    why = "LeRobot prefixes gym_hil/ when it makes the env; pirlctl takes the full gymnasium id"
    if variant == "Base":
        why = "the Base variant breaks in LeRobot's make_robot_env (lerobot-runtime.md); the plain task is used"
    elif variant is not None:
        why = (
            f"the {variant} variant wraps the task for a human (teleop, display); PI-RL's actors run the policy "
            "alone, headless, on the plain task"
        )
    m.change("env.task", task, m.env.task, "env.task", why)
    if plain != PICK_CUBE_TASK:
        m.must_decide(
            "env.task",
            task,
            m.env.task,
            "env.task, env.instruction",
            f"pirlctl's env options, instruction and tests are for gym_hil {PICK_CUBE_TASK}; check that "
            f"{m.env.task} takes them and set env.instruction for it",
        )
    return plain == PICK_CUBE_TASK


def _env_hil(m: Migration, env: dict[str, Any], *, teleop_variant: bool) -> None:
    """Human interventions (HIL-SERL's point) have no PI-RL counterpart: say so whenever the SAC run had them."""
    control_mode = get(env, "processor.control_mode")
    teleop = env.get("teleop")
    if teleop_variant or teleop is not None or control_mode not in (None, _processor_defaults()["control_mode"]):
        fields = ["env.task"] if teleop_variant else []
        fields += [p for p, v in (("env.teleop", teleop), ("env.processor.control_mode", control_mode)) if v]
        m.must_decide(
            ", ".join(fields),
            {"task": env.get("task"), "teleop": teleop, "control_mode": control_mode},
            None,
            None,
            "HIL-SERL lets a human take over and learns from the interventions; PI-RL learns from the policy's "
            "own rollouts only. Put the human demonstrations into the SFT data instead",
        )
    elif control_mode is not None:
        m.drop("env.processor.control_mode", "teleoperation mode; PI-RL has no human interventions")


def _env_timing(m: Migration, env: dict[str, Any]) -> None:
    fps = env.get("fps")
    if fps == GYM_HIL_FPS:
        m.stays("env.fps", fps, None, "gym_hil's 10 Hz control; pirlctl's env runs at it")
    else:
        m.must_decide(
            "env.fps",
            fps,
            None,
            None,
            "pirlctl's gym_hil env steps at 10 Hz; another rate changes what a step and the episode limit mean",
        )
    control_time = get(env, "processor.reset.control_time_s")
    if control_time is not None and isinstance(fps, (int, float)) and fps > 0:
        m.env.max_episode_steps = max(1, int(float(control_time) * fps))
        m.change(
            "env.processor.reset.control_time_s",
            {"control_time_s": control_time, "fps": fps},
            m.env.max_episode_steps,
            "env.max_episode_steps",
            "the episode limit in env steps: LeRobot's TimeLimitProcessorStep uses int(control_time_s × fps)",
        )
    else:
        m.env.max_episode_steps = GYM_HIL_TIME_LIMIT
        m.stays(
            "env.processor.reset",
            GYM_HIL_TIME_LIMIT,
            "env.max_episode_steps",
            "no reset block: LeRobot ran gym_hil's own 100-step limit",
        )
    terminate = get(env, "processor.reset.terminate_on_success")
    if terminate is True:
        m.stays("env.processor.reset.terminate_on_success", True, None, "episodes end on success")
    elif terminate is False:
        m.must_decide(
            "env.processor.reset.terminate_on_success",
            False,
            None,
            None,
            "pirlctl's pick-cube episodes end on success (sparse reward, terminated); going on needs an env change",
        )


def _env_processor(m: Migration, env: dict[str, Any], sim: bool) -> None:
    proc = env.get("processor")
    if not isinstance(proc, dict):
        if proc is not None:
            _processor_decision(m, "env.processor", proc, sim)
        return
    gp = "env.processor.gripper"
    if (use_gripper := get(proc, "gripper.use_gripper")) is True:
        m.stays(f"{gp}.use_gripper", True, None, "pirlctl's gym_hil action includes the gripper (dim 4)")
    elif use_gripper is False:
        m.must_decide(
            f"{gp}.use_gripper", False, None, None, "pirlctl's gym_hil env always takes the gripper action (dim 4)"
        )
    if (penalty := get(proc, "gripper.gripper_penalty")) is not None and float(penalty) == 0.0:
        m.stays(f"{gp}.gripper_penalty", penalty, None, "no gripper penalty in either")
    elif penalty is not None:
        m.must_decide(
            f"{gp}.gripper_penalty",
            penalty,
            None,
            None,
            "gym_hil reports the penalty only in info['discrete_penalty'], which LeRobot fed to the discrete "
            "gripper critic; PI-RL's reward is the env reward alone",
        )
    if (resize := get(proc, "image_preprocessing.resize_size")) is not None:
        rp = "env.processor.image_preprocessing.resize_size"
        if list(resize) == [m.env.image_size, m.env.image_size]:
            m.stays(rp, resize, "env.image_size", "same image size; pirlctl renders at it instead of resizing")
        else:
            m.must_decide(
                rp,
                resize,
                m.env.image_size,
                "env.image_size",
                "differs from the policy's image features, which env.image_size follows; make them agree",
            )
    defaults = _processor_defaults()
    left = f"LeRobot env-processor setting left at its default or empty{'' if sim else ' (real-robot pipeline)'}"
    for block, value in proc.items():
        path = f"env.processor.{block}"
        if m.covered(path):
            continue
        if block not in defaults:
            m.leftover(path, value)  # a block this LeRobot version does not have: reported whole
        elif isinstance(value, dict):
            for key, sub in value.items():
                if m.covered(f"{path}.{key}"):
                    continue
                if is_empty(sub) or sub == (defaults[block] or {}).get(key):
                    m.drop(f"{path}.{key}", left)
                else:
                    _processor_decision(m, f"{path}.{key}", sub, sim)
        elif is_empty(value) or value == defaults[block]:
            m.drop(path, left)
        else:
            _processor_decision(m, path, value, sim)


def _processor_decision(m: Migration, path: str, value: Any, sim: bool) -> None:
    note = "LeRobot's gym_hil pipeline did not apply it either" if sim else "it shaped the robot's data"
    m.must_decide(
        path, value, None, None, f"a LeRobot env-processor setting pirlctl's env has no equivalent for ({note})"
    )


def _check_pick_cube_dims(m: Migration) -> None:
    """The flow policy's state and action must be what pirlctl's pick-cube actor produces and consumes."""
    state_dim = policy_state_dim(m.env)
    for fld, feature, want in (
        (f"policy.input_features.{STATE_KEY}", m.policy_cfg.robot_state_feature, state_dim),
        (f"policy.output_features.{ACTION_KEY}", m.policy_cfg.action_feature, GYM_HIL_ACTION_DIM),
    ):
        got = list(feature.shape) if feature is not None else None
        if got != [want]:
            m.must_decide(
                fld,
                got,
                got,
                fld,
                f"pirlctl's gym_hil pick-cube actor feeds an {state_dim}-dim state and takes a "
                f"{GYM_HIL_ACTION_DIM}-dim action (dx, dy, dz, gripper); make this feature [{want}]",
            )


def _pirl_only_env_settings(m: Migration, *, pick_cube: bool) -> None:
    """EnvSettings with no SAC field: what LeRobot's gym_hil env did, and what pirlctl does instead."""
    e = m.env
    if pick_cube:
        m.change(
            "",
            None,
            e.instruction,
            "env.instruction",
            "new: the VLA is conditioned on an instruction; SFT, RL and eval must use the same text",
        )
    m.stays("", e.reward_type, "env.reward_type", "LeRobot made gym_hil with its default, sparse reward")
    m.change(
        "",
        False,
        e.random_block_position,
        "env.random_block_position",
        "LeRobot's gym_hil env never moves the cube (one replayed demo succeeds every time); pirlctl randomises "
        "it. Set false to train on the SAC run's fixed-cube task",
    )
    m.change(
        "",
        "on (MuJoCo default)",
        {"shadows": e.shadows, "multisamples": e.multisamples},
        "env.shadows, env.multisamples",
        "about 4× faster CPU rendering; images differ, so SFT demos, training and eval must agree",
    )
    seed = m.sac.get("seed")
    e.seed = int(seed) if isinstance(seed, int) else e.seed
    m.change("seed", seed, e.seed, "env.seed", "LeRobot seeds its envs from the run seed; episode i uses seed + i")
