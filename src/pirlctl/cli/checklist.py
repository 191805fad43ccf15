"""``pirlctl checklist`` (alias ``doctor``): run each "looks done but isn't" item for real, PASS/FAIL with evidence."""

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


def register(app: typer.Typer) -> None:
    def checklist(
        ctx: typer.Context,
        config_path: Path | None = typer.Option(None, "--config_path", "--config-path", help=DEFAULT_CONFIG_HELP),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        debug: bool = typer.Option(False, help="Show tracebacks."),
    ) -> None:
        """Recipe wired, learner branch, actor sync, SAC unaffected, and the environment: each run for real.

        Exit 0 when every item passes, 1 when one fails, 2 on bad input. Extra --section.field=value arguments
        override the config.
        """
        headless_defaults()

        def go():
            from pirlctl.config.run_config import load_run_config
            from pirlctl.diagnostics.checklist import run_checklist

            path = default_run_config(config_path)
            cfg = load_run_config(path, overrides(ctx))
            return run_checklist(cfg, config_path=str(path))

        report = run_or_exit(go, debug=debug)
        from pirlctl.reporting.diagnostics import render_checklist

        render_checklist(report, as_json=json_out)
        if not report.passed:
            raise typer.Exit(1)

    app.command("checklist", context_settings=EXTRA_ARGS)(checklist)
    app.command("doctor", context_settings=EXTRA_ARGS, help="Alias of `checklist`.")(checklist)
