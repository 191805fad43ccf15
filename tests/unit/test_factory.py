"""LeRobot's own factory builds pi_rl and still builds (and trains) SAC with pirlctl imported."""

from __future__ import annotations

import pytest
import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy
from lerobot.rl.algorithms.configs import RLAlgorithmConfig
from lerobot.rl.algorithms.factory import get_algorithm_class, make_algorithm, make_algorithm_config
from lerobot.rl.algorithms.sac import SACAlgorithm, SACAlgorithmConfig

from pirlctl import lerobot_compat
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm


def _sac_policy() -> GaussianActorPolicy:
    cfg = GaussianActorConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (4,))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (2,))},
        dataset_stats=None,
        state_encoder_hidden_dim=16,
        latent_dim=16,
    )
    return GaussianActorPolicy(cfg)


def test_pi_rl_is_registered_in_lerobots_config_registry():
    assert RLAlgorithmConfig.get_choice_class("pi_rl") is PiRLConfig
    assert isinstance(make_algorithm_config("pi_rl"), PiRLConfig)


def test_make_algorithm_builds_pi_rl_for_xvla(tiny_xvla):
    cfg = PiRLConfig.from_policy_config(tiny_xvla.config)
    algo = make_algorithm(cfg, tiny_xvla)
    assert isinstance(algo, PiRLAlgorithm)
    assert get_algorithm_class("pi_rl") is PiRLAlgorithm


def test_make_algorithm_still_builds_sac_and_sac_updates_after_pirlctl_import():
    torch.manual_seed(0)
    policy = _sac_policy()
    cfg = SACAlgorithmConfig.from_policy_config(policy.config)
    algo = make_algorithm(cfg, policy)
    assert type(algo) is SACAlgorithm
    algo.make_optimizers_and_scheduler()
    B = 8

    def batches():
        while True:
            yield {
                "state": {"observation.state": torch.randn(B, 4)},
                "next_state": {"observation.state": torch.randn(B, 4)},
                "action": torch.rand(B, 2) * 2 - 1,
                "reward": torch.randn(B),
                "done": torch.zeros(B),
            }

    before = [p.clone() for p in algo.critic_ensemble.parameters()]
    stats = algo.update(batches())
    assert "loss_critic" in stats.losses and torch.isfinite(torch.tensor(stats.losses["loss_critic"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.critic_ensemble.parameters(), strict=True))


def test_unknown_algorithm_still_fails_through_lerobots_own_lookup():
    with pytest.raises(ValueError, match="not available"):
        get_algorithm_class("nope")


def test_factory_guard_fails_loudly_if_lerobot_changes_the_factory(monkeypatch):
    from lerobot.rl.algorithms import factory

    # the shape LeRobot 0.6.x has today passes
    lerobot_compat._check_factory_shape(factory)

    class Changed:
        @staticmethod
        def get_algorithm_class(name, registry):  # a new signature
            return None

        make_algorithm = factory.make_algorithm
        make_algorithm_config = factory.make_algorithm_config

    with pytest.raises(lerobot_compat.LeRobotCompatError, match="signature changed"):
        lerobot_compat._check_factory_shape(Changed)

    class Gone:
        make_algorithm = factory.make_algorithm

    with pytest.raises(lerobot_compat.LeRobotCompatError, match="is gone"):
        lerobot_compat._check_factory_shape(Gone)


def test_version_guard_refuses_other_lerobot_series():
    assert lerobot_compat.check_lerobot_version("0.6.1") == "0.6.1"
    for bad in ("0.5.1", "0.7.0", "1.0.0"):
        with pytest.raises(lerobot_compat.LeRobotCompatError, match="not supported"):
            lerobot_compat.check_lerobot_version(bad)


def test_install_is_idempotent_and_uninstall_restores_lerobots_factory():
    from lerobot.rl.algorithms import factory

    lerobot_compat.install()
    wrapped = factory.get_algorithm_class
    lerobot_compat.install()
    assert factory.get_algorithm_class is wrapped
    try:
        lerobot_compat.uninstall()
        with pytest.raises(ValueError):
            factory.get_algorithm_class("pi_rl")
    finally:
        lerobot_compat.install()
    assert factory.get_algorithm_class("pi_rl") is PiRLAlgorithm
