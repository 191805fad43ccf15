"""Arm-controller cost of pick-cube on this CPU: gym_hil's ``opspace`` against pirlctl's copy
(``pirlctl.envs.opspace``, same torques), per controller call and per env step inside a 4-action chunk (the actor's
``run_chunk``, collision hulls, cameras once per chunk), side by side in one process and one env, the two loops
alternating repeat by repeat.

    python -m bench.opspace_speed [--image-size 64] [--repeats 7]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import fmt, machine, stats, timeit


def measure(image_size: int, repeats: int) -> dict[str, dict[str, dict[str, float]]]:
    from pirlctl.config.run_config import EnvSettings
    from pirlctl.envs.opspace import GymHilOpspace, OpspaceController, install_fast_controller
    from pirlctl.envs.pick_cube import make_env, reset_episode, run_chunk

    # no time limit inside the timings: a truncated chunk stops after one action
    settings = EnvSettings(cube_range=0.03, image_size=image_size, max_episode_steps=10_000)
    env = make_env(settings, fast_controller=False)  # one GL context per process: one env, two loops
    base = env.unwrapped
    reset_episode(env, 0)
    low, high = env.action_space.low, env.action_space.high
    chunk = np.tile(np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32), (4, 1))
    controller = OpspaceController(base._model, base._pinch_site_id, base._panda_dof_ids)
    reference = GymHilOpspace(base._model, base._pinch_site_id, base._panda_dof_ids)
    data, home = base._data, np.asarray(base._home_position, dtype=np.float64)

    def call_gym_hil() -> None:
        reference(data, data.mocap_pos[0], data.mocap_quat[0], home)

    def call_fast() -> None:
        controller(data, data.mocap_pos[0], data.mocap_quat[0], home)

    raw: dict[str, dict[str, list[float]]] = {k: {"call_us": [], "chunk_step_ms": []} for k in ("gym_hil", "pirlctl")}
    for _ in range(repeats):
        for name, call in (("gym_hil", call_gym_hil), ("pirlctl", call_fast)):
            if name == "pirlctl":
                assert install_fast_controller(base)
            else:
                vars(base).pop("apply_action", None)
            raw[name]["call_us"] += [1e6 * s for s in timeit(call, repeats=1, number=500)]
            raw[name]["chunk_step_ms"] += [
                1e3 * s / 4 for s in timeit(lambda: run_chunk(env, chunk, low, high), repeats=1, number=10)
            ]
    return {name: {k: stats(v) for k, v in r.items()} for name, r in raw.items()}


def render(res: dict[str, dict[str, dict[str, float]]], image_size: int) -> str:
    g, p = res["gym_hil"], res["pirlctl"]
    lines = [
        f"{image_size}×{image_size} px, collision hulls, median of repeats (min–max); 50 controller calls and physics "
        "steps per env step.",
        "",
        "| controller | one call (µs) | env step in a 4-action chunk (ms) | env steps/s |",
        "|---|---|---|---|",
    ]
    for name, r in (("gym_hil opspace", g), ("pirlctl OpspaceController", p)):
        lines.append(
            f"| {name} | {fmt(r['call_us'], 0)} | {fmt(r['chunk_step_ms'], 1)} "
            f"| {1e3 / r['chunk_step_ms']['median']:.0f} |"
        )
    lines.append("")
    lines.append(
        f"pirlctl's controller: {g['call_us']['median'] / p['call_us']['median']:.2f}× faster per call, "
        f"{g['chunk_step_ms']['median'] / p['chunk_step_ms']['median']:.2f}× more env steps/s."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"_{machine()}_\n")
    print(render(measure(args.image_size, args.repeats), args.image_size))


if __name__ == "__main__":
    main()
