"""PiRLConfig: validation names the field; draccus round-trips it through LeRobot's registry."""

from __future__ import annotations

import json

import draccus
import pytest
from lerobot.rl.algorithms.configs import RLAlgorithmConfig

from pirlctl.algorithms.pi_rl.configuration_pi_rl import (
    PiRLConfig,
    PiRLConfigError,
    anneal_horizon,
    planned_iterations,
)
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
        ({"noise_anneal_frac": 1.5}, "noise_anneal_frac"),
        ({"lr_anneal_frac": -0.1}, "lr_anneal_frac"),
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


def test_noise_level_anneals_linearly_over_a_fraction_of_the_planned_iterations_then_holds():
    cfg = PiRLConfig(noise_level=0.5, noise_level_final=0.3, noise_anneal_frac=0.5)
    assert cfg.noise_level_at(0, planned=20) == pytest.approx(0.5)
    assert cfg.noise_level_at(5, planned=20) == pytest.approx(0.4)  # horizon 0.5 x 20 = 10 iterations
    assert cfg.noise_level_at(10, planned=20) == pytest.approx(0.3)
    assert cfg.noise_level_at(100, planned=20) == pytest.approx(0.3)
    assert cfg.noise_level_at(5, planned=40) == pytest.approx(0.45)  # twice the run: half the slope
    assert cfg.noise_level_at(5, planned=0) == pytest.approx(0.5)  # no planned run: held at the start


def test_actor_lr_reaches_its_final_value_one_iteration_after_the_horizon_and_is_off_by_default():
    cfg = PiRLConfig(actor_lr=6e-5, actor_lr_final=0.0, lr_anneal_frac=1.0)
    assert cfg.actor_lr_at(0, planned=29) == pytest.approx(6e-5)
    assert cfg.actor_lr_at(15, planned=29) == pytest.approx(3e-5)  # over 29 + 1 iterations
    # the default job plans 22 updates and usually makes 23: neither the 22nd nor the 23rd runs at lr 0
    assert cfg.actor_lr_at(21, planned=22) == pytest.approx(6e-5 * 2 / 23)
    assert cfg.actor_lr_at(22, planned=22) == pytest.approx(6e-5 / 23)
    assert cfg.actor_lr_at(23, planned=22) == 0.0
    assert PiRLConfig(actor_lr=6e-5, lr_anneal_frac=1.0).actor_lr_at(29, planned=30) == pytest.approx(6e-5)
    with pytest.raises(PiRLConfigError, match="actor_lr_final=-1"):
        PiRLConfig(actor_lr_final=-1.0)


def test_planned_iterations_and_horizons_reproduce_the_schedules_once_frozen_into_the_configs():
    # the shipped configs used to carry noise_anneal_iters 18 / lr_anneal_iters 22 (45 k env steps) and 31 / 37 (75 k)
    assert planned_iterations(45_000, num_actors=2, rollout_chunks=256, n_exec=4) == 22
    assert (anneal_horizon(0.84, 22), anneal_horizon(1.0, 22)) == (18, 22)
    assert planned_iterations(75_000, num_actors=2, rollout_chunks=256, n_exec=4) == 37
    assert (anneal_horizon(0.84, 37), anneal_horizon(1.0, 37)) == (31, 37)
    assert planned_iterations(45_000, num_actors=1, rollout_chunks=512, n_exec=4) == 22
    assert anneal_horizon(0.7, 90) == 63  # 0.7 * 90 is 62.99999999999999 in floating point


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
