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
