"""algorithm.image_shift where it acts: SFT minibatches are shifted; in RL the actor shifts before its policy call and
sends the shifted images, and the learner re-scores exactly those, so PPO's ratio stays exact (the real-process lr-0
check is tests/integration/test_image_shift_runtime.py)."""

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


@pytest.mark.parametrize("shift", [0, SHIFT])
def test_behaviour_cloning_trains_on_minibatches_shifted_within_k_pixels(shift, tmp_path, monkeypatch):
    """Each SFT minibatch's camera images are pad-and-crops (within ``shift``) of the dataset frames drawn; 0: the
    frames themselves (the tiny X-VLA normalises images by identity)."""
    from pirlctl.pipeline import sft

    from .test_processors import _fake_demos

    cfg = load_run_config(TINY_RUN, [f"--output_dir={tmp_path / 'run'}"])
    demos = _fake_demos(tmp_path / "demos", cfg.env)
    seen: list[dict] = []
    build = sft.build_policy

    def recording_policy(policy_cfg):
        policy = build(policy_cfg)
        forward = policy.forward

        def record(batch):
            seen.append({k: batch[k].clone() for k in image_keys(cfg.policy)})
            return forward(batch)

        policy.forward = record
        return policy

    monkeypatch.setattr(sft, "build_policy", recording_policy)
    sft.behaviour_clone(cfg.policy, demos, tmp_path / "sft", steps=1, batch_size=4, seed=0, image_shift=shift)
    frames = sft.load_frames(demos, cfg.policy)
    idx = torch.randint(0, frames["action"].shape[0], (4,), generator=torch.Generator().manual_seed(0))
    (batch,) = seen
    for key in image_keys(cfg.policy):
        drawn = frames[key][idx]
        if shift == 0:
            assert torch.equal(batch[key], drawn)
        else:
            offsets = {_offset_of(batch[key][i], drawn[i], shift) for i in range(len(idx))}  # each within shift
            assert offsets != {(0, 0)}
