"""``pirlctl migrate-config``: a LeRobot SAC run config -> a PI-RL run config, with a report of what changed."""

from __future__ import annotations

from pathlib import Path

import typer

from pirlctl.cli.common import headless_defaults, run_or_exit
from pirlctl.reporting.tables import render_migration


def register(app: typer.Typer) -> None:
    @app.command("migrate-config")
    def migrate_config(
        source: Path = typer.Argument(..., help="LeRobot SAC run config JSON (what lerobot-train-rl reads)."),
        output: Path | None = typer.Option(None, "-o", "--output", help="PI-RL run config JSON to write."),
        policy: str | None = typer.Option(
            None, help="Flow policy type (xvla, pi0, pi05, smolvla); default: the --policy-path folder's, else xvla."
        ),
        policy_path: Path | None = typer.Option(
            None, "--policy-path", help="Local LeRobot checkpoint folder (config.json) of the flow policy to keep."
        ),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the report; write nothing."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON (with the config on --dry-run)."),
        debug: bool = typer.Option(False, help="Show tracebacks."),
    ) -> None:
        """Convert a LeRobot SAC run config into a PI-RL run config and report what changed and what to decide."""
        headless_defaults()

        def go():
            from pirlctl.migrate.files import migrate_config_file

            return migrate_config_file(
                source, output, policy=policy, policy_path=policy_path, dry_run=dry_run, force=force
            )

        report, config = run_or_exit(go, debug=debug)
        render_migration(report, as_json=json_out, config=config if dry_run else None)
