"""One PPO update of the tiny default policy on a saved batch, as one process or as one of N ranks under
accelerate's launcher (tests/integration/test_ranks.py). Rank 0 writes the parameters and statistics after it.

    python ranks_update.py BATCH OUT RANKS STRATEGY BEFORE [--overrides...]  (accelerate's launcher for RANKS > 1)

STRATEGY: "ddp" or "fsdp" (runtime.learner_strategy). BEFORE: plain updates every
process makes alone before the ranks attach, as a resumed learner's optimiser state (FSDP shards it at attach).
"""

from __future__ import annotations

import sys

import torch

from pirlctl.configs import DEFAULT_RUN_CONFIG


def _algo(ranks: int, strategy: str, overrides: list[str]):
    from pirlctl.config.run_config import load_run_config
    from pirlctl.runtime.ranks import start_ranks

    cfg = load_run_config(DEFAULT_RUN_CONFIG, [f"--runtime.learner_ranks={ranks}", *overrides])
    cfg.runtime.learner_strategy = strategy
    group = start_ranks(cfg)
    torch.set_num_threads(1)
    return cfg, _build(cfg), group


def _build(cfg):
    from pirlctl.runtime.build import build_algorithm

    torch.set_default_dtype(torch.float32)  # as the learner builds it (a second build comes after the first)
    algo = build_algorithm(cfg, "cpu")
    # float64: rounding noise then stays far below Adam's eps. In float32 a parameter whose true gradient is 0
    # (attention's key bias: softmax ignores a shift) gets noise ~eps, which Adam turns into ±lr steps that
    # differ with how the minibatch is split (observed ~1e-5 after one iteration at the shipped learning rates).
    torch.set_default_dtype(torch.float64)
    algo.policy.double()  # the heads compute in float32 by design (heads.py); their gradients are well-conditioned
    algo.mask = algo.mask.double()
    algo.make_optimizers_and_scheduler()
    return algo


def main(argv: list[str]) -> None:
    batch_path, out, ranks = argv[0], argv[1], int(argv[2])
    cfg, algo, group = _algo(ranks, argv[3], argv[5:])
    batch = torch.load(batch_path, weights_only=False)
    for key, value in [*batch.observations.items()]:
        if value.is_floating_point():
            batch.observations[key] = value.double()
    for name in ("chain", "old_log_prob"):
        setattr(batch, name, getattr(batch, name).double())
    for _ in range(int(argv[4])):
        torch.manual_seed(11)
        algo.update(iter([batch]))
    mirror = None
    if group is not None:
        from pirlctl.runtime.ranks import Mirror, attach

        if group.strategy == "fsdp":  # what the learner's rank 0 pushes and checkpoints from (runtime.ranks)
            with torch.random.fork_rng(devices=[]):
                mirror = Mirror(_build(cfg), algo)
        attach(group, algo)
    torch.manual_seed(11)  # the minibatch permutation: rank 0's draw, as one process draws it
    stats = algo.update(iter([batch]))
    if mirror is not None:  # collectives: every rank takes part
        mirror.refresh(group, algo)
        mirror.refresh_optimizers(group, algo)
    if group is not None:
        group.close()  # as the learner's ranks end: together (runtime.ranks.RankGroup.close)
        if group.rank > 0:
            return
    whole = mirror.algo if mirror is not None else algo
    params = {f"policy.{k}": v for k, v in whole.get_weights()["policy"].items()}
    params.update({f"algo.{k}": v.detach().cpu() for k, v in whole.state_dict().items()})
    optimizers = {k: o.state_dict() for k, o in whole.optimizers.items()}
    torch.save({"params": params, "optimizers": optimizers, "stats": {**stats.losses, **stats.extra}}, out)


if __name__ == "__main__":
    main(sys.argv[1:])
