"""The tiny offline builds of π0, π0.5 and SmolVLA: nothing process-global outlives them, and they reload."""

from __future__ import annotations

import importlib
import json

import pytest

from pirlctl.configs import CONFIGS_DIR
from pirlctl.lerobot_compat import LeRobotCompatError
from pirlctl.policies.loading import build_policy, load_policy_config
from pirlctl.policies.tiny_builds import check_tiny_build_targets, is_tiny, patched_attributes, tiny_build


@pytest.mark.parametrize("kind", ["pi0", "pi05", "smolvla"])
def test_tiny_build_restores_every_patched_attribute_also_on_error(kind):
    before = patched_attributes()
    with pytest.raises(RuntimeError, match="boom"), tiny_build(kind):
        assert patched_attributes() != before  # the swap is really in place inside the block
        raise RuntimeError("boom")
    assert patched_attributes() == before


def test_a_config_without_the_tag_builds_full_size_code_paths():
    cfg = load_policy_config(CONFIGS_DIR / "policy" / "tiny_pi0.json")
    assert is_tiny(cfg)
    cfg.tags = None
    assert not is_tiny(cfg)


def test_a_moved_lerobot_internal_fails_loudly(monkeypatch):
    mod = importlib.import_module("lerobot.policies.pi0.modeling_pi0")
    monkeypatch.setattr(mod, "get_gemma_config", None)
    with pytest.raises(LeRobotCompatError, match="get_gemma_config; update pirlctl.policies.tiny_builds"):
        check_tiny_build_targets("pi0")


@pytest.mark.parametrize("kind", ["pi0", "pi05", "smolvla"])
def test_saved_tiny_checkpoint_reloads_in_a_fresh_process(kind, tmp_path, child_json):
    cfg = load_policy_config(CONFIGS_DIR / "policy" / f"tiny_{kind}.json")
    policy = build_policy(cfg)
    policy.save_pretrained(tmp_path / "ckpt")
    code = (
        "import json, sys, torch\n"
        "from safetensors.torch import load_file\n"
        "from pirlctl.policies.loading import build_policy, load_policy_config\n"
        "from pirlctl.policies.tiny_builds import patched_attributes\n"
        "before = patched_attributes()\n"
        "cfg = load_policy_config(sys.argv[1] + '/config.json')\n"
        "p = build_policy(cfg, sys.argv[1])\n"
        "saved = load_file(sys.argv[1] + '/model.safetensors')\n"
        "sd = p.state_dict()\n"
        "same = all(torch.equal(sd[k], v) for k, v in saved.items())\n"
        "print(json.dumps({'same': same, 'n': len(saved), 'clean': patched_attributes() == before}))\n"
    )
    out = child_json(code, str(tmp_path / "ckpt"))
    assert out == {"same": True, "n": out["n"], "clean": True} and out["n"] > 10
    assert "pirlctl-tiny" in json.loads((tmp_path / "ckpt" / "config.json").read_text())["tags"]


def test_policy_config_loads_first_thing_in_a_fresh_process(child_json):
    code = (
        "import json\n"
        "from pirlctl.configs import CONFIGS_DIR\n"
        "from pirlctl.policies.loading import load_policy_config\n"
        "print(json.dumps([load_policy_config(CONFIGS_DIR / 'policy' / f'tiny_{k}.json').type "
        "for k in ('pi0', 'pi05', 'smolvla')]))\n"
    )
    assert child_json(code) == ["pi0", "pi05", "smolvla"]
