"""`pirlctl migrate-config`: a LeRobot SAC run config becomes a PI-RL run config the learner's own loader accepts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import draccus
import pytest
import torch
import typer
from lerobot.configs.default import DatasetConfig
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.envs.configs import (
    GripperConfig,
    HILSerlProcessorConfig,
    HILSerlRobotEnvConfig,
    ImagePreprocessingConfig,
)
from lerobot.policies.gaussian_actor.configuration_gaussian_actor import ActorLearnerConfig, GaussianActorConfig
from lerobot.rl.algorithms.sac import SACAlgorithmConfig
from lerobot.rl.train_rl import TrainRLServerPipelineConfig
from safetensors.torch import load_file
from typer.testing import CliRunner

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.cli import migrate_config
from pirlctl.config.run_config import load_run_config
from pirlctl.migrate.files import migrate, read_sac_config
from pirlctl.policies.loading import CONFIGS_DIR, TINY_XVLA_CONFIG, build_policy, load_policy_config

from ..conftest import make_xvla_batch

IMAGE_SHAPE = (3, 128, 128)  # gym_hil's default render size, as in LeRobot's HIL-SERL sim configs
RESET_BLOCK = {  # as LeRobot's HIL-SERL docs write it; draccus 0.6.1 cannot encode ResetConfig, so it is added by hand
    "fixed_reset_joint_positions": [0.0, 0.195, 0.0, -2.43, 0.0, 2.62, 0.785],
    "reset_time_s": 2.0,
    "control_time_s": 15.0,
    "terminate_on_success": True,
}


def sac_config_dict(tmp_path: Path) -> dict:
    """A HIL-SERL gym_hil SAC run config, built from LeRobot's own dataclasses and encoded by draccus."""
    policy = GaussianActorConfig(
        input_features={
            "observation.images.front": PolicyFeature(FeatureType.VISUAL, IMAGE_SHAPE),
            "observation.images.wrist": PolicyFeature(FeatureType.VISUAL, IMAGE_SHAPE),
            "observation.state": PolicyFeature(FeatureType.STATE, (18,)),
        },
        # dx, dy, dz from the Gaussian actor; the gripper is the discrete critic's argmax (3 choices): 4 env dims.
        output_features={"action": PolicyFeature(FeatureType.ACTION, (3,))},
        num_discrete_actions=3,
        actor_learner_config=ActorLearnerConfig(learner_host="127.0.0.1", learner_port=50099),
        online_steps=12_345,
        device="cpu",
        push_to_hub=False,
    )
    env = HILSerlRobotEnvConfig(
        name="gym_hil",
        task="PandaPickCubeKeyboard-v0",
        fps=10,
        processor=HILSerlProcessorConfig(
            control_mode="keyboard",
            gripper=GripperConfig(use_gripper=True, gripper_penalty=-0.02),
            image_preprocessing=ImagePreprocessingConfig(resize_size=(128, 128)),
        ),
    )
    cfg = TrainRLServerPipelineConfig(
        policy=policy,
        env=env,
        dataset=DatasetConfig(repo_id="user/pick_cube_demos"),
        algorithm=SACAlgorithmConfig(utd_ratio=2, critic_lr=1e-3, temperature_init=0.1),
        output_dir=str(tmp_path / "outputs" / "sac_pick_cube"),
        job_name="sac_pick_cube",
        seed=7,
    )
    data = draccus.encode(cfg)
    data["env"]["processor"]["reset"] = dict(RESET_BLOCK)
    return data


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


@pytest.fixture
def cli():
    app = typer.Typer()
    migrate_config.register(app)

    @app.command()
    def other() -> None:  # a second command keeps typer from collapsing the app into the single command
        pass

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["migrate-config", *args])

    return invoke


@pytest.fixture
def sac_json(tmp_path) -> Path:
    return write_json(tmp_path / "sac.json", sac_config_dict(tmp_path))


def fields_of(items: list[dict]) -> set[str]:
    """Every SAC field named by a report group (an item may name several, comma-separated)."""
    return {f.strip() for item in items for f in item["field"].split(",") if f.strip()}


def test_sac_config_becomes_a_pi_rl_config_the_learner_loads(cli, sac_json, tmp_path):
    out = tmp_path / "pirl.json"
    result = cli(str(sac_json), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["written"] is True and report["output"] == str(out)

    cfg = load_run_config(out)  # the learner's own loader
    assert cfg.policy.type == "xvla" and cfg.policy_path is None
    assert isinstance(cfg.algorithm, PiRLConfig) and cfg.algorithm.type == "pi_rl"
    # The flow policy sees what the SAC policy saw; the action gains SAC's discrete gripper dim.
    features = {k: (f.type, tuple(f.shape)) for k, f in cfg.policy.input_features.items()}
    assert features == {
        "observation.images.front": (FeatureType.VISUAL, IMAGE_SHAPE),
        "observation.images.wrist": (FeatureType.VISUAL, IMAGE_SHAPE),
        "observation.state": (FeatureType.STATE, (18,)),
    }
    assert tuple(cfg.policy.output_features["action"].shape) == (4,)
    assert cfg.policy.max_state_dim == 18 and cfg.policy.max_action_dim == 4
    # Runtime settings moved off the policy.
    assert (cfg.runtime.learner_host, cfg.runtime.learner_port) == ("127.0.0.1", 50099)
    assert cfg.runtime.total_env_steps == 12_345 and cfg.runtime.device == "cpu"
    assert not hasattr(cfg.policy, "actor_learner_config") and not hasattr(cfg.policy, "online_steps")
    # The env is what the SAC run trained on, headless.
    assert cfg.env.task == "gym_hil/PandaPickCube-v0"
    assert cfg.env.image_size == 128 and cfg.env.cameras == ["front", "wrist"]
    assert cfg.env.max_episode_steps == 150  # int(control_time_s 15 × fps 10), as LeRobot's TimeLimitProcessorStep
    assert cfg.env.seed == 7 and cfg.seed == 7 and cfg.job_name == "sac_pick_cube"
    assert cfg.output_dir.endswith("sac_pick_cube_pi_rl")  # never the SAC run's checkpoint folder

    assert report["dataset_repo_id"] == "user/pick_cube_demos"
    changes = {item["field"]: item for item in report["changes"]}
    assert changes["policy.actor_learner_config.learner_host"]["target"] == "runtime.learner_host"
    assert changes["policy.actor_learner_config.learner_port"]["new"] == 50099
    assert changes["policy.online_steps"]["target"] == "runtime.total_env_steps"
    assert changes["policy.type"]["old"] == "gaussian_actor" and changes["policy.type"]["new"] == "xvla"
    assert changes["algorithm.type"]["new"] == "pi_rl"
    assert changes["env.task"]["new"] == "gym_hil/PandaPickCube-v0"
    assert {"policy.concurrency", "policy.online_buffer_capacity", "num_workers"} <= fields_of(report["changes"])

    same = fields_of(report["stays_the_same"])
    assert {"policy.input_features.observation.state", "policy.input_features.observation.images.front"} <= same
    assert {"env.fps", "seed", "job_name", "env.processor.gripper.use_gripper"} <= same

    decide = fields_of(report["you_must_decide"])
    assert {"algorithm.utd_ratio", "algorithm.critic_lr", "algorithm.actor_lr", "algorithm.temperature_init"} <= decide
    assert {"algorithm.discount", "policy.num_discrete_actions", "dataset"} <= decide
    assert {"env.processor.gripper.gripper_penalty", "env.processor.control_mode"} <= decide
    assert "env.processor.reset.fixed_reset_joint_positions" in decide  # unmapped processor setting: never dropped
    critic_lr = next(i for i in report["you_must_decide"] if i["field"] == "algorithm.critic_lr")
    assert critic_lr["old"] == 1e-3 and critic_lr["target"] == "algorithm.value_lr"


def test_every_sac_field_lands_in_a_report_group(sac_json):
    """Nothing is dropped silently: each SAC field (or a section holding it) is named by a report item."""
    sac = read_sac_config(sac_json)
    report, _ = migrate(sac)
    named = {
        f.strip().removesuffix(" (images)")
        for group in (report.changes, report.stays_the_same, report.you_must_decide)
        for item in group
        for f in item.field.split(",")
    }

    def unnamed(path: str, value) -> list[str]:
        parts = path.split(".")
        if any(".".join(parts[:i]) in named for i in range(1, len(parts) + 1)):
            return []
        if isinstance(value, dict) and value:
            return [p for k, v in value.items() for p in unnamed(f"{path}.{k}", v)]
        return [path]

    assert [p for key, value in sac.items() for p in unnamed(key, value)] == []


def test_unknown_settings_are_for_the_user_to_decide_not_dropped(cli, tmp_path):
    sac = sac_config_dict(tmp_path)
    sac["env"]["processor"]["my_custom_step"] = {"strength": 3}
    sac["future_top_level_knob"] = 42
    result = cli(str(write_json(tmp_path / "sac.json", sac)), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    decide = fields_of(json.loads(result.stdout)["you_must_decide"])
    assert {"env.processor.my_custom_step", "future_top_level_knob"} <= decide


def test_pre_0_6_sac_policy_and_real_robot_configs_migrate_with_their_decisions(tmp_path):
    legacy = sac_config_dict(tmp_path)
    algorithm = legacy.pop("algorithm")  # before 0.6 the "sac" policy carried the SAC hyperparameters itself
    legacy["policy"].update({k: v for k, v in algorithm.items() if k not in ("type", "policy_config")})
    legacy["policy"]["type"] = "sac"
    report, data = migrate(legacy)
    decide = fields_of([dataclasses.asdict(i) for i in report.you_must_decide])
    assert {"policy.critic_lr", "policy.utd_ratio", "policy.temperature_init"} <= decide
    assert data["algorithm"]["type"] == "pi_rl" and data["policy"]["type"] == "xvla"

    robot = sac_config_dict(tmp_path)
    robot["env"].update(name="real_robot", robot={"type": "so100_follower"}, teleop={"type": "gamepad"})
    report, data = migrate(robot)
    decide = fields_of([dataclasses.asdict(i) for i in report.you_must_decide])
    assert {"env.robot", "env.teleop"} <= decide  # pirlctl's actor drives gym_hil only: the user must know
    assert data["env"]["task"] == "gym_hil/PandaPickCube-v0"


def test_migrated_tiny_xvla_predicts_at_the_sac_image_size(cli, sac_json, tmp_path):
    """The tiny X-VLA's position tables are grown for 128 px cameras: the migrated policy builds and runs."""
    out = tmp_path / "pirl.json"
    assert cli(str(sac_json), "-o", str(out)).exit_code == 0
    cfg = load_run_config(out)
    torch.manual_seed(0)
    policy = build_policy(cfg.policy)
    with torch.no_grad():
        chunk = policy.predict_action_chunk(make_xvla_batch(cfg.policy, 2))
    assert tuple(chunk.shape) == (2, cfg.policy.chunk_size, 4)


def test_policy_path_keeps_the_checkpoint_config_and_flags_feature_mismatches(cli, sac_json, tmp_path):
    ckpt = tmp_path / "sft" / "pretrained_model"
    ckpt.mkdir(parents=True)
    tiny = load_policy_config(TINY_XVLA_CONFIG)  # 64 px cameras: differs from the SAC run's 128 px
    tiny._save_pretrained(ckpt)  # LeRobot's own config.json writer (with the "type" key)
    out = tmp_path / "pirl.json"
    result = cli(str(sac_json), "-o", str(out), "--policy-path", str(ckpt), "--json")
    assert result.exit_code == 0, result.output
    cfg = load_run_config(out)
    assert cfg.policy_path == str(ckpt.resolve())
    assert tuple(cfg.policy.input_features["observation.images.front"].shape) == (3, 64, 64)  # kept as saved
    assert cfg.env.image_size == 64  # the actor renders what the policy that runs reads
    decide = {i["field"]: i for i in json.loads(result.stdout)["you_must_decide"]}
    assert decide["policy.input_features (images)"]["new"]["observation.images.front"] == [3, 64, 64]


@pytest.fixture(scope="module")
def velocity_folders(tmp_path_factory) -> dict[str, Path]:
    """Local π0, π0.5 and SmolVLA checkpoint folders: each tiny build saved by LeRobot's own ``save_pretrained``."""
    root = tmp_path_factory.mktemp("velocity")
    folders = {}
    for kind in ("pi0", "pi05", "smolvla"):
        torch.manual_seed(0)
        build_policy(load_policy_config(CONFIGS_DIR / "policy" / f"tiny_{kind}.json")).save_pretrained(root / kind)
        folders[kind] = root / kind
    return folders


@pytest.mark.parametrize("kind", ["pi0", "pi05", "smolvla"])
def test_policy_path_accepts_a_pi0_pi05_or_smolvla_folder_and_its_type_picks_the_policy(
    cli, sac_json, tmp_path, velocity_folders, kind
):
    folder = velocity_folders[kind]
    out = tmp_path / "pirl.json"
    result = cli(str(sac_json), "-o", str(out), "--policy-path", str(folder), "--json")
    assert result.exit_code == 0, result.output
    cfg = load_run_config(out)  # the learner's own loader
    assert cfg.policy.type == kind and cfg.policy_path == str(folder.resolve())
    assert cfg.algorithm.type == "pi_rl" and cfg.env.image_size == 64  # the folder's 64 px cameras, kept as saved
    report = json.loads(result.stdout)
    changed = {i["field"]: i for i in report["changes"]}
    assert changed["policy.type"]["old"] == "gaussian_actor" and changed["policy.type"]["new"] == kind
    assert report["policy"] == str(folder.resolve())
    policy = build_policy(cfg.policy, cfg.policy_path)  # the written config rebuilds the folder's weights
    saved = load_file(str(folder / "model.safetensors"))
    assert all(torch.equal(policy.state_dict()[k], v) for k, v in saved.items())
    # --policy naming another type than the folder holds is refused in one line
    result = cli(str(sac_json), "-o", str(tmp_path / "other.json"), "--policy", "xvla", "--policy-path", str(folder))
    assert result.exit_code == 2 and f"holds a '{kind}' policy, not 'xvla'" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "other.json").exists()


def test_force_overwrites_and_without_it_nothing_is_touched(cli, sac_json, tmp_path):
    out = tmp_path / "pirl.json"
    out.write_text("keep me")
    result = cli(str(sac_json), "-o", str(out))
    assert result.exit_code == 2
    assert "exists" in result.output and "--force" in result.output
    assert out.read_text() == "keep me"
    assert cli(str(sac_json), "-o", str(out), "--force").exit_code == 0
    assert load_run_config(out).policy.type == "xvla"


def test_dry_run_writes_nothing_and_prints_the_report(cli, sac_json, tmp_path):
    out = tmp_path / "pirl.json"
    result = cli(str(sac_json), "-o", str(out), "--dry-run")
    assert result.exit_code == 0, result.output
    assert not out.exists() and list(tmp_path.iterdir()) == [sac_json]
    for title in ("Changes", "Stays the same", "You must decide", "dry run"):
        assert title in result.output
    as_json = cli(str(sac_json), "--dry-run", "--json")
    data = json.loads(as_json.stdout)
    assert data["written"] is False and data["config"]["algorithm"]["type"] == "pi_rl"


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (None, (), "not found"),
        ("{ not json", (), "not valid JSON"),
        ("[1, 2]", (), "not a run config"),
        (json.dumps({"policy": {"type": "act"}}), (), "not a SAC run config"),
        (json.dumps({"policy": {"type": "gaussian_actor"}, "algorithm": {"type": "ppo"}}), (), "algorithm.type='ppo'"),
        ("PIRL", (), "already a PI-RL run config"),
        ("SAC", ("--policy", "act"), "use one of xvla, pi0, pi05, smolvla"),
        ("SAC", ("--policy", "pi0"), "--policy pi0 needs --policy-path"),
        ("SAC", ("--policy-path", "NOWHERE"), "is not a directory"),
    ],
)
def test_refusals_are_one_line_exit_2_and_write_nothing(cli, tmp_path, content, extra, message):
    src = tmp_path / "in.json"
    if content == "PIRL":
        src.write_text((CONFIGS_DIR / "pick_cube_tiny.json").read_text())
    elif content == "SAC":
        write_json(src, sac_config_dict(tmp_path))
    elif content is not None:
        src.write_text(content)
    args = [a.replace("NOWHERE", str(tmp_path / "nowhere")) for a in extra]
    out = tmp_path / "pirl.json"
    result = cli(str(src), "-o", str(out), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_missing_output_and_unusable_checkpoints_are_refused(cli, sac_json, tmp_path):
    result = cli(str(sac_json))
    assert result.exit_code == 2 and "-o PIRL.json" in result.output
    empty = tmp_path / "ckpt"
    empty.mkdir()
    result = cli(str(sac_json), "-o", str(tmp_path / "pirl.json"), "--policy-path", str(empty))
    assert result.exit_code == 2 and "no config.json" in result.output
    sac_actor = tmp_path / "sac_actor"
    sac_actor.mkdir()
    GaussianActorConfig(push_to_hub=False)._save_pretrained(sac_actor)  # a real LeRobot checkpoint, wrong kind
    result = cli(str(sac_json), "-o", str(tmp_path / "pirl.json"), "--policy-path", str(sac_actor))
    assert result.exit_code == 2 and "holds a 'gaussian_actor' policy" in result.output
    assert not (tmp_path / "pirl.json").exists()
