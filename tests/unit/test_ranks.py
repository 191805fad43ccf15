"""The data-parallel split of a PPO minibatch (algorithms/pi_rl/data_parallel.py) and the learner's rank settings.
The processes themselves: tests/integration/test_ranks.py."""

from __future__ import annotations

import pytest
import torch

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.data_parallel import MAX_STATS, MEAN_STATS, combine_stats, loss_scale, shard_range
from pirlctl.algorithms.pi_rl.data_parallel import stats_row as row
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm
from pirlctl.config.run_config import RunConfigError, load_run_config
from pirlctl.configs import DEFAULT_RUN_CONFIG
from pirlctl.errors import one_line
from pirlctl.policies.toy import ToyFlowPolicy
from pirlctl.runtime.build import build_algorithm
from pirlctl.runtime.ranks import RankError, learner_command, start_ranks, wrap_units


@pytest.mark.parametrize(("n", "world"), [(8, 2), (17, 2), (5, 3), (1, 2), (2, 4)])
def test_shards_cover_the_minibatch_once_and_differ_by_at_most_one(n, world):
    bounds = [shard_range(n, r, world) for r in range(world)]
    assert [i for lo, hi in bounds for i in range(lo, hi)] == list(range(n))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize(("n", "world"), [(8, 2), (7, 2), (5, 3), (1, 2)])
def test_ranks_scaled_losses_averaged_like_ddp_give_the_whole_minibatch_gradient(n, world):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(n, 3), torch.randn(n)

    def grads(idx: torch.Tensor, scale: float) -> list[torch.Tensor]:
        model.zero_grad()
        loss = torch.nn.functional.huber_loss(model(x[idx]).squeeze(-1), y[idx])  # a per-sample mean, like PPO's
        (loss * scale).backward()
        return [p.grad.clone() for p in model.parameters()]

    whole = grads(torch.arange(n), 1.0)
    per_rank = []
    for r in range(world):
        lo, hi = shard_range(n, r, world)
        idx = torch.arange(lo, hi) if hi > lo else torch.arange(1)  # an empty shard scores one sample, scale 0
        per_rank.append(grads(idx, loss_scale(hi - lo, n, world)))
    averaged = [sum(g[i] for g in per_rank) / world for i in range(len(whole))]  # DDP's all-reduce mean
    for a, b in zip(averaged, whole, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_combined_rank_statistics_are_the_whole_minibatch_statistics():
    ratio = torch.tensor([0.9, 1.3, 1.0, 0.7, 1.1], dtype=torch.float64)
    lr = ratio.log()

    def stats(r: torch.Tensor) -> dict[str, float]:
        return {  # per-sample means and extremes, as clipped_surrogate and the losses report them
            "policy_loss": float(r.mean()),
            "value_loss": float((r**2).mean()),
            "entropy": float(r.exp().mean()),
            "approx_kl": float(((r - 1) - r.log()).mean()),
            "clipfrac": float(((r - 1).abs() > 0.2).float().mean()),
            "ratio_min": float(r.min()),
            "ratio_max": float(r.max()),
            "max_abs_log_ratio": float(r.log().abs().max()),
        }

    want = stats(ratio)
    rows = torch.stack([row(3, stats(ratio[:3])), row(2, stats(ratio[3:])), row(0, {})])  # rank 2: empty shard
    got = combine_stats(rows)
    assert set(got) == {*MEAN_STATS, "ratio_min", *MAX_STATS}
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert got["max_abs_log_ratio"] == pytest.approx(float(lr.abs().max()))


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["--runtime.learner_ranks=4", "--algorithm.minibatch_size=2"], ["learner_ranks=4", "minibatch_size", "2"]),
        (["--runtime.learner_ranks=0"], ["learner_ranks=0", ">= 1"]),
        (["--runtime.learner_strategy=zero3"], ["zero3", "'ddp' or 'fsdp'"]),
    ],
)
def test_bad_rank_settings_fail_in_one_line_naming_the_fix(overrides, needles):
    with pytest.raises(RunConfigError) as err:
        load_run_config(DEFAULT_RUN_CONFIG, overrides)
    message = one_line(err.value)
    assert "\n" not in message and all(n in message for n in needles), message


def test_a_learner_configured_for_two_ranks_but_started_as_one_process_says_how_to_start_it(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = load_run_config(DEFAULT_RUN_CONFIG, ["--runtime.learner_ranks=2"])
    with pytest.raises(RankError, match=r"learner_ranks=2 but this learner was started as 1 process.*accelerate"):
        start_ranks(cfg)
    assert start_ranks(load_run_config(DEFAULT_RUN_CONFIG, [])) is None  # one rank: no accelerate at all


def test_the_learner_command_uses_accelerates_launcher_only_for_several_ranks():
    one = learner_command(1, ["--json"])
    assert one[1:] == ["-m", "pirlctl", "learner", "--json"]
    two = learner_command(2, ["--json"])
    assert two[1:3] == ["-m", "accelerate.commands.launch"] and "--num_processes=2" in two
    assert two[-4:] == ["-m", "pirlctl", "learner", "--json"]


def test_fsdp_wraps_one_unit_per_transformer_block_of_the_action_expert():
    algo = build_algorithm(load_run_config(DEFAULT_RUN_CONFIG, []), "cpu")
    units = wrap_units(algo)
    blocks = algo.adapter.expert_block_prefixes()
    assert len(units) == len(blocks) >= 2 and len({id(u) for u in units}) == len(units)
    for unit, prefix in zip(units, blocks, strict=True):  # each unit owns exactly its block's parameters
        own = {f"{prefix}{n}" for n, _ in unit.named_parameters()}
        assert own == {n for n, _ in algo.policy.named_parameters() if n.startswith(prefix)}


def test_fsdp_on_a_policy_without_transformer_blocks_fails_in_one_line_naming_ddp():
    algo = PiRLAlgorithm(ToyFlowPolicy(obs_dim=3, chunk_size=2, action_dim=2), PiRLConfig())
    with pytest.raises(RankError) as err:
        wrap_units(algo)
    message = one_line(err.value)
    assert "\n" not in message and "ToyAdapter" in message and "learner_strategy=ddp" in message, message
