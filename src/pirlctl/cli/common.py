"""Shared CLI plumbing: config loading with overrides, and one-line errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from pirlctl.errors import StoppedByUserError, one_line
from pirlctl.reporting.output import error

T = TypeVar("T")

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}
# --help text of the commands whose --config_path defaults to the built-in config: no path of this checkout in it.
DEFAULT_CONFIG_HELP = (
    "Run config: a JSON file or a built-in name such as pick_cube_tiny_flow_noise (default: pick_cube_tiny)."
)


def default_run_config(config_path: Path | None) -> Path:
    """``config_path``, or the built-in default run config; resolved when a command runs (loading it is heavy)."""
    if config_path is not None:
        return config_path
    from pirlctl.configs import DEFAULT_RUN_CONFIG

    return DEFAULT_RUN_CONFIG


def headless_defaults(*, log_library_warnings: bool = False) -> None:
    """Environment defaults for a headless, offline machine, and a quiet terminal. Library warnings are ignored
    unless the command logs them to a file of its own (``pirlctl train``: its run folder's train.log)."""
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # no "Map" bar per saved demo episode, no gRPC core lines: for this process and the children it starts
    from pirlctl.reporting.progress import disable_datasets_bars, quiet_environment, silence_library_warnings

    quiet_environment(os.environ)
    disable_datasets_bars()  # `datasets` is already imported (by LeRobot): the variable alone comes too late
    if not log_library_warnings:
        silence_library_warnings()  # e.g. gymnasium's "Box ... precision lowered" at every env build


def run_or_exit[T](fn: Callable[[], T], *, debug: bool = False) -> T:
    """Run ``fn``; a known failure prints one line and exits 2 (``--debug`` re-raises with the traceback)."""
    try:
        return fn()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        error("interrupted")
        raise typer.Exit(130) from None
    except StoppedByUserError as err:
        error(str(err))
        raise typer.Exit(130) from None
    except Exception as err:  # noqa: BLE001 - the CLI boundary turns errors into one line
        if debug:
            raise
        error(one_line(err))
        raise typer.Exit(2) from None


def resolve_run_config(
    config_path: Any, ctx: typer.Context, *, host: str | None = None, port: int | None = None
) -> tuple[Any, Any]:
    """The one place a runtime command resolves its config: file + dotted overrides, then ``PIRL_*`` env, then
    ``--host/--port``. Returns (run config, operator settings)."""
    from pirlctl.config.run_config import load_run_config
    from pirlctl.config.settings import OperatorSettings, apply_operator_settings

    settings = OperatorSettings()
    cfg = apply_operator_settings(load_run_config(config_path, overrides(ctx)), settings, host=host, port=port)
    return cfg, settings


def overrides(ctx: typer.Context) -> list[str]:
    """Dotted draccus overrides after the known options, e.g. ``--runtime.num_actors=2``."""
    args: list[Any] = list(ctx.args)
    return [str(a) for a in args]
