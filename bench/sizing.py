"""The fleet sizing model of docs/scaling.md: actors, envs per actor and learner ranks for a PPO job (issue 21).

One PPO iteration of on-policy PI-RL is strictly sequential at its sync point: the actors collect the batch with
policy version v, the learner updates on it, pushes version v+1, and only then do the actors go on. So

    iteration wall  =  collect  +  update  +  push
    collect         =  env steps per iteration ÷ (actors × env steps/s per actor)
    per actor       =  E · n_exec env steps per round of  ⌈E / W⌉ · n_exec · t_env  +  t_policy(K) · (1 + β (E − 1))
    update          =  chunks per iteration × PPO epochs × t_sample ÷ (ranks × rank efficiency)
    push            =  push GB × seconds per GB

with E envs per actor, W env worker processes per actor (1: the envs step one after another in the actor, as
pick-cube's ``EnvGroup`` does; E: one process each, as LeRobot's async vector env), t_env one env step, t_policy(K)
one policy call for a chunk (chain of K steps, log-prob, value) and β the extra cost of each further observation in
a batched call. The learner idles while the actors collect, the actors wait while the learner updates and pushes:
adding actors shrinks only ``collect``; ``update + push`` is the floor no fleet goes below (the sync point).
:func:`actors_to_balance` gives the fleet at which collection takes as long as the update: beyond it, more actors
mostly wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    """One PPO iteration's size (the paper's LIBERO recipe: 64 envs × 8 rollout epochs, 4 PPO epochs)."""

    envs: int  # parallel envs the recipe rolls out (RLinf: 64)
    rollout_epochs: int  # rollouts per env per iteration (RLinf: 8)
    episode_steps: int  # env steps per rollout (LeRobot's LIBERO limit: 280 spatial/object, 300 goal, 520 long)
    n_exec: int  # env steps executed per chunk (RLinf: 5)
    ppo_epochs: int  # passes over the batch per iteration (RLinf: 4)

    @property
    def chunks(self) -> int:
        """PPO samples (one per chunk) per iteration."""
        return self.envs * self.rollout_epochs * math.ceil(self.episode_steps / self.n_exec)

    @property
    def env_steps(self) -> int:
        return self.chunks * self.n_exec


@dataclass(frozen=True)
class Rates:
    """Per-unit costs, each measured (docs/benchmarks.md) or extrapolated (docs/scaling.md says which)."""

    env_step_s: float  # one env step, one env, one core (render included)
    policy_chunk_s: float  # one policy call for one observation at the job's K (chain + log-prob + value)
    batch_slope: float  # extra cost of each further observation in one batched call, as a share of policy_chunk_s
    sample_epoch_s: float  # PPO update time per sample per epoch on one rank
    rank_efficiency: float  # speed-up of R ranks ÷ R (1.0: perfect data parallelism)
    push_gb: float  # bytes pushed to the actors per iteration, GB
    push_s_per_gb: float  # warm push time per GB


@dataclass(frozen=True)
class Fleet:
    actors: int
    envs_per_actor: int
    env_workers: int  # env processes per actor (1: sequential in the actor; envs_per_actor: one each)
    ranks: int


@dataclass(frozen=True)
class Prediction:
    actor_fps: float  # env steps/s of one actor
    collect_s: float
    update_s: float
    push_s: float

    @property
    def iteration_s(self) -> float:
        return self.collect_s + self.update_s + self.push_s

    @property
    def learner_idle(self) -> float:
        """Share of the iteration the learner waits for rollouts."""
        return self.collect_s / self.iteration_s

    @property
    def actor_wait(self) -> float:
        """Share of the iteration the actors wait for the next version (the on-policy sync point)."""
        return (self.update_s + self.push_s) / self.iteration_s


def actor_fps(rates: Rates, w: Workload, envs_per_actor: int, env_workers: int) -> float:
    """Env steps/s of one actor stepping ``envs_per_actor`` envs on ``env_workers`` processes, one batched policy
    call per chunk round."""
    e = envs_per_actor
    env_s = math.ceil(e / env_workers) * w.n_exec * rates.env_step_s
    policy_s = rates.policy_chunk_s * (1 + rates.batch_slope * (e - 1))
    return e * w.n_exec / (env_s + policy_s)


def predict(rates: Rates, w: Workload, fleet: Fleet) -> Prediction:
    fps = actor_fps(rates, w, fleet.envs_per_actor, fleet.env_workers)
    eff = 1.0 if fleet.ranks == 1 else rates.rank_efficiency
    return Prediction(
        actor_fps=fps,
        collect_s=w.env_steps / (fleet.actors * fps),
        update_s=w.chunks * w.ppo_epochs * rates.sample_epoch_s / (fleet.ranks * eff),
        push_s=rates.push_gb * rates.push_s_per_gb,
    )


def actors_to_balance(rates: Rates, w: Workload, envs_per_actor: int, env_workers: int, ranks: int) -> int:
    """The fewest actors whose collection takes no longer than the learner's update and push. That fleet's iteration
    is at most twice the sync-point floor (update + push); more actors can only close the collection part."""
    one = predict(rates, w, Fleet(1, envs_per_actor, env_workers, ranks))
    return max(1, math.ceil(one.collect_s / (one.update_s + one.push_s)))


# π0 on LIBERO at the paper's batch sizes (RLinf's LIBERO recipe, /work/shared/reference/pirl-method.md) and
# LeRobot 0.6.1's LIBERO-spatial episode limit (280 env steps, lerobot/envs/libero.py TASK_SUITE_MAX_STEPS)
PI0_LIBERO = Workload(envs=64, rollout_epochs=8, episode_steps=280, n_exec=5, ppo_epochs=4)

# extrapolated, not measured here (docs/scaling.md gives the reasoning for each)
PI0_GPU = Rates(
    env_step_s=1 / 40,  # LIBERO (robosuite on MuJoCo, two cameras) on one CPU core: assumed 40 steps/s
    policy_chunk_s=0.046 + 4 * 0.0027,  # π0 prefix 46 ms + K=4 expert steps of 2.7 ms (π0 paper, RTX 4090, batch 1)
    batch_slope=0.05,  # a batched GPU call: each further observation +5% (assumed; batch 1 leaves the GPU idle)
    sample_epoch_s=0.010,  # ~4 TFLOP frozen-prefix forward per sample at ~400 TFLOP/s (40% of an H100's bf16)
    rank_efficiency=0.9,  # DDP over NVLink; only the action expert's (or LoRA's) gradients are reduced
    push_gb=1.201,  # trainable: action_expert, float32 (docs/benchmarks.md, policy_params); LoRA r16: 0.029
    push_s_per_gb=0.77,  # pirlctl's warm push, quiet machine (docs/benchmarks.md B4: 1.3 GB/s)
)


def plan(
    rates: Rates, w: Workload, ranks: tuple[int, ...], envs_per_actor: tuple[int, ...]
) -> list[tuple[int, int, int, Prediction]]:
    """(ranks, envs per actor, balancing actors, prediction) for each pair; one env process per env."""
    rows = []
    for r in ranks:
        for e in envs_per_actor:
            n = actors_to_balance(rates, w, e, e, r)
            rows.append((r, e, n, predict(rates, w, Fleet(n, e, e, r))))
    return rows


def render(rows: list[tuple[int, int, int, Prediction]]) -> str:
    lines = [
        "| learner ranks | envs per actor | actors (balance) | env steps/s per actor | collect s | update s | "
        "push s | iteration s | learner idle | actor wait |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r, e, n, p in rows:
        lines.append(
            f"| {r} | {e} | {n} | {p.actor_fps:.0f} | {p.collect_s:.0f} | {p.update_s:.0f} | {p.push_s:.1f} | "
            f"{p.iteration_s:.0f} | {p.learner_idle:.2f} | {p.actor_wait:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    w = PI0_LIBERO
    print(f"π0 on LIBERO-spatial: {w.chunks:,} chunks, {w.env_steps:,} env steps per PPO iteration")
    print(render(plan(PI0_GPU, w, (1, 2, 4, 8), (8, 16, 64))))
