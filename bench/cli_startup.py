"""CLI start-up: wall-clock seconds of ``pirlctl --help``, ``pirlctl train --help`` and ``pirlctl version``, each
in a fresh process, several runs each; prints a Markdown table (min / median / max). Goal: each under 1.5 s.

    python bench/cli_startup.py                      # this checkout, 5 runs per command
    python bench/cli_startup.py --ref /work/main     # also another checkout (its src/ first on PYTHONPATH)
    python bench/cli_startup.py --python other/bin/python --runs 10

Commands of the checkouts are interleaved run by run, so a load spike on a shared machine hits them alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (("--help",), ("train", "--help"), ("version",))
GOAL_S = 1.5


def time_once(python: str, checkout: Path, argv: tuple[str, ...]) -> float:
    """Seconds from spawning ``python -m pirlctl ARGV`` (``checkout/src`` first on PYTHONPATH) to its exit."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    start = time.perf_counter()
    res = subprocess.run([python, "-m", "pirlctl", *argv], env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"pirlctl {' '.join(argv)} failed in {checkout}: {res.stderr.strip()[-500:]}")
    return elapsed


def measure(python: str, checkouts: list[Path], runs: int) -> dict[tuple[Path, tuple[str, ...]], list[float]]:
    times: dict[tuple[Path, tuple[str, ...]], list[float]] = {(c, a): [] for c in checkouts for a in COMMANDS}
    for _ in range(runs):
        for checkout in checkouts:
            for argv in COMMANDS:
                times[checkout, argv].append(time_once(python, checkout, argv))
    return times


def table(times: dict[tuple[Path, tuple[str, ...]], list[float]]) -> str:
    lines = [
        "| checkout | command | runs | min (s) | median (s) | max (s) | median < 1.5 s |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for (checkout, argv), xs in times.items():
        med = statistics.median(xs)
        lines.append(
            f"| {checkout} | `pirlctl {' '.join(argv)}` | {len(xs)} | {min(xs):.2f} | {med:.2f} | {max(xs):.2f} "
            f"| {'yes' if med < GOAL_S else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command (default 5)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to time (default: this one)")
    parser.add_argument("--ref", type=Path, action="append", default=[], help="another checkout to time as well")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    checkouts = [ROOT, *(p.resolve() for p in args.ref)]
    for checkout in checkouts:
        if not (checkout / "src" / "pirlctl").is_dir():
            parser.error(f"{checkout} has no src/pirlctl; pass a pirlctl checkout to --ref")
    print(f"{args.runs} runs per command, {os.cpu_count()} cores, {args.python}\n")
    print(table(measure(args.python, checkouts, args.runs)))


if __name__ == "__main__":
    main()
