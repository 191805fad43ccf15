"""algorithm.image_shift keeps PPO's ratio exact: the actor shifts before its policy call and sends the shifted images,
and the learner re-scores exactly those (the real-process lr-0 check is tests/integration/test_image_shift_runtime.py).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pirlctl.config.run_config import load_run_config
from pirlctl.diagnostics.profile_actor import StandInSender
from pirlctl.diagnostics.sync_checks import policy_observations, sample_batch
from pirlctl.policies.augment import image_keys, shift_images
from pirlctl.runtime.actor import Actor, actor_observation
from pirlctl.runtime.build import build_algorithm

from ..integration.procs import TINY_RUN
from .test_augment import _offset_of

SHIFT = 4


@pytest.fixture(scope="module")
def cfg():
    return load_run_config(TINY_RUN, [f"--algorithm.image_shift={SHIFT}"])


def test_the_learner_rescores_the_shifted_images_exactly_and_the_unshifted_ones_not(cfg):
    algo = build_algorithm(cfg, "cpu")
    algo.policy.eval()  # as the learner's update does
    obs = policy_observations(cfg, algo, 8, seed=0)
    shifted = shift_images(obs, image_keys(cfg.policy), SHIFT, torch.Generator().manual_seed(0))
    batch = sample_batch(algo, shifted, seed=0)  # the actor's act() on the shifted images: old log-probs
    with torch.no_grad():
        same, _, _ = algo.evaluate(batch)
        other, _, _ = algo.evaluate(dataclasses.replace(batch, observations=obs))
    assert float((same - batch.old_log_prob).abs().max()) < 1e-6  # what the actor saw: ratio 1
    # a learner that re-scored the unshifted images (or drew its own shift) would see ratios != 1 before any step
    assert float((other - batch.old_log_prob).abs().max()) > 1e-3


def _actor(cfg) -> Actor:
    actor = Actor(cfg, 0)
    actor.client.close()
    actor.client = StandInSender()  # type: ignore[assignment]
    return actor


def test_the_actor_shifts_each_camera_of_what_it_scores_and_sends_and_k_zero_leaves_it_as_preprocessed(cfg):
    actor = _actor(cfg)
    raw = actor.env.reset(0)
    plain = actor.processors.preprocess_one(actor_observation(actor.env, raw, cfg, actor.tokens), actor.env.instruction)
    first, second = actor._policy_obs(0, raw), actor._policy_obs(0, raw)
    for key in image_keys(cfg.policy):
        _offset_of(first[key], plain[key], SHIFT)  # a pad-and-crop of the preprocessed image, within SHIFT pixels
        assert not torch.equal(first[key], second[key])  # a new shift per call
    assert torch.equal(first["observation.state"], plain["observation.state"])
    off = _actor(load_run_config(TINY_RUN))
    again = off._policy_obs(0, off.env.reset(0))
    assert all(torch.equal(again[k], plain[k]) for k in plain)
