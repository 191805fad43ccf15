"""The ``pirlctl`` Typer app: wires the command modules, nothing else."""

from __future__ import annotations

import typer

from pirlctl.cli import (
    actor,
    checklist,
    eval_cmd,
    learner,
    migrate_config,
    pretrain,
    profile_actor,
    train,
    verify_sync,
    version,
)

app = typer.Typer(
    name="pirlctl",
    help="PI-RL (PPO over a stochastic denoising chain) for LeRobot flow policies, on LeRobot's actor/learner runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    train,
    pretrain,
    eval_cmd,
    learner,
    actor,
    profile_actor,
    migrate_config,
    verify_sync,
    checklist,
    version,
):
    module.register(app)


def main() -> None:
    app()
