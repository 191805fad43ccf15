"""The denoising-chain maths against hand-derived values and an independent Normal computation."""

from __future__ import annotations

import math

import pytest
import torch

from pirlctl.algorithms.pi_rl.sampler import (
    DenoiseOutput,
    action_mask,
    denoise_timesteps,
    gaussian_log_prob,
    ode_step_mean,
    reduce_chain_log_prob,
    rescore_chain,
    sample_chain,
    sde_std_scale,
    step_moments,
)


def test_timesteps_run_from_noise_to_action():
    assert denoise_timesteps(4).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_flow_ode_step_is_the_euler_step():
    # x̂₀ = 1, x̂₁ = 3 at t = 0.5, δ = 0.25: μ = 1·(1 − 0.5 + 0.25) + 3·(0.5 − 0.25) = 0.75 + 0.75 = 1.5
    mean, std = step_moments(torch.ones(1, 1, 1), torch.full((1, 1, 1), 3.0), torch.tensor([0.5]), 0.25, "flow_ode")
    assert mean.item() == pytest.approx(1.5)
    assert std.item() == 0.0
    # equals x_t − δ·v with x_t = t·x̂₁ + (1−t)·x̂₀ = 2 and v = x̂₁ − x̂₀ = 2: 2 − 0.5 = 1.5
    assert mean.item() == pytest.approx(2.0 - 0.25 * 2.0)


def test_flow_sde_step_matches_hand_derivation():
    a, t, d = 0.5, 0.5, 0.25
    # s_t = a·sqrt(t/(1−t)) = 0.5; σ = s·sqrt(δ) = 0.25
    # μ = x̂₀(1−t+δ) + x̂₁(t−δ − s²δ/(2t)) = 1·0.75 + 3·(0.25 − 0.25·0.25/1.0) = 0.75 + 3·0.1875 = 1.3125
    mean, std = step_moments(
        torch.ones(1, 1, 1), torch.full((1, 1, 1), 3.0), torch.tensor([t]), d, "flow_sde", noise_level=a
    )
    assert mean.item() == pytest.approx(1.3125)
    assert std.item() == pytest.approx(0.25)


def test_flow_sde_scale_at_t1_uses_next_time_in_denominator():
    # at t = 1 the denominator 1 − t is replaced by 1 − t₁ = δ: s = a·sqrt(1/δ) = 0.5·2 = 1 for K = 4
    assert sde_std_scale(torch.tensor([1.0]), 0.25, 0.5).item() == pytest.approx(1.0)
    assert sde_std_scale(torch.tensor([0.75]), 0.25, 0.5).item() == pytest.approx(0.5 * math.sqrt(3.0))


def test_flow_noise_uses_ode_mean_and_given_sigma():
    sigma = torch.full((1, 1, 1), 0.1)
    mean, std = step_moments(
        torch.ones(1, 1, 1), torch.full((1, 1, 1), 3.0), torch.tensor([0.5]), 0.25, "flow_noise", sigma=sigma
    )
    assert mean.item() == pytest.approx(1.5)
    assert std.item() == pytest.approx(0.1)


def test_gaussian_log_prob_equals_torch_normal():
    g = torch.Generator().manual_seed(0)
    x, mu = torch.randn(3, 4, 2, generator=g), torch.randn(3, 4, 2, generator=g)
    std = torch.rand(3, 4, 2, generator=g) + 0.05
    ref = torch.distributions.Normal(mu, std).log_prob(x)
    torch.testing.assert_close(gaussian_log_prob(x, mu, std), ref)


def _linear_denoise(x_t, t, hint):
    # a fixed, input-dependent x̂₀ predictor: enough to make every step's mean depend on x_t and t
    x0 = 0.5 * x_t + 0.1 * t.view(-1, 1, 1)
    return DenoiseOutput(x0_hat=x0, x1_hat=hint, hidden=x_t.repeat(1, 1, 2))


@pytest.mark.parametrize("sampling", ["hybrid", "full_chain"])
def test_chunk_log_prob_equals_independent_normal_over_the_chain(sampling):
    torch.manual_seed(0)
    B, K, T, D = 5, 4, 3, 2
    x0 = torch.randn(B, T, D)
    s = sample_chain(_linear_denoise, x0, K, "flow_sde", sampling=sampling, noise_level=0.5)
    mask = action_mask(T, D, n_exec=2, real_dim=1)
    logp = reduce_chain_log_prob(s.step_log_prob, s.stochastic, mask)
    # independent: replay the chain with the same noise hint rule, scoring every stochastic step with Normal
    ts = denoise_timesteps(K)
    expected = torch.zeros(B)
    hint = s.chain[:, 0]
    for k in range(K):
        t = ts[k].expand(B)
        out = _linear_denoise(s.chain[:, k], t, hint)
        mean, std = step_moments(out.x0_hat, out.x1_hat, t, 1 / K, "flow_sde", noise_level=0.5)
        sto = s.stochastic[:, k]
        lp = torch.distributions.Normal(mean, std).log_prob(s.chain[:, k + 1]) * mask
        expected += torch.where(sto, lp.sum(dim=(1, 2)), torch.zeros(B))
        if k + 1 < K:
            new_hint = (s.chain[:, k + 1] - (1 - ts[k + 1]) * out.x0_hat) / ts[k + 1]
            hint = torch.where(sto.view(-1, 1, 1), new_hint, hint)
    torch.testing.assert_close(logp, expected, rtol=1e-5, atol=1e-5)
    assert s.stochastic.sum(dim=1).tolist() == ([1] * B if sampling == "hybrid" else [K] * B)


@pytest.mark.parametrize("method", ["flow_sde", "flow_noise"])
@pytest.mark.parametrize("sampling", ["hybrid", "full_chain"])
def test_rescore_from_stored_chain_equals_rollout_log_prob_exactly(method, sampling):
    torch.manual_seed(1)
    B, K, T, D = 7, 5, 4, 3

    def sigma_fn(h):
        return 0.08 + 0.04 * torch.sigmoid(h[..., :D])

    x0 = torch.randn(B, T, D)
    s = sample_chain(_linear_denoise, x0, K, method, sampling=sampling, noise_level=0.5, sigma_fn=sigma_fn)
    r = rescore_chain(
        _linear_denoise, s.chain, s.stochastic, method, noise_level=0.5, sigma_fn=sigma_fn, hybrid=sampling == "hybrid"
    )
    mask = action_mask(T, D, n_exec=3, real_dim=2)
    a = reduce_chain_log_prob(s.step_log_prob, s.stochastic, mask)
    b = reduce_chain_log_prob(r.step_log_prob, s.stochastic, mask)
    assert torch.equal(a, b)


def _velocity_denoise(x_t, t, hint):
    # a model with its own x̂₁ (π0-like: no use of the hint), so the ODE and SDE means differ in x̂₁'s coefficient
    x0 = 0.5 * x_t + 0.1 * t.view(-1, 1, 1)
    return DenoiseOutput(x0_hat=x0, x1_hat=0.3 * x_t - 0.2 * t.view(-1, 1, 1), hidden=x_t.repeat(1, 1, 2))


@pytest.mark.parametrize("denoise", [_linear_denoise, _velocity_denoise])
def test_hybrid_flow_sde_steps_other_than_kstar_are_ode_steps(denoise):
    # pirl-method.md, two-layer MDP: only k* is an SDE step. Before k* the chain is the flow_ode chain from the
    # same x_0 (bit for bit), k* is scored by an independent Normal at the hand-derived SDE moments, and after k*
    # each step is the ODE step from the latent the noise led to.
    torch.manual_seed(2)
    B, K, T, D, a = 4, 4, 3, 2, 0.5
    x0 = torch.randn(B, T, D)
    kstar = torch.tensor([0, 1, 2, 3])
    ode = sample_chain(denoise, x0, K, "flow_ode")
    s = sample_chain(denoise, x0, K, "flow_sde", sampling="hybrid", noise_level=a, kstar=kstar)
    ts, delta = denoise_timesteps(K), 1.0 / K
    mask = action_mask(T, D, n_exec=T, real_dim=D)
    logp = reduce_chain_log_prob(s.step_log_prob, s.stochastic, mask)
    for b, k in enumerate(kstar.tolist()):
        assert torch.equal(s.chain[b, : k + 1], ode.chain[b, : k + 1])
        t = float(ts[k])
        out = denoise(s.chain[b : b + 1, k], ts[k : k + 1], x0[b : b + 1])
        s_t = a * math.sqrt(t / (delta if t >= 1.0 else 1.0 - t))
        mean = out.x0_hat * (1 - t + delta) + out.x1_hat * (t - delta - s_t**2 * delta / (2 * t))
        expected = torch.distributions.Normal(mean, s_t * math.sqrt(delta)).log_prob(s.chain[b : b + 1, k + 1]).sum()
        torch.testing.assert_close(logp[b], expected, rtol=1e-5, atol=1e-5)
        hint = (s.chain[b : b + 1, k + 1] - (1 - ts[k + 1]) * out.x0_hat) / ts[k + 1] if k + 1 < K else None
        for j in range(k + 1, K):
            o = denoise(s.chain[b : b + 1, j], ts[j : j + 1], hint)
            step = ode_step_mean(o.x0_hat, o.x1_hat, ts[j : j + 1], delta)
            torch.testing.assert_close(s.chain[b : b + 1, j + 1], step, rtol=1e-6, atol=1e-6)


def test_ode_chain_keeps_the_initial_noise_as_hint_and_is_deterministic():
    x0 = torch.randn(2, 3, 2)
    a = sample_chain(_linear_denoise, x0, 4, "flow_ode")
    b = sample_chain(_linear_denoise, x0, 4, "flow_ode")
    assert torch.equal(a.actions, b.actions)
    assert not a.stochastic.any()
    assert torch.equal(a.step_log_prob, torch.zeros_like(a.step_log_prob))


def test_token_level_keeps_per_entry_terms_and_mean_aggregation_divides_by_steps():
    lp = torch.ones(2, 4, 3, 2)
    sto = torch.ones(2, 4, dtype=torch.bool)
    mask = action_mask(3, 2, n_exec=2, real_dim=1)
    tok = reduce_chain_log_prob(lp, sto, mask, reduction="token_level")
    assert tok.shape == (2, 3, 2)
    assert tok[0].tolist() == [[4.0, 0.0], [4.0, 0.0], [0.0, 0.0]]
    chunk_mean = reduce_chain_log_prob(lp, sto, mask, aggregation="mean")
    assert chunk_mean.tolist() == [2.0, 2.0]  # 2 scored entries × (4 steps / 4)


def test_a_velocity_models_ode_chain_is_its_own_euler_integration_bit_for_bit():
    # π0-family adapters return a VelocityOutput: a deterministic step is x + dt·v (LeRobot's euler_integrate) and
    # x̂₀, x̂₁ are derived only at the step that injects noise
    from lerobot.policies.common.flow_matching import euler_integrate

    from pirlctl.policies.base import VelocityOutput

    g = torch.Generator().manual_seed(3)
    x0, w = torch.randn(2, 3, 2, generator=g), torch.randn(2, generator=g)
    outputs = []

    def velocity(x_t, t):
        return torch.tanh(x_t * w) + t.view(-1, 1, 1)

    def denoise(x_t, t, _hint):
        outputs.append(VelocityOutput(x_t, velocity(x_t, t), t, hidden=x_t))
        return outputs[-1]

    ode = sample_chain(denoise, x0, 4, "flow_ode")
    assert torch.equal(ode.actions, euler_integrate(velocity, x0, 4))
    assert all(o._estimates is None for o in outputs)  # no x̂₀/x̂₁ formed on an ODE chain
    outputs.clear()
    sample_chain(denoise, x0, 4, "flow_sde", noise_level=0.5, kstar=torch.tensor([2, 2]))
    assert all(o._estimates is None for o in outputs)  # the noisy step's mean is x·vx + v·vv, from x and v alone


def test_a_velocity_models_flow_sde_mean_from_x_and_v_is_the_mean_from_its_estimates():
    # the schedule's sde_vx, sde_vv are x̂₀ = x − t·v and x̂₁ = x + (1−t)·v substituted into x̂₀·c0 + x̂₁·c1_sde
    from pirlctl.algorithms.pi_rl.sampler import chain_schedule
    from pirlctl.policies.base import estimates_from_velocity

    g = torch.Generator().manual_seed(5)
    for K in (1, 4, 10):
        sched = chain_schedule(K, 0.7, torch.float32, torch.device("cpu"))
        for k in range(K):
            x, v = torch.randn(3, 5, 2, generator=g), torch.randn(3, 5, 2, generator=g)
            x0_hat, x1_hat = estimates_from_velocity(x, v, sched.t[k].expand(3))
            f = sched.steps[k]
            expected = x0_hat * f.c0 + x1_hat * f.c1_sde
            torch.testing.assert_close(x * f.sde_vx + v * f.sde_vv, expected, rtol=1e-5, atol=1e-6)


def test_hybrid_sampler_rejects_a_kstar_outside_the_chain():
    with pytest.raises(ValueError, match=r"k\* must lie in 0..3 for 4 denoising steps"):
        sample_chain(_linear_denoise, torch.randn(2, 3, 2), 4, "flow_sde", noise_level=0.5, kstar=torch.tensor([0, 4]))


def test_a_one_step_hybrid_chain_samples_its_only_step_for_every_sample_and_draws_only_the_noise():
    x0 = torch.randn(3, 4, 2)
    s = sample_chain(_linear_denoise, x0, 1, "flow_sde", noise_level=0.5, generator=torch.Generator().manual_seed(11))
    assert s.kstar.tolist() == [0, 0, 0] and s.stochastic.tolist() == [[True]] * 3
    # no k* drawn: the generator gave the step's noise alone, as in a full chain (which draws no k*)
    g = torch.Generator().manual_seed(11)
    full = sample_chain(_linear_denoise, x0, 1, "flow_sde", sampling="full_chain", noise_level=0.5, generator=g)
    assert torch.equal(s.actions, full.actions) and torch.equal(s.step_log_prob, full.step_log_prob)
