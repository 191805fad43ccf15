"""Stage progress of ``pirlctl train``: RL env steps from the actors' episode records, plain lines, the eval
progress file, and third-party output routed to the run's log file."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
import warnings

import pytest
from rich.console import Console

from pirlctl import metrics as M
from pirlctl.reporting.progress import (
    THIRD_PARTY_LOGGERS,
    EnvStepCount,
    StageProgress,
    eta_seconds,
    progress_file_writer,
    progress_line,
    quiet_third_party,
    read_progress_file,
)


def _episode(actor: int, steps: int, t: float = 10.0) -> dict:
    return {"kind": "episode", "time": t, M.ACTOR_ID: actor, M.ACTOR_ENV_STEPS: steps}


def _train(steps: int, t: float = 10.0) -> dict:
    return {"kind": "train", "time": t, M.TRAIN_ENV_STEPS: steps}


def test_env_steps_are_the_sum_of_each_actors_latest_count_between_ppo_iterations():
    count = EnvStepCount(since=5.0)
    assert count.total == 0 and not count.started  # learner and actors still starting
    for rec in (_episode(0, 40), _episode(1, 30), _episode(0, 90), _episode(1, 70)):
        count.add(rec)
    assert count.started and count.total == 90 + 70  # latest per actor, not the sum of every record
    count.add(_train(150))  # a PPO iteration that counted fewer (episodes finished since): no step back
    assert count.total == 160
    count.add(_train(200))  # the learner also counts steps of unfinished episodes: a floor
    assert count.total == 200


def test_a_resumed_run_starts_from_the_learners_count_and_actors_count_from_zero_again():
    count = EnvStepCount(since=5.0)
    for rec in (_episode(0, 500, t=1.0), _train(600, t=2.0)):  # the earlier session
        count.add(rec)
    assert count.total == 600 and not count.started
    count.add(_episode(0, 20))
    assert count.started and count.total == 620


def test_eta_and_the_plain_line():
    assert eta_seconds(10.0, 0, 100) is None
    assert eta_seconds(10.0, 25, 100) == pytest.approx(30.0)
    assert eta_seconds(10.0, 60, 100, start=50) == pytest.approx(40.0)  # rate since timing began
    assert progress_line("sft", 25, 100, "steps", 30.0, "loss 0.1") == "sft 25/100 steps, ETA 0:30, loss 0.1"
    assert progress_line("demos", 4, 4, "episodes", None) == "demos 4/4 episodes, done"
    assert progress_line("demos", 0, 4, "episodes", None) == "demos 0/4 episodes"
    assert progress_line("rl", 7200, 9000, "env steps", 3725.0) == "rl 7200/9000 env steps, ETA 1:02:05"


def test_plain_stage_progress_prints_the_start_throttled_updates_and_the_end_once():
    out = io.StringIO()
    stages = StageProgress(Console(file=out, width=200), live=False, every_s=3600)
    for done in range(5):
        stages("demos", done, 4, "episodes")
    stages("demos", 4, 4, "episodes")  # a late repeat of the last count draws nothing
    stages("eval_sft", 0, 2, "episodes")
    stages.close()
    assert out.getvalue().splitlines() == [
        "demos 0/4 episodes",
        "demos 4/4 episodes, done",
        "eval_sft 0/2 episodes",
    ]


def test_live_stage_progress_draws_a_bar_per_stage(tmp_path):
    out = io.StringIO()
    stages = StageProgress(Console(file=out, width=120, force_terminal=True), live=True)
    stages("sft", 0, 10, "steps")
    stages("sft", 10, 10, "steps", "loss 0.5")
    assert stages.bar is None  # stopped once complete: the RL dashboard may start its own live display
    assert "10/10 steps" in out.getvalue() and "loss 0.5" in out.getvalue()


def test_the_eval_progress_file_reads_the_last_complete_line(tmp_path):
    path = tmp_path / "eval.progress"
    assert read_progress_file(path) == 0
    write = progress_file_writer(path)
    write(1, 3)
    write(2, 3)
    assert read_progress_file(path) == 2
    with open(path, "a") as f:
        f.write("3")  # a line being written
    assert read_progress_file(path) == 2


@pytest.fixture
def restore_logging():
    names = ["", *THIRD_PARTY_LOGGERS]
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate) for n in names}
    yield
    logging.captureWarnings(False)
    for n, (handlers, propagate) in saved.items():
        logger = logging.getLogger(n)
        for h in list(logger.handlers):
            if h not in handlers:
                logger.removeHandler(h)
                h.close()
        for h in handlers:
            if h not in logger.handlers:
                logger.addHandler(h)
        logger.propagate = propagate
    import datasets.utils

    datasets.utils.enable_progress_bars()


def test_third_party_warnings_and_loggers_go_to_the_run_log_not_the_terminal(tmp_path, capfd, restore_logging):
    import datasets.utils

    datasets.utils.enable_progress_bars()
    assert not datasets.utils.are_progress_bars_disabled()  # imported without the variable: bars on
    log = tmp_path / "run" / "train.log"
    quiet_third_party(log)
    assert datasets.utils.are_progress_bars_disabled()
    logging.getLogger("datasets").addHandler(logging.StreamHandler())  # as datasets configures its own logger
    quiet_third_party(log)  # idempotent, and removes terminal handlers added since
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("Box low's precision lowered by casting to float32", UserWarning, stacklevel=1)
    logging.getLogger("gymnasium").warning("gym says hello")
    logging.getLogger("datasets.arrow_dataset").warning("datasets says hello")
    captured = capfd.readouterr()
    assert "precision" not in captured.err + captured.out and "hello" not in captured.err + captured.out
    text = log.read_text()
    assert "precision" in text and "gym says hello" in text and "datasets says hello" in text


def test_the_rl_bar_shows_start_up_then_counts_env_steps_as_actors_report_them(tmp_path, capsys):
    from pirlctl.metrics import MetricsWriter
    from pirlctl.reporting.dashboard import Dashboard

    learner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dash = Dashboard(tmp_path, 1000, sft_success=0.5)
        dash.update([learner])
        assert dash.progress_line().startswith("rl starting learner + actors")
        assert dash.progress.tasks[0].description == "starting learner + actors"
        w = MetricsWriter(tmp_path / "metrics.jsonl")
        w.write("episode", {M.ACTOR_ID: 0, M.ACTOR_ENV_STEPS: 100, M.ACTOR_SUCCESS: True})
        w.write("episode", {M.ACTOR_ID: 1, M.ACTOR_ENV_STEPS: 150, M.ACTOR_SUCCESS: False})
        dash.update([learner])  # no PPO iteration yet, and the bar moves
        assert dash.progress.tasks[0].completed == 250 and dash.progress.tasks[0].description == ""
        assert dash.progress_line() == "rl 250/1000 env steps, 2 episodes"  # the ETA's rate starts here
        w.write("episode", {M.ACTOR_ID: 0, M.ACTOR_ENV_STEPS: 300, M.ACTOR_SUCCESS: True})
        dash.update([learner])
        assert re.fullmatch(r"rl 450/1000 env steps, ETA \d+:\d\d, 3 episodes", dash.progress_line())
    finally:
        learner.kill()
        learner.wait()


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_evaluation_children_are_watched_through_their_progress_files(tmp_path):
    """Each child writes its count, then waits for the parent to have seen both counts: the parent reads the
    files while the children run (it would never see them otherwise and the children would fail)."""
    from pirlctl.pipeline.train_job import _count, _wait_reporting

    go, files = tmp_path / "go", [tmp_path / f"w{i}.progress" for i in range(2)]
    code = (
        "import pathlib, sys, time\n"
        "pathlib.Path({f!r}).write_text('1 1\\n')\n"  # as progress_file_writer does (no pirlctl import: fast)
        "deadline = time.monotonic() + 60\n"
        "while not pathlib.Path({go!r}).exists():\n"
        "    if time.monotonic() > deadline: sys.exit(3)\n"
        "    time.sleep(0.05)\n"
        "print('report {i}')\n"
    )
    procs = [_child(code.format(f=str(f), go=str(go), i=i)) for i, f in enumerate(files)]
    seen: list[int] = []

    def report() -> None:
        seen.append(_count(files))
        if seen[-1] == 2:
            go.touch()

    outs = _wait_reporting(procs, report, every_s=0.1)
    assert [p.returncode for p in procs] == [0, 0] and outs == ["report 0\n", "report 1\n"]
    assert seen[-1] == 2 and seen == sorted(seen)


def test_when_an_evaluation_child_fails_the_others_are_stopped(tmp_path):
    import signal

    from pirlctl.pipeline.train_job import _wait_reporting

    procs = [_child("import time; time.sleep(120)"), _child("raise SystemExit(4)")]
    _wait_reporting(procs, lambda: None, every_s=0.1)
    assert procs[1].returncode == 4 and procs[0].returncode == -signal.SIGKILL
