"""Cache keys of ``pirlctl train`` are stable: a run's own run_config.json gives the keys its config file gave."""

from __future__ import annotations

import json

from pirlctl.config.run_config import load_run_config, save_run_config
from pirlctl.pipeline.train_job import TrainJob
from pirlctl.policies.loading import build_policy

from ..integration.procs import TINY_RUN


def test_the_sft_key_from_a_saved_run_config_equals_the_key_from_its_config_file(tmp_path):
    cfg = load_run_config(TINY_RUN, [f"--output_dir={tmp_path / 'run'}"])
    job = TrainJob(cfg)
    assert cfg.policy.num_image_views is None  # the config file leaves it to X-VLA
    build_policy(cfg.policy)  # what SFT / the learner do: X-VLA fills in num_image_views on the config
    cfg.policy_path = str(job.sft_dir)  # what TrainJob.run records before RL
    saved = tmp_path / "run_config.json"
    save_run_config(cfg, saved)
    assert json.loads(saved.read_text())["policy"]["num_image_views"] == 2  # the saved file differs from the source

    again = TrainJob(load_run_config(saved))
    assert (again.demo_key, again.sft_key, again.sft_eval) == (job.demo_key, job.sft_key, job.sft_eval)
    # a policy setting that matters still changes the key
    other = TrainJob(load_run_config(saved, ["--policy.num_image_views=3"]))
    assert other.sft_key != job.sft_key and other.demo_key == job.demo_key


def test_a_users_policy_path_skips_demos_and_sft_and_the_report_says_so(tmp_path):
    """``pirlctl train --policy_path DIR``: no demos, no SFT; the start evaluation and RL use DIR. The job's own SFT
    folder, as a run folder's run_config.json records it, is not a user's folder: its stages are reused."""
    from pirlctl.pipeline.train_job import STAGE_DEMOS, STAGE_SFT, TrainJobReport
    from pirlctl.reporting.report import write_report

    folder = tmp_path / "lerobot_policy"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    events: list[tuple[str, str]] = []
    cfg = load_run_config(TINY_RUN, [f"--output_dir={tmp_path / 'run'}", f"--policy_path={folder}"])
    cfg.pipeline.cache_dir = str(tmp_path / "cache")
    job = TrainJob(cfg, on_event=lambda stage, msg: events.append((stage, msg)))
    job.pretrain()
    assert job.sft_dir == folder.resolve() and job.skipped == [STAGE_DEMOS, STAGE_SFT]
    assert [stage for stage, _ in events] == [STAGE_DEMOS, STAGE_SFT]
    assert all(f"skipped: starting from --policy_path {folder}" in msg for _, msg in events)
    assert not (tmp_path / "cache").exists()  # nothing recorded, nothing trained
    plain = TrainJob(load_run_config(TINY_RUN, [f"--output_dir={tmp_path / 'run'}"]))
    assert job.sft_eval != plain.sft_eval  # the start evaluation is the folder's, cached apart
    (folder / "model.safetensors").write_bytes(b"0")
    assert TrainJob(cfg).sft_eval != job.sft_eval  # and redone when the folder's files change

    own = load_run_config(TINY_RUN, [f"--output_dir={tmp_path / 'run'}"])
    own.policy_path = str(plain.sft_dir)
    assert TrainJob(own).user_policy is None

    report = TrainJobReport(
        str(tmp_path / "run"),
        0.1,
        (0.0, 0.2),
        0.2,
        (0.1, 0.3),
        10,
        16,
        1,
        1.0,
        2.0,
        "m",
        "r.md",
        "c.png",
        stages_skipped=job.skipped,
        start_policy=str(job.sft_dir),
    )
    (tmp_path / "run").mkdir()
    ev = {"success_rate": 0.5, "ci95_low": 0.2, "ci95_high": 0.8, "mean_return": 0.5, "episodes": 4}
    text = write_report(report, cfg, tmp_path / "run" / "report.md", sft_eval=ev, rl_eval=ev, train=[])
    assert f"| stages skipped | demos, sft (started from {folder.resolve()}) |" in text
    assert "| start policy (--policy_path) | 50.0% |" in text


def test_image_shift_keys_its_own_sft_policy_and_leaves_the_unshifted_key_as_it_was(tmp_path):
    from pirlctl.pipeline.train_job import _key, policy_key_json

    cfg = load_run_config(TINY_RUN, [f"--output_dir={tmp_path / 'run'}"])
    job = TrainJob(cfg)
    p = cfg.pipeline
    # the key before algorithm.image_shift existed: cached SFT policies of unshifted runs are still found
    assert job.sft_key == _key(job.demo_key, policy_key_json(cfg), p.sft_steps, p.sft_batch_size, p.sft_lr, cfg.seed)
    shifted = TrainJob(load_run_config(TINY_RUN, [f"--output_dir={tmp_path / 'run'}", "--algorithm.image_shift=4"]))
    assert shifted.demo_key == job.demo_key  # the same demos ...
    assert shifted.sft_key != job.sft_key and shifted.sft_eval != job.sft_eval  # ... another SFT policy and its eval


def test_demos_and_sft_run_at_the_configs_torch_threads(tmp_path, monkeypatch):
    """Behaviour cloning runs in the `pirlctl train` / `pirlctl pretrain` process itself: it honours
    ``runtime.torch_threads`` as the learner, actors and evaluation do (at torch's default it ran ~15x slower on a
    loaded 2-core machine)."""
    import torch

    from pirlctl.pipeline import demos, sft

    seen: dict[str, int] = {}

    def fake_demos(*args, **kwargs):
        seen["demos"] = torch.get_num_threads()
        return type("Demos", (), {"reused": True})()

    def fake_clone(*args, **kwargs):
        seen["sft"] = torch.get_num_threads()
        return type("SFT", (), {"reused": True})()

    monkeypatch.setattr(demos, "record_demos", fake_demos)
    monkeypatch.setattr(sft, "behaviour_clone", fake_clone)
    before = torch.get_num_threads()
    want = 2 if before == 1 else 1
    try:
        cfg = load_run_config(TINY_RUN, [f"--output_dir={tmp_path / 'run'}", f"--runtime.torch_threads={want}"])
        TrainJob(cfg).pretrain()
    finally:
        torch.set_num_threads(before)
    assert seen == {"demos": want, "sft": want}


def test_a_failed_childs_reason_is_its_last_error_line_else_its_last_line():
    # the learner and the evaluation children both end the job with this line
    from pirlctl.pipeline.train_job import _last_error_line

    out = "loading\nerror: port 50061 is held; pass --runtime.learner_port\nshutting down\n"
    assert _last_error_line(out) == "port 50061 is held; pass --runtime.learner_port"
    assert _last_error_line("one\n  two  \n\n") == "two"
    assert _last_error_line("") == "no output"


def test_rl_stopped_early_is_one_line_naming_what_was_saved_and_ctrl_c_exits_130(tmp_path):
    """Ctrl-C (or every actor failing) stops RL without evaluating: one line, the checkpoint, how to resume."""
    import pytest
    import typer

    from pirlctl.cli.common import run_or_exit
    from pirlctl.errors import StoppedByUserError
    from pirlctl.pipeline.train_job import ActorsGoneError

    job = TrainJob(load_run_config(TINY_RUN, [f"--output_dir={tmp_path / 'run'}"]))
    job.run_dir.mkdir(parents=True)
    with pytest.raises(StoppedByUserError, match="RL interrupted: no checkpoint was saved yet; run the same command"):
        job._stopped_early(interrupted=True)
    (job.run_dir / "actor0.stderr").write_text("loading\nerror: env.type='pusht' needs gym_pusht; pip install ...\n")
    with pytest.raises(ActorsGoneError) as err:
        job._stopped_early(interrupted=False)
    assert "every actor exited before RL finished (actor0: env.type='pusht' needs gym_pusht" in str(err.value)

    def interrupted():
        raise StoppedByUserError("RL interrupted: ...")

    with pytest.raises(typer.Exit) as exit_:
        run_or_exit(interrupted)
    assert exit_.value.exit_code == 130  # as for SIGINT; other known errors exit 2
