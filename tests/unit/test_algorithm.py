"""PiRLAlgorithm: PPO learns, weights and state round-trip, contract errors name the key."""

from __future__ import annotations

import pytest
import torch

from pirlctl.algorithms.pi_rl.advantages import chunk_gae
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import (
    ChunkTransition,
    PiRLAlgorithm,
    RolloutBatch,
    WeightsContractError,
    build_rollout_batch,
)
from pirlctl.policies.toy import ToyFlowPolicy


def _bandit_mean_reward(algo, target, n=256, deterministic=False):
    obs = {"observation.state": torch.zeros(n, 1)}
    step = algo.act(obs, deterministic=deterministic)
    return obs, step, -((step.actions[:, 0] - target) ** 2).sum(-1)


@pytest.mark.parametrize("method", ["flow_sde", "flow_noise"])
def test_ppo_learns_a_one_step_bandit(method):
    torch.manual_seed(0)
    policy = ToyFlowPolicy(obs_dim=0, chunk_size=1, action_dim=2, hidden=32)
    cfg = PiRLConfig(
        noise_method=method,
        actor_lr=3e-3,
        value_lr=3e-3,
        minibatch_size=64,
        noise_level=0.7,
        noise_sigma_min=0.1,
        noise_sigma_max=0.3,
        trainable="all",
    )
    algo = PiRLAlgorithm(policy, cfg)
    target = torch.tensor([0.8, -0.5])
    _, _, r0 = _bandit_mean_reward(algo, target, deterministic=True)
    for _ in range(25):
        obs, step, r = _bandit_mean_reward(algo, target)
        n = r.shape[0]
        adv, ret = chunk_gae(
            r,
            step.value,
            torch.ones(n, dtype=torch.bool),
            torch.zeros(n, dtype=torch.bool),
            torch.zeros(n),
            gamma=0.99,
            gae_lambda=0.95,
        )
        stats = algo.update(iter([RolloutBatch(obs, step.chain, step.stochastic, step.log_prob, step.value, adv, ret)]))
    _, _, r1 = _bandit_mean_reward(algo, target, deterministic=True)
    assert r0.mean() < -0.5  # starts far from the target
    assert r1.mean() > -0.1  # ends close to it
    assert stats.extra["approx_kl"] >= 0.0 and 0.0 <= stats.extra["clipfrac"] <= 1.0


def test_critic_warmup_leaves_the_policy_untouched():
    torch.manual_seed(0)
    policy = ToyFlowPolicy(obs_dim=3, chunk_size=2, action_dim=2)
    algo = PiRLAlgorithm(policy, PiRLConfig(actor_lr=1e-2, value_lr=1e-2, critic_warmup_iters=1, trainable="all"))
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    vh_before = {k: v.clone() for k, v in algo.value_head.state_dict().items()}
    obs = {"observation.state": torch.randn(16, 3)}
    step = algo.act(obs)
    batch = RolloutBatch(
        obs, step.chain, step.stochastic, step.log_prob, step.value, torch.randn(16), torch.randn(16) + 3.0
    )
    stats = algo.update(iter([batch]))
    assert stats.extra["critic_warmup"] == 1.0
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())
    assert any(not torch.equal(vh_before[k], v) for k, v in algo.value_head.state_dict().items())
    algo.update(iter([batch]))  # iteration 1: past warm-up, the policy moves
    assert any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())


def test_the_actor_optimizer_follows_the_lr_schedule_and_the_critic_keeps_its_own():
    torch.manual_seed(0)
    policy = ToyFlowPolicy(obs_dim=3, chunk_size=2, action_dim=2)
    cfg = PiRLConfig(actor_lr=1e-2, actor_lr_final=0.0, lr_anneal_frac=1.0, value_lr=1e-3, trainable="all")
    algo = PiRLAlgorithm(policy, cfg)
    algo.planned_iterations = 1  # the lr reaches 0 one iteration after the horizon: 1e-2, 5e-3, 0
    obs = {"observation.state": torch.randn(16, 3)}
    seen = []
    for _ in range(3):
        step = algo.act(obs)
        batch = RolloutBatch(
            obs, step.chain, step.stochastic, step.log_prob, step.value, torch.randn(16), torch.randn(16)
        )
        before = {k: v.clone() for k, v in policy.state_dict().items()}
        stats = algo.update(iter([batch]))
        moved = any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())
        seen.append((stats.extra["actor_lr"], algo.optimizers["actor"].param_groups[0]["lr"], moved))
    assert [s[0] for s in seen] == pytest.approx([1e-2, 5e-3, 0.0])
    assert all(s[0] == s[1] for s in seen)
    assert [s[2] for s in seen] == [True, True, False]  # lr 0: the policy stays where it is
    assert algo.optimizers["critic"].param_groups[0]["lr"] == 1e-3


def test_get_weights_are_cpu_tensors_and_load_weights_applies_them():
    torch.manual_seed(0)
    learner = PiRLAlgorithm(ToyFlowPolicy(obs_dim=3, chunk_size=2), PiRLConfig(noise_method="flow_noise"))
    torch.manual_seed(0)  # same base checkpoint (the frozen encoder is not pushed) ...
    actor = PiRLAlgorithm(ToyFlowPolicy(obs_dim=3, chunk_size=2), PiRLConfig(noise_method="flow_noise"))
    with torch.no_grad():  # ... but stale trainable weights and heads
        for p in [*actor.trainable_policy_parameters().values(), *actor.value_head.parameters()]:
            p.add_(torch.randn_like(p))
    w = learner.get_weights()
    assert set(w) == {"policy", "value_head", "noise_head"}
    assert all(t.device.type == "cpu" for group in w.values() for t in group.values())
    assert not any(k.startswith("encoder.") for k in w["policy"])  # frozen under action_expert: not sent
    obs = {"observation.state": torch.randn(4, 3)}
    x0 = torch.randn(4, 2, 2)
    assert not torch.equal(actor.value(obs), learner.value(obs))
    actor.load_weights(w)
    assert torch.equal(actor.value(obs), learner.value(obs))
    a = actor.act(obs, deterministic=True, x_init=x0).actions
    b = learner.act(obs, deterministic=True, x_init=x0).actions
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("fault", "needle"),
    [("drop", "missing key"), ("shape", "shape"), ("dtype", "dtype"), ("nan", "NaN"), ("extra", "unexpected key")],
)
def test_load_weights_refuses_a_broken_push_naming_the_key_and_writes_nothing(fault, needle):
    algo = PiRLAlgorithm(ToyFlowPolicy(obs_dim=3, chunk_size=2), PiRLConfig())
    w = algo.get_weights()
    key = next(iter(w["policy"]))
    if fault == "drop":
        del w["policy"][key]
    elif fault == "shape":
        w["policy"][key] = torch.zeros(1, 2, 3)
    elif fault == "dtype":
        w["policy"][key] = w["policy"][key].double()
    elif fault == "nan":
        w["policy"][key] = torch.full_like(w["policy"][key], float("nan"))
    else:
        w["policy"]["bogus.weight"] = torch.zeros(1)
    before = {k: v.clone() for k, v in algo.trainable_policy_parameters().items()}
    with pytest.raises(WeightsContractError, match=needle) as err:
        algo.load_weights(w)
    if fault != "extra":
        assert key in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in algo.trainable_policy_parameters().items())


def test_load_state_dict_preserves_value_head_parameter_identity():
    algo = PiRLAlgorithm(ToyFlowPolicy(obs_dim=3), PiRLConfig(noise_method="flow_noise"))
    algo.make_optimizers_and_scheduler()
    ids = [id(p) for g in algo.optimizers["critic"].param_groups for p in g["params"]]
    sd = {k: torch.randn_like(v) for k, v in algo.state_dict().items()}
    assert any(k.startswith("noise_head.") for k in sd)
    algo.load_state_dict(sd)
    assert [id(p) for p in algo.value_head.parameters()] == ids
    for k, v in algo.state_dict().items():
        assert torch.equal(v, sd[k])
    with pytest.raises(KeyError, match="missing"):
        algo.load_state_dict({})


def test_build_rollout_batch_runs_gae_per_stream():
    def tr(r, v, term=False, trunc=False, boot=0.0):
        return ChunkTransition(
            observation={"observation.state": torch.zeros(3)},
            chain=torch.zeros(5, 2, 2),
            stochastic=torch.tensor([True, False, False, False]),
            log_prob=torch.tensor(0.0),
            value=v,
            reward=r,
            terminated=term,
            truncated=trunc,
            bootstrap_value=boot,
        )

    a = [tr(1.0, 0.0, term=True)]
    b = [tr(0.0, 0.5), tr(0.0, 0.5, boot=1.0)]
    batch = build_rollout_batch([a, b], gamma=1.0, gae_lambda=1.0)
    assert len(batch) == 3
    # stream a: A = 1 − 0; stream b (gamma = lambda = 1): A_1 = 1 − 0.5, A_0 = 0.5 − 0.5 + A_1 = 0.5
    torch.testing.assert_close(batch.advantages, torch.tensor([1.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="empty rollout"):
        build_rollout_batch([[]], gamma=1.0, gae_lambda=1.0)


def test_act_walks_the_policy_into_eval_mode_only_when_some_module_is_in_train_mode(monkeypatch):
    policy = ToyFlowPolicy(obs_dim=0, chunk_size=1, action_dim=2, hidden=8)
    algo = PiRLAlgorithm(policy, PiRLConfig())
    walks: list[int] = []
    real_eval = policy.eval
    monkeypatch.setattr(policy, "eval", lambda: walks.append(1) or real_eval())
    obs = {"observation.state": torch.zeros(2, 1)}
    policy.train()
    algo.act(obs)
    assert walks == [1] and not any(m.training for m in policy.modules())
    algo.act(obs)
    algo.value(obs)
    assert walks == [1]  # already in eval mode: no walk of the module tree
    policy.body[1].train()  # one submodule switched on its own is still caught
    algo.act(obs)
    assert walks == [1, 1] and not any(m.training for m in policy.modules())
