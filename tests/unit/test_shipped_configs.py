"""The configs shipped in the package: one base plus small overlays, resolved into what the full files held."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pirlctl.config.run_config import RunConfigError, encode_run_config, load_run_config, save_run_config
from pirlctl.configs import BASE_KEY, CONFIGS_DIR, DEFAULT_RUN_CONFIG, builtin_names, read_config_dict
from pirlctl.errors import one_line

SHIPPED = [
    "metaworld_push_tiny",
    "pick_cube_tiny",
    "pick_cube_tiny_1actor",
    "pick_cube_tiny_flow_noise",
    "pick_cube_tiny_grpo",
    "pick_cube_tiny_pi0",
    "pick_cube_tiny_pi05",
    "pick_cube_tiny_pixels",
    "pick_cube_tiny_pixels_96",
    "pick_cube_tiny_pixels_exact_demos",
    "pick_cube_tiny_pixels_full_range",
    "pick_cube_tiny_pixels_grpo",
    "pick_cube_tiny_smolvla",
]
STATE = "policy.input_features.observation.state.shape"


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def settings(name: str) -> dict[str, Any]:
    return flat(encode_run_config(load_run_config(name)))


def test_the_package_ships_its_configs_and_the_default_is_the_base():
    assert builtin_names() == SHIPPED
    assert DEFAULT_RUN_CONFIG == CONFIGS_DIR / "pick_cube_tiny.json" and DEFAULT_RUN_CONFIG.is_file()
    assert BASE_KEY not in json.loads(DEFAULT_RUN_CONFIG.read_text())  # the base stands on the policy config only


def test_the_default_keeps_the_settings_of_the_former_full_file():
    # checked by hand against the 258-line configs/pick_cube_tiny.json these files replace (git 64e39bd): equal in
    # every field but the two schedules, now fractions (18 / 22 iterations -> 0.84 / 1.0 of the planned 22)
    s = settings("pick_cube_tiny")
    want = {
        "policy.type": "xvla",
        STATE: [21],
        "policy.max_state_dim": 21,
        "policy.chunk_size": 8,
        "policy.n_action_steps": 4,
        "algorithm.noise_method": "flow_sde",
        "algorithm.noise_level": 0.5,
        "algorithm.noise_level_final": 0.2,
        "algorithm.noise_anneal_frac": 0.84,
        "algorithm.logprob_reduction": "token_level",
        "algorithm.n_exec": 4,
        "algorithm.target_kl": 0.03,
        "algorithm.actor_lr": 6e-5,
        "algorithm.actor_lr_final": 0.0,
        "algorithm.lr_anneal_frac": 1.0,
        "algorithm.value_lr": 1e-3,
        "algorithm.critic_warmup_iters": 1,
        "algorithm.critic_privileged_dim": 4,
        "env.cube_range": 0.03,
        "env.render_geometry": "collision",
        "env.shaping": 1.0,
        "env.observe_cube": True,
        "runtime.num_actors": 2,
        "runtime.rollout_chunks": 256,
        "runtime.total_env_steps": 45000,
        "runtime.checkpoint_every": 2,
        "pipeline.demo_episodes": 40,
        "pipeline.demo_aim_bias": [0.0, 0.0275, 0.0],
        "pipeline.demo_keep_failures": True,
        "pipeline.eval_episodes": 100,
        "output_dir": "runs/pick_cube_tiny",
    }
    assert {k: s[k] for k in want} == want


PIXELS = {
    STATE: [18],
    "policy.max_state_dim": 18,
    "env.observe_cube": False,
    "runtime.total_env_steps": 75000,
    "pipeline.demo_episodes": 20,
    "pipeline.demo_aim_bias": [0.0, 0.02, 0.0],
    "pipeline.demo_keep_failures": False,
}

# GRPO: critic-free, so no critic warm-up and no privileged state for a critic
GRPO = {
    "algorithm.advantage": "grpo",
    "algorithm.critic_warmup_iters": 0,
    "algorithm.critic_privileged_dim": 0,
}


@pytest.mark.parametrize(
    ("name", "differences"),
    [
        ("pick_cube_tiny_flow_noise", {"algorithm.noise_method": "flow_noise"}),
        ("pick_cube_tiny_1actor", {"runtime.num_actors": 1, "runtime.rollout_chunks": 512}),
        ("pick_cube_tiny_pixels", PIXELS),
        ("pick_cube_tiny_pixels_exact_demos", {**PIXELS, "pipeline.demo_aim_bias": [0.0, 0.0, 0.0]}),
        ("pick_cube_tiny_pixels_full_range", {**PIXELS, "env.cube_range": None}),
        (
            "pick_cube_tiny_pixels_96",
            {
                **PIXELS,
                "env.image_size": 96,
                "policy.input_features.observation.images.front.shape": [3, 96, 96],
                "policy.input_features.observation.images.wrist.shape": [3, 96, 96],
            },
        ),
        ("pick_cube_tiny_grpo", GRPO),
        ("pick_cube_tiny_pixels_grpo", {**PIXELS, **GRPO}),
    ],
)
def test_each_overlay_differs_from_the_default_in_exactly_the_fields_the_former_full_file_did(name, differences):
    base, s = settings("pick_cube_tiny"), settings(name)
    assert set(s) == set(base)
    got = {k: v for k, v in s.items() if v != base[k] and k not in ("output_dir", "job_name")}
    assert got == differences
    assert s["output_dir"] == f"runs/{name}"


def test_the_saved_run_config_is_complete_and_loads_on_its_own(tmp_path):
    cfg = load_run_config("pick_cube_tiny_pixels", ["--runtime.total_env_steps=9000"])
    saved = tmp_path / "elsewhere" / "run_config.json"
    saved.parent.mkdir()
    save_run_config(cfg, saved)
    data = json.loads(saved.read_text())
    assert BASE_KEY not in data and BASE_KEY not in data["policy"] and data["policy"]["type"] == "xvla"
    assert encode_run_config(load_run_config(saved)) == encode_run_config(cfg)


def test_a_users_overlay_builds_on_a_builtin_config_by_name_from_any_folder(tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"base": "pick_cube_tiny_flow_noise.json", "runtime": {"total_env_steps": 90000}}))
    cfg = load_run_config(mine, ["--seed=3"])
    assert cfg.pirl.noise_method == "flow_noise" and cfg.runtime.total_env_steps == 90000 and cfg.seed == 3
    assert cfg.runtime.num_actors == 2 and list(cfg.policy.robot_state_feature.shape) == [21]


def test_a_base_next_to_the_file_wins_over_the_builtin_of_that_name(tmp_path):
    (tmp_path / "pick_cube_tiny.json").write_text(json.dumps(read_config_dict(DEFAULT_RUN_CONFIG) | {"seed": 7}))
    (tmp_path / "over.json").write_text(json.dumps({"base": "pick_cube_tiny.json"}))
    assert load_run_config(tmp_path / "over.json").seed == 7


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.json": {"base": "b.json"}, "b.json": {"base": "a.json"}}, "loop"),
        ({"a.json": {"base": "nowhere.json"}}, "'nowhere.json' not found"),
        ({"a.json": {"policy": {"base": "policy/none.json"}}}, "policy base='policy/none.json' not found"),
        ({"a.json": {"base": 3}}, "base=3 is invalid"),
        ({"a.json": [1, 2]}, "not a JSON object"),
    ],
)
def test_broken_bases_fail_in_one_line_naming_the_file(tmp_path, files, message):
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    with pytest.raises(RunConfigError) as err:
        load_run_config(tmp_path / "a.json")
    assert message in str(err.value) and str(tmp_path) in str(err.value)
    assert len(one_line(err.value).splitlines()) == 1


def test_an_unknown_name_lists_the_builtin_configs():
    with pytest.raises(RunConfigError, match="pick_cube_tiny_flow_noise") as err:
        load_run_config("pick_cube_huge")
    assert "pick_cube_huge not found" in str(err.value) and "did you mean" not in str(err.value)
    with pytest.raises(RunConfigError, match="did you mean pick_cube_tiny_pixels[?]"):
        load_run_config("pick_cube_tiny_pixel")  # a typo of a shipped name


@pytest.mark.parametrize(
    ("old", "new"), [("noise_anneal_iters", "noise_anneal_frac"), ("lr_anneal_iters", "lr_anneal_frac")]
)
def test_a_run_config_of_an_older_version_is_refused_in_one_line_naming_the_new_field(tmp_path, old, new):
    data = encode_run_config(load_run_config(DEFAULT_RUN_CONFIG))
    data["algorithm"].pop(new)
    data["algorithm"][old] = 18
    saved = Path(tmp_path / "run_config.json")
    saved.write_text(json.dumps(data))
    with pytest.raises(RunConfigError) as err:
        load_run_config(saved)
    msg = one_line(err.value)
    assert f"algorithm.{old}=18" in msg and f"algorithm.{new}" in msg and len(msg.splitlines()) == 1
