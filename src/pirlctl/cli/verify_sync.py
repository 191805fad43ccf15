"""``pirlctl verify-sync``: do the actor's weights match the learner's, key by key, over gRPC, and numerically?"""

from __future__ import annotations

from pathlib import Path

import typer

from pirlctl.cli.common import EXTRA_ARGS, headless_defaults, overrides, run_or_exit


def register(app: typer.Typer) -> None:
    @app.command("verify-sync", context_settings=EXTRA_ARGS)
    def verify_sync(
        ctx: typer.Context,
        config_path: Path = typer.Option(
            ...,
            "--config_path",
            "--config-path",
            help="Run config: a JSON file or a built-in name (pick_cube_tiny, ...).",
        ),
        learner: str | None = typer.Option(
            None, "--learner", help="HOST:PORT of a running learner: check its current push instead of a local one."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        debug: bool = typer.Option(False, help="Show tracebacks."),
    ) -> None:
        """Check the learner → actor weight contract (static), the gRPC round trip (live) and re-scoring (numeric).

        Exit 0 when all three hold, 1 when one fails, 2 on bad input. Extra --section.field=value arguments
        override the config.
        """
        headless_defaults()

        def go():
            from pirlctl.config.run_config import load_run_config
            from pirlctl.config.settings import OperatorSettings
            from pirlctl.diagnostics.sync_live import parse_address
            from pirlctl.diagnostics.verify_sync import verify_sync as run

            if learner is not None:
                parse_address(learner)  # bad input before the models are built
            cfg = load_run_config(config_path, overrides(ctx))
            settings = OperatorSettings()
            token, tls = (settings.resolved_token(), settings.resolved_tls()) if learner is not None else (None, None)
            return run(cfg, config_path=str(config_path), learner_address=learner, token=token, tls=tls)

        report = run_or_exit(go, debug=debug)
        from pirlctl.reporting.diagnostics import render_verify_sync

        render_verify_sync(report, as_json=json_out)
        if not report.passed:
            raise typer.Exit(1)
