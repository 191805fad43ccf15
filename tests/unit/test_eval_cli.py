"""``pirlctl eval`` takes the checkpoint as an argument or as ``--checkpoint`` (the issue's spelling), and says in
one line what is wrong when it gets none, two, or a path with nothing there."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from pirlctl.cli import eval_cmd


def _cli():
    app = typer.Typer()
    eval_cmd.register(app)

    @app.command()
    def other() -> None:  # a second command keeps typer from collapsing the app into the single command
        pass

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["eval", *args])


def _last_line(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_checkpoint_as_option_or_argument(tmp_path) -> None:
    cli = _cli()
    missing = tmp_path / "nothing-here"
    for args in (("--checkpoint", str(missing)), (str(missing),)):
        result = cli(*args, "--episodes", "2")
        assert result.exit_code != 0
        assert f"no checkpoint at {missing}" in _last_line(result.output)


def test_none_or_two_checkpoints_are_refused(tmp_path) -> None:
    cli = _cli()
    result = cli("--episodes", "2")
    assert result.exit_code != 0
    assert "no checkpoint given; pass CHECKPOINT or --checkpoint PATH" in _last_line(result.output)
    result = cli(str(tmp_path / "a"), "--checkpoint", str(tmp_path / "b"))
    assert result.exit_code != 0
    assert "two checkpoints given" in _last_line(result.output)
