"""The ``pirlctl`` Typer app: wires the command modules, nothing else."""

from __future__ import annotations

import typer

from pirlctl.cli import actor, checklist, eval_cmd, learner, migrate_config, pretrain, profile_actor, train, verify_sync

app = typer.Typer(
    name="pirlctl",
    help="PI-RL (PPO over a stochastic denoising chain) for LeRobot flow policies, on LeRobot's actor/learner runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (train, pretrain, eval_cmd, learner, actor, profile_actor, migrate_config, verify_sync, checklist):
    module.register(app)


@app.command()
def version() -> None:
    """Print pirlctl, lerobot and torch versions."""
    from pirlctl.reporting.output import render
    from pirlctl.runtime.checkpoint import versions

    render(versions())


def main() -> None:
    app()
