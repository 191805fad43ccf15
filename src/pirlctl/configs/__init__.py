"""The run configs shipped inside the package, and how one config file builds on another.

A run config is a JSON file in draccus' encoding of ``PiRLRunConfig``; fields it leaves out take the dataclass
defaults. Two keys keep the shipped files small (``README.md`` next to them says why each value is what it is):

- a top-level ``"base": "OTHER.json"``: the config is OTHER (itself read this way) with this file's keys merged
  over it. Dicts merge key by key; any other value, lists included, replaces the base's.
- ``"policy": {"base": "policy/tiny_xvla.json", ...}``: the policy config is read from that file and the dict's
  other keys are merged over it the same way. Such a policy is whole: in a file that also has a top-level ``base``
  it replaces that base's policy instead of merging into it (how ``pick_cube_tiny_pi0.json`` swaps X-VLA for π0).

A ``base`` path is relative to the file that names it; when no such file exists there, it names a built-in config
(so a user's overlay may say ``"base": "pick_cube_tiny.json"`` from anywhere). ``--config_path`` takes a path or
the name of a built-in config (``pick_cube_tiny_flow_noise``). The run folder's ``run_config.json`` is always
written complete, without ``base``, so it loads anywhere on its own.

Only the standard library is imported here: ``pirlctl --help`` reads the default config's path from this module.
"""

from __future__ import annotations

import difflib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from pirlctl.errors import PirlError

# The package's own folder (pip installs wheels unzipped, so it is a real directory).
CONFIGS_DIR = Path(str(resources.files(__name__)))
DEFAULT_RUN_CONFIG = CONFIGS_DIR / "pick_cube_tiny.json"  # the default of train, pretrain, checklist...
TINY_XVLA_CONFIG = CONFIGS_DIR / "policy" / "tiny_xvla.json"
BASE_KEY = "base"


class ConfigFileError(PirlError, ValueError):
    """A run config file cannot be found or read; the message names the file and the fix."""


def builtin_names() -> list[str]:
    """Names of the shipped run configs (``pick_cube_tiny``, ...), for ``--config_path NAME``."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.json"))


def resolve_config_path(path_or_name: str | Path) -> Path:
    """An existing file, else the built-in config of that name (with or without ``.json``)."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    if p.parent == Path("."):
        builtin = CONFIGS_DIR / (p.name if p.suffix == ".json" else f"{p.name}.json")
        if builtin.is_file():
            return builtin
    names = builtin_names()
    close = difflib.get_close_matches(p.stem, names, n=1, cutoff=0.8) if p.parent == Path(".") else []
    hint = f"did you mean {close[0]}? " if close else ""
    raise ConfigFileError(
        f"run config {path_or_name} not found; {hint}pass --config_path a JSON file or a built-in config "
        f"({', '.join(names)})"
    )


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: dicts key by key, everything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigFileError(f"run config {path} is not valid JSON (line {err.lineno}): {err.msg}") from err
    if not isinstance(data, dict):
        raise ConfigFileError(f"run config {path} is not a JSON object; a run config maps field names to values")
    return data


def _included(ref: Any, including: Path, what: str) -> Path:
    if not isinstance(ref, str) or not ref:
        raise ConfigFileError(f"{including}: {what} {BASE_KEY}={ref!r} is invalid; give a JSON file name")
    for candidate in (including.parent / ref, CONFIGS_DIR / ref):
        if candidate.is_file():
            return candidate
    raise ConfigFileError(
        f"{including}: {what} {BASE_KEY}={ref!r} not found next to it nor among the built-in configs; fix the path"
    )


def read_config_dict(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The complete config a file describes: its ``base`` chain and its policy ``base`` merged in (see above)."""
    if path.resolve() in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path.resolve()))
        raise ConfigFileError(f"run config bases form a loop ({chain}); remove one {BASE_KEY}")
    data = _read_json(path)
    policy = data.get("policy")
    whole_policy = isinstance(policy, dict) and BASE_KEY in policy
    if isinstance(policy, dict) and BASE_KEY in policy:
        rest = {k: v for k, v in policy.items() if k != BASE_KEY}
        data["policy"] = deep_merge(_read_json(_included(policy[BASE_KEY], path, "policy")), rest)
    if BASE_KEY in data:
        base = read_config_dict(_included(data.pop(BASE_KEY), path, "top-level"), (*_seen, path.resolve()))
        if whole_policy:
            base.pop("policy", None)
        data = deep_merge(base, data)
    return data


def is_composed(path: Path) -> bool:
    """Whether the file builds on another (a ``base`` at the top or in ``policy``) rather than standing alone."""
    data = _read_json(path)
    policy = data.get("policy")
    return BASE_KEY in data or (isinstance(policy, dict) and BASE_KEY in policy)
