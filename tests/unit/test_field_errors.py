"""Config typos and wrong types: one line naming the setting and the closest valid names or the expected type;
never draccus's usage dump (flags are checked in-process here, and through the real CLI below)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pirlctl.config.field_errors import ConfigFieldError, split_overrides, type_name
from pirlctl.config.run_config import load_run_config
from pirlctl.errors import one_line
from pirlctl.policies.loading import DEFAULT_RUN_CONFIG

REPO_ROOT = Path(__file__).resolve().parents[2]


def _edited(tmp_path: Path, section: str, key: str, value) -> Path:
    data = json.loads(Path(DEFAULT_RUN_CONFIG).read_text())
    data[section][key] = value
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("section", "typo", "suggestion"),
    [
        ("algorithm", "clip_ratoi", "algorithm.clip_ratio"),  # a ChoiceRegistry field: PiRLConfig by its type
        ("policy", "chunk_sizee", "policy.chunk_size"),  # the other one: XVLAConfig by its type
        ("runtime", "num_actrs", "runtime.num_actors"),  # a plain nested dataclass
    ],
)
def test_unknown_key_in_a_file_names_it_with_the_closest_valid_name(tmp_path, section, typo, suggestion):
    path = _edited(tmp_path, section, typo, 1)
    with pytest.raises(ConfigFieldError) as err:
        load_run_config(path)
    msg = one_line(err.value)
    assert msg == str(err.value)  # already one line
    assert msg.startswith(f"unknown setting {section}.{typo} (file {path})") and suggestion in msg


def test_wrong_type_in_a_file_names_the_field_and_the_expected_type(tmp_path):
    path = _edited(tmp_path, "algorithm", "clip_ratio", "abc")
    with pytest.raises(
        ConfigFieldError, match=r"^algorithm\.clip_ratio='abc' \(file .*run\.json\) is not a valid float"
    ):
        load_run_config(path)


def test_wrong_type_in_a_nested_section_of_a_file(tmp_path):
    path = _edited(tmp_path, "runtime", "num_actors", [1, 2])
    with pytest.raises(ConfigFieldError, match=r"^runtime\.num_actors=\[1, 2\] .* is not a valid int; give an int"):
        load_run_config(path)


def test_flag_typo_in_a_section_name_keeps_the_field_in_the_suggestion():
    with pytest.raises(ConfigFieldError, match=r"unknown setting algorithmm\.gamma .*did you mean algorithm\.gamma\?"):
        load_run_config(DEFAULT_RUN_CONFIG, ["--algorithmm.gamma=0.9"])


def test_flag_with_a_wrong_type_names_the_flag_and_the_type():
    with pytest.raises(ConfigFieldError, match=r"flag --algorithm\.clip_ratio=abc\) is not a valid float"):
        load_run_config(DEFAULT_RUN_CONFIG, ["--algorithm.clip_ratio=abc"])
    with pytest.raises(ConfigFieldError, match=r"env\.cameras='front' .* is not a valid list\[str\]; .*JSON syntax"):
        load_run_config(DEFAULT_RUN_CONFIG, ["--env.cameras=front"])


def test_unknown_algorithm_type_suggests_the_registered_one():
    with pytest.raises(ConfigFieldError, match=r"unknown algorithm\.type 'pi_rll' .*did you mean pi_rl\?"):
        load_run_config(DEFAULT_RUN_CONFIG, ["--algorithm.type=pi_rll"])


def test_a_section_given_a_value_says_so():
    with pytest.raises(ConfigFieldError, match=r"^runtime=3 .* is a group of settings, not a value"):
        load_run_config(DEFAULT_RUN_CONFIG, ["--runtime=3"])


def test_valid_overrides_in_both_spellings_still_load():
    cfg = load_run_config(
        DEFAULT_RUN_CONFIG,
        ["--runtime.num_actors", "2", "--algorithm.clip_ratio=0.3", '--env.cameras=["front"]', "--job_name=null"],
    )
    assert cfg.runtime.num_actors == 2 and cfg.pirl.clip_ratio == 0.3 and cfg.env.cameras == ["front"]


def test_split_overrides_refuses_what_draccus_would_dump_usage_for():
    assert split_overrides(["--a.b=c", "--d", "e"]) == {"a.b": "c", "d": "e"}
    with pytest.raises(ConfigFieldError, match="unexpected argument 'stray'"):
        split_overrides(["stray"])
    with pytest.raises(ConfigFieldError, match="--a.b has no value; write --a.b=VALUE"):
        split_overrides(["--a.b", "--c=1"])


def test_type_name_reads_as_a_user_writes_it():
    assert type_name(float) == "float"
    assert type_name(list[float]) == "list[float]"
    assert type_name(str | None) == "str or null"


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("--algorithm.clip_ratoi=0.3", "unknown setting algorithm.clip_ratoi"),
        ("--algorithm.clip_ratio=abc", "algorithm.clip_ratio='abc'"),
    ],
)
def test_learner_cli_prints_one_line_not_the_usage_dump(flag, expected):
    res = subprocess.run(
        [sys.executable, "-m", "pirlctl", "learner", "--config_path", str(DEFAULT_RUN_CONFIG), flag],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    lines = [line for line in (res.stdout + res.stderr).splitlines() if line.strip()]
    assert res.returncode == 2
    assert len(lines) == 1, lines[:20]
    assert expected in lines[0]
    if "clip_ratoi" in flag:
        assert "did you mean algorithm.clip_ratio?" in lines[0]
    else:
        assert "not a valid float" in lines[0]


def test_what_draccus_still_rejects_becomes_one_line_and_pirl_validation_passes_through():
    from draccus.utils import DecodingError

    from pirlctl.algorithms.pi_rl import PiRLConfigError
    from pirlctl.config.field_errors import draccus_errors

    with pytest.raises(ConfigFieldError, match=r"^a\.b \(run\.json\): bad value$"), draccus_errors("run.json"):
        raise DecodingError(("a", "b"), "bad value\nand 500 more lines")
    with pytest.raises(DecodingError) as caught, draccus_errors("run.json"):  # left as raised: one_line finds it
        try:
            raise PiRLConfigError("own check")
        except PiRLConfigError as err:
            raise DecodingError(("algorithm",), "Could not decode") from err
    assert one_line(caught.value) == "own check"
