"""``pirlctl profile-actor``: actor-loop FPS under PI-RL inference cost, optionally swept over K, with py-spy."""

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
from pirlctl.reporting.output import render
from pirlctl.reporting.tables import render_profile


def _parse_sweep(text: str | None) -> list[int] | None:
    from pirlctl.diagnostics.profile_actor import ProfileError

    if not text:
        return None
    name, _, values = text.partition("=")
    if name.strip() != "num_denoise_steps" or not values:
        raise ProfileError(f"--sweep {text!r} is invalid; use --sweep num_denoise_steps=1,2,4,8")
    try:
        return [int(v) for v in values.split(",") if v.strip()]
    except ValueError as err:
        raise ProfileError(f"--sweep {text!r} is invalid; values must be integers, e.g. 1,2,4,8") from err


def register(app: typer.Typer) -> None:
    @app.command(name="profile-actor", context_settings=EXTRA_ARGS)
    def profile_actor(
        ctx: typer.Context,
        config_path: Path | None = typer.Option(None, "--config_path", "--config-path", help=DEFAULT_CONFIG_HELP),
        steps: int = typer.Option(100, help="Env steps to run per measured setting."),
        sweep: str | None = typer.Option(None, help="e.g. num_denoise_steps=1,2,4,8"),
        py_spy: bool = typer.Option(False, "--py-spy", help="Record a flame graph (SVG) of the loop."),
        flame_graph: Path = typer.Option(Path("actor_flame.svg"), help="Where --py-spy writes the SVG."),
        checkpoint: Path | None = typer.Option(None, help="Load weights from this checkpoint (default: fresh)."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        debug: bool = typer.Option(False, help="Show tracebacks."),
    ) -> None:
        """Time the actor loop without a learner: policy/env/loop FPS and where each chunk's time goes."""
        headless_defaults()

        def go():
            from pirlctl.config.run_config import load_run_config
            from pirlctl.diagnostics.profile_actor import profile_actor as run

            ks = _parse_sweep(sweep)
            cfg = load_run_config(default_run_config(config_path), overrides(ctx))
            return run(cfg, steps=steps, sweep=ks, py_spy_svg=flame_graph if py_spy else None, checkpoint=checkpoint)

        report = run_or_exit(go, debug=debug)
        if json_out:
            render(report, as_json=True)
        else:
            render_profile(report)
        if not all(r.holds_target for r in report.rows) and not sweep:
            raise typer.Exit(1)
