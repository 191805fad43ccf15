"""One env interface, chosen by ``env.type``: pick-cube through it is today's pick-cube, LeRobot's env configs run
through it, and bad env settings are one line naming the fix before anything starts."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pirlctl.config.field_errors import ConfigFieldError
from pirlctl.config.run_config import RunConfigError, load_run_config, save_run_config
from pirlctl.envs.base import EnvSetupError, episode_success
from pirlctl.envs.configs import (
    AlohaTaskConfig,
    LiberoTaskConfig,
    MetaworldTaskConfig,
    PushtTaskConfig,
    TaskEnvConfig,
    check_libero_assets,
    libero_assets_dir,
)
from pirlctl.envs.lerobot_env import answer_libero_first_run
from pirlctl.envs.pick_cube_config import PickCubeEnv
from pirlctl.policies.loading import DEFAULT_RUN_CONFIG
from tests.env_configs import tiny_run_config

ROOT = Path(__file__).resolve().parents[2]


# -- the run config's env ----------------------------------------------------------------------------------------


def test_a_config_without_env_type_is_pick_cube_and_its_saved_config_names_the_type(tmp_path):
    cfg = load_run_config(DEFAULT_RUN_CONFIG)
    assert isinstance(cfg.env, PickCubeEnv) and cfg.env.type == "pick_cube"
    assert (cfg.env.cube_range, cfg.env.shaping, cfg.env.observe_cube) == (0.03, 1.0, True)  # the shipped values
    save_run_config(cfg, tmp_path / "run_config.json")
    saved = json.loads((tmp_path / "run_config.json").read_text())["env"]
    assert saved["type"] == "pick_cube"
    again = load_run_config(tmp_path / "run_config.json")
    assert again.env == cfg.env


def test_an_unknown_env_type_is_one_line_listing_the_known_types():
    with pytest.raises(ConfigFieldError) as err:
        load_run_config(None, ["--env.type=mujoco_soccer"])
    msg = str(err.value)
    assert "\n" not in msg and "env.type 'mujoco_soccer'" in msg
    for known in ("aloha", "libero", "metaworld", "pick_cube", "pusht"):
        assert known in msg
    assert set(TaskEnvConfig.get_known_choices()) >= {"aloha", "libero", "metaworld", "pick_cube", "pusht"}


def test_every_lerobot_env_type_is_also_lerobots_own_config():
    from lerobot.envs.configs import AlohaEnv, EnvConfig, LiberoEnv, MetaworldEnv, PushtEnv

    pairs = [(PushtTaskConfig, PushtEnv), (MetaworldTaskConfig, MetaworldEnv), (AlohaTaskConfig, AlohaEnv)]
    pairs.append((LiberoTaskConfig, LiberoEnv))
    for ours, theirs in pairs:
        assert issubclass(ours, theirs) and issubclass(PickCubeEnv, EnvConfig)
        assert EnvConfig.get_choice_name(theirs) == ours().type  # the same name in both registries


def test_image_size_reaches_the_gym_kwargs_of_pusht_and_metaworld():
    pusht = PushtTaskConfig(observation_height=48, observation_width=40)
    assert (pusht.gym_kwargs["observation_height"], pusht.gym_kwargs["observation_width"]) == (48, 40)
    assert tuple(pusht.features["pixels"].shape) == (48, 40, 3)
    mw = MetaworldTaskConfig(observation_height=64, observation_width=64)
    assert (mw.gym_kwargs["observation_height"], mw.gym_kwargs["observation_width"]) == (64, 64)
    assert tuple(mw.features["pixels/top"].shape) == (64, 64, 3)


# -- bad input: one line each, naming the fix ---------------------------------------------------------------------


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_a_metaworld_v2_task_name_names_its_v3_name():
    with pytest.raises(EnvSetupError) as err:
        MetaworldTaskConfig(task="metaworld-push-v2").check(policy=None, critic_privileged_dim=0)
    assert "env.task=metaworld-push-v3" in _one_line(err)
    with pytest.raises(EnvSetupError) as err:
        MetaworldTaskConfig(task="metaworld-psh-v3").check(policy=None, critic_privileged_dim=0)
    assert "did you mean push-v3" in _one_line(err)


def test_a_metaworld_v2_task_name_is_refused_when_the_config_loads(tmp_path):
    path = tiny_run_config(tmp_path, "pusht")
    with pytest.raises(RunConfigError) as err:
        load_run_config(path, ["--env.type=metaworld", "--env.task=metaworld-pick-place-v2", "--env.episode_length=9"])
    assert "metaworld-pick-place-v3" in _one_line(err)


def test_an_env_package_that_is_not_installed_names_its_pip_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gym_aloha" else real(name, *a))
    with pytest.raises(EnvSetupError) as err:
        AlohaTaskConfig().check(policy=None, critic_privileged_dim=0)
    assert "'gym_aloha' package, which is not installed" in _one_line(err)
    assert "pip install 'lerobot[aloha]'" in str(err.value)


def test_shaping_and_an_asymmetric_critic_need_the_capability():
    with pytest.raises(EnvSetupError) as err:
        PushtTaskConfig(shaping=1.0).check(policy=None, critic_privileged_dim=0)
    assert "set env.shaping=0" in _one_line(err)
    with pytest.raises(EnvSetupError) as err:
        PushtTaskConfig().check(policy=None, critic_privileged_dim=4)
    assert "set it to 0" in _one_line(err)
    with pytest.raises(EnvSetupError) as err:
        PickCubeEnv().check(policy=None, critic_privileged_dim=3)
    assert "use 4 (asymmetric critic)" in _one_line(err)


def test_a_policy_whose_state_or_action_does_not_fit_the_env_is_refused_when_the_config_loads(tmp_path):
    path = tiny_run_config(tmp_path, "pusht")  # a 2-d state and action: pusht, not aloha/metaworld
    with pytest.raises(RunConfigError) as err:
        load_run_config(path, ["--env.type=aloha", "--env.episode_length=9"])
    assert "env.type=aloha feeds 14 numbers" in _one_line(err)
    with pytest.raises(RunConfigError) as err:
        load_run_config(path, ["--env.type=metaworld"])
    assert "env.type=metaworld feeds 4 numbers" in _one_line(err)


def _fake_libero(monkeypatch, tmp_path: Path) -> Path:
    """LIBERO's package as find_spec sees it, at tmp_path/site/libero (hf-libero's layout, without assets/)."""
    pkg = tmp_path / "site" / "libero"
    (pkg / "libero").mkdir(parents=True)
    spec = importlib.machinery.ModuleSpec("libero", None, is_package=True)
    spec.submodule_search_locations = [str(pkg)]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "libero" else real(name, *a))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIBERO_CONFIG_PATH", raising=False)
    return pkg


def test_a_missing_libero_assets_folder_names_the_folder_and_how_to_provide_it(monkeypatch, tmp_path):
    pkg = _fake_libero(monkeypatch, tmp_path)
    with pytest.raises(EnvSetupError) as err:
        LiberoTaskConfig().check(policy=None, critic_privileged_dim=0)
    msg = _one_line(err)
    assert str(pkg / "libero" / "assets") in msg and "copy LIBERO's assets/" in msg and "config.yaml" in msg
    (pkg / "libero" / "assets" / "scenes").mkdir(parents=True)
    check_libero_assets()  # present: no error


def test_a_libero_config_yaml_points_at_the_assets_it_names(monkeypatch, tmp_path):
    _fake_libero(monkeypatch, tmp_path)
    conf = tmp_path / "libero_conf"
    conf.mkdir()
    (conf / "config.yaml").write_text(f"assets: {tmp_path / 'my_assets'}\n")
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(conf))
    with pytest.raises(EnvSetupError) as err:
        check_libero_assets()
    assert str(tmp_path / "my_assets") in _one_line(err)


def test_libero_first_run_question_is_answered_with_a_written_config_never_asked(monkeypatch, tmp_path):
    pkg = _fake_libero(monkeypatch, tmp_path)
    answer_libero_first_run()
    written = Path(tmp_path / "home" / ".cache" / "pirlctl" / "libero" / "config.yaml")
    assert written.is_file()
    import os

    assert os.environ["LIBERO_CONFIG_PATH"] == str(written.parent)
    assert libero_assets_dir() == pkg / "libero" / "assets"


# -- success and episodes through the interface -------------------------------------------------------------------


def test_success_is_read_as_lerobots_rollout_reads_it_final_info_first():
    assert episode_success({"final_info": {"is_success": True}, "is_success": False})
    assert not episode_success({"final_info": {"is_success": False}, "is_success": True})
    assert episode_success({"is_success": np.array(True)})
    assert not episode_success({})


PICK_CUBE_STEPS = """
import json, sys
import numpy as np
from pirlctl.config.field_errors import ConfigFieldError
from pirlctl.config.run_config import EnvSettings
settings = EnvSettings(cube_range=0.03, image_size=32, cameras=["front", "wrist"], max_episode_steps=12,
                       render_geometry="collision", observe_cube=True)
rng = np.random.default_rng(0)
chunks = [np.c_[rng.uniform(-1, 1, (4, 3)), rng.uniform(0, 2, (4, 1))].astype(np.float32) for _ in range(4)]
out = []
if sys.argv[1] == "interface":
    env = settings.build_task_env()
    obs = env.reset(11)
    steps = [(obs, 0.0, False, False, False, 0, env.privileged_state(), env.progress_potential())]
    for c in chunks:
        o = env.step_chunk(c)
        steps.append((o.obs, o.reward, o.terminated, o.truncated, o.success, o.steps, env.privileged_state(),
                      env.progress_potential()))
    conv = lambda obs: env.policy_observation(obs)
else:
    from pirlctl.envs import pick_cube as pc
    env = pc.make_env(settings)
    obs = pc.reset_episode(env, 11)
    steps = [(obs, 0.0, False, False, False, 0, pc.privileged_state(env), pc.progress_potential(env))]
    for c in chunks:
        o = pc.run_chunk(env, c, env.action_space.low, env.action_space.high)
        steps.append((o.obs, o.reward, o.terminated, o.truncated, o.success, o.steps, pc.privileged_state(env),
                      pc.progress_potential(env)))
    conv = lambda obs: pc.observation_to_policy(obs, settings, env)
for obs, r, term, trunc, succ, n, priv, phi in steps:
    p = conv(obs)
    out.append({"state": p["observation.state"].tolist(), "img": float(p["observation.images.front"].sum()),
                "wrist": float(p["observation.images.wrist"].sum()), "r": r, "flags": [term, trunc, succ, n],
                "priv": priv.tolist(), "phi": phi})
    if term or trunc:
        break
print(json.dumps(out))
"""


@pytest.mark.slow  # two children, each importing torch and building a rendering env (~45 s each on 2 busy cores)
@pytest.mark.filterwarnings("ignore")
def test_pick_cube_through_the_interface_is_todays_pick_cube(child_json):
    # one image env per process (pick_cube.py): each path in its own child
    through = child_json(PICK_CUBE_STEPS, "interface")
    direct = child_json(PICK_CUBE_STEPS, "functions")
    assert through == direct
    assert len(through) == 4 and through[-1]["flags"][:2] == [False, True]  # the 12-step limit ends the 3rd chunk
    assert through[1]["state"] != through[2]["state"] and through[0]["priv"] != through[-1]["priv"]


PUSHT_STEPS = """
import json
import numpy as np
from pirlctl.envs.configs import PushtTaskConfig
env = PushtTaskConfig(observation_height=48, observation_width=48, episode_length=6).build_task_env()
a = env.reset(5)
b = env.reset(5)
first = env.step_chunk(np.full((4, 2), 300.0, np.float32))
second = env.step_chunk(np.full((4, 2), 300.0, np.float32))
p = env.policy_observation(second.obs)
same = bool(np.array_equal(a["pixels"], b["pixels"]))
print(json.dumps({"same_reset": same, "img": list(p["observation.image"].shape),
                  "state": list(p["observation.state"].shape), "first": [first.steps, first.truncated],
                  "second": [second.steps, second.truncated, second.success], "instruction": env.instruction,
                  "bounds": [env.action_low.tolist(), env.action_high.tolist()]}))
"""


@pytest.mark.filterwarnings("ignore")
def test_pusht_resets_steps_and_ends_episodes_through_the_interface(child_json):
    pytest.importorskip("gym_pusht")
    out = child_json(PUSHT_STEPS)
    assert out["same_reset"] and out["img"] == [3, 48, 48] and out["state"] == [2]
    assert out["first"] == [4, False] and out["second"] == [2, True, False]  # the 6-step limit, inside the chunk
    assert out["instruction"] == "push the T-shaped block onto the target"
    assert out["bounds"] == [[0.0, 0.0], [512.0, 512.0]]


@pytest.mark.slow  # builds and saves a tiny policy, then a real `pirlctl eval` process (~80 s on 2 busy cores)
@pytest.mark.filterwarnings("ignore")
def test_pirlctl_eval_runs_a_tiny_policy_on_pusht(tmp_path):
    pytest.importorskip("gym_pusht")
    config = tiny_run_config(tmp_path, "pusht")
    make = (
        "import sys\n"
        "from pirlctl.config.run_config import load_run_config\n"
        "from pirlctl.runtime.build import build_algorithm\n"
        "cfg = load_run_config(sys.argv[1])\n"
        "algo = build_algorithm(cfg, 'cpu')\n"
        "algo.policy.save_pretrained(sys.argv[2])\n"
        "algo.processors.save(sys.argv[2])\n"
    )
    folder = tmp_path / "policy"
    subprocess.run([sys.executable, "-c", make, str(config), str(folder)], check=True, timeout=300)
    args = ["eval", str(folder), "--config_path", str(config), "--episodes", "2", "--json"]
    res = subprocess.run(
        [sys.executable, "-m", "pirlctl", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout[res.stdout.index("{") :])
    assert report["episodes"] == 2 and report["env_steps"] == 20 and report["mean_length"] == 10


def test_reports_describe_each_env_type_in_its_own_terms():
    pick = PickCubeEnv(cube_range=0.03, image_size=64, max_episode_steps=60)
    assert pick.describe() == (
        "Task: gym_hil/PandaPickCube-v0, random cube position: True, images 64px front+wrist, episode limit 60 steps."
    )
    assert PushtTaskConfig(episode_length=50).describe() == "Task: pusht PushT-v0, episode limit 50 steps."


METAWORLD_STEPS = """
import json
import numpy as np
from pirlctl.envs.configs import MetaworldTaskConfig
env = MetaworldTaskConfig(observation_height=32, observation_width=32, episode_length=6).build_task_env()
a = env.reset(5)
b = env.reset(5)
c = env.reset(6)
first = env.step_chunk(np.zeros((4, 4), np.float32))
second = env.step_chunk(np.zeros((4, 4), np.float32))
p = env.policy_observation(second.obs)
print(json.dumps({"same": bool(np.allclose(a["agent_pos"], b["agent_pos"])), "img": list(p["observation.image"].shape),
                  "pixels": list(a["pixels"].shape), "state": list(p["observation.state"].shape),
                  "ends": [first.steps, first.truncated, second.steps, second.truncated, second.success],
                  "instruction": env.instruction}))
"""


@pytest.mark.slow  # MetaWorld resets take 1-3 s each
@pytest.mark.filterwarnings("ignore")
def test_metaworld_renders_the_set_image_size_and_takes_its_instruction_from_the_env(child_json):
    pytest.importorskip("metaworld")
    out = child_json(METAWORLD_STEPS)
    assert out["same"] and out["pixels"] == [32, 32, 3] and out["img"] == [3, 32, 32] and out["state"] == [4]
    assert out["ends"] == [4, False, 2, True, False]
    assert out["instruction"] == "Push the puck to a goal"  # the env's task_description, not the config's


class _CubeSim:
    """Stand-in gym_hil env: reset draws the cube's xy from numpy's global RNG, as gym_hil does."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.action_space = SimpleNamespace(low=-np.ones(4, np.float32), high=np.ones(4, np.float32))
        self.sensors = {"block_pos": np.zeros(3), "2f85/pinch_pos": np.zeros(3)}
        data = SimpleNamespace(sensor=lambda name: SimpleNamespace(data=self.sensors[name]))
        self.unwrapped = SimpleNamespace(_data=data)

    def reset(self, seed=None):
        self.sensors["block_pos"] = np.r_[np.random.uniform(0.3, 0.5), np.random.uniform(-0.15, 0.15), 0.02]
        return {}, {}


class _NoStatsEnv:
    def reset(self, seed: int) -> dict:
        return {}

    def reset_stats(self) -> dict[str, float]:
        return {}


def test_the_actor_records_what_the_env_reports_of_its_reset_and_nothing_else():
    from pirlctl.envs.pick_cube_task import PickCubeTaskEnv
    from pirlctl.runtime.actor import Actor
    from pirlctl.runtime.groups import GroupSchedule

    cube_env = PickCubeTaskEnv(PickCubeEnv(), gym_env=_CubeSim())
    actor = Actor.__new__(Actor)  # only what _reset_env reads
    actor.envs, actor.episode_start = [cube_env, _NoStatsEnv()], {}
    actor.groups = GroupSchedule(num_actors=1, group_size=2, groups_per_batch=3, base_seed=0, max_chunks_per_episode=4)
    actor.version, actor.actor_id, actor.group_episode = 2, 0, 3
    records = []
    for seed in (5, 6, 5):
        actor._reset_env(cube_env, seed)
        cube = cube_env.gym_env.sensors["block_pos"]
        records.append(actor.episode_start[0])
        assert records[-1] == {"actor/initial_cube_x": cube[0], "actor/initial_cube_y": cube[1], "actor/group": 7}
    assert records[0] == records[2] != records[1]  # the seed decides the cube (GRPO's groups share one)
    actor._reset_env(actor.envs[1], 5)  # an env without reset stats: the group alone
    assert actor.episode_start[1] == {"actor/group": 7}


def test_grpo_schedules_by_the_envs_episode_limit_and_refuses_an_env_without_one(tmp_path):
    from pirlctl.runtime.groups import make_group_schedule

    grpo = ["--algorithm.advantage=grpo", "--algorithm.critic_warmup_iters=0"]
    cfg = load_run_config(DEFAULT_RUN_CONFIG, [*grpo, "--env.max_episode_steps=40"])  # pick-cube's own limit
    schedule = make_group_schedule(cfg, 8)
    assert schedule is not None and schedule.max_chunks_per_episode == 5  # ceil(40 / 8)
    path = tiny_run_config(tmp_path, "pusht")
    data = json.loads(path.read_text())
    del data["env"]["episode_length"]  # LIBERO's defaults to None: no limit
    path.write_text(json.dumps(data))
    with pytest.raises(RunConfigError) as err:
        load_run_config(path, [*grpo, "--env.type=libero"])
    assert "needs an episode limit" in _one_line(err) and "set env.episode_length" in _one_line(err)


def test_an_image_rendered_at_another_size_reaches_the_policy_at_the_configs_size():
    from pirlctl.envs.lerobot_env import fit_image

    torch = pytest.importorskip("torch")
    top = torch.zeros(3, 480, 640)
    top[:, :240] = 1.0  # upper half white: the resized image keeps its layout
    small = fit_image("observation.images.top", top, (48, 64))
    assert small.shape == (3, 48, 64) and small[:, :23].min() > 0.999 and small[:, 25:].max() < 1e-3
    same = torch.rand(3, 48, 64)
    assert fit_image("observation.image", same, (48, 64)) is same  # pusht/metaworld: sized where the env is made
    state = torch.rand(14)
    assert fit_image("observation.state", state, (48, 64)) is state
    assert fit_image("observation.images.top", top, None) is top  # a config without an image size


class _Named:
    def __init__(self, instruction: str) -> None:
        self.instruction = instruction


def test_each_episode_record_names_the_instruction_its_env_gave_the_policy():
    import threading
    import time

    from pirlctl.envs.vector import Episode
    from pirlctl.runtime.actor import Actor, ActorReport, WeightsSlot
    from pirlctl.runtime.wire import decode_interaction

    sent: list[bytes] = []
    actor = Actor.__new__(Actor)  # only what _end_episode reads
    actor.envs, actor.episode_start = [_Named("push the block"), _Named("Push the puck to a goal")], {}
    actor.report, actor.slot, actor.stop = ActorReport(0, 0, 0, 0, 0), WeightsSlot(), threading.Event()
    actor.client = type("Client", (), {"send_interaction": staticmethod(sent.append)})()
    actor.actor_id, actor.version, actor.actions_done, actor.infer_time, actor.env_time = 0, 3, 10, 1.0, 1.0
    actor.started = time.monotonic()
    actor._end_episode(Episode(1, seed=8, ret=1.0, length=10, success=True, truncated=True))
    actor._end_episode(Episode(0, seed=9, length=4, terminated=True))
    records = [decode_interaction(b) for b in sent]
    assert [r["actor/instruction"] for r in records] == ["Push the puck to a goal", "push the block"]
    assert [r["actor/env_index"] for r in records] == [1, 0] and [r["actor/success"] for r in records] == [True, False]
