"""B5 anchor: LeRobot 0.6.1's own SAC (``gaussian_actor`` + ``sac``, its ``lerobot.rl.learner`` and
``lerobot.rl.actor`` over gRPC) on the PI-RL default task, from the same demonstrations.

What is LeRobot's and what is ours:

- learner, actor, replay buffers, online/offline mixing, SAC updates and the gRPC transport are LeRobot's own
  functions, called unchanged (``learner.train``, ``actor.actor_cli``);
- the environment is ours: LeRobot's ``make_robot_env`` forces ``render_mode="human"`` and has no control of the
  cube range, image size or shadows, so the actor process replaces ``lerobot.rl.actor.make_robot_env`` with the
  PI-RL job's own env (``pirlctl.envs.pick_cube.make_env``: cube within the same range, 64 px, shadows off),
  wrapped to (a) seed the cube per episode, (b) give the state with the gripper scaled to [0, 1] as the demos
  store it, and (c) append one ``episode`` record per episode to ``metrics.jsonl`` in the PI-RL format, so both
  methods' learning curves come from the same kind of record;
- the demos are the PI-RL job's demos, copied into a dataset with ``next.reward`` / ``next.done`` (1 on the
  last, lifting frame of each episode), which LeRobot's offline replay buffer needs. The demos store the
  scripted controller's clean action labels (DART), so the offline transitions pair a label with the state the
  noisy executed action reached.

Usage (the B5 driver does this): ``python -m bench.b5_sac learner|actor --out DIR --demos DIR --port P --seed S``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SAC_REPO_ID = "pirlctl/demos_sac"
EPISODE_SEED_OFFSET = 50_000  # SAC's training episodes: seed + offset + i (PI-RL actors use their own offsets)


def sac_demos(demos_root: Path, out_root: Path) -> Path:
    """Copy the PI-RL demos into a dataset LeRobot's offline replay buffer accepts (adds next.reward/next.done)."""
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from pirlctl.pipeline.demo_dataset import quiet_video_backend_probe

    quiet_video_backend_probe()
    marker = out_root / ".pirlctl-complete"
    if marker.is_file():
        return out_root
    src = LeRobotDataset("pirlctl/demos", root=demos_root)
    bookkeeping = {"timestamp", "frame_index", "episode_index", "index", "task_index"}  # LeRobot writes these
    feats = {k: v for k, v in src.meta.features.items() if k not in bookkeeping}
    feats["next.reward"] = {"dtype": "float32", "shape": (1,), "names": None}
    feats["next.done"] = {"dtype": "bool", "shape": (1,), "names": None}
    if out_root.exists():
        import shutil

        shutil.rmtree(out_root)
    dst = LeRobotDataset.create(SAC_REPO_ID, fps=src.meta.fps, features=feats, root=out_root, use_videos=False)
    ends = {int(e["dataset_to_index"]) - 1 for e in src.meta.episodes}
    episode = None
    for i in range(len(src)):
        item = src[i]
        if episode is not None and int(item["episode_index"]) != episode:
            dst.save_episode()
        episode = int(item["episode_index"])
        last = i in ends
        frame: dict[str, Any] = {}
        for k in feats:
            if k.startswith("observation.images"):
                frame[k] = item[k].permute(1, 2, 0).numpy()
            elif k in {"next.reward", "next.done"}:
                continue
            else:
                frame[k] = item[k].numpy()
        # demos keep successful episodes only: the last frame lifts the cube
        frame["next.reward"] = np.array([1.0 if last else 0.0], dtype=np.float32)
        frame["next.done"] = np.array([last], dtype=bool)
        frame["task"] = item["task"]
        dst.add_frame(frame)
    dst.save_episode()
    dst.finalize()
    marker.write_text("ok\n")
    return out_root


def sac_config(run_cfg: Any, demos: Path, out: Path, port: int, seed: int, role: str) -> Any:
    """LeRobot's SAC pipeline config for the PI-RL job's task: HIL-SERL's gym_hil settings, CPU-sized."""
    from lerobot.configs.default import DatasetConfig, WandBConfig
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.envs.configs import HILSerlRobotEnvConfig
    from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
    from lerobot.rl.algorithms.sac import SACAlgorithmConfig
    from lerobot.rl.train_rl import TrainRLServerPipelineConfig

    from pirlctl.envs.pick_cube import ACTION_DIM, STATE_KEY, image_key

    env = run_cfg.env
    s = env.image_size
    feats = {image_key(c): PolicyFeature(FeatureType.VISUAL, (s, s, 3)) for c in env.cameras}
    feats[STATE_KEY] = PolicyFeature(FeatureType.STATE, (18,))
    feats["action"] = PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))
    # fps only paces LeRobot's actor loop (it sleeps to 1/fps): above its ~20 steps/s so it never sleeps
    env_cfg = HILSerlRobotEnvConfig(
        name="gym_hil", task=env.task.split("/")[-1], fps=100, features=feats, features_map={k: k for k in feats}
    )
    stats = _stats(demos, [image_key(c) for c in env.cameras])
    policy = GaussianActorConfig(
        device="cpu",
        storage_device="cpu",
        dataset_stats=stats,
        push_to_hub=False,
        online_step_before_learning=100,
        online_buffer_capacity=100_000,
        offline_buffer_capacity=100_000,
    )
    policy.actor_learner_config.learner_port = port
    policy.actor_learner_config.policy_parameters_push_frequency = 4
    policy.concurrency.actor = "threads"
    policy.concurrency.learner = "threads"
    cfg = TrainRLServerPipelineConfig(
        policy=policy,
        env=env_cfg,
        dataset=DatasetConfig(repo_id=SAC_REPO_ID, root=str(demos)),
        algorithm=SACAlgorithmConfig(),
        output_dir=out / f"lerobot_{role}",  # actor and learner must not share it (LeRobot refuses)
        job_name="sac",
        seed=seed,
        batch_size=64,
        save_checkpoint=False,
        wandb=WandBConfig(enable=False),
    )
    cfg.online_ratio = 0.5
    return cfg


def _stats(demos: Path, cams: list[str]) -> dict[str, dict[str, list[float]]]:
    """Normalisation stats: ImageNet for images (LeRobot's default), the demos' range for the state, the env's
    action bounds (xyz in [-1, 1], gripper in [0, 2]) for the action."""
    info = json.loads((demos / "meta" / "stats.json").read_text())
    state = info["observation.state"]
    lo = [min(v, h - 1e-3) for v, h in zip(state["min"], state["max"], strict=True)]
    out: dict[str, dict[str, list[float]]] = {
        c: {"mean": [[[0.485]], [[0.456]], [[0.406]]], "std": [[[0.229]], [[0.224]], [[0.225]]]} for c in cams
    }
    out["observation.state"] = {"min": lo, "max": state["max"]}
    out["action"] = {"min": [-1.0, -1.0, -1.0, 0.0], "max": [1.0, 1.0, 1.0, 2.0]}
    return out


def recording_env(run_cfg: Any, out: Path, seed: int) -> Any:
    """The PI-RL job's env as LeRobot's actor sees it, recording one PI-RL-style episode record per episode."""
    import gymnasium as gym
    import numpy as np

    from pirlctl import metrics as M
    from pirlctl.envs.pick_cube import GRIPPER_SCALE, GRIPPER_STATE_INDEX, is_success, make_env
    from pirlctl.metrics import MetricsWriter

    class Wrapped(gym.Wrapper):
        def __init__(self) -> None:
            super().__init__(make_env(run_cfg.env))
            self.metrics = MetricsWriter(out / "metrics.jsonl")
            self.episode = 0
            self.env_steps = 0
            self.ret = 0.0
            self.length = 0

        def _obs(self, obs: dict) -> dict:
            pos = obs["agent_pos"].astype("float32").copy()
            pos[GRIPPER_STATE_INDEX] /= GRIPPER_SCALE
            return {**obs, "agent_pos": pos}

        def reset(self, **kwargs: Any):
            s = seed + EPISODE_SEED_OFFSET + self.episode
            np.random.seed(s % (2**32))
            obs, info = self.env.reset(seed=s)
            self.ret, self.length = 0.0, 0
            return self._obs(obs), info

        def step(self, action: Any):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.ret += float(reward)
            self.length += 1
            self.env_steps += 1
            if terminated or truncated:
                self.metrics.write(
                    "episode",
                    {
                        M.ACTOR_ID: 0,
                        M.ACTOR_SUCCESS: is_success(float(reward), bool(terminated), info),
                        M.ACTOR_EPISODE_RETURN: self.ret,
                        M.ACTOR_EPISODE_LENGTH: self.length,
                        M.ACTOR_ENV_STEPS: self.env_steps,
                    },
                )
                self.episode += 1
            return self._obs(obs), reward, terminated, truncated, info

    return Wrapped()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("role", choices=["learner", "actor"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--demos", type=Path, required=True, help="SAC-format demos (see sac_demos)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", type=Path, default=None, help="PI-RL run config whose env to use (default shipped)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from pirlctl.config.run_config import load_run_config
    from pirlctl.policies.loading import CONFIGS_DIR

    run_cfg = load_run_config(args.config or CONFIGS_DIR / "pick_cube_tiny_pixels.json")  # B5's task
    cfg = sac_config(run_cfg, args.demos, args.out, args.port, args.seed, args.role)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "started").write_text(f"{time.time()}\n")
    if args.role == "learner":
        from lerobot.rl import learner

        learner.train(cfg)
    else:
        from lerobot.rl import actor

        actor.make_robot_env = lambda cfg: (recording_env(run_cfg, args.out, args.seed), None)
        actor.actor_cli(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
