"""Where does a pick-cube policy miss? ODE episodes on the evaluation seeds, the gripper's offset from the cube at
the moment it first closes, split into successes and failures (reads the simulator; the policy never does).

    python -m bench.grasp_errors RUN_CONFIG.json POLICY_DIR [POLICY_DIR ...] --episodes 30

Each policy runs ``pirlctl eval``'s episodes (same seeds for the cube and the ODE's initial noise). A failure is
counted as an x-miss when the offset's |x| exceeds 2.5 cm (x is depth for the front camera), as a y-miss when |y|
exceeds 1.2 cm, else "other".
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

X_MISS_M, Y_MISS_M = 0.025, 0.012


@dataclass
class Episode:
    success: bool
    offset: np.ndarray | None  # gripper - cube (metres, xyz) when the gripper first closes; None if never


def run_episodes(config_path: str, policy_dir: str, episodes: int, overrides: list[str]) -> list[Episode]:
    """Evaluation episodes 0..episodes-1 exactly as ``pirlctl eval`` runs them, reading the offset at first close."""
    from pirlctl.config.run_config import load_run_config
    from pirlctl.envs.pick_cube import make_env, privileged_pose
    from pirlctl.pipeline.evaluate import evaluate_algorithm
    from pirlctl.runtime.build import build_algorithm

    cfg = load_run_config(config_path, overrides)
    cfg.policy_path = policy_dir
    torch.manual_seed(cfg.seed)
    algo = build_algorithm(cfg, "cpu")
    env = make_env(cfg.env)
    offsets: dict[int, np.ndarray] = {}

    def at_close(episode: int, env: Any, action: np.ndarray) -> None:
        if episode not in offsets and action[3] > 1.0:
            pose = privileged_pose(env)
            offsets[episode] = pose.tcp - pose.cube

    out = []
    for j in range(episodes):
        report = evaluate_algorithm(algo, cfg, episodes=1, first_episode=j, env=env, on_step=at_close)
        out.append(Episode(report.successes == 1, offsets.get(j)))
    return out


def summarise(name: str, eps: list[Episode]) -> str:
    fails = [e for e in eps if not e.success]
    x_miss = sum(1 for e in fails if e.offset is not None and abs(e.offset[0]) > X_MISS_M)
    y_miss = sum(
        1 for e in fails if e.offset is not None and abs(e.offset[0]) <= X_MISS_M and abs(e.offset[1]) > Y_MISS_M
    )
    offs = np.array([e.offset for e in eps if e.offset is not None]) * 100
    mean_y = f"{offs[:, 1].mean():+.1f}" if len(offs) else "—"
    mad_x = f"{np.abs(offs[:, 0]).mean():.1f}" if len(offs) else "—"
    return (
        f"| {name} | {len(eps) - len(fails)}/{len(eps)} | {mean_y} | {mad_x} | {x_miss} | {y_miss} "
        f"| {len(fails) - x_miss - y_miss} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="run_config.json of the run (env and policy settings)")
    parser.add_argument(
        "policies", nargs="+", help="policy folders (an SFT cache folder, a checkpoint's pretrained_model)"
    )
    parser.add_argument("--episodes", type=int, default=30)
    args, overrides = parser.parse_known_args(argv)
    print("| policy | successes | mean y offset at close (cm) | mean abs x offset (cm) | x-misses | y-misses | other |")
    print("|---|---|---|---|---|---|---|")
    for policy in args.policies:
        print(summarise(policy, run_episodes(args.config, policy, args.episodes, overrides)), flush=True)


if __name__ == "__main__":
    main()
