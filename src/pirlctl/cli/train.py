"""``pirlctl train``: the main job (demos → SFT → PI-RL over gRPC → evaluation → report), one command."""

from __future__ import annotations

from pathlib import Path

import typer

from pirlctl.cli.common import (
    DEFAULT_CONFIG_HELP,
    EXTRA_ARGS,
    default_run_config,
    headless_defaults,
    overrides,
    run_or_exit,
)
from pirlctl.reporting.output import console, err_console, render


def register(app: typer.Typer) -> None:
    @app.command(context_settings=EXTRA_ARGS)
    def train(
        ctx: typer.Context,
        config_path: Path | None = typer.Option(None, "--config_path", "--config-path", help=DEFAULT_CONFIG_HELP),
        name: str | None = typer.Option(None, help="Run name: the run folder is runs/<name> (default: config's)."),
        fresh: bool = typer.Option(False, help="Redo every stage instead of reusing cached outputs."),
        dashboard: bool = typer.Option(True, help="Live dashboard (off: plain log lines)."),
        json_out: bool = typer.Option(False, "--json", help="Print the final report as JSON."),
        debug: bool = typer.Option(False, help="Show tracebacks."),
    ) -> None:
        """Run the whole job on its embedded default (tiny X-VLA, gym_hil pick-cube).

        Extra --section.field=value arguments override the config.
        """
        headless_defaults(log_library_warnings=True)  # to the run folder's train.log (quiet_third_party)

        def go():
            import json

            from pirlctl.config.run_config import load_run_config
            from pirlctl.pipeline.train_job import TrainJob
            from pirlctl.reporting.dashboard import Dashboard
            from pirlctl.reporting.progress import StageProgress, quiet_third_party

            extra = overrides(ctx)
            if name:
                extra.append(f"--output_dir=runs/{name}")
            cfg = load_run_config(default_run_config(config_path), extra)
            # third-party warnings, loggers and bars go to the run folder: the terminal shows our stages only
            quiet_third_party(Path(cfg.output_dir) / "train.log")
            live = dashboard and err_console.is_terminal  # bars on a terminal, plain lines in a pipe or a log
            stages = StageProgress(err_console, live=live)
            job = TrainJob(
                cfg,
                fresh=fresh,
                on_event=lambda stage, msg: err_console.print(f"[bold cyan]{stage}[/] {msg}"),
                on_progress=stages,
            )

            def watch(procs):
                stages.close()  # one live display at a time: the dashboard's
                sft = job.run_dir / "eval_sft.json"
                level = json.loads(sft.read_text())["success_rate"] if sft.is_file() else None
                dash = Dashboard(job.run_dir, cfg.runtime.total_env_steps, level)
                # alarms are raised with or without the dashboard
                return dash.watch(procs, live=dashboard and console.is_terminal)

            try:
                report = job.run(watch)
            finally:
                stages.close()
            if not json_out:
                from rich.markdown import Markdown

                console.print(Markdown(Path(report.report_md).read_text()))
                console.print(
                    f"run folder: {report.run_dir} (report.md, report.json, learning_curve.png, metrics.jsonl)"
                )
            return report

        report = run_or_exit(go, debug=debug)
        if json_out:
            render(report, as_json=True)
