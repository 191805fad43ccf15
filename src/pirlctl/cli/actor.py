"""``pirlctl actor``: run the env with the PI-RL sampler against a learner."""

from __future__ import annotations

from pathlib import Path

import typer

from pirlctl.cli.common import EXTRA_ARGS, headless_defaults, resolve_run_config, run_or_exit
from pirlctl.reporting.output import render


def register(app: typer.Typer) -> None:
    @app.command(context_settings=EXTRA_ARGS)
    def actor(
        ctx: typer.Context,
        config_path: Path = typer.Option(
            ...,
            "--config_path",
            "--config-path",
            help="Run config: a JSON file or a built-in name (pick_cube_tiny, ...).",
        ),
        actor_id: int = typer.Option(0, "--actor-id", help="This actor's index (seeds and logs)."),
        host: str | None = typer.Option(None, help="Learner address (default from config)."),
        port: int | None = typer.Option(None, help="Learner port (default from config)."),
        json_out: bool = typer.Option(False, "--json", help="Print the final report as JSON."),
        debug: bool = typer.Option(False, help="Show tracebacks."),
    ) -> None:
        """Run one actor. Extra --section.field=value arguments override the config."""
        headless_defaults()

        def go():
            from pirlctl.runtime.actor import run_actor

            cfg, settings = resolve_run_config(config_path, ctx, host=host, port=port)
            return run_actor(cfg, actor_id, token=settings.resolved_token(), tls=settings.resolved_tls())

        render(run_or_exit(go, debug=debug), as_json=json_out, title=f"actor {actor_id}")
