"""Start pirlctl learner/actor as real processes on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from pirlctl.configs import DEFAULT_RUN_CONFIG

ROOT = Path(__file__).resolve().parents[2]
TINY_RUN = DEFAULT_RUN_CONFIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.setdefault("MUJOCO_GL", "osmesa")
    e.setdefault("HF_HUB_OFFLINE", "1")
    return e


def spawn(
    role: str,
    out: Path,
    port: int,
    *extra: str,
    actor_id: int = 0,
    config: Path = TINY_RUN,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen:
    # one actor unless a test says otherwise (later overrides win); the shipped default runs two
    extra = ("--runtime.num_actors=1", *extra)
    cmd = [
        sys.executable,
        "-m",
        "pirlctl",
        role,
        "--config_path",
        str(config),
        "--json",
        f"--output_dir={out}",
        f"--runtime.learner_port={port}",
        *extra,
    ]
    if role == "actor":
        cmd[4:4] = ["--actor-id", str(actor_id)]
    log = open(out.parent / f"{out.name}-{role}{actor_id if role == 'actor' else ''}.stderr", "w")  # noqa: SIM115
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log, text=True, env={**env(), **(extra_env or {})}, cwd=ROOT
    )


def report(proc: subprocess.Popen, timeout: float = 180) -> dict:
    stdout, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{proc.args[3]} exited {proc.returncode}; stdout: {stdout[-2000:]}"
    return json.loads(stdout)
