"""The X-VLA adapter against XVLAPolicy's own sampler, and the lr=0 ratio invariant on the tiny X-VLA."""

from __future__ import annotations

import pytest
import torch

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm, RolloutBatch
from pirlctl.policies.xvla import hash_tokenize


def test_flow_ode_chunk_equals_xvla_policy_sampler(tiny_xvla, xvla_batch):
    K = tiny_xvla.config.num_denoising_steps
    algo = PiRLAlgorithm(tiny_xvla, PiRLConfig(num_denoise_steps=K))
    torch.manual_seed(123)
    ref = tiny_xvla.predict_action_chunk(xvla_batch)
    torch.manual_seed(123)  # same initial noise: both draw x1 = randn(B, T, D) first
    ours = algo.act(xvla_batch, deterministic=True)
    chunk = algo.adapter.postprocess(ours.chain[:, -1])
    torch.testing.assert_close(chunk, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.actions, ref[:, : algo.n_exec], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("method", "sampling", "reduction"),
    [
        ("flow_sde", "hybrid", "chunk_level"),
        ("flow_sde", "full_chain", "chunk_level"),
        ("flow_noise", "full_chain", "chunk_level"),
        ("flow_noise", "hybrid", "token_level"),
    ],
)
def test_lr_zero_update_gives_unit_ratio_and_no_clipping(tiny_xvla, xvla_batch, method, sampling, reduction):
    cfg = PiRLConfig(
        noise_method=method,
        sampling=sampling,
        logprob_reduction=reduction,
        actor_lr=0.0,
        value_lr=0.0,
        minibatch_size=4,
        ppo_epochs=2,
    )
    algo = PiRLAlgorithm(tiny_xvla, cfg)
    torch.manual_seed(0)
    step = algo.act(xvla_batch)
    n = step.value.shape[0]
    batch = RolloutBatch(
        xvla_batch, step.chain, step.stochastic, step.log_prob, step.value, torch.randn(n), torch.randn(n)
    )
    stats = algo.update(iter([batch]))
    assert stats.extra["max_abs_log_ratio"] < 1e-6
    assert stats.extra["clipfrac"] == 0.0
    # and directly, per sample, without the update loop
    log_prob, _, _ = algo.evaluate(batch)
    assert (log_prob - step.log_prob).abs().max().item() < 1e-6


def test_rollout_call_returns_everything_in_one_pass(tiny_xvla, xvla_batch):
    cfg = PiRLConfig(num_denoise_steps=4, n_exec=3)
    algo = PiRLAlgorithm(tiny_xvla, cfg)
    step = algo.act(xvla_batch)
    B = xvla_batch["observation.state"].shape[0]
    T, D = tiny_xvla.config.chunk_size, algo.adapter.action_dim
    assert step.actions.shape == (B, 3, algo.adapter.real_action_dim)
    assert step.chain.shape == (B, 5, T, D)
    assert step.stochastic.sum(dim=1).tolist() == [1] * B  # hybrid: one k* per chunk
    assert step.log_prob.shape == (B,) and torch.isfinite(step.log_prob).all()
    assert step.value.shape == (B,)


def test_flow_noise_sigma_stays_within_bounds(tiny_xvla, xvla_batch):
    cfg = PiRLConfig(noise_method="flow_noise", noise_sigma_min=0.08, noise_sigma_max=0.16)
    algo = PiRLAlgorithm(tiny_xvla, cfg)
    assert algo.noise_head is not None
    with torch.no_grad():
        algo.noise_head.net[-1].bias.fill_(50.0)  # saturate: σ must hit the upper bound, not exceed it
    step = algo.act(xvla_batch)
    batch = RolloutBatch(
        xvla_batch, step.chain, step.stochastic, step.log_prob, step.value, torch.zeros(6), torch.zeros(6)
    )
    _, _, entropy = algo.evaluate(batch)
    expected = 0.5 + 0.5 * torch.log(torch.tensor(2 * torch.pi)) + torch.log(torch.tensor(0.16))
    torch.testing.assert_close(entropy, expected.expand(6), atol=1e-5, rtol=0)


def test_action_expert_scope_freezes_the_vlm(tiny_xvla):
    algo = PiRLAlgorithm(tiny_xvla, PiRLConfig(trainable="action_expert"))
    names = list(algo.trainable_policy_parameters())
    assert names and not any(n.startswith("model.vlm.") for n in names)
    assert any(n.startswith("model.transformer.") for n in names)


def test_trainable_blocks_trains_only_the_last_blocks_and_pushes_only_them(tiny_xvla):
    from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfigError

    depth = len(tiny_xvla.model.transformer.blocks)
    assert depth == 2
    algo = PiRLAlgorithm(tiny_xvla, PiRLConfig(trainable="action_expert", trainable_blocks=1))
    names = set(algo.trainable_policy_parameters())
    assert not any(n.startswith(("model.vlm.", "model.transformer.blocks.0.")) for n in names)
    assert any(n.startswith("model.transformer.blocks.1.") for n in names)
    assert any(n.startswith("model.transformer.action_decoder.") for n in names)  # projections still train
    assert set(algo.get_weights()["policy"]) == names
    with pytest.raises(PiRLConfigError, match="trainable_blocks=3 but the policy's action expert has 2 blocks"):
        PiRLAlgorithm(tiny_xvla, PiRLConfig(trainable="action_expert", trainable_blocks=3))


def test_hash_tokenizer_is_deterministic_and_padded():
    a = hash_tokenize("pick up the cube", 64, 8)
    assert a == hash_tokenize("pick up the cube", 64, 8)
    assert len(a) == 8 and a[0] == 0 and 2 in a and a[-1] == 1
    assert all(0 <= i < 64 for i in a)


def test_hybrid_noise_hint_at_kstar_is_the_initial_noise(tiny_xvla, xvla_batch):
    # sampler.py's noise-hint identity: every step before k* is an ODE step, so the hint re-derived from the latent
    # at k*, n = (x_{k*} − (1−t_{k*})·x̂₀_{k*−1})/t_{k*}, is x_0 itself (re-scoring relies on it)
    from pirlctl.algorithms.pi_rl.sampler import denoise_timesteps, noise_estimate_from_latent, sample_chain

    K = 4
    algo = PiRLAlgorithm(tiny_xvla, PiRLConfig(num_denoise_steps=K, noise_method="flow_sde", sampling="hybrid"))
    B = xvla_batch["observation.state"].shape[0]
    kstar = torch.tensor([1, 2, 3, 3, 2, 1])[:B]
    tiny_xvla.eval()  # as act() does: no dropout, so re-running a step reproduces its x̂₀
    torch.manual_seed(0)
    with torch.no_grad():
        denoise = algo.adapter.denoise_fn(algo.adapter.encode(xvla_batch))
        x0 = torch.randn(B, tiny_xvla.config.chunk_size, algo.adapter.action_dim)
        s = sample_chain(denoise, x0, K, "flow_sde", noise_level=0.5, kstar=kstar)
        ts = denoise_timesteps(K)
        idx = torch.arange(B)
        prev = denoise(s.chain[idx, kstar - 1], ts[kstar - 1], x0)  # the step that produced x_{k*}
        hint = noise_estimate_from_latent(s.chain[idx, kstar], prev.x0_hat, ts[kstar])
    torch.testing.assert_close(hint, x0, atol=1e-4, rtol=1e-4)
