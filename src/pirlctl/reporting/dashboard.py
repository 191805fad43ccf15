"""Live Rich dashboard over a run's metrics.jsonl while learner and actors run as child processes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from pirlctl import metrics as M
from pirlctl.alarms import SUCCESS_WINDOW, format_alarm
from pirlctl.reporting.output import console, err_console
from pirlctl.reporting.progress import EnvStepCount, eta_seconds, progress_line


class MetricsTail:
    """Reads records appended to metrics.jsonl since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = ""

    def poll(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with open(self.path) as f:
            f.seek(self.offset)
            data = f.read()
            self.offset = f.tell()
        lines = (self.partial + data).split("\n")
        self.partial = lines.pop()
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


PLAIN_EVERY_S = 15.0  # --no-dashboard: a progress line this often


def _failed(proc: subprocess.Popen) -> bool:
    """Exited with a non-zero code (an actor exiting with 0 got the learner's ``stop``)."""
    return proc.poll() not in (None, 0)


class Dashboard:
    def __init__(self, run_dir: Path, total_env_steps: int, sft_success: float | None) -> None:
        self.tail = MetricsTail(run_dir / "metrics.jsonl")
        self.alarm_log = run_dir / "alarms.log"
        self.total = total_env_steps
        self.sft_success = sft_success
        # training alarms are the learner's ``alarm`` records; only those raised after this dashboard started are
        # shown (a resumed run's metrics.jsonl still holds the alarms of its earlier sessions)
        self.alarms_since = time.time()  # wall clock, as the records' "time"
        self.last_train: dict[str, Any] = {}
        self.episodes: list[dict[str, Any]] = []
        self.alarms: list[str] = []
        self.failed_actors: set[int] = set()
        # env steps as the actors report them (each episode), not only at PPO iterations; "starting" until then
        self.steps = EnvStepCount(since=time.time())
        self.started = time.monotonic()  # start-up time shown until the first record
        self.rate_from: tuple[float, int] | None = None  # (time, env steps) at the first record: the ETA's origin
        self.progress = Progress(
            TextColumn("[bold]PI-RL"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} env steps"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("[yellow]{task.description}"),
        )
        self.task = self.progress.add_task("starting learner + actors", total=total_env_steps)

    def _record(self, new: list[str]) -> None:
        self.alarms.extend(new)
        with open(self.alarm_log, "a") as f:
            f.writelines(f"{time.strftime('%H:%M:%S')} {a}\n" for a in new)

    def check_actors(self, procs: list[subprocess.Popen]) -> list[str]:
        """An alarm (once each) for every actor that failed (exited with a non-zero code) while the learner runs: the
        job would go on with fewer actors, or none, and nothing else would say so. Its traceback is in
        ``actorN.stderr`` in the run folder. An actor exiting with 0 was told to stop by the learner: no alarm."""
        if procs[0].poll() is not None:
            return []
        new = []
        for i, p in enumerate(procs[1:]):
            if _failed(p) and i not in self.failed_actors:
                self.failed_actors.add(i)
                new.append(
                    f"actor{i} exited with code {p.returncode} while the learner runs; its error is in "
                    f"{self.alarm_log.parent / f'actor{i}.stderr'}"
                )
        if new:
            self._record(new)
        return new

    def actors_gone(self, procs: list[subprocess.Popen]) -> bool:
        """Every actor has failed while the learner still waits for rollouts. (Actors that exit with 0 got the
        learner's ``stop`` at the end of training; the learner is then finishing, not waiting.)"""
        actors = procs[1:]
        return bool(actors) and procs[0].poll() is None and all(_failed(p) for p in actors)

    def update(self, procs: list[subprocess.Popen] | None = None) -> list[str]:
        """Read new records and the learner's new alarm records (kept, appended to alarms.log); returns the new
        alarms. With ``procs`` (learner first, then the actors) an actor that exited early is an alarm too."""
        raised: list[str] = self.check_actors(procs) if procs else []
        for rec in self.tail.poll():
            new: list[str] = []
            self.steps.add(rec)
            if rec.get("kind") == "train":
                self.last_train = rec
            elif rec.get("kind") == "episode":
                self.episodes.append(rec)
            elif rec.get("kind") == "alarm" and rec.get("time", 0.0) >= self.alarms_since:
                new = [format_alarm(rec)]
            if new:
                self._record(new)
                raised.extend(new)
        started = "" if self.steps.started else "starting learner + actors"
        done = min(self.steps.total, self.total)
        if self.steps.started and self.rate_from is None:
            self.rate_from = (time.monotonic(), done)
        self.progress.update(self.task, completed=done, description=started)
        return raised

    def progress_line(self) -> str:
        """The RL bar as a plain line (``--no-dashboard``)."""
        if self.rate_from is None:
            return f"rl starting learner + actors ({time.monotonic() - self.started:.0f} s)"
        done = min(self.steps.total, self.total)
        # the rate since the first record: start-up (about a minute, no steps) would make the ETA far too long
        eta = eta_seconds(time.monotonic() - self.rate_from[0], done, self.total, self.rate_from[1])
        n = len(self.episodes)
        return progress_line("rl", done, self.total, "env steps", eta, f"{n} episode{'' if n == 1 else 's'}")

    def render(self, procs: list[subprocess.Popen]) -> Group:
        w = SUCCESS_WINDOW
        recent = self.episodes[-w:]
        succ = sum(bool(r.get(M.ACTOR_SUCCESS)) for r in recent) / len(recent) if recent else float("nan")
        ret = sum(float(r.get(M.ACTOR_EPISODE_RETURN) or 0) for r in recent) / len(recent) if recent else float("nan")
        last_ep = self.episodes[-1] if self.episodes else {}
        t = self.last_train
        table = Table(show_header=False, box=None, padding=(0, 2))
        for _ in range(4):
            table.add_column()

        def f(v: Any, fmt: str = "{:.3f}") -> str:
            return "—" if v is None or v != v else fmt.format(v)

        table.add_row("policy version", f(t.get(M.TRAIN_POLICY_VERSION), "v{}"), "episodes", str(len(self.episodes)))
        table.add_row(f"success (last {w})", f(succ, "{:.0%}"), "SFT level", f(self.sft_success, "{:.0%}"))
        table.add_row(f"return (last {w})", f(ret), "explained var.", f(t.get(M.TRAIN_EXPLAINED_VARIANCE), "{:.2f}"))
        table.add_row("approx_kl", f(t.get(M.TRAIN_APPROX_KL), "{:.4f}"), "clipfrac", f(t.get(M.TRAIN_CLIPFRAC)))
        table.add_row(
            "policy FPS",
            f(last_ep.get(M.ACTOR_POLICY_FPS), "{:.0f}"),
            "env FPS",
            f(last_ep.get(M.ACTOR_ENV_FPS), "{:.1f}"),
        )
        status = " ".join(
            f"{'learner' if i == 0 else f'actor{i - 1}'}:{'up' if p.poll() is None else p.returncode}"
            for i, p in enumerate(procs)
        )
        parts: list[Any] = [self.progress, table, f"[dim]{status}   Ctrl-C stops with a checkpoint[/]"]
        if self.alarms:
            parts.append(Panel("\n".join(self.alarms[-4:]), title="alarms", border_style="red"))
        return Group(*parts)

    def watch(self, procs: list[subprocess.Popen], *, live: bool = True) -> bool:
        """Refresh until the learner exits (True when it finished cleanly); Ctrl-C raises KeyboardInterrupt.
        When every actor has exited while the learner waits, returns False at once: the caller stops the learner
        as on Ctrl-C (a checkpoint, a resume hint) instead of waiting for rollouts that will never come.

        ``live=False`` (``--no-dashboard``) prints the progress as a line every ``PLAIN_EVERY_S`` and still shows
        every new alarm: each goes to alarms.log and is printed as a log line on stderr."""
        if not live:
            last_line, last_text = float("-inf"), ""
            while True:
                done = procs[0].poll() is not None
                for alarm in self.update(procs):
                    err_console.print(f"[bold red]ALARM[/] {alarm}", highlight=False)
                text = self.progress_line()
                if text != last_text and (done or time.monotonic() - last_line >= PLAIN_EVERY_S):
                    err_console.print(text, highlight=False)
                    last_line, last_text = time.monotonic(), text
                if done:
                    return procs[0].returncode == 0
                if self.actors_gone(procs):
                    return False
                time.sleep(1.0)
        with Live(self.render(procs), console=console, refresh_per_second=2, transient=False) as screen:
            while procs[0].poll() is None and not self.actors_gone(procs):
                self.update(procs)
                screen.update(self.render(procs))
                time.sleep(0.5)
            self.update(procs)
            screen.update(self.render(procs))
        return procs[0].poll() is not None and procs[0].returncode == 0
