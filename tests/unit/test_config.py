"""PiRLConfig: validation names the field; draccus round-trips it through LeRobot's registry."""

from __future__ import annotations

import json

import draccus
import pytest
from lerobot.rl.algorithms.configs import RLAlgorithmConfig

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig, PiRLConfigError
from pirlctl.errors import one_line, root_cause


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"noise_method": "flow_magic"}, "noise_method"),
        ({"sampling": "sometimes"}, "sampling"),
        ({"logprob_reduction": "per_dim"}, "logprob_reduction"),
        ({"chain_aggregation": "max"}, "chain_aggregation"),
        ({"value_head": "somewhere"}, "value_head"),
        ({"trainable": "vlm"}, "trainable"),
        ({"num_denoise_steps": 0}, "num_denoise_steps"),
        ({"gamma": 1.5}, "gamma"),
        ({"gae_lambda": -0.1}, "gae_lambda"),
        ({"clip_ratio": 0.0}, "clip_ratio"),
        ({"minibatch_size": 0}, "minibatch_size"),
        ({"ppo_epochs": 0}, "ppo_epochs"),
        ({"actor_lr": -1.0}, "actor_lr"),
        ({"grad_clip_norm": float("nan")}, "grad_clip_norm"),
        ({"noise_sigma_min": 0.3, "noise_sigma_max": 0.1}, "noise_sigma_min"),
        ({"entropy_coef": 0.01, "noise_method": "flow_sde"}, "entropy_coef"),
        ({"n_exec": 0}, "n_exec"),
        ({"stale_sample_rule": "keep"}, "stale_sample_rule"),
        ({"adam_betas": (0.9, 1.5)}, "adam_betas"),
    ],
)
def test_invalid_values_fail_at_construction_naming_the_field(kwargs, field):
    with pytest.raises(PiRLConfigError, match=rf"pi_rl\.{field}="):
        PiRLConfig(**kwargs)


def test_method_defaults_are_derived_not_duplicated():
    sde = PiRLConfig()
    assert sde.resolved_sampling == "hybrid" and sde.resolved_entropy_coef == 0.0
    noise = PiRLConfig(noise_method="flow_noise")
    assert noise.resolved_sampling == "full_chain" and noise.resolved_entropy_coef == 0.005


def test_noise_level_annealing_is_linear_and_clamped():
    cfg = PiRLConfig(noise_level=0.5, noise_level_final=0.3, noise_anneal_iters=10)
    assert cfg.noise_level_at(0) == pytest.approx(0.5)
    assert cfg.noise_level_at(5) == pytest.approx(0.4)
    assert cfg.noise_level_at(100) == pytest.approx(0.3)


def test_actor_lr_annealing_is_linear_clamped_and_off_by_default():
    cfg = PiRLConfig(actor_lr=6e-5, actor_lr_final=0.0, lr_anneal_iters=30)
    assert cfg.actor_lr_at(0) == pytest.approx(6e-5)
    assert cfg.actor_lr_at(15) == pytest.approx(3e-5)
    assert cfg.actor_lr_at(45) == pytest.approx(0.0)
    assert PiRLConfig(actor_lr=6e-5, lr_anneal_iters=30).actor_lr_at(29) == pytest.approx(6e-5)
    with pytest.raises(PiRLConfigError, match="actor_lr_final=-1"):
        PiRLConfig(actor_lr_final=-1.0)


def test_n_exec_cannot_exceed_the_chunk():
    with pytest.raises(PiRLConfigError, match="n_exec=9 exceeds"):
        PiRLConfig(n_exec=9).resolved_n_exec(chunk_size=8)


def test_draccus_round_trip_through_lerobots_registry(tmp_path):
    cfg = PiRLConfig(noise_method="flow_noise", num_denoise_steps=3, actor_lr=1e-4)
    encoded = draccus.encode(cfg, RLAlgorithmConfig)
    assert encoded["type"] == "pi_rl"
    path = tmp_path / "algo.json"
    path.write_text(json.dumps(encoded))
    with draccus.config_type("json"):
        parsed = draccus.parse(RLAlgorithmConfig, str(path), args=[])
    assert isinstance(parsed, PiRLConfig)
    assert parsed.noise_method == "flow_noise" and parsed.num_denoise_steps == 3 and parsed.actor_lr == 1e-4


def test_invalid_value_in_a_config_file_is_refused(tmp_path):
    path = tmp_path / "algo.json"
    path.write_text(json.dumps({"type": "pi_rl", "noise_method": "flow_magic"}))
    with draccus.config_type("json"), pytest.raises(Exception) as err:
        draccus.parse(RLAlgorithmConfig, str(path), args=[])
    assert isinstance(root_cause(err.value), PiRLConfigError)
    assert one_line(err.value).startswith("pi_rl.noise_method='flow_magic' is invalid; use one of")
