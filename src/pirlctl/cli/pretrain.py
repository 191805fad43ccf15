"""``pirlctl pretrain``: scripted demos and behaviour cloning (the SFT policy PI-RL starts from), cached."""

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
from pirlctl.reporting.output import err_console, render


def register(app: typer.Typer) -> None:
    @app.command(context_settings=EXTRA_ARGS)
    def pretrain(
        ctx: typer.Context,
        config_path: Path | None = typer.Option(None, "--config_path", "--config-path", help=DEFAULT_CONFIG_HELP),
        fresh: bool = typer.Option(False, help="Re-record demos and retrain."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        debug: bool = typer.Option(False, help="Show tracebacks."),
    ) -> None:
        """Record the demos and behaviour-clone the policy; prints where the SFT policy is."""
        headless_defaults()

        def go():
            from pirlctl.config.run_config import load_run_config
            from pirlctl.pipeline.train_job import TrainJob

            cfg = load_run_config(default_run_config(config_path), overrides(ctx))
            job = TrainJob(
                cfg, fresh=fresh, on_event=lambda stage, msg: err_console.print(f"[bold cyan]{stage}[/] {msg}")
            )
            job.pretrain()
            return {"demos": str(job.demo_dir), "sft_policy": str(job.sft_dir), "reused": job.reused}

        render(run_or_exit(go, debug=debug), as_json=json_out, title="pretrain")
