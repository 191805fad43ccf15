"""π0, π0.5 and SmolVLA behind the PI-RL adapter contract, on their tiny offline builds."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm, RolloutBatch
from pirlctl.algorithms.pi_rl.sampler import action_mask, reduce_chain_log_prob, rescore_chain, sample_chain
from pirlctl.configs import CONFIGS_DIR
from pirlctl.policies import make_flow_adapter
from pirlctl.policies.language import LANGUAGE_MASK_KEY, LANGUAGE_TOKENS_KEY, hash_tokenize, vocab_size
from pirlctl.policies.loading import build_policy, load_policy_config
from pirlctl.policies.tiny_builds import patched_attributes
from pirlctl.policies.velocity import estimates_from_velocity

POLICIES = ["pi0", "pi05", "smolvla"]
K = 4


@pytest.fixture(scope="module", params=POLICIES)
def tiny(request):
    """(policy type, tiny policy, its config), seeded; the build is checked to leave nothing patched."""
    before = patched_attributes()
    cfg = load_policy_config(CONFIGS_DIR / "policy" / f"tiny_{request.param}.json")
    torch.manual_seed(0)
    policy = build_policy(cfg)
    assert patched_attributes() == before
    return request.param, policy.eval(), cfg


@pytest.fixture
def as_built(tiny):
    """Restores the module-scoped policy's requires_grad flags after a test that builds a PiRLAlgorithm on it."""
    flags = {n: p.requires_grad for n, p in tiny[1].named_parameters()}
    yield tiny
    for n, p in tiny[1].named_parameters():
        p.requires_grad_(flags[n])


def make_batch(cfg, batch_size: int = 3, *, with_mask: bool = False, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.rand(batch_size, *f.shape, generator=g) for k, f in cfg.input_features.items()}
    batch["observation.state"] = batch["observation.state"] * 2 - 1
    ids = hash_tokenize("pick up the cube", vocab_size(cfg), cfg.tokenizer_max_length)
    batch[LANGUAGE_TOKENS_KEY] = torch.tensor([ids] * batch_size)
    if with_mask:
        batch[LANGUAGE_MASK_KEY] = batch[LANGUAGE_TOKENS_KEY] != 0
    return batch


def own_sampler(kind: str, policy, adapter, batch, noise: torch.Tensor) -> torch.Tensor:
    """The policy's own ``sample_actions`` for the same noise (model space, padding included)."""
    tokens, masks = adapter.language(batch)
    model = policy.model
    if kind == "pi0":
        images, img_masks = policy._preprocess_images(batch)
        state = policy.prepare_state(batch)
        return model.sample_actions(images, img_masks, tokens, masks, state, noise=noise, num_steps=K)
    if kind == "pi05":
        images, img_masks = policy._preprocess_images(batch)
        return model.sample_actions(images, img_masks, tokens, masks, noise=noise, num_steps=K)
    images, img_masks = policy.prepare_images(batch)
    state = policy.prepare_state(batch)
    policy.config.num_steps = K  # SmolVLA's sample_actions has no num_steps argument
    with torch.no_grad():
        return model.sample_actions(images, img_masks, tokens, masks, state, noise=noise)


def own_velocity(kind: str, policy, prefix, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v from the policy's own denoise_step, bypassing the adapter's estimates."""
    if kind == "pi0":
        return policy.model.denoise_step(prefix.policy_state, prefix.pad_masks, prefix.past_key_values, x_t, t)
    v = policy.model.denoise_step(prefix.pad_masks, prefix.past_key_values, x_t, t)
    if kind == "smolvla":
        prefix.past_key_values.crop(prefix.pad_masks.shape[1])
    return v


def test_estimates_from_velocity_give_the_euler_step():
    x, v, t = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.tensor([1.0, 0.25])
    x0, x1 = estimates_from_velocity(x, v, t)
    torch.testing.assert_close(t.view(-1, 1, 1) * x1 + (1 - t.view(-1, 1, 1)) * x0, x)  # x_t = t·x̂₁ + (1−t)·x̂₀
    torch.testing.assert_close(x1 - x0, v)  # v = ε − a
    delta = 0.25
    ode = x0 * (1 - t.view(-1, 1, 1) + delta) + x1 * (t.view(-1, 1, 1) - delta)
    torch.testing.assert_close(ode, x - delta * v)


def test_adapter_is_chosen_by_policy_type_alone(tiny):
    kind, policy, _ = tiny
    adapter = make_flow_adapter(policy)
    assert type(adapter).__module__ == f"pirlctl.policies.{kind}"


@pytest.mark.parametrize("with_mask", [False, True])
def test_ode_chunk_equals_the_policys_own_sampler(tiny, with_mask):
    kind, policy, cfg = tiny
    adapter = make_flow_adapter(policy)
    batch = make_batch(cfg, with_mask=with_mask)
    noise = torch.randn(3, adapter.chunk_size, adapter.action_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours = sample_chain(adapter.denoise_fn(adapter.encode(batch)), noise, K, "flow_ode").actions
    ref = own_sampler(kind, policy, adapter, batch, noise)
    assert ours.shape == ref.shape == (3, cfg.chunk_size, cfg.max_action_dim)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert adapter.postprocess(ours).shape[-1] == cfg.output_features["action"].shape[0]


def test_chunk_log_prob_equals_an_independent_normal_density(tiny):
    kind, policy, cfg = tiny
    adapter = make_flow_adapter(policy)
    batch = make_batch(cfg)
    a = 0.5
    noise = torch.randn(3, adapter.chunk_size, adapter.action_dim, generator=torch.Generator().manual_seed(7))
    mask = action_mask(adapter.chunk_size, adapter.action_dim, 4, adapter.real_action_dim)
    with torch.no_grad():
        prefix = adapter.encode(batch)
        s = sample_chain(
            adapter.denoise_fn(prefix),
            noise,
            K,
            "flow_sde",
            sampling="full_chain",
            noise_level=a,
            generator=torch.Generator().manual_seed(3),
        )
        ours = reduce_chain_log_prob(s.step_log_prob, s.stochastic, mask)
        # by hand: x_{k+1} ~ N(x − δv − (s_t²δ/2t)·x̂₁, s_t²δ), s_t = a·√(t/(1−t)) (1−t := δ at t = 1)
        delta, expected = 1.0 / K, torch.zeros(3)
        for k in range(K):
            t = 1.0 - k * delta
            x = s.chain[:, k]
            v = own_velocity(kind, policy, prefix, x, torch.full((3,), t))
            st = a * math.sqrt(t / (delta if k == 0 else 1.0 - t))
            x1_hat = x + (1.0 - t) * v
            mean = x - delta * v - st**2 * delta / (2.0 * t) * x1_hat
            lp = Normal(mean, st * math.sqrt(delta)).log_prob(s.chain[:, k + 1])
            expected += (lp * mask).sum(dim=(1, 2))
        rescored = rescore_chain(
            adapter.denoise_fn(prefix), s.chain, s.stochastic, "flow_sde", noise_level=a, hybrid=False
        )
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(
        reduce_chain_log_prob(rescored.step_log_prob, s.stochastic, mask), ours, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    ("method", "sampling", "value_head"),
    [
        ("flow_sde", "hybrid", "vlm_prefix"),
        ("flow_sde", "full_chain", "action_expert"),
        ("flow_noise", "full_chain", "vlm_prefix"),
    ],
)
def test_lr_zero_update_gives_unit_ratio_and_no_clipping(as_built, method, sampling, value_head):
    _, policy, cfg = as_built
    pcfg = PiRLConfig(
        num_denoise_steps=K,
        noise_method=method,
        sampling=sampling,
        value_head=value_head,
        actor_lr=0.0,
        value_lr=0.0,
        minibatch_size=3,
        ppo_epochs=2,
        trainable="all",
    )
    algo = PiRLAlgorithm(policy, pcfg)
    batch = make_batch(cfg)
    torch.manual_seed(0)
    step = algo.act(batch)
    n = step.value.shape[0]
    rb = RolloutBatch(batch, step.chain, step.stochastic, step.log_prob, step.value, torch.randn(n), torch.randn(n))
    stats = algo.update(iter([rb]))
    assert stats.extra["max_abs_log_ratio"] < 1e-6
    assert stats.extra["clipfrac"] == 0.0


@pytest.mark.parametrize("trainable", ["all", "action_expert"])
def test_unused_lm_heads_are_never_trainable(as_built, trainable):
    _, policy, _ = as_built
    algo = PiRLAlgorithm(policy, PiRLConfig(num_denoise_steps=K, trainable=trainable))
    names = list(algo.trainable_policy_parameters())
    assert names and not any("lm_head" in n for n in names)
    if trainable == "action_expert":
        assert not any(n.startswith(algo.adapter.frozen_parameter_prefixes()) for n in names)


def test_last_n_expert_blocks_train_and_the_rest_freeze(as_built):
    _, policy, _ = as_built
    adapter = make_flow_adapter(policy)
    blocks = adapter.expert_block_prefixes()
    assert blocks and all(any(n.startswith(b) for n, _ in policy.named_parameters()) for b in blocks)
    algo = PiRLAlgorithm(policy, PiRLConfig(num_denoise_steps=K, trainable_blocks=1), adapter=adapter)
    names = list(algo.trainable_policy_parameters())
    assert any(n.startswith(blocks[-1]) for n in names)
    assert not any(n.startswith(blocks[:-1]) for n in names)


def test_pi05_offline_prompt_carries_the_state(tiny):
    kind, policy, cfg = tiny
    if kind != "pi05":
        pytest.skip("π0.5 only: π0 and SmolVLA read the state as a tensor")
    adapter = make_flow_adapter(policy)
    batch = make_batch(cfg, batch_size=2)
    batch["observation.state"][1] = -batch["observation.state"][0]
    tokens, masks = adapter.language(batch)
    n_state = cfg.input_features["observation.state"].shape[0]
    assert tokens.shape[1] == cfg.tokenizer_max_length + cfg.max_state_dim + 3 and bool(masks[:, -1].all())
    assert not torch.equal(tokens[0], tokens[1])  # different states, different prompts
    with torch.no_grad():
        feats = adapter.prefix_features(adapter.encode(batch))
    assert n_state <= cfg.max_state_dim and not torch.allclose(
        feats[0, : -cfg.max_state_dim], feats[1, : -cfg.max_state_dim]
    )


def test_a_policy_without_an_adapter_gets_one_line_naming_the_supported_types():
    class Other(torch.nn.Module):
        name = "act"

    with pytest.raises(ValueError, match="'act' has no PI-RL flow adapter; set policy.type to one of: xvla, pi0, pi05"):
        make_flow_adapter(Other())


def test_the_policys_own_training_loss_runs_on_the_adapters_prompt(as_built):
    """What SFT needs: LeRobot's forward on tokens and mask as the adapter builds them (π0.5: state included)."""
    _, policy, cfg = as_built
    batch = make_batch(cfg, batch_size=2)
    batch[LANGUAGE_TOKENS_KEY], batch[LANGUAGE_MASK_KEY] = make_flow_adapter(policy).language(batch)
    batch["action"] = torch.rand(2, cfg.chunk_size, cfg.output_features["action"].shape[0])
    batch["action_is_pad"] = torch.zeros(2, cfg.chunk_size, dtype=torch.bool)
    policy.train()
    try:
        loss, _ = policy.forward(batch)
        loss.backward()
        expert = [p.grad for n, p in policy.named_parameters() if "action_out_proj" in n]
    finally:
        policy.eval()
        policy.zero_grad(set_to_none=True)
    assert torch.isfinite(loss) and all(g is not None and g.abs().sum() > 0 for g in expert)
