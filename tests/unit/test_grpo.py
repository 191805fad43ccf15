"""GRPO beside PPO: group-relative advantages by hand, the config's refusals, the episode schedule, the learner's
group assembly, and the toy bandit learning critic-free."""

from __future__ import annotations

import math

import pytest
import torch

from pirlctl.algorithms.pi_rl.advantages import broadcast_to_chunks, group_relative_advantages
from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig, PiRLConfigError
from pirlctl.algorithms.pi_rl.group_batch import build_group_batch, episode_return, split_episodes
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import ChunkTransition, PiRLAlgorithm, RolloutBatch
from pirlctl.envs.base import shaped_reward
from pirlctl.errors import one_line
from pirlctl.policies.toy import ToyFlowPolicy
from pirlctl.runtime.groups import GroupSchedule, groups_per_batch
from pirlctl.runtime.rollout import REJECTED_DUPLICATE, REJECTED_SCHEDULE, USED, RolloutAssembler
from pirlctl.runtime.wire import Segment

from .test_algorithm import _bandit_mean_reward as _bandit  # the one-step bandit of the PPO test

# -- advantages ------------------------------------------------------------------------------------------------


def test_group_advantages_match_a_hand_computation():
    returns = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 0.0, 3.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2])
    adv = group_relative_advantages(returns, groups, eps=0.0)
    # group 0: mean 0.5, unbiased std sqrt(4 · 0.25 / 3) = 1/sqrt(3): ±0.5·sqrt(3)
    h = 0.5 * math.sqrt(3.0)
    # group 1: equal returns -> 0; group 2: mean 1.5, unbiased std sqrt(2 · 2.25 / 1) = 1.5·sqrt(2): ±1/sqrt(2)
    q = 1.0 / math.sqrt(2.0)
    want = torch.tensor([h, -h, -h, h, 0.0, 0.0, 0.0, -q, q])
    assert torch.allclose(adv, want, atol=1e-6)
    assert adv.dtype == torch.float32
    # eps sits in the denominator: group 2 with eps = 0.5
    adv_eps = group_relative_advantages(returns, groups, eps=0.5)
    assert adv_eps[8].item() == pytest.approx(1.5 / (1.5 * math.sqrt(2.0) + 0.5), abs=1e-6)


def test_equal_returns_in_a_group_give_exactly_zero_not_nan():
    # 0.1 three times: the mean is 0.1 + 2.8e-17, so (R - mean) / (0 + eps) would be ~1e-11 noise (or NaN at eps 0)
    returns = torch.tensor([0.1, 0.1, 0.1, 0.0, 0.0, 1.0, 1.0])
    adv = group_relative_advantages(returns, torch.tensor([5, 5, 5, 7, 7, 9, 9]), eps=0.0)
    assert torch.equal(adv, torch.zeros(7))


def test_a_group_of_one_episode_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        group_relative_advantages(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0, 0, 1]))


def test_group_size_one_is_refused_in_one_line_naming_the_fix():
    with pytest.raises(PiRLConfigError) as err:
        PiRLConfig(advantage="grpo", group_size=1)
    msg = one_line(err.value)
    assert len(msg.splitlines()) == 1
    assert "pi_rl.group_size=1" in msg and "group_size >= 2" in msg
    PiRLConfig(advantage="gae", group_size=1)  # unused under GAE: accepted


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"advantage": "ppo"}, "pi_rl.advantage='ppo' is invalid; use one of 'gae', 'grpo'"),
        ({"advantage": "grpo", "critic_warmup_iters": 2}, "critic_warmup_iters=2"),
        ({"group_size": 0}, "pi_rl.group_size=0 is invalid"),
    ],
)
def test_invalid_grpo_settings_are_refused_naming_the_field(kwargs, message):
    with pytest.raises(PiRLConfigError, match=message.replace("(", r"\(")):
        PiRLConfig(**kwargs)


def test_the_default_stays_gae_with_a_critic():
    cfg = PiRLConfig()
    assert cfg.advantage == "gae" and cfg.uses_critic
    assert not PiRLConfig(advantage="grpo").uses_critic


# -- episodes into a batch --------------------------------------------------------------------------------------


def tr(reward: float, end: str = "", value: float = 0.0, tag: float = 0.0) -> ChunkTransition:
    return ChunkTransition(
        observation={"observation.state": torch.full((3,), tag)},
        chain=torch.zeros(2, 2, 2),
        stochastic=torch.tensor([True]),
        log_prob=torch.tensor(-1.0),
        value=value,
        reward=reward,
        terminated=end == "term",
        truncated=end == "trunc",
        bootstrap_value=0.0,
    )


def test_split_episodes_cuts_at_each_end_and_returns_the_unfinished_tail():
    stream = [tr(0), tr(1, "term"), tr(0), tr(0, "trunc"), tr(0)]
    episodes, tail = split_episodes(stream)
    assert [len(e) for e in episodes] == [2, 2] and len(tail) == 1
    assert split_episodes(stream[:4])[1] == []


def test_each_chunk_gets_its_episodes_group_advantage_and_return():
    # group 0: returns 1 (2 chunks) and 0 (3 chunks); group 1: returns 0.5 and 0.5 (equal: advantage 0)
    eps = [
        [tr(0.2, tag=0), tr(0.8, "term", tag=0)],
        [tr(0.0, tag=1), tr(0.0, tag=1), tr(0.0, "trunc", tag=1)],
        [tr(0.5, "term", value=9.0, tag=2)],
        [tr(0.25, tag=3), tr(0.25, "term", tag=3)],
    ]
    batch = build_group_batch(eps, [0, 0, 1, 1], gamma=1.0, eps=0.0)  # undiscounted: the hand sums below
    a = 1.0 / math.sqrt(2.0)  # (1 - 0.5) / std([1, 0]) with the unbiased std 1/sqrt(2)
    assert torch.allclose(batch.advantages, torch.tensor([a, a, -a, -a, -a, 0.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(batch.returns, torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5]))
    assert batch.observations["observation.state"][:, 0].tolist() == [0, 0, 1, 1, 1, 2, 3, 3]  # episode order kept
    assert batch.old_values[5].item() == 9.0 and len(batch) == 8
    assert episode_return(eps[0], 1.0) == pytest.approx(1.0)
    assert broadcast_to_chunks(torch.tensor([1.0, 2.0]), torch.tensor([1, 2])).tolist() == [1.0, 2.0, 2.0]


def test_the_outcome_is_the_chunk_discounted_return():
    ep = [tr(0.0), tr(0.0), tr(1.0, "term")]
    assert episode_return(ep, 0.9) == pytest.approx(0.81)  # gamma^2 * 1
    assert episode_return(ep, 1.0) == pytest.approx(1.0)  # gamma = 1: the plain sum


def _shaped_episode(env_rewards: list[float], phis: list[float], gamma: float, end: str) -> list[ChunkTransition]:
    """An episode as the actor sends it with env.shaping = 1: phis[c] is Phi before chunk c, phis[-1] after the last."""
    out = []
    for c, r in enumerate(env_rewards):
        last = c == len(env_rewards) - 1
        reward = shaped_reward(r, phis[c], phis[c + 1], gamma=gamma, weight=1.0, terminal=last)
        out.append(tr(reward, end if last else ""))
    return out


def test_shaping_cannot_change_a_groups_advantages():
    """Potential-based shaping (the default job's env.shaping) telescopes under the discounted outcome: an
    all-failure group whose episodes made different progress gets advantage 0, and a mixed group gets the
    advantages of its unshaped rewards. The plain sum would rank the failures by their progress (the collapse)."""
    g = 0.99
    start = 0.1  # Phi(s_0): the same initial state for the whole group
    far = _shaped_episode([0.0] * 4, [start, 0.1, 0.1, 0.1, 0.1], g, "trunc")  # stayed away from the cube
    near = _shaped_episode([0.0] * 4, [start, 0.6, 0.8, 0.9, 0.9], g, "trunc")  # reached it, no lift
    win = _shaped_episode([0.0, 0.0, 1.0], [start, 0.6, 0.9, 1.0], g, "term")
    fail = _shaped_episode([0.0] * 4, [start, 0.3, 0.2, 0.3, 0.3], g, "trunc")
    batch = build_group_batch([far, near, win, fail], [0, 0, 1, 1], gamma=g)
    assert batch.advantages[:8].abs().max() < 1e-6  # all-failure group: no signal, whatever the progress
    plain = [_shaped_episode([0.0, 0.0, 1.0], [0.0] * 4, g, "term"), _shaped_episode([0.0] * 4, [0.0] * 5, g, "trunc")]
    want = build_group_batch(plain, [1, 1], gamma=g).advantages
    assert torch.allclose(batch.advantages[8:], want, atol=1e-5)  # the mixed group: as without shaping
    undiscounted = build_group_batch([far, near], [0, 0], gamma=1.0).advantages
    assert undiscounted[0] > 0.5 > -0.5 > undiscounted[-1]  # the plain sum prefers the episode that stayed away


# -- the schedule -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("actors", "group_size", "groups"), [(1, 2, 3), (2, 4, 2), (2, 8, 4), (3, 4, 2), (4, 2, 5)])
def test_every_group_is_whole_across_actors_and_shares_one_seed(actors, group_size, groups):
    sched = GroupSchedule(actors, group_size, groups, base_seed=100, max_chunks_per_episode=15)
    assert sum(sched.actor_episodes(a) for a in range(actors)) == sched.episodes_per_batch == groups * group_size
    seeds_seen: dict[int, set[int]] = {}
    for version in range(3):
        members: dict[int, list[tuple[int, int]]] = {}
        for a in range(actors):
            for j in range(sched.actor_episodes(a)):
                key = sched.group_key(version, a, j)
                members.setdefault(key, []).append((a, j))
                seeds_seen.setdefault(key, set()).add(sched.seed(version, a, j))
        assert sorted(members) == [version * groups + g for g in range(groups)]
        assert all(len(m) == group_size for m in members.values())  # every group whole
        if actors > 1 and group_size >= actors:
            assert all({a for a, _ in m} == set(range(actors)) for m in members.values())  # spans the actors
    assert all(len(s) == 1 for s in seeds_seen.values())  # one seed per group
    assert len({next(iter(s)) for s in seeds_seen.values()}) == len(seeds_seen)  # a new seed for every group
    assert sched.actor_episodes(actors) == 0 and sched.actor_episodes(-1) == 0


def test_groups_per_batch_is_the_whole_groups_of_full_episodes_in_the_chunk_budget():
    assert groups_per_batch(2, 256, 8, 15) == 4  # the shipped GRPO config: 512 chunks, groups of 8 × 15 chunks
    assert groups_per_batch(1, 8, 4, 15) == 1  # at least one group
    assert groups_per_batch(2, 60, 4, 15) == 2


# -- the learner's assembly ---------------------------------------------------------------------------------------


def episodes_segment(version: int, actor: int, lengths: list[int], tail: int = 0) -> Segment:
    trs: list[ChunkTransition] = []
    for n in lengths:
        trs += [tr(0.0) for _ in range(n - 1)] + [tr(float(actor), "term")]
    trs += [tr(0.0) for _ in range(tail)]
    return Segment(trs, version, actor, env_steps=4 * len(trs))


SCHED = GroupSchedule(num_actors=2, group_size=2, groups_per_batch=2, base_seed=0, max_chunks_per_episode=15)


def test_the_batch_is_full_once_every_actor_sent_its_episodes_and_all_groups_are_complete():
    asm = RolloutAssembler(batch_chunks=10_000, groups=SCHED)
    assert asm.offer(episodes_segment(0, 0, [3, 2])) == USED
    assert asm.wait_batch(timeout=0.01) is None  # actor 1's halves of both groups missing
    assert asm.offer(episodes_segment(0, 1, [1, 4])) == USED
    segs = asm.wait_batch(timeout=0.01)
    assert segs is not None
    grouped = asm.complete_groups(segs)
    # group 0 = actor 0's first and actor 1's first episode; group 1 = the second ones
    assert grouped.group_ids == [0, 0, 1, 1]
    assert [len(e) for e in grouped.episodes] == [3, 1, 2, 4]
    batch = build_group_batch(grouped.episodes, grouped.group_ids, gamma=1.0)
    assert len(batch) == 10
    c = asm.counters
    assert (c.groups_used, c.groups_dropped_incomplete, c.chunks_used, c.chunks_dropped_incomplete) == (2, 0, 10, 0)


def test_segments_that_break_the_schedule_or_repeat_are_rejected_and_counted():
    asm = RolloutAssembler(batch_chunks=10_000, groups=SCHED)
    assert asm.offer(episodes_segment(0, 0, [3])) == REJECTED_SCHEDULE  # one episode of its two
    assert asm.offer(episodes_segment(0, 0, [3, 2], tail=1)) == REJECTED_SCHEDULE  # an unfinished episode
    assert asm.offer(episodes_segment(0, 5, [3, 2])) == REJECTED_SCHEDULE  # no such actor in the schedule
    assert asm.offer(episodes_segment(0, 0, [3, 2])) == USED
    assert asm.offer(episodes_segment(0, 0, [1, 1])) == REJECTED_DUPLICATE  # a re-collected copy
    assert asm.counters.segments_rejected == 4 and asm.pending_chunks() == 5


def test_incomplete_groups_are_dropped_and_counted_not_trained_on():
    asm = RolloutAssembler(batch_chunks=10_000, rule="importance_weight", max_lag=1, groups=SCHED)
    for seg in (episodes_segment(0, 0, [3, 2]), episodes_segment(0, 1, [1, 4])):
        asm.offer(seg)
    asm.set_version(1)
    asm.offer(episodes_segment(1, 0, [2, 2]))  # version 1's groups lack actor 1's episodes
    # batch-timeout path: what is pending holds the two complete groups of version 0 (10 chunks)
    assert asm.take_partial(min_chunks=11) is None
    segs = asm.take_partial(min_chunks=10)
    assert segs is not None
    grouped = asm.complete_groups(segs)
    assert sorted(set(grouped.group_ids)) == [0, 1]
    c = asm.counters
    assert (c.groups_used, c.groups_dropped_incomplete, c.chunks_dropped_incomplete, c.chunks_used) == (2, 2, 4, 10)


def test_without_a_complete_group_nothing_is_taken():
    asm = RolloutAssembler(batch_chunks=10_000, groups=SCHED)
    asm.offer(episodes_segment(0, 0, [3, 2]))
    assert asm.take_partial(min_chunks=1) is None


# -- the algorithm ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["flow_sde", "flow_noise"])
def test_grpo_learns_a_one_step_bandit_without_training_the_critic(method):
    torch.manual_seed(0)
    policy = ToyFlowPolicy(obs_dim=0, chunk_size=1, action_dim=2, hidden=32)
    cfg = PiRLConfig(
        advantage="grpo",
        group_size=8,
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
    value_head = {k: v.clone() for k, v in algo.value_head.state_dict().items()}
    target = torch.tensor([0.8, -0.5])
    _, _, r0 = _bandit(algo, target, deterministic=True)
    for _ in range(25):
        obs, step, r = _bandit(algo, target)  # one state: 32 groups of 8 samples of it
        adv = group_relative_advantages(r, torch.arange(r.shape[0]) // cfg.group_size)
        stats = algo.update(iter([RolloutBatch(obs, step.chain, step.stochastic, step.log_prob, step.value, adv, r)]))
    _, _, r1 = _bandit(algo, target, deterministic=True)
    assert r0.mean() < -0.5  # starts far from the target
    assert r1.mean() > -0.1  # ends close to it
    assert all(torch.equal(value_head[k], v) for k, v in algo.value_head.state_dict().items())  # critic-free
    assert stats.losses["value_loss"] == 0.0 and stats.grad_norms["critic"] == 0.0
    assert math.isnan(stats.extra["explained_variance"])


def test_grpo_uses_the_group_advantages_as_given_without_renormalising():
    # advantages of +-1e-3: PPO's batch normalisation scales them to +-1; GRPO keeps them, so a ~1000x smaller gradient
    grad = []
    for advantage in ("grpo", "gae"):
        torch.manual_seed(0)
        policy = ToyFlowPolicy(obs_dim=3, chunk_size=2, action_dim=2)
        algo = PiRLAlgorithm(policy, PiRLConfig(advantage=advantage, actor_lr=1e-2, trainable="all", ppo_epochs=1))
        obs = {"observation.state": torch.randn(16, 3)}
        step = algo.act(obs)
        adv = torch.tensor([1e-3, -1e-3] * 8)
        stats = algo.update(
            iter([RolloutBatch(obs, step.chain, step.stochastic, step.log_prob, step.value, adv, torch.zeros(16))])
        )
        grad.append(stats.grad_norms["actor"])
    assert 0.0 < grad[0] < grad[1] / 100


# -- the actor's seeds ----------------------------------------------------------------------------------------------


def _actor_stub(advantage: str, actor_id: int, version: int):
    from pirlctl.config.run_config import load_run_config
    from pirlctl.runtime.actor import Actor
    from pirlctl.runtime.groups import make_group_schedule

    cfg = load_run_config("pick_cube_tiny", [f"--algorithm.advantage={advantage}", "--algorithm.critic_warmup_iters=0"])
    actor = Actor.__new__(Actor)  # only what _episode_seed reads: no model, no env, no learner
    actor.cfg, actor.actor_id, actor.version = cfg, actor_id, version
    actor.groups, actor.group_episode = make_group_schedule(cfg, 4), 0
    return actor


def test_the_actors_episode_seeds_follow_the_group_schedule_under_grpo_and_stay_put_under_gae():
    from pirlctl.runtime.actor import EPISODE_SEED_STRIDE

    gae = _actor_stub("gae", actor_id=1, version=3)
    assert gae._episode_seed(0, 5) == gae.cfg.env.seed + EPISODE_SEED_STRIDE + 5  # PPO's numbering, unchanged
    seeds: dict[int, set[int]] = {}
    for a in (0, 1):
        actor = _actor_stub("grpo", actor_id=a, version=3)
        assert actor.groups.groups_per_batch == 4  # 2 actors × 256 chunks over groups of 8 × 15 chunks
        for j in range(actor.groups.actor_episodes(a)):  # 16 each
            actor.group_episode = j
            seeds.setdefault(actor.groups.group_key(3, a, j), set()).add(actor._episode_seed(0, j))
    assert sorted(seeds) == [12, 13, 14, 15] and all(len(s) == 1 for s in seeds.values())
    assert sorted(next(iter(s)) for s in seeds.values()) == [12, 13, 14, 15]  # env.seed 0 + 3 · 4 + g
