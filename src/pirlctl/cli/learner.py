"""``pirlctl learner``: serve LeRobot's LearnerService and train with PI-RL."""

from __future__ import annotations

from pathlib import Path

import typer

from pirlctl.cli.common import EXTRA_ARGS, headless_defaults, resolve_run_config, run_or_exit
from pirlctl.reporting.output import render


def register(app: typer.Typer) -> None:
    @app.command(context_settings=EXTRA_ARGS)
    def learner(
        ctx: typer.Context,
        config_path: Path = typer.Option(
            ...,
            "--config_path",
            "--config-path",
            help="Run config: a JSON file or a built-in name (pick_cube_tiny, ...).",
        ),
        host: str | None = typer.Option(None, help="Bind address (default from config: 127.0.0.1)."),
        port: int | None = typer.Option(None, help="gRPC port (default from config)."),
        allow_remote: bool = typer.Option(False, help="Allow a non-loopback bind (needs PIRL_TOKEN or PIRL_TLS_*)."),
        resume_from: Path | None = typer.Option(
            None, "--resume-from", help="Resume from this checkpoint folder (instead of the run's `last`)."
        ),
        force: bool = typer.Option(
            False, help="Load a checkpoint that fails verification (changed files, another config) anyway."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the final report as JSON."),
        debug: bool = typer.Option(False, help="Show tracebacks."),
    ) -> None:
        """Run the learner. Extra --section.field=value arguments override the config."""
        headless_defaults()

        def go():
            from pirlctl.config.settings import check_bind_address
            from pirlctl.runtime.learner import run_learner

            cfg, settings = resolve_run_config(config_path, ctx, host=host, port=port)
            token, tls = settings.resolved_token(), settings.resolved_tls()
            check_bind_address(cfg.runtime.learner_host, allow_remote=allow_remote, token=token, tls=tls)
            return run_learner(
                cfg, token=token, tls=tls, resume_from=str(resume_from) if resume_from else None, force=force
            )

        report = run_or_exit(go, debug=debug)
        if report is not None:  # None: a data-parallel rank > 0; rank 0 reports for the learner
            render(report, as_json=json_out, title="learner")
