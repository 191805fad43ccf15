"""profile-actor: the actor's own loop (tiny X-VLA, gym_hil) with a stand-in sender, K sweep consistency, py-spy
flame graph."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pirlctl.config.run_config import load_run_config
from pirlctl.diagnostics import profile_actor as profiling
from pirlctl.runtime.actor import Actor

from .procs import ROOT, TINY_RUN, env

pytestmark = pytest.mark.integration


# slow (14 s): test_profile_times_the_actors_own_loop_with_a_stand_in_sender stays in the default suite
@pytest.mark.slow
def test_sweep_is_consistent_and_flame_graph_is_written(tmp_path):
    svg = tmp_path / "flame.svg"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pirlctl",
            "profile-actor",
            "--steps",
            "12",
            "--sweep",
            "num_denoise_steps=1,16",
            "--py-spy",
            "--flame-graph",
            str(svg),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(proc.stdout)
    k1, k16 = rep["rows"]
    assert (k1["num_denoise_steps"], k16["num_denoise_steps"]) == (1, 16)
    # 16 denoise steps cost more than 1: inference FPS falls as K rises, and the denoise share grows
    assert k16["policy_fps_mean"] < k1["policy_fps_mean"]
    assert k16["seconds_per_chunk"]["denoise"] > k1["seconds_per_chunk"]["denoise"]
    for row in rep["rows"]:
        assert row["env_steps"] >= 12 and row["loop_fps"] <= min(row["policy_fps_mean"], row["env_fps"]) + 1e-6
    if rep["py_spy"] == "recorded":
        assert svg.is_file() and svg.read_text().lstrip().startswith("<?xml")
    else:  # e.g. no ptrace permission in a container: a clear reason, not a crash
        assert "py-spy" in rep["py_spy"]


def test_bad_sweep_is_one_line_error():
    proc = subprocess.run(
        [sys.executable, "-m", "pirlctl", "profile-actor", "--sweep", "K=1,2"],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "use --sweep num_denoise_steps=1,2,4,8" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_profile_times_the_actors_own_loop_with_a_stand_in_sender(monkeypatch):
    segments: list[list[int]] = []
    senders: list[profiling.StandInSender] = []
    own = Actor.collect_and_send

    def spy(actor):
        senders.append(actor.client)
        steps = own(actor)
        segments.append(steps)
        return steps

    monkeypatch.setattr(Actor, "collect_and_send", spy)
    cfg = load_run_config(TINY_RUN)
    rep = profiling.profile_actor(cfg, steps=10)
    (row,) = rep.rows
    # every measured chunk came out of Actor.collect_and_send, and each segment went to the stand-in sender
    assert row.chunks == sum(len(s) for s in segments) and row.env_steps == sum(map(sum, segments)) >= 10
    sender = senders[0]
    assert isinstance(sender, profiling.StandInSender) and all(s is sender for s in senders)
    assert sender.segments == len(segments) and sender.bytes > 0
    assert row.seconds_per_chunk["enqueue"] > 0 and row.policy_fps_mean > 0
    assert cfg.runtime.rollout_chunks == 256  # the caller's config is left as it was
