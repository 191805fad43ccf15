"""A policy trained by LeRobot's own training entry point (`lerobot.scripts.lerobot_train.train`, 3 steps on demos
recorded by pirlctl's demo stage, MEAN_STD statistics, LeRobot's full X-VLA pipeline with its tokenizer step) runs
PI-RL under pirlctl: learner and actor processes start from the `pretrained_model/` folder its checkpoint writes, with
``--policy_path``, through the processors saved in it; a folder with a missing or mismatched statistics file is
refused in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from pirlctl.config.run_config import encode_run_config, load_run_config
from pirlctl.metrics import read_metrics
from pirlctl.policies.processors import ProcessorError
from pirlctl.runtime import checkpoint as ckpt

from .procs import ROOT, TINY_RUN, env, free_port, report, spawn

pytestmark = pytest.mark.integration

# LeRobot 0.6.1's own training entry point (lerobot/scripts/lerobot_train.py: `train(cfg)`, what `lerobot-train` runs)
# on the demos dataset, offline and a few steps: dataset statistics, make_policy, make_pre_post_processors, Accelerate,
# the policy preset's optimizer and scheduler, and its save_checkpoint, which writes
# <output_dir>/checkpoints/000003/pretrained_model/ (config, weights, both processor pipelines, train_config.json).
_LEROBOT_TRAIN = r"""
import sys
from pathlib import Path
import draccus
from lerobot.configs.default import DatasetConfig, WandBConfig
from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.train import TrainPipelineConfig
from lerobot.configs.types import NormalizationMode
from lerobot.scripts.lerobot_train import train

policy_json, dataset_root, tokenizer_dir, out = sys.argv[1:5]
sys.argv = sys.argv[:1]  # TrainPipelineConfig.validate reads --policy.path etc. from the command line
with draccus.config_type("json"):
    policy = draccus.parse(PreTrainedConfig, policy_json, args=[])
policy.normalization_mapping = {"VISUAL": NormalizationMode.IDENTITY, "STATE": NormalizationMode.MEAN_STD,
                                "ACTION": NormalizationMode.MEAN_STD}
policy.tokenizer_name = tokenizer_dir
policy.push_to_hub = False
cfg = TrainPipelineConfig(
    dataset=DatasetConfig(repo_id="pirlctl/demos", root=dataset_root), policy=policy, output_dir=Path(out),
    steps=3, batch_size=4, num_workers=0, save_checkpoint=True, env_eval_freq=0, log_freq=1, seed=0,
    wandb=WandBConfig(enable=False),
)
train(cfg)
assert not any(m == "pirlctl" or m.startswith("pirlctl.") for m in sys.modules), "pirlctl was imported"
"""

# pirlctl's own demo stage (pipeline/demos.py: the scripted picker, rendered cameras), two episodes, in a process of
# its own (one image env per process: pick_cube.py)
_RECORD_DEMOS = r"""
import sys
from pirlctl.config.run_config import load_run_config
from pirlctl.pipeline.demos import record_demos

record_demos(load_run_config(sys.argv[1]).env, sys.argv[2], episodes=2, noise_std=0.0, aim_error=0.0)
"""

NORMALIZER_STATE = "policy_preprocessor_step_7_normalizer_processor.safetensors"  # LeRobot's X-VLA pipeline


def _local_tokenizer(folder):
    """A word-level tokenizer saved to a local folder (X-VLA's own, facebook/bart-large, is hub-only)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "pick": 4, "up": 5, "the": 6, "cube": 7}
    tk = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>").save_pretrained(folder)
    return folder


def _child(code, *args):
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env(), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


@pytest.fixture(scope="module")
def lerobot_folder(tmp_path_factory):
    """A tiny X-VLA trained 3 steps (batch 4) by LeRobot's `train` on demos recorded by pirlctl's demo stage."""
    root = tmp_path_factory.mktemp("lerobot")
    demos = root / "demos"
    _child(_RECORD_DEMOS, str(TINY_RUN), str(demos))
    (root / "policy.json").write_text(json.dumps(encode_run_config(load_run_config(TINY_RUN))["policy"]))
    args = [str(root / "policy.json"), str(demos), str(_local_tokenizer(root / "tok")), str(root / "train")]
    _child(_LEROBOT_TRAIN, *args)
    checkpoints = root / "train" / "checkpoints"
    assert (checkpoints / "last").resolve() == (checkpoints / "000003").resolve()  # LeRobot's last = step 3
    folder = checkpoints / "000003" / "pretrained_model"
    assert (folder / NORMALIZER_STATE).is_file() and (folder / "train_config.json").is_file()
    return folder


def _run_config(policy_path):
    return load_run_config(TINY_RUN, [f"--policy_path={policy_path}"])


def test_the_lerobot_folders_processors_normalise_tokenise_and_reach_the_wire_check(lerobot_folder):
    from pirlctl.runtime.build import expected_observation_shapes, run_processors

    cfg = _run_config(lerobot_folder)
    procs = run_processors(cfg)
    assert procs.tokenizes  # the folder's own tokenizer step (a local tokenizer), not pirlctl's offline one
    state = load_file(str(lerobot_folder / NORMALIZER_STATE))
    assert float(state["observation.state.std"].min()) > 0 and float(state["action.mean"].abs().max()) > 0.05
    obs = {k: torch.rand(2, *f.shape) for k, f in cfg.policy.input_features.items()}
    out = procs.preprocess(obs, cfg.env.instruction)
    assert not torch.allclose(out["observation.state"], obs["observation.state"])  # MEAN_STD applied
    shapes = expected_observation_shapes(
        cfg.policy, int(cfg.policy.tokenizer_max_length), 0, procs, cfg.env.instruction
    )
    assert shapes["observation.language.attention_mask"] == (8,) and shapes["domain_id"] == ()


@pytest.mark.slow  # LeRobot's training child, then a learner and an actor process: ~1.5 min on 2 busy cores
def test_a_policy_trained_by_lerobot_runs_one_ppo_iteration_with_on_policy_log_ratio_below_1e_6(
    lerobot_folder, tmp_path
):
    out, port = tmp_path / "run", free_port()
    args = [f"--policy_path={lerobot_folder}", "--runtime.total_env_steps=16", "--runtime.rollout_chunks=4"]
    learner = spawn("learner", out, port, *args)
    actor = spawn("actor", out, port, *args)
    a, lr = report(actor), report(learner)
    assert lr["iterations"] == 1 and a["chunks_sent"] >= 4
    (train,) = read_metrics(out / "metrics.jsonl", "train")
    assert abs(train["train/onpolicy_max_abs_log_ratio"]) < 1e-6
    assert "task tokens from the policy's preprocessor" in (tmp_path / "run-actor0.stderr").read_text()
    # the checkpoint carries the folder's processors, statistics unchanged
    saved = ckpt.verify_checkpoint(out).path / "pretrained_model"
    for name in ("policy_preprocessor.json", "policy_postprocessor.json", NORMALIZER_STATE):
        assert (saved / name).is_file(), name
    ours, theirs = load_file(str(saved / NORMALIZER_STATE)), load_file(str(lerobot_folder / NORMALIZER_STATE))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_planted_missing_or_mismatched_stats_file_is_refused_in_one_line(lerobot_folder, tmp_path):
    from pirlctl.runtime.build import run_processors

    missing = tmp_path / "missing"
    shutil.copytree(lerobot_folder, missing)
    (missing / NORMALIZER_STATE).unlink()
    cmd = [sys.executable, "-m", "pirlctl", "learner", "--config_path", str(TINY_RUN)]
    cmd += [f"--output_dir={tmp_path / 'run'}", f"--runtime.learner_port={free_port()}", f"--policy_path={missing}"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, timeout=180)
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{missing / NORMALIZER_STATE} is missing" in errors[0], res.stderr[-2000:]
    assert "Traceback" not in res.stderr

    wrong = tmp_path / "wrong"
    shutil.copytree(lerobot_folder, wrong)
    state = load_file(str(wrong / NORMALIZER_STATE))
    state["observation.state.mean"] = torch.zeros(5)
    save_file(state, str(wrong / NORMALIZER_STATE))
    with pytest.raises(ProcessorError, match=r"'observation.state' mean has shape \[5\]") as err:
        run_processors(_run_config(wrong))
    assert "\n" not in str(err.value)
