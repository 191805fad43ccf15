"""Run configs: PI-RL keeps policy.type, runtime settings stay off the policy, SAC configs keep working."""

from __future__ import annotations

import json

import draccus
import pytest
from lerobot.configs.default import DatasetConfig
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy
from lerobot.rl.algorithms.factory import make_algorithm
from lerobot.rl.algorithms.sac import SACAlgorithm, SACAlgorithmConfig
from lerobot.rl.train_rl import TrainRLServerPipelineConfig

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.config.run_config import RunConfigError, encode_run_config, load_run_config
from pirlctl.config.settings import OperatorSettings, apply_operator_settings, check_bind_address
from pirlctl.configs import builtin_names
from pirlctl.errors import one_line
from pirlctl.policies.loading import CONFIGS_DIR


def test_pi_rl_run_config_keeps_policy_type_and_takes_dotted_overrides():
    cfg = load_run_config(CONFIGS_DIR / "pick_cube_tiny.json", ["--runtime.num_actors=3", "--algorithm.gamma=0.9"])
    assert cfg.policy.type == "xvla" and isinstance(cfg.algorithm, PiRLConfig)
    assert cfg.runtime.num_actors == 3 and cfg.pirl.gamma == 0.9
    assert cfg.pirl.policy_config is cfg.policy
    assert not hasattr(cfg.policy, "actor_learner_config")  # runtime settings are not on the policy


@pytest.mark.parametrize("name", builtin_names())
def test_every_shipped_config_parses_by_path_and_by_name(name):
    cfg = load_run_config(CONFIGS_DIR / f"{name}.json")
    policy_type = name.removeprefix("pick_cube_tiny_") if name.endswith(("pi0", "pi05", "smolvla")) else "xvla"
    assert cfg.pirl.type == "pi_rl" and cfg.policy.type == policy_type
    assert encode_run_config(load_run_config(name)) == encode_run_config(cfg)


def test_bad_run_configs_fail_with_one_line_naming_the_field(tmp_path):
    with pytest.raises(RunConfigError, match="runtime.num_actors=0"):
        load_run_config(CONFIGS_DIR / "pick_cube_tiny.json", ["--runtime.num_actors=0"])
    with pytest.raises(RunConfigError, match="runtime.keep_checkpoints=-1 is invalid; use 0"):
        load_run_config(CONFIGS_DIR / "pick_cube_tiny.json", ["--runtime.keep_checkpoints=-1"])
    assert load_run_config(CONFIGS_DIR / "pick_cube_tiny.json").runtime.keep_checkpoints == 3  # the default
    with pytest.raises(Exception) as err:
        load_run_config(CONFIGS_DIR / "pick_cube_tiny.json", ["--algorithm.noise_method=magic"])
    assert one_line(err.value).startswith("pi_rl.noise_method='magic' is invalid")
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(RunConfigError, match="not valid JSON"):
        load_run_config(broken)
    with pytest.raises(RunConfigError, match="not found"):
        load_run_config(tmp_path / "missing.json")


def test_operator_settings_precedence_cli_over_env_over_file(monkeypatch):
    cfg = load_run_config(CONFIGS_DIR / "pick_cube_tiny.json")
    monkeypatch.setenv("PIRL_LEARNER_PORT", "6001")
    apply_operator_settings(cfg, OperatorSettings())
    assert cfg.runtime.learner_port == 6001
    apply_operator_settings(cfg, OperatorSettings(), port=6002)
    assert cfg.runtime.learner_port == 6002


def test_learner_refuses_remote_bind_without_flag_and_token():
    check_bind_address("127.0.0.1", allow_remote=False, token=None)
    with pytest.raises(RunConfigError, match="--allow-remote"):
        check_bind_address("0.0.0.0", allow_remote=False, token=None)
    with pytest.raises(RunConfigError, match="PIRL_TOKEN"):
        check_bind_address("0.0.0.0", allow_remote=True, token=None)
    check_bind_address("0.0.0.0", allow_remote=True, token="s3cret")


def test_lerobot_sac_run_config_still_parses_and_builds_with_pirlctl_installed(tmp_path):
    policy_cfg = GaussianActorConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (4,))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (2,))},
        push_to_hub=False,
    )
    cfg = TrainRLServerPipelineConfig(
        policy=policy_cfg,
        dataset=DatasetConfig(repo_id="user/demo"),
        algorithm=SACAlgorithmConfig(),
        output_dir=tmp_path / "out",
    )
    path = tmp_path / "sac.json"
    path.write_text(json.dumps(draccus.encode(cfg)))
    with draccus.config_type("json"):
        parsed = draccus.parse(TrainRLServerPipelineConfig, str(path), args=[])
    parsed.validate()
    assert parsed.algorithm.type == "sac" and parsed.policy.type == "gaussian_actor"
    algo = make_algorithm(parsed.algorithm, GaussianActorPolicy(parsed.policy))
    assert isinstance(algo, SACAlgorithm)
