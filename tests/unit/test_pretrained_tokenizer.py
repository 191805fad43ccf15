"""A pretrained π0 / π0.5 / SmolVLA checkpoint whose tokenizer is not in the local HF cache is refused in one line
that names what to download and where (issue 19): hashed tokens would mean nothing to its VLM."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from pirlctl.configs import CONFIGS_DIR
from pirlctl.errors import PirlError
from pirlctl.policies import language
from pirlctl.policies.language import TokenizerMissingError
from pirlctl.policies.loading import build_policy, load_policy_config

from ..integration.procs import ROOT, env

KINDS = ("pi0", "pi05", "smolvla")
ABSENT = "pirl-test/no-such-tokenizer"


def _config(kind):
    return load_policy_config(CONFIGS_DIR / "policy" / f"tiny_{kind}.json")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each tiny build saved by LeRobot's own ``save_pretrained`` (config, weights; no processor files)."""
    root = tmp_path_factory.mktemp("pretrained")
    for kind in KINDS:
        torch.manual_seed(0)
        build_policy(_config(kind)).save_pretrained(root / kind)
    return root


@pytest.mark.parametrize("kind", KINDS)
def test_a_real_size_checkpoint_with_an_uncached_tokenizer_is_refused_naming_what_to_download(
    folders, kind, monkeypatch
):
    from huggingface_hub.constants import HF_HUB_CACHE

    cfg = _config(kind)
    assert build_policy(cfg, folders / kind) is not None  # tiny (hashing vocabulary): the same folder loads
    cfg.tags = None  # a real-size vocabulary: the pretrained model's own tokenizer is required
    if kind == "smolvla":
        cfg.vlm_model_name = ABSENT
    else:
        monkeypatch.setitem(language.TOKENIZER_NAMES, kind, ABSENT)
    with pytest.raises(TokenizerMissingError) as err:
        build_policy(cfg, folders / kind)
    msg = str(err.value)
    assert isinstance(err.value, PirlError) and "\n" not in msg
    assert f"the tokenizer {ABSENT!r} of the {kind} checkpoint {folders / kind}" in msg
    assert f"hf download {ABSENT}" in msg and str(HF_HUB_CACHE) in msg


def test_the_cli_refuses_a_pi0_checkpoint_without_its_tokenizer_in_one_line(folders, tmp_path):
    """Through ``pirlctl verify-sync`` with an empty HF cache (HF_HOME) and offline: exit 2, one error line."""
    run_cfg = tmp_path / "pi0_real_vocab.json"
    run_cfg.write_text(json.dumps({"base": "pick_cube_tiny_pi0.json", "policy": {"tags": []}}))
    cache = tmp_path / "empty_hf_home"
    cmd = [sys.executable, "-m", "pirlctl", "verify-sync", "--config_path", str(run_cfg)]
    cmd += [f"--policy_path={folders / 'pi0'}", f"--output_dir={tmp_path / 'run'}"]
    res = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, timeout=180, env={**env(), "HF_HOME": str(cache)}
    )
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    errors = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr[-2000:]
    assert "'google/paligemma-3b-pt-224' of the pi0 checkpoint" in errors[0]
    assert "hf download google/paligemma-3b-pt-224" in errors[0] and str(cache / "hub") in errors[0]
    assert "Traceback" not in res.stderr
