from __future__ import annotations

import pytest
import torch

from pirlctl.algorithms.pi_rl.losses import clipped_surrogate, clipped_value_loss


def test_clipped_surrogate_by_hand():
    logp = torch.log(torch.tensor([1.5, 0.5, 1.1]))
    old = torch.zeros(3)
    adv = torch.tensor([1.0, -1.0, 2.0])
    loss, st = clipped_surrogate(logp, old, adv, 0.2)
    # min(1.5·1, 1.2·1) = 1.2; min(0.5·−1, 0.8·−1) = −0.8; min(1.1·2, 1.1·2) = 2.2
    assert loss.item() == pytest.approx(-(1.2 - 0.8 + 2.2) / 3)
    assert st.clipfrac == pytest.approx(2 / 3)
    assert st.ratio_min == pytest.approx(0.5)
    assert st.ratio_max == pytest.approx(1.5)


def test_surrogate_at_ratio_one_has_zero_kl_and_clipfrac():
    _, st = clipped_surrogate(torch.zeros(4), torch.zeros(4), torch.randn(4), 0.2)
    assert st.approx_kl == 0.0 and st.clipfrac == 0.0


def test_token_level_surrogate_averages_over_masked_entries_only():
    logp = torch.zeros(2, 3, 2)
    logp[:, 2, :] = 5.0  # outside the mask: must not count
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    _, st = clipped_surrogate(logp, torch.zeros(2, 3, 2), torch.ones(2), 0.2, mask=mask)
    assert st.clipfrac == 0.0


def test_clipped_huber_value_loss_takes_the_pessimistic_branch():
    old = torch.tensor([0.0])
    ret = torch.tensor([1.0])
    v = torch.tensor([0.9])  # unclipped error 0.1; clipped V = 0.2, error 0.8
    loss = clipped_value_loss(v, old, ret, huber_delta=1.0, value_clip=0.2)
    assert loss.item() == pytest.approx(0.5 * 0.8**2)
    no_clip = clipped_value_loss(v, old, ret, huber_delta=1.0, value_clip=None)
    assert no_clip.item() == pytest.approx(0.5 * 0.1**2)
