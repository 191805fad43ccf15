"""Soak: `pirlctl learner` + 2 actors for a while, killing an actor every few minutes and the learner once.

Checks: no stall (a PPO iteration at least every --stall-s seconds outside the restart windows), RSS growth of
each process (first sample after warm-up → last sample, per process lifetime), final checkpoint valid. Writes a
JSON result and, with --doc, the results section of docs/reliability.md.

    python scripts/soak.py --minutes 30 --actor-kill-every 5 --learner-kill-at 15 --doc
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def iterations(out: Path) -> int:
    p = out / "metrics.jsonl"
    return sum(1 for line in p.read_text().splitlines() if '"kind": "train"' in line) if p.exists() else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--actor-kill-every", type=float, default=5, help="minutes")
    ap.add_argument("--learner-kill-at", type=float, default=15, help="minute of the one learner kill")
    ap.add_argument("--stall-s", type=float, default=180)
    ap.add_argument("--warmup-min", type=float, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "soak")
    ap.add_argument("--port", type=int, default=50099)
    ap.add_argument("--doc", action="store_true")
    args = ap.parse_args()
    import shutil

    shutil.rmtree(args.out, ignore_errors=True)
    base = [sys.executable, "-m", "pirlctl"]
    conf = [
        "--config_path",
        "pick_cube_tiny",  # the built-in default config
        f"--output_dir={args.out}",
        f"--runtime.learner_port={args.port}",
        "--runtime.total_env_steps=100000000",
        "--runtime.rollout_chunks=32",
        "--runtime.checkpoint_every=1",
        "--runtime.weights_wait_s=10",
    ]

    def start(role: str, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*base, role, *conf, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
        )

    started = time.monotonic()
    learner = start("learner")
    actors = [start("actor", "--actor-id", str(i)) for i in range(2)]
    samples: dict[str, list[tuple[float, float]]] = {}
    life = {"learner": 0, "actor0": 0, "actor1": 0}
    events, stalls = [], []
    last_iter, last_progress = 0, time.monotonic()
    next_actor_kill = args.actor_kill_every * 60
    learner_killed = False
    victim = 0
    while (elapsed := time.monotonic() - started) < args.minutes * 60:
        time.sleep(5)
        procs = {"learner": learner, "actor0": actors[0], "actor1": actors[1]}
        for name, p in procs.items():
            r = rss_mb(p.pid)
            if r is not None:
                samples.setdefault(f"{name}#{life[name]}", []).append((elapsed, r))
        it = iterations(args.out)
        if it > last_iter:
            last_iter, last_progress = it, time.monotonic()
        elif time.monotonic() - last_progress > args.stall_s:
            stalls.append(round(elapsed))
            last_progress = time.monotonic()
        if elapsed >= next_actor_kill:
            actors[victim].send_signal(signal.SIGKILL)
            actors[victim].wait()
            actors[victim] = start("actor", "--actor-id", str(victim))
            life[f"actor{victim}"] += 1
            events.append(f"{elapsed / 60:.1f} min: killed and restarted actor {victim}")
            victim = 1 - victim
            next_actor_kill += args.actor_kill_every * 60
        if not learner_killed and elapsed >= args.learner_kill_at * 60:
            learner.send_signal(signal.SIGKILL)
            learner.wait()
            learner = start("learner", "--resume=true")
            life["learner"] += 1
            learner_killed = True
            last_progress = time.monotonic()
            events.append(f"{elapsed / 60:.1f} min: killed the learner (SIGKILL) and resumed it")
    learner.send_signal(signal.SIGINT)  # final checkpoint and a stop push
    learner.wait(timeout=120)
    for a in actors:
        try:
            a.wait(timeout=60)
        except subprocess.TimeoutExpired:
            a.kill()
    from pirlctl.runtime.checkpoint import CheckpointError, verify_checkpoint

    try:
        info = verify_checkpoint(args.out)
        final = f"valid (iteration {info.iteration}, {info.counters.get('env_steps')} env steps)"
        ok_ckpt = True
    except CheckpointError as err:
        final, ok_ckpt = f"INVALID: {err}", False
    growth = {}
    for key, pts in samples.items():
        warm = [r for t, r in pts if t >= pts[0][0] + args.warmup_min * 60]
        if len(warm) >= 2:
            growth[key] = {
                "first_mb": round(warm[0], 1),
                "last_mb": round(warm[-1], 1),
                "growth_pct": round(100 * (warm[-1] - warm[0]) / warm[0], 1),
            }
    result = {
        "minutes": args.minutes,
        "iterations": last_iter,
        "events": events,
        "stalls_at_s": stalls,
        "final_checkpoint": final,
        "rss": growth,
        "ok": ok_ckpt and not stalls and all(g["growth_pct"] < 10 for g in growth.values()),
    }
    (args.out / "soak.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if args.doc:
        doc = ROOT / "docs" / "reliability.md"
        rows = "\n".join(f"| {k} | {v['first_mb']} | {v['last_mb']} | {v['growth_pct']}% |" for k, v in growth.items())
        body = (
            f"_Soak of {args.minutes:g} min on {time.strftime('%Y-%m-%d')}: {last_iter} PPO iterations; "
            f"stalls: {stalls or 'none'}; final checkpoint {final}; overall {'PASS' if result['ok'] else 'FAIL'}._"
            f"\n\n"
            + "\n".join(f"- {e}" for e in events)
            + "\n\n| process#life | RSS after warm-up (MB) | RSS at end (MB) | growth |\n|---|---|---|---|\n"
            + rows
        )
        text = doc.read_text()
        start_m, end_m = "<!-- soak:begin -->", "<!-- soak:end -->"
        text = text[: text.index(start_m) + len(start_m)] + "\n" + body + "\n" + text[text.index(end_m) :]
        doc.write_text(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
