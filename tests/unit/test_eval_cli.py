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


def _report(**changes):
    from pirlctl.pipeline.evaluate import EvalReport

    fields = dict(
        checkpoint="runs/x/checkpoints/last",
        episodes=50,
        successes=47,
        success_rate=0.94,
        ci95_low=0.8378,
        ci95_high=0.9794,
        mean_return=0.94,
        mean_length=41.26,
        env_steps=2063,
        seconds=12.34,
        strip=None,
    )
    return EvalReport(**{**fields, **changes})


def test_eval_rows_show_percentages_a_range_and_no_empty_field() -> None:
    from pirlctl.reporting.evaluation import eval_rows

    rows = dict(eval_rows(_report()))
    assert rows["success rate"] == "94% (47 of 50 episodes)"
    assert rows["95% interval"] == "[84%, 98%]"
    assert "strip" not in rows and all(v and v != "None" for v in rows.values())
    assert dict(eval_rows(_report(strip="first.png")))["strip"] == "first.png"
    # a rate that is neither 0 nor 1 never reads as 0% or 100%
    rows = dict(eval_rows(_report(success_rate=0.998, ci95_low=0.002, ci95_high=1.0)))
    assert rows["success rate"].startswith("99.8%") and rows["95% interval"] == "[0.2%, 100%]"


def test_eval_command_renders_the_report_for_people_and_json_unchanged(tmp_path, monkeypatch) -> None:
    import json

    from pirlctl.pipeline import evaluate
    from pirlctl.policies.loading import CONFIGS_DIR

    policy = tmp_path / "policy"  # a bare LeRobot policy folder: no checkpoint verification
    policy.mkdir()
    (policy / "config.json").write_text("{}")
    (policy / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(evaluate, "evaluate_policy_dir", lambda cfg, policy_dir, **kw: _report(checkpoint=""))
    cli = _cli()
    args = (str(policy), "--config_path", str(CONFIGS_DIR / "pick_cube_tiny.json"), "--episodes", "50")
    result = cli(*args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "94% (47 of 50 episodes)" in out and "[84%, 98%]" in out
    assert "None" not in out and "0.94" not in out.split("mean return")[0] and "strip" not in out
    data = json.loads(cli(*args, "--json").stdout)
    assert data["success_rate"] == 0.94 and data["ci95_low"] == 0.8378 and data["strip"] is None
    assert data["checkpoint"] == str(policy)
