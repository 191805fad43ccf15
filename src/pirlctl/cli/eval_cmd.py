"""``pirlctl eval``: ODE evaluation of a checkpoint (or a LeRobot policy folder) with a 95% CI."""

from __future__ import annotations

from pathlib import Path

import typer

from pirlctl.cli.common import EXTRA_ARGS, headless_defaults, overrides, run_or_exit
from pirlctl.reporting.evaluation import render_eval


def register(app: typer.Typer) -> None:
    @app.command(name="eval", context_settings=EXTRA_ARGS)
    def eval_(
        ctx: typer.Context,
        checkpoint_arg: Path | None = typer.Argument(
            None,
            metavar="CHECKPOINT",
            help="Checkpoint folder, run folder, or a LeRobot policy folder (or give it as --checkpoint).",
            show_default=False,
        ),
        checkpoint_opt: Path | None = typer.Option(None, "--checkpoint", help="The same, as an option."),
        episodes: int = typer.Option(50, help="Evaluation episodes."),
        first_episode: int = typer.Option(
            0, "--first-episode", help="Index of the first episode (seeds follow it): to split one evaluation."
        ),
        config_path: Path | None = typer.Option(
            None, "--config_path", "--config-path", help="Run config (default: the checkpoint's own)."
        ),
        strip: Path | None = typer.Option(None, help="Write a PNG strip of the first episode here."),
        force: bool = typer.Option(False, help="Load a checkpoint whose manifest does not verify."),
        progress_file: Path | None = typer.Option(
            None, "--progress-file", hidden=True, help="Append 'done total' per episode here (pirlctl train)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        debug: bool = typer.Option(False, help="Show tracebacks."),
    ) -> None:
        """Evaluate with the flow ODE (deterministic) over fixed episode seeds."""
        headless_defaults()

        def go():
            from pirlctl.config.run_config import RunConfigError, load_run_config
            from pirlctl.pipeline.evaluate import evaluate_policy_dir
            from pirlctl.runtime import checkpoint as ckpt

            if checkpoint_arg and checkpoint_opt and checkpoint_arg != checkpoint_opt:
                raise RunConfigError(
                    f"two checkpoints given ({checkpoint_arg} and --checkpoint {checkpoint_opt}); pass one"
                )
            checkpoint = checkpoint_arg or checkpoint_opt
            if checkpoint is None:
                raise RunConfigError("no checkpoint given; pass CHECKPOINT or --checkpoint PATH")
            if episodes < 1:
                raise RunConfigError(f"--episodes={episodes} is invalid; use 1 or more")
            if first_episode < 0:
                raise RunConfigError(f"--first-episode={first_episode} is invalid; use 0 or more")
            policy_dir = checkpoint
            conf = config_path
            if (checkpoint / "config.json").is_file() and (checkpoint / "model.safetensors").is_file():
                if conf is None:
                    raise RunConfigError(f"{checkpoint} is a bare policy folder; pass --config_path for the env")
            else:
                if not checkpoint.exists():
                    raise ckpt.CheckpointError(f"no checkpoint at {checkpoint}; pass a checkpoint or run folder")
                info = ckpt.verify_checkpoint(checkpoint, force=force)
                policy_dir = info.path / "pretrained_model"
                conf = conf or info.path / "run_config.json"
            cfg = load_run_config(conf, overrides(ctx))
            from pirlctl.reporting.progress import progress_file_writer

            on_episode = progress_file_writer(progress_file) if progress_file else None
            report = evaluate_policy_dir(
                cfg, policy_dir, episodes=episodes, first_episode=first_episode, strip_path=strip, on_episode=on_episode
            )
            report.checkpoint = str(checkpoint if policy_dir == checkpoint else policy_dir.parent)
            return report

        render_eval(run_or_exit(go, debug=debug), as_json=json_out)
