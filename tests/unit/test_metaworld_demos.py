"""MetaWorld as the second task family: its scripted experts, degraded as pick-cube's demonstrator is, reached by the
demos stage through the env interface; its state observation renders nothing; the shipped config loads."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pirlctl.config.run_config import RunConfigError, load_run_config
from pirlctl.envs.base import EnvSetupError
from pirlctl.envs.configs import MetaworldTaskConfig, PushtTaskConfig

pytest.importorskip("metaworld")
# MetaWorld's policies warn whenever their gain pushes a command past the bounds (then clipped, as the env would)
pytestmark = pytest.mark.filterwarnings("ignore:Constant:UserWarning")

HAND, PUCK, GOAL = np.array([0.0, 0.6, 0.2]), np.array([0.1, 0.65, 0.02]), np.array([0.05, 0.85, 0.02])


class _Inner:
    """What MetaWorld's env shows :func:`expert_observation`: the current frame, the previous one and the goal."""

    _partially_observable = False

    def __init__(self) -> None:
        self._prev_obs = np.zeros(18)

    def _get_curr_obs_combined_no_goal(self) -> np.ndarray:
        return np.hstack([HAND, [1.0], PUCK, [1.0, 0, 0, 0], np.zeros(7)])

    def _get_pos_goal(self) -> np.ndarray:
        return GOAL


def _task_env() -> SimpleNamespace:
    return SimpleNamespace(gym_env=SimpleNamespace(unwrapped=SimpleNamespace(_env=_Inner())))


def _expert(**kw):
    return MetaworldTaskConfig(obs_type="state").make_demonstrator(
        noise_std=kw.get("noise_std", 0.0),
        aim_error=kw.get("aim_error", 0.0),
        aim_bias=kw.get("aim_bias"),
        seed=kw.get("seed", 0),
    )


def _actions(expert, episodes: int = 3, steps: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    env, out = _task_env(), []
    for ep in range(episodes):
        expert.reset(ep)
        out += [expert.act(env, {}) for _ in range(steps)]
    return out


def test_the_metaworld_expert_is_the_tasks_scripted_policy_reading_the_simulator():
    from metaworld.policies import SawyerPushV3Policy

    executed, label = _expert().act(_task_env(), {})
    clean = np.hstack([HAND, [1.0], PUCK, [1.0, 0, 0, 0], np.zeros(7), np.zeros(18), GOAL])
    assert np.allclose(label, np.clip(SawyerPushV3Policy().get_action(clean), -1, 1))
    assert np.array_equal(executed, label)  # no degradation asked for: executed as labelled
    assert label == pytest.approx(np.r_[10 * (PUCK + [-0.005, 0, 0.2] - HAND), 0.0])  # far: above the puck, open


def test_the_systematic_error_moves_every_label_and_the_noise_only_the_executed_action():
    env = _task_env()
    unbiased = _expert().act(env, {})[1]
    biased = _expert(aim_bias=[0.0, 0.03, 0.0]).act(env, {})[1]
    assert biased[1] - unbiased[1] == pytest.approx(10 * 0.03)  # the expert's p-gain 10 on 3 cm further along +y
    assert biased[[0, 2, 3]] == pytest.approx(unbiased[[0, 2, 3]])
    noisy = _actions(_expert(noise_std=0.3, aim_bias=[0.0, 0.03, 0.0]))
    for executed, label in noisy:
        assert np.array_equal(label, biased)  # the label is the biased expert's clean command
        assert np.all(np.abs(executed) <= 1.0) and executed.dtype == np.float32
        assert executed[3] == label[3]  # the grip is never perturbed
    assert np.mean([np.abs(e[:3] - lab[:3]).max() > 1e-3 for e, lab in noisy]) > 0.9  # xyz noise applied


def test_the_per_episode_aim_error_changes_between_episodes_and_not_within_one():
    labels = [label for _, label in _actions(_expert(aim_error=0.01), episodes=2, steps=3)]
    assert np.array_equal(labels[0], labels[2]) and np.array_equal(labels[3], labels[5])
    assert not np.allclose(labels[0], labels[3])


def test_the_degraded_expert_is_deterministic_by_seed():
    kw = {"noise_std": 0.3, "aim_error": 0.01, "aim_bias": [0.025, 0.0, 0.0]}
    a, b, c = (_actions(_expert(seed=s, **kw)) for s in (0, 0, 1))
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))


def test_a_type_without_a_demonstrator_says_how_to_start_instead(tmp_path):
    from pirlctl.pipeline.demos import record_demos

    with pytest.raises(EnvSetupError, match=r"env.type=pusht has no scripted demonstrator.*set policy_path"):
        record_demos(PushtTaskConfig(), tmp_path / "demos", episodes=1, noise_std=0.0, aim_error=0.0)


def test_the_shipped_metaworld_config_loads_state_only_and_language_conditioned():
    cfg = load_run_config("metaworld_push_tiny")
    env = cfg.env
    assert isinstance(env, MetaworldTaskConfig) and env.task == "metaworld-push-v3"
    assert (env.obs_type, env.reward_type, env.episode_limit) == ("state", "sparse", 100)
    assert cfg.policy.robot_state_feature.shape == (39,)  # MetaWorld's whole observation
    assert [tuple(f.shape) for f in cfg.policy.image_features.values()] == [(3, 32, 32)]  # the placeholder frame
    assert cfg.pipeline.demo_keep_failures and cfg.pipeline.demo_aim_bias != [0.0, 0.0, 0.0]
    assert not env.instruction  # the instruction is the env's task_description (lerobot_env.LeRobotTaskEnv)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--env.reward_type=sparse", "--env.obs_type=pixels_agent_pos"], "or 'sparse' with env.obs_type='state'"),
        (["--env.observation_width=64"], "set both to one size"),
        (["--pipeline.demo_aim_bias=[0.0,0.01]"], "give three finite offsets"),
    ],
)
def test_bad_metaworld_settings_are_one_line_naming_the_fix(override, message):
    with pytest.raises(RunConfigError, match=message):
        load_run_config("metaworld_push_tiny", override)


@pytest.mark.slow  # MetaWorld's env and the tiny X-VLA are built (~30 s)
def test_a_tiny_metaworld_demos_and_sft_stage_runs_through_the_env_interface_without_rendering(tmp_path, monkeypatch):
    from gymnasium.envs.mujoco.mujoco_rendering import MujocoRenderer
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from pirlctl.pipeline.demos import record_demos
    from pirlctl.pipeline.sft import behaviour_clone

    def no_render(*_a, **_k):
        raise AssertionError("the state observation rendered a camera")

    monkeypatch.setattr(MujocoRenderer, "render", no_render)
    cfg = load_run_config("metaworld_push_tiny", ["--env.episode_length=12"])
    p = cfg.pipeline
    demos = record_demos(
        cfg.env,
        tmp_path / "demos",
        episodes=2,
        noise_std=p.demo_noise_std,
        aim_error=p.demo_aim_error,
        aim_bias=p.demo_aim_bias,
        keep_failures=True,
    )
    assert (demos.episodes, demos.frames, demos.successes, demos.reused) == (2, 24, 0, False)  # 12 steps: too short
    ds = LeRobotDataset("pirlctl/demos", root=tmp_path / "demos")
    assert ds.meta.features["observation.state"]["shape"] == (39,)
    assert ds.meta.features["observation.image"]["shape"] == (32, 32, 3)
    frame = ds[0]
    assert frame["task"] == "Push the puck to a goal"  # the env's task_description: the policy's instruction
    assert float(frame["observation.image"].abs().max()) == 0.0  # the placeholder frame
    assert float(frame["action"].abs().max()) <= 1.0
    again = record_demos(cfg.env, tmp_path / "demos", episodes=2, noise_std=0.3, aim_error=0.0)
    assert again.reused
    sft = behaviour_clone(cfg.policy, tmp_path / "demos", tmp_path / "sft", steps=3, batch_size=4)
    assert (tmp_path / "sft" / "model.safetensors").is_file() and sft.frames == 24 and np.isfinite(sft.final_loss)


def test_the_progress_potential_grows_from_the_start_to_the_goal():
    from pirlctl.envs.metaworld import MetaworldTaskEnv

    inner = SimpleNamespace(obj_init_pos=PUCK, _target_pos=GOAL, tcp_center=HAND, _get_pos_objects=lambda: PUCK)
    env = MetaworldTaskEnv.__new__(MetaworldTaskEnv)  # only what progress_potential reads
    env.gym_env = SimpleNamespace(unwrapped=SimpleNamespace(_env=inner))
    reach = 1 - np.linalg.norm(HAND - PUCK) / 0.3
    assert env.progress_potential() == pytest.approx(0.3 * reach)  # at the start: nothing placed yet
    inner.tcp_center = PUCK
    assert env.progress_potential() == pytest.approx(0.3)
    halfway = (PUCK + GOAL) / 2
    inner.tcp_center, inner._get_pos_objects = halfway, lambda: halfway
    assert env.progress_potential() == pytest.approx(0.3 + 0.7 * 0.5)
    inner.tcp_center, inner._get_pos_objects = GOAL, lambda: GOAL
    assert env.progress_potential() == pytest.approx(1.0)
    assert (
        MetaworldTaskConfig.has_progress
        and MetaworldTaskConfig(shaping=1.0).check(policy=None, critic_privileged_dim=0) is None
    )
