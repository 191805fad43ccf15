"""Render cost of pick-cube on this CPU: one camera render and one env step (both cameras), for gym_hil's visual
meshes and for the collision hulls (``env.render_geometry``), and an env step inside a 4-action chunk
(``run_chunk``: the cameras render once per chunk, for the observation the policy reads), side by side in one
process.

    python -m bench.render_speed [--image-size 64] [--repeats 5]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import fmt, machine, stats, timeit


def measure(image_size: int, repeats: int) -> dict[str, dict[str, dict[str, float]]]:
    from pirlctl.config.run_config import EnvSettings
    from pirlctl.envs.pick_cube import configure_renderer, make_env, reset_episode, run_chunk

    # no time limit inside the timings: a truncated chunk stops after one action
    settings = EnvSettings(cube_range=0.03, image_size=image_size, render_geometry="visual", max_episode_steps=10_000)
    env = make_env(settings)  # one GL context per process: reconfigure this env rather than make a second one
    hold = np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)
    chunk = np.stack([hold] * 4)
    low, high = env.action_space.low, env.action_space.high
    out: dict[str, dict[str, dict[str, float]]] = {}
    for geometry in ("visual", "collision"):
        settings.render_geometry = geometry
        configure_renderer(env.unwrapped, settings)
        reset_episode(env, 0)
        base = env.unwrapped

        def render_front(base=base) -> None:
            base._viewer.update_scene(base._data, camera="front")
            base._viewer.render()

        out[geometry] = {
            "render_ms": stats([1e3 * s for s in timeit(render_front, repeats=repeats, number=20)]),
            "step_ms": stats([1e3 * s for s in timeit(lambda: env.step(hold), repeats=repeats, number=20)]),
            # ms per chunk of 4 actions
            "chunk_step_ms": stats(
                [1e3 * s for s in timeit(lambda: run_chunk(env, chunk, low, high), repeats=repeats, number=5)]
            ),
        }
    return out


def render(res: dict[str, dict[str, dict[str, float]]], image_size: int) -> str:
    v, c = res["visual"], res["collision"]
    lines = [
        f"{image_size}×{image_size} px, median of repeats (min–max); an env step renders both cameras.",
        "",
        "| render_geometry | one camera render (ms) | env step (ms) | env steps/s | env step in a 4-action chunk "
        "(ms) | env steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in (("visual", v), ("collision", c)):
        lines.append(
            f"| {name} | {fmt(r['render_ms'], 1)} | {fmt(r['step_ms'], 1)} | {1e3 / r['step_ms']['median']:.0f} "
            f"| {fmt({k: x / 4 for k, x in r['chunk_step_ms'].items()}, 1)} "
            f"| {4e3 / r['chunk_step_ms']['median']:.0f} |"
        )
    lines.append("")
    lines.append(
        f"Collision hulls: {v['render_ms']['median'] / c['render_ms']['median']:.2f}× faster per camera render, "
        f"{v['step_ms']['median'] / c['step_ms']['median']:.2f}× faster per env step. Rendering once per "
        f"4-action chunk: {4 * c['step_ms']['median'] / c['chunk_step_ms']['median']:.2f}× more env steps/s "
        f"than rendering every step (collision hulls)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"_{machine()}_\n")
    print(render(measure(args.image_size, args.repeats), args.image_size))


if __name__ == "__main__":
    main()
