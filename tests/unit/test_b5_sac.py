"""B5's SAC anchor: the PI-RL demos become a dataset LeRobot's SAC learner trains on, with LeRobot's own code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bench.b5_sac import SAC_REPO_ID, sac_config, sac_demos
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.policies import make_policy, make_pre_post_processors
from lerobot.rl.algorithms.factory import make_algorithm
from lerobot.rl.algorithms.sac import SACAlgorithm
from lerobot.rl.buffer import ReplayBuffer
from lerobot.rl.data_sources.data_mixer import OnlineOfflineMixer
from lerobot.rl.trainer import RLTrainer

from pirlctl.config.run_config import load_run_config, policy_state_dim
from pirlctl.pipeline.demos import dataset_features
from pirlctl.policies.loading import CONFIGS_DIR


def _fake_demos(root, settings, lengths):
    """A demos dataset in the PI-RL job's format (as `record_demos` writes it), random frames."""
    ds = LeRobotDataset.create(
        "pirlctl/demos", fps=10, features=dataset_features(settings), root=root, use_videos=False
    )
    rng = np.random.default_rng(0)
    for n in lengths:
        for _ in range(n):
            frame = {f"observation.images.{cam}": rng.random((64, 64, 3), dtype=np.float32) for cam in settings.cameras}
            frame["observation.state"] = rng.random(policy_state_dim(settings), dtype=np.float32)
            frame["action"] = np.array([0.1, -0.2, 0.3, 2.0], dtype=np.float32)
            frame["task"] = "pick up the cube"
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()


# slow (30 s): LeRobot's SAC path building is checked fast in test_factory.py
@pytest.mark.slow
def test_demos_convert_and_lerobots_own_sac_trains_on_them(tmp_path):
    run_cfg = load_run_config(CONFIGS_DIR / "pick_cube_tiny_pixels.json")  # B5's task
    _fake_demos(tmp_path / "demos", run_cfg.env, [3, 4])
    out = sac_demos(tmp_path / "demos", tmp_path / "demos_sac")
    ds = LeRobotDataset(SAC_REPO_ID, root=out)
    # reward and done only on each episode's last (lifting) frame; everything else carried over
    assert [float(ds[i]["next.reward"]) for i in range(len(ds))] == [0, 0, 1, 0, 0, 0, 1]
    assert [bool(ds[i]["next.done"]) for i in range(len(ds))] == [False, False, True, False, False, False, True]
    assert torch.equal(ds[5]["action"], torch.tensor([0.1, -0.2, 0.3, 2.0]))
    assert sac_demos(tmp_path / "demos", out) == out  # reused, not rewritten

    # LeRobot's learner path, unchanged: policy from the env features, SAC, offline buffer, mixer, trainer
    cfg = sac_config(run_cfg, out, tmp_path / "run", port=1, seed=0, role="learner")
    cfg.validate()
    policy = make_policy(cfg=cfg.policy, env_cfg=cfg.env)
    assert set(policy.config.input_features) == {
        "observation.images.front",
        "observation.images.wrist",
        "observation.state",
    }
    algo = make_algorithm(cfg=cfg.algorithm, policy=policy)
    assert isinstance(algo, SACAlgorithm)
    pre, _ = make_pre_post_processors(policy_cfg=cfg.policy, dataset_stats=cfg.policy.dataset_stats)
    buf = ReplayBuffer.from_lerobot_dataset(
        ds, device="cpu", state_keys=list(cfg.policy.input_features), storage_device="cpu"
    )
    assert len(buf) == 7
    mixer = OnlineOfflineMixer(online_buffer=buf, offline_buffer=None, online_ratio=1.0)
    stats = RLTrainer(algorithm=algo, data_mixer=mixer, batch_size=4, preprocessor=pre).training_step()
    assert stats.losses and all(math.isfinite(v) for v in stats.losses.values())
