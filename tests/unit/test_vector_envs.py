"""N envs per actor (envs/vector.py): per-env episodes under both gymnasium auto-reset modes and LeRobot's freeze
wrapper, success read as LeRobot's rollout() reads it, and the actor's collection over them: the truncation
bootstrap from the TRUE final observation, and GAE per env equal to GAE over single-env streams."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from lerobot.envs.utils import FreezeAfterEpisodeEnd

from pirlctl import metrics as M
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PolicyStep, build_rollout_batch
from pirlctl.envs.vector import NEXT_STEP, SAME_STEP, EnvGroup, VectorGroup, episode_seed, step_success
from pirlctl.runtime.actor import Actor, ActorReport, WeightsSlot
from pirlctl.runtime.rollout import segment_streams
from pirlctl.runtime.wire import decode_interaction, decode_segment, encode_segment

N_EXEC = 3


class ScriptEnv(gym.Env):
    """obs = [seed, t]; reward 1 + action; terminates with success at t == term_at, truncated at t == limit."""

    observation_space = gym.spaces.Box(-1e9, 1e9, (2,), np.float64)
    action_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)

    def __init__(self, term_at: int, limit: int) -> None:
        self.term_at, self.limit = term_at, limit
        self.episode_seed, self.t = -1, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.episode_seed, self.t], dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode_seed, self.t = (-1 if seed is None else seed), 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        term = self.t == self.term_at
        trunc = not term and self.t >= self.limit
        return self._obs(), 1.0 + float(action[0]), term, trunc, {"is_success": term}


# env 0 terminates (success) at its 4th step; env 1 is truncated at its 5th: both inside the second chunk of 3
SPECS = [(4, 100), (100, 5)]


def seeds(num_envs: int = 2):
    return lambda i, j: episode_seed(1000, 0, 100_000, num_envs, i, j)


@dataclass
class Outcome:
    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    success: bool
    steps: int


def script_chunk(env: ScriptEnv, actions: np.ndarray) -> Outcome:
    """pick-cube's run_chunk for the fake: execute the chunk, stop at the episode's end."""
    total, n = 0.0, 0
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        total, n = total + r, n + 1
        if term or trunc:
            break
    return Outcome(obs, total, term, trunc, bool(info["is_success"]), n)


def make_group(kind: str, specs=SPECS):
    n = len(specs)
    if kind == "manual":
        envs = [ScriptEnv(*s) for s in specs]
        return EnvGroup(envs, script_chunk, lambda env, seed: env.reset(seed=seed)[0], seeds(n))
    mode, freeze = kind.split("+") if "+" in kind else (kind, "")
    fns = [(lambda s=s: FreezeAfterEpisodeEnd(ScriptEnv(*s))) if freeze else (lambda s=s: ScriptEnv(*s)) for s in specs]
    auto = gym.vector.AutoresetMode.SAME_STEP if mode == SAME_STEP else gym.vector.AutoresetMode.NEXT_STEP
    return VectorGroup.from_vector_env(gym.vector.SyncVectorEnv(fns, autoreset_mode=auto), seeds(n))


KINDS = ["manual", SAME_STEP, NEXT_STEP, f"{SAME_STEP}+freeze", f"{NEXT_STEP}+freeze"]


def chunk_actions(c: int, n: int = 2) -> list[np.ndarray]:
    return [np.full((N_EXEC, 1), 0.1 * (c + 1) + 0.01 * k, dtype=np.float32) for k in range(n)]


def trace(group) -> list:
    """Four chunks: each env's outcome and the observation each env continues from."""
    rows = [[o.tolist() for o in group.reset_all()]]
    for c in range(4):
        outs = group.step(chunk_actions(c))
        rows.append(
            [
                (o.final_obs.tolist(), round(o.reward, 6), o.terminated, o.truncated, o.success, o.steps)
                + ((o.episode.seed, o.episode.length, round(o.episode.ret, 6)) if o.episode else ())
                for o in outs
            ]
        )
        rows.append([o.tolist() for o in group.reset_ended()])
    return rows


@pytest.mark.parametrize("kind", KINDS)
def test_each_reset_mode_gives_per_env_episodes_with_the_true_final_observation(kind):
    group = make_group(kind)
    assert group.mode == kind.split("+")[0]
    rows = trace(group)
    assert rows[0] == [[1000, 0], [1001, 0]]
    # chunk 2: env 0 terminated (success) at its first step, env 1 truncated at its second; the final observations
    # are the episodes' last ones, not the auto-reset's
    env0, env1 = rows[3]
    assert env0 == ([1000, 4], 1.2, True, False, True, 1, 1000, 4, round(3 * 1.1 + 1.2, 6))
    assert env1 == ([1001, 5], round(2 * 1.21, 6), False, True, False, 2, 1001, 5, round(3 * 1.11 + 2 * 1.21, 6))
    # each ended env restarts from a seeded reset with its own next seed (env i's j-th episode: 1000 + 2j + i)
    assert rows[4] == [[1002, 0], [1003, 0]]
    assert rows[5][0][:2] == ([1002, 3], round(3 * 1.3, 6)) and rows[5][0][6:] == ()
    # every reset mode (and LeRobot's freeze wrapper) is invisible behind the group: same as separate envs
    assert rows == trace(make_group("manual"))


def test_same_step_vector_env_returns_the_next_episode_at_the_ending_step():
    """What the group corrects for: under same-step auto-reset the returned observation is already the next
    episode's (the env was reset without a seed), the last one only in info["final_obs"]."""
    vec = gym.vector.SyncVectorEnv([lambda: ScriptEnv(1, 100)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    vec.reset(seed=[7])
    obs, _, term, _, info = vec.step(np.zeros((1, 1), dtype=np.float32))
    assert term[0] and obs[0].tolist() == [-1, 0] and info["final_obs"][0].tolist() == [7, 1]
    assert step_success(info, 0)


def test_a_chunk_stops_once_every_env_is_done():
    group = make_group(SAME_STEP, [(1, 100), (2, 100)])
    group.reset_all()
    outs = group.step([np.zeros((N_EXEC, 1), np.float32)] * 2)
    assert [o.steps for o in outs] == [1, 2] and all(o.terminated and o.success for o in outs)


@pytest.mark.parametrize("kind", ["manual", NEXT_STEP])
def test_an_ended_env_is_not_stepped_before_its_reset(kind):
    group = make_group(kind, [(1, 100), (5, 100)])
    group.reset_all()
    group.step(chunk_actions(0))
    with pytest.raises(RuntimeError, match=r"env\(s\) \[0\] ended .* reset_ended\(\)"):
        group.step(chunk_actions(1))
    group.reset_ended()
    assert [o.steps for o in group.step(chunk_actions(1))] == [1, 2]


def test_success_is_read_as_lerobots_rollout_reads_it():
    # gymnasium >= 1.0: final_info is a dict of arrays with a presence mask
    final = {"final_info": {"is_success": np.array([False, True]), "_is_success": np.array([False, True])}}
    assert [step_success(final, i) for i in range(2)] == [False, True]
    # final_info takes precedence over the step's own is_success (that of the already reset episode)
    both = {**final, "is_success": np.array([True, False]), "_is_success": np.array([True, True])}
    assert [step_success(both, i) for i in range(2)] == [False, True]
    # gymnasium < 1.0: a per-env sequence, a dict only for envs that just finished
    assert [step_success({"final_info": [None, {"is_success": True}]}, i) for i in range(2)] == [False, True]
    assert [step_success({"is_success": np.array([True, False])}, i) for i in range(2)] == [True, False]
    assert not step_success({"succeed": True}, 0)


def test_an_unknown_auto_reset_mode_is_refused():
    vec = gym.vector.SyncVectorEnv([lambda: ScriptEnv(1, 2)], autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    with pytest.raises(ValueError, match="same_step"):
        VectorGroup.from_vector_env(vec, seeds(1))


def test_seeds_are_distinct_across_envs_and_actors_and_single_env_seeds_are_unchanged():
    got = {episode_seed(5, a, 100_000, 4, i, j) for a in range(3) for i in range(4) for j in range(50)}
    assert len(got) == 3 * 4 * 50
    assert [episode_seed(5, 2, 100_000, 1, 0, j) for j in range(3)] == [200_005, 200_006, 200_007]


# -- the actor's collection over a group (the real Actor._collect_segment; stand-ins at the edges) ---------------
def value_of(state: torch.Tensor) -> torch.Tensor:
    return 0.5 * state[:, 1] + 0.001 * state[:, 0]


class FakeAlgo:
    """Deterministic 'policy': the chunk's action depends on the observation; v_at(s) = value_of(s)."""

    device = "cpu"
    processors = SimpleNamespace(postprocess=lambda x: x)  # actions are already env actions

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def act(self, batch, generator=None):
        s = batch["observation.state"].float()
        b = s.shape[0]
        self.batch_sizes.append(b)
        actions = (0.05 * s[:, 1:2] + 0.2).unsqueeze(1).expand(b, N_EXEC, 1).clone()
        chain = torch.zeros(b, 2, N_EXEC, 1)
        return PolicyStep(actions, chain, torch.ones(b, 1, dtype=torch.bool), torch.zeros(b), value_of(s))

    def value(self, batch):
        return value_of(batch["observation.state"].float())


class FakeClient:
    def __init__(self) -> None:
        self.interactions: list[bytes] = []

    def send_interaction(self, blob: bytes) -> None:
        self.interactions.append(blob)


def stub_actor(group, chunks: int, *, bootstrap_time_limit: bool = True) -> Actor:
    a = Actor.__new__(Actor)
    a.cfg = SimpleNamespace(  # type: ignore[assignment]
        runtime=SimpleNamespace(rollout_chunks=chunks, envs_per_actor=group.num_envs),
        pirl=SimpleNamespace(bootstrap_time_limit=bootstrap_time_limit, gamma=0.99),
        env=SimpleNamespace(shaping=0.0),
    )
    a.group, a.algo, a.generator = group, FakeAlgo(), None  # type: ignore[assignment]
    a.envs = [SimpleNamespace(instruction=f"script task {k}") for k in range(group.num_envs)]  # type: ignore[misc]
    a.actor_id, a.version, a.stop, a.slot = 0, 3, threading.Event(), WeightsSlot()
    a.report, a.client = ActorReport(0, 0, 0, 0, 0), FakeClient()  # type: ignore[assignment]
    a.infer_time = a.env_time = 0.0
    a.actions_done, a.started = 0, time.monotonic()
    a.groups, a.group_episode, a.episode_start = None, 0, {}  # PPO (GRPO's schedule off)
    a._policy_obs = lambda k, obs: {"observation.state": torch.as_tensor(obs, dtype=torch.float32)}  # type: ignore[method-assign]
    group.reset_all()
    return a


def v_at(seed: float, t: float) -> float:
    return float(value_of(torch.tensor([[seed, t]], dtype=torch.float32))[0])


@pytest.mark.parametrize("kind", ["manual", SAME_STEP, NEXT_STEP])
def test_truncation_bootstraps_from_the_true_final_observation(kind):
    actor = stub_actor(make_group(kind), chunks=3)
    transitions, actions, env_steps, call_steps = actor._collect_segment()
    assert actor.algo.batch_sizes == [2, 2, 2]  # one batched policy call per chunk for both envs
    s0 = [t for t in transitions if t.extra["env_index"] == 0]
    s1 = [t for t in transitions if t.extra["env_index"] == 1]
    assert transitions == s0 + s1 and len(s0) == len(s1) == 3  # one time-ordered stream per env, env after env
    assert s0[1].terminated and s0[1].bootstrap_value == 0.0  # termination: no bootstrap
    # truncation: V of the episode's LAST observation [1001, 5], not of the reset one [1003, 0]
    assert s1[1].truncated and s1[1].bootstrap_value == pytest.approx(v_at(1001, 5))
    assert s1[1].bootstrap_value != pytest.approx(v_at(1003, 0))
    # the segment boundary bootstraps from where each env stands
    assert s0[2].bootstrap_value == pytest.approx(v_at(1002, 3))
    assert s1[2].bootstrap_value == pytest.approx(v_at(1003, 3))
    assert env_steps == [3, 1, 3, 3, 2, 3] and call_steps == [6, 3, 6] and sum(len(a) for a in actions) == 15
    assert actor.report.episodes == 2 and actor.report.successes == 1 and len(actor.client.interactions) == 2
    stats = [decode_interaction(blob) for blob in actor.client.interactions]
    languages = {(s[M.ACTOR_ENV_INDEX], s[M.ACTOR_INSTRUCTION]) for s in stats}
    assert languages == {(0, "script task 0"), (1, "script task 1")}  # each episode record names its env's task


def test_a_time_limit_that_ends_the_task_sends_no_bootstrap():
    actor = stub_actor(make_group(SAME_STEP), chunks=2, bootstrap_time_limit=False)
    transitions = actor._collect_segment()[0]
    trunc = [t for t in transitions if t.truncated]
    assert len(trunc) == 1 and trunc[0].bootstrap_value == 0.0


def single_env_group(k: int, kind: str):
    """Env k of SPECS alone, with the seeds it has in the two-env group."""
    group = make_group(kind, [SPECS[k]])
    group.books.seed_of = lambda i, j: seeds(2)(k, j)
    group.books.episodes = [group.books.episodes[0].__class__(0, seeds(2)(k, 0))]
    return group


@pytest.mark.parametrize("kind", ["manual", SAME_STEP])
def test_gae_per_env_equals_gae_over_single_env_streams(kind):
    gamma, lam = 0.9, 0.8
    # 3 chunks: both envs' streams end mid-episode, so each must end in its own bootstrap
    actor = stub_actor(make_group(kind), chunks=3)
    transitions, actions, env_steps, _ = actor._collect_segment()
    # through the wire and the learner's stream split, as a real segment goes
    blob = encode_segment(transitions, actions=actions, env_steps=env_steps)
    seg = decode_segment(blob, expected_obs={"observation.state": (2,)}, chain_shape=(2, N_EXEC, 1), log_prob_shape=())
    assert [t.extra["env_index"] for t in seg.transitions] == [0] * 3 + [1] * 3
    streams = segment_streams([seg])
    assert [len(s) for s in streams] == [3, 3]
    batch = build_rollout_batch(streams, gamma=gamma, gae_lambda=lam)

    singles = []
    for k in range(2):
        one = stub_actor(single_env_group(k, kind), chunks=3)
        singles.append(one._collect_segment()[0])
    ref = build_rollout_batch(singles, gamma=gamma, gae_lambda=lam)
    assert torch.equal(batch.advantages, ref.advantages) and torch.equal(batch.returns, ref.returns)
    # the same chunks as one stream interleaved in time would mix the envs' episodes: a different answer
    interleaved = [tr for pair in zip(*singles, strict=True) for tr in pair]
    mixed = build_rollout_batch([interleaved], gamma=gamma, gae_lambda=lam)
    assert not torch.allclose(mixed.advantages.sort().values, ref.advantages.sort().values)


def test_grpo_segments_restart_each_version_from_its_groups_seed():
    """Under GRPO a segment is the actor's whole episodes of its version, each reset with its group's seed; the next
    version's segment starts NEW episodes (the last one ended the segment unreset) from that version's seed."""
    from pirlctl.runtime.groups import GroupSchedule

    actor = stub_actor(make_group("manual", [(4, 100)]), chunks=1)
    # one actor, groups of 2 episodes, one group per version: version v's seed is 500 + v
    actor.groups = GroupSchedule(
        num_actors=1, group_size=2, groups_per_batch=1, base_seed=500, max_chunks_per_episode=2
    )
    actor.group = EnvGroup(
        [ScriptEnv(4, 100)], script_chunk, lambda env, seed: env.reset(seed=seed)[0], actor._episode_seed
    )
    for version in (3, 4):
        actor.version = version
        transitions, _, env_steps, _ = actor._collect_segment()
        # two whole episodes (3 + 1 steps each, ended by success), both from the group's seed
        assert [float(t.observation["observation.state"][0]) for t in transitions] == [500 + version] * 4
        assert env_steps == [3, 1, 3, 1] and [t.terminated for t in transitions] == [False, True] * 2
    assert actor.report.episodes == 4 and actor.report.successes == 4
