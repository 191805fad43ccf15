"""Chunk-level GAE against a hand computation (in the spirit of Stable-Baselines3's test_gae)."""

from __future__ import annotations

import pytest
import torch

from pirlctl.algorithms.pi_rl.advantages import chunk_gae, explained_variance


def test_chunk_gae_matches_hand_computation_with_done_inside_chunk_and_truncation():
    g, lam = 0.9, 0.8
    # stream of 5 chunks: episode A = chunks 0,1 (terminated inside chunk 1: the actor stopped executing there,
    # chunk reward is the partial sum); episode B = chunks 2,3 (truncated inside chunk 3, bootstrap V=0.7);
    # episode C = chunk 4, cut by the rollout boundary (bootstrap V=0.3).
    r = torch.tensor([0.0, 1.0, 0.5, 0.0, 0.2])
    v = torch.tensor([0.4, 0.6, 0.1, 0.2, 0.5])
    term = torch.tensor([False, True, False, False, False])
    trunc = torch.tensor([False, False, False, True, False])
    boot = torch.tensor([99.0, 99.0, 99.0, 0.7, 0.3])  # 99: must be ignored where not read
    adv, ret = chunk_gae(r, v, term, trunc, boot, gamma=g, gae_lambda=lam)

    d4 = 0.2 + g * 0.3 - 0.5
    a4 = d4
    d3 = 0.0 + g * 0.7 - 0.2
    a3 = d3
    d2 = 0.5 + g * 0.2 - 0.1
    a2 = d2 + g * lam * a3
    d1 = 1.0 + 0.0 - 0.6
    a1 = d1
    d0 = 0.0 + g * 0.6 - 0.4
    a0 = d0 + g * lam * a1
    expected = torch.tensor([a0, a1, a2, a3, a4])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + v)


def test_explained_variance_is_one_for_a_perfect_critic_and_zero_for_a_constant():
    ret = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(ret, ret) == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), ret.mean().item()), ret) == pytest.approx(0.0)
