"""The learner as ``runtime.learner_ranks`` data-parallel processes on Hugging Face accelerate (DDP or FSDP; issue 21).

Rank 0 is the learner the actors know: it alone serves LeRobot's LearnerService, takes rollouts, pushes weights,
writes metrics and checkpoints. Every PPO iteration it shares the batch it built with the other ranks
(:meth:`RankGroup.share`); all ranks then run the same :meth:`PiRLAlgorithm.update`, each scoring its shard
of every minibatch (``algorithms.pi_rl.data_parallel``) under DDP, which reduces the gradients. Ranks > 0 only
follow (:func:`follow`) until rank 0 shares ``None``. The policy itself is never replaced by the wrapper: a
checkpoint is the plain, unwrapped state dict, the same for any number of ranks.

The collectives are accelerate's (``broadcast``, ``broadcast_object_list``, ``gather``) and DDP's or FSDP's; the
processes are started by accelerate's launcher (:func:`launch_prefix`).

FSDP (``runtime.learner_strategy=fsdp``) is torch's FSDP2 ``fully_shard`` on accelerate's process group: one unit
per transformer block of the action expert (the adapter's ``expert_block_prefixes``), one per head, and the rest of
the policy (VLM, projections) in the root unit. accelerate's own FSDP plugin is not used: accelerate 1.16 turns a
plugin into FSDP only for GPU-like distributed types and silently falls back to DDP under ``Accelerator(cpu=True)``
(accelerate/state.py, the ``MULTI_CPU`` branch), so it could not be tested on CPU/gloo; ``fully_shard`` runs there
and on GPUs alike. Under FSDP rank 0's modules hold shards, so its pushes and checkpoints read a :class:`Mirror`
instead: a whole, unsharded copy of the trained modules on the CPU, refreshed after every update by one gather
(:func:`full_state`, every rank takes part), and its optimisers' state gathered only before a checkpoint (rank 0
says so with :data:`CHECKPOINT`). A checkpoint written from the mirror is a 1-rank learner's checkpoint. The mirror
costs rank 0 one CPU copy of the trained modules (and, while a checkpoint is written, of their optimiser state).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from pirlctl.errors import PirlError

if TYPE_CHECKING:
    from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm, RolloutBatch
    from pirlctl.config.run_config import PiRLRunConfig

logger = logging.getLogger("pirlctl.learner")

CHECKPOINT = "checkpoint"  # rank 0's message before it writes a checkpoint under FSDP (RankGroup.share)


class RankError(PirlError, RuntimeError):
    """The learner's ranks cannot start as configured; the message names the fix."""


def launch_prefix(ranks: int, port: int) -> list[str]:
    """The command that starts ``ranks`` learner processes on this machine; append ``-m pirlctl learner ...`` (or a
    script). accelerate's ``--multi_gpu`` path is torchrun underneath and also starts CPU ranks (each process then
    asks for ``Accelerator(cpu=True)``, gloo); its ``--cpu`` path starts several ranks only through mpirun.
    ``port``: the ranks' rendezvous port on 127.0.0.1 (not the learner's gRPC port)."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_machines=1",
        f"--num_processes={ranks}",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        f"--main_process_port={port}",
    ]


def learner_command(ranks: int, args: list[str]) -> list[str]:
    """``python -m pirlctl learner ARGS``: as it is for one rank, under :func:`launch_prefix` for more (their
    rendezvous on a free loopback port)."""
    if ranks == 1:
        return [sys.executable, "-m", "pirlctl", "learner", *args]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    return [*launch_prefix(ranks, port), "-m", "pirlctl", "learner", *args]


class _Scorer(nn.Module):
    """The modules PPO trains (policy, value head, noise head) as one module whose forward is the re-score: what
    DDP wraps, so that its backward hooks reduce every trainable parameter's gradient."""

    def __init__(self, algo: PiRLAlgorithm) -> None:
        super().__init__()
        self.policy = algo.policy
        self.value_head = algo.value_head
        if algo.noise_head is not None:
            self.noise_head = algo.noise_head
        self._evaluate = algo.evaluate

    def forward(self, mb: RolloutBatch) -> tuple[Tensor, Tensor, Tensor]:
        return self._evaluate(mb)


@dataclass
class RankGroup:
    """This process's place among the learner's ranks (implements ``data_parallel.DataParallel``)."""

    accelerator: Any
    rank: int
    world_size: int
    strategy: str = "ddp"  # runtime.learner_strategy: "ddp" or "fsdp"
    scorer: Any = None  # the DDP-wrapped (or FSDP-sharded) _Scorer, after attach()

    @property
    def device(self) -> torch.device:
        return torch.device(self.accelerator.device)

    def permutation(self, n: int, device: torch.device) -> Tensor:
        from accelerate.utils import broadcast

        # rank 0 draws from its RNG exactly as a 1-rank learner does; the others receive it
        draw = torch.randperm if self.rank == 0 else lambda k, device: torch.empty(k, dtype=torch.long, device=device)
        return broadcast(draw(n, device=device), from_process=0)

    def score(self, mb: RolloutBatch) -> tuple[Tensor, Tensor, Tensor]:
        if self.scorer is None:
            raise RankError("the ranks were not attached to the algorithm; call pirlctl.runtime.ranks.attach first")
        return self.scorer(mb)

    def gather(self, row: Tensor) -> Tensor:
        from accelerate.utils import gather

        return gather(row.to(self.device)).reshape(self.world_size, -1).cpu()

    def share(self, message: RolloutBatch | str | None) -> RolloutBatch | str | None:
        """Rank 0 says what comes next and every rank returns it: a PPO batch (all ranks update on it), or
        :data:`CHECKPOINT` (all ranks gather their optimiser state for rank 0), or ``None`` (training is over)."""
        from accelerate.utils import broadcast_object_list

        objects: list[Any] = [(message if isinstance(message, str) else _to_cpu(message)) if self.rank == 0 else None]
        broadcast_object_list(objects, from_process=0)
        return objects[0]

    def close(self) -> None:
        """Leave the group together: every rank waits for the others, then the process group is torn down. A rank
        that exits while another still holds the group's threads dies in C++ teardown ("terminate called without
        an active exception", SIGABRT) and the launcher reports the whole learner failed."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _to_cpu(batch: RolloutBatch | None) -> RolloutBatch | None:
    if batch is None:
        return None
    from dataclasses import fields

    from pirlctl.algorithms.pi_rl.pi_rl_algorithm import RolloutBatch

    return RolloutBatch(
        observations={k: v.cpu() for k, v in batch.observations.items()},
        **{f.name: getattr(batch, f.name).cpu() for f in fields(batch) if f.name != "observations"},
    )


def started_ranks() -> int:
    """How many processes the launcher started for this learner (1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def start_ranks(cfg: PiRLRunConfig) -> RankGroup | None:
    """Join the learner's ranks when ``runtime.learner_ranks`` > 1 (every rank calls this first); None for one."""
    n = cfg.runtime.learner_ranks
    started = started_ranks()
    if n == 1 and started == 1:
        return None
    if started != n:
        raise RankError(
            f"runtime.learner_ranks={n} but this learner was started as {started} process(es); run it through "
            f"`pirlctl train`, or start it with `accelerate launch --multi_gpu --num_processes={n} -m pirlctl "
            "learner ...`"
        )
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    # find_unused_parameters: during critic warm-up (and for parameters a minibatch's path skips) the policy gets
    # no gradient; LeRobot's own trainer sets it for the same reason (lerobot_train.py)
    acc = Accelerator(
        cpu=cfg.runtime.device == "cpu",
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if cfg.runtime.device != "cpu":
        cfg.runtime.device = str(acc.device)  # each rank on its own accelerator (cuda:LOCAL_RANK), not all on cuda:0
    return RankGroup(acc, acc.process_index, acc.num_processes, cfg.runtime.learner_strategy)


def attach(group: RankGroup, algo: PiRLAlgorithm) -> None:
    """Every rank, after rank 0 has built (and resumed) its algorithm: rank 0's optimiser state and iteration go to
    all ranks, then DDP wraps the trained modules (its construction copies rank 0's parameters and buffers to the
    others), and the algorithm's update runs on the group from now on."""
    from accelerate.utils import broadcast_object_list

    if not algo.optimizers:
        algo.make_optimizers_and_scheduler()
    state: list[Any] = [None]
    if group.rank == 0:
        state = [
            {
                "optimizers": {k: o.state_dict() for k, o in algo.optimizers.items()},
                "iteration": algo.optimization_step,
            }
        ]
    broadcast_object_list(state, from_process=0)
    if group.rank != 0:
        for name, opt in algo.optimizers.items():
            opt.load_state_dict(state[0]["optimizers"][name])
        algo.optimization_step = int(state[0]["iteration"])
    if group.strategy == "fsdp":
        group.scorer = _shard(algo)
    else:
        group.scorer = group.accelerator.prepare_model(_Scorer(algo), device_placement=False)
    algo.data_parallel = group


def wrap_units(algo: PiRLAlgorithm) -> list[nn.Module]:
    """The FSDP units below the root: one per transformer block of the action expert, input to output (the
    adapter's ``expert_block_prefixes``). A policy that names none cannot be sharded block by block."""
    prefixes = algo.adapter.expert_block_prefixes()
    if not prefixes:
        raise RankError(
            f"runtime.learner_strategy=fsdp shards one unit per transformer block, and the "
            f"{type(algo.adapter).__name__} policy names none (its expert_block_prefixes is empty); use "
            "runtime.learner_strategy=ddp"
        )
    return [algo.policy.get_submodule(p.rstrip(".")) for p in prefixes]


def _shard(algo: PiRLAlgorithm) -> nn.Module:
    """FSDP2 over the trained modules, every rank starting from rank 0's parameters and optimiser state.

    ``fully_shard`` shards each rank's own copy (unlike DDP it copies nothing from rank 0), so rank 0's parameters
    and buffers are broadcast first. It also replaces every parameter by a sharded one, so the optimisers are made
    again over those, their (full, rank 0's) state loaded by parameter name and sharded the same way."""
    from accelerate.utils import broadcast
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.fsdp import fully_shard

    scorer = _Scorer(algo)
    units = wrap_units(algo)
    with torch.no_grad():
        for tensor in scorer.state_dict().values():
            broadcast(tensor, from_process=0)
    full = StateDictOptions(full_state_dict=True)
    # a fresh optimiser stays fresh: get/set_optimizer_state_dict create missing state by a zero-gradient step, and
    # that step's count would shift Adam's bias correction against a 1-rank learner's
    states = {k: get_optimizer_state_dict(scorer, o, options=full) for k, o in algo.optimizers.items() if o.state}
    # the heads are units of their own: they keep float32 when the policy runs in another dtype (heads.py), and
    # FSDP2 flattens one dtype per unit
    heads = [m for m in (algo.value_head, algo.noise_head) if m is not None]
    for unit in [*units, *heads]:
        fully_shard(unit)
    fully_shard(scorer)
    algo.make_optimizers_and_scheduler()
    for name, state in states.items():
        set_optimizer_state_dict(scorer, algo.optimizers[name], state, options=full)
    return scorer


def full_state(group: RankGroup, algo: PiRLAlgorithm) -> dict[str, Tensor]:
    """Every rank calls this (a collective under FSDP): rank 0 gets the trained modules' whole state on the CPU,
    keyed ``policy.*``, ``value_head.*``, ``noise_head.*``; the other ranks get ``{}``. Under DDP every rank holds
    it already."""
    if group.strategy != "fsdp":
        return {k: v.detach().cpu() for k, v in _Scorer(algo).state_dict().items()} if group.rank == 0 else {}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return {k: v for k, v in get_model_state_dict(group.scorer, options=options).items() if isinstance(v, Tensor)}


def optimizer_states(group: RankGroup, algo: PiRLAlgorithm) -> dict[str, Any]:
    """Every rank calls this (a collective under FSDP): rank 0 gets the optimisers' whole state on the CPU, keyed
    by parameter name (``get_optimizer_state_dict``'s full form); the other ranks get ``{}``. An optimiser that has
    not stepped yet is left out on all ranks alike: reading it would make its state with a zero-gradient step."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    stepped = {k: o for k, o in algo.optimizers.items() if o.state}
    states = {k: get_optimizer_state_dict(group.scorer, o, options=options) for k, o in stepped.items()}
    return states if group.rank == 0 else {}


class Mirror:
    """Rank 0's whole copy of the trained modules on the CPU under FSDP: what it pushes and checkpoints (module doc).

    ``algo``: a second algorithm built like the learner's (the same config, on the CPU), given the learner's state
    before the ranks shard it; :meth:`refresh` and :meth:`refresh_optimizers` keep it equal to the sharded one."""

    def __init__(self, algo: PiRLAlgorithm, learner_algo: PiRLAlgorithm) -> None:
        self.algo = algo
        if not algo.optimizers:
            algo.make_optimizers_and_scheduler()
        _Scorer(algo).load_state_dict(_Scorer(learner_algo).state_dict())
        for name, opt in learner_algo.optimizers.items():
            algo.optimizers[name].load_state_dict(opt.state_dict())
        algo.optimization_step = learner_algo.optimization_step

    def refresh(self, group: RankGroup, learner_algo: PiRLAlgorithm) -> None:
        """Every rank, after every update (a collective): rank 0's mirror takes the gathered parameters."""
        whole = full_state(group, learner_algo)
        if group.rank == 0:
            _Scorer(self.algo).load_state_dict(whole)
            self.algo.optimization_step = learner_algo.optimization_step

    def refresh_optimizers(self, group: RankGroup, learner_algo: PiRLAlgorithm) -> None:
        """Every rank, before rank 0 writes a checkpoint (a collective): the mirror's optimisers take the gathered
        state, loaded by parameter name as a 1-rank learner holds it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        states = optimizer_states(group, learner_algo)
        for name, state in states.items():
            scorer = _Scorer(self.algo)
            opts = StateDictOptions(full_state_dict=True)
            set_optimizer_state_dict(scorer, self.algo.optimizers[name], state, options=opts)


def follow(group: RankGroup, algo: PiRLAlgorithm) -> int:
    """Ranks > 0: one PPO update per batch rank 0 shares (under FSDP each followed by the gather of rank 0's
    :class:`Mirror`), the optimiser gather on :data:`CHECKPOINT`, until rank 0 shares ``None``. Returns the updates
    made."""
    done = 0
    while (message := group.share(None)) is not None:
        if message == CHECKPOINT:
            optimizer_states(group, algo)
            continue
        assert not isinstance(message, str), message
        algo.update(iter([message]))
        if group.strategy == "fsdp":
            full_state(group, algo)
        done += 1
        logger.debug("rank %d: iteration %d", group.rank, algo.iteration)
    return done
