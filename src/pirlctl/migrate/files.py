"""The converter's I/O and entry points: read and check the SAC JSON, load the flow policy's config, walk, check that
the result loads as the learner loads it, and write it atomically, never over an existing file without ``force``.

Errors are :class:`~pirlctl.migrate.report.MigrationError`, one line naming the problem and the fix. They are raised
outside ``except`` blocks on purpose: the CLI prints the root cause of an exception chain, and an implicit
``__context__`` would replace these messages with the low-level one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import draccus

from pirlctl.config.run_config import PiRLRunConfig, encode_run_config
from pirlctl.errors import one_line
from pirlctl.migrate.report import MigrationError, MigrationItem, MigrationReport
from pirlctl.migrate.rules import SAC_POLICY_TYPES, SUPPORTED_POLICIES
from pirlctl.migrate.walk import walk
from pirlctl.policies.loading import TINY_XVLA_CONFIG, load_policy_config

if TYPE_CHECKING:
    from lerobot.configs.policies import PreTrainedConfig

# ---------------------------------------------------------------------------------------------------------------
# Reading and checking the input
# ---------------------------------------------------------------------------------------------------------------


def read_sac_config(path: str | Path) -> dict[str, Any]:
    """The SAC run config as a dict; :class:`MigrationError` when it is missing, unreadable, not JSON or not SAC."""
    p = Path(path)
    problem: str | None = None
    text = ""
    if not p.exists():
        problem = f"SAC config {p} not found; pass the JSON file lerobot-train-rl reads (its --config_path)"
    elif p.is_dir():
        hint = p / "train_config.json"
        fix = f"pass {hint}" if hint.is_file() else "pass the JSON file inside it (e.g. train_config.json)"
        problem = f"SAC config {p} is a directory; {fix}"
    else:
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problem = f"SAC config {p} is not JSON (not UTF-8 text); pass the JSON file lerobot-train-rl reads"
        except OSError as err:
            problem = f"SAC config {p} is unreadable ({err.strerror}); fix its permissions or pass a readable copy"
    if problem is None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            problem = (
                f"SAC config {p} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
                "fix the file or pass the train_config.json LeRobot saved"
            )
    if problem is not None:
        raise MigrationError(problem)
    check_is_sac(data, str(p))
    return data


def check_is_sac(data: Any, source: str = "input") -> None:
    """A SAC run config: ``algorithm.type == "sac"``, or no algorithm and a Gaussian-actor (or legacy SAC) policy."""
    fix = "pass a LeRobot SAC run config (algorithm.type 'sac', policy.type 'gaussian_actor')"
    if not isinstance(data, dict):
        raise MigrationError(f"{source} is not a run config (top level is a JSON {type(data).__name__}); {fix}")
    algo = data.get("algorithm")
    algo_type = algo.get("type") if isinstance(algo, dict) else None
    policy = data.get("policy")
    policy_type = policy.get("type") if isinstance(policy, dict) else None
    if algo_type == "pi_rl" or (algo_type is None and isinstance(data.get("runtime"), dict)):
        raise MigrationError(f"{source} is already a PI-RL run config; use it as is with `pirlctl learner`")
    if algo_type is not None and algo_type != "sac":
        raise MigrationError(f"{source} is not a SAC run config (algorithm.type={algo_type!r}); {fix}")
    if algo_type is None and policy_type not in SAC_POLICY_TYPES:
        raise MigrationError(f"{source} is not a SAC run config (no algorithm, policy.type={policy_type!r}); {fix}")
    if not isinstance(policy, dict):
        raise MigrationError(f"{source} has no policy section; {fix}")


# ---------------------------------------------------------------------------------------------------------------
# The flow policy
# ---------------------------------------------------------------------------------------------------------------


def load_flow_policy_config(policy: str | None, policy_path: str | Path | None) -> tuple[PreTrainedConfig, str]:
    """The flow policy config to write: the tiny X-VLA, or the config.json of a local LeRobot checkpoint folder of
    any flow policy pirlctl adapts (X-VLA, π0, π0.5, SmolVLA; its ``type`` picks the adapter). ``policy``, when
    given, must name the folder's type (None: whatever the folder holds, X-VLA without a folder)."""
    names = ", ".join(SUPPORTED_POLICIES)
    if policy is not None and policy not in SUPPORTED_POLICIES:
        raise MigrationError(f"--policy {policy!r} is not supported; use one of {names} (the flow policies adapted)")
    if policy_path is None:
        if policy not in (None, "xvla"):
            raise MigrationError(
                f"--policy {policy} needs --policy-path: pass a local {policy} checkpoint folder (config.json); "
                "without one the migration writes the tiny X-VLA"
            )
        return load_policy_config(TINY_XVLA_CONFIG), str(TINY_XVLA_CONFIG)
    folder = Path(policy_path)
    cfg_file = folder / "config.json"
    problem: str | None = None
    cfg: PreTrainedConfig | None = None
    if not folder.is_dir():
        problem = (
            f"--policy-path {folder} is not a directory; pass a local LeRobot checkpoint folder with config.json "
            "(e.g. .../checkpoints/last/pretrained_model)"
        )
    elif not cfg_file.is_file():
        problem = f"--policy-path {folder} has no config.json; pass the pretrained_model folder of a LeRobot checkpoint"
    else:
        try:
            cfg = load_policy_config(cfg_file)
        except (Exception, SystemExit) as err:  # draccus raises many kinds, and SystemExit, on a bad file
            problem = (
                f"--policy-path {cfg_file} is not a LeRobot policy config ({one_line(err)[:160]}); "
                "pass a checkpoint folder"
            )
    if problem is not None or cfg is None:
        raise MigrationError(problem or f"--policy-path {cfg_file} could not be read")
    if cfg.type not in SUPPORTED_POLICIES:
        raise MigrationError(
            f"--policy-path {folder} holds a {cfg.type!r} policy, not a flow policy pirlctl adapts; pass a checkpoint "
            f"folder of one of {names}"
        )
    if policy is not None and cfg.type != policy:
        raise MigrationError(
            f"--policy-path {folder} holds a {cfg.type!r} policy, not {policy!r}; drop --policy (the folder's type "
            "is used) or pass a folder of that type"
        )
    return cfg, str(folder.resolve())


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------


def migrate(
    sac: dict[str, Any],
    *,
    policy: str | None = None,
    policy_path: str | Path | None = None,
    source: str = "input",
) -> tuple[MigrationReport, dict[str, Any]]:
    """Migrate a SAC run config dict; returns the report and the PI-RL run config as a JSON-able dict.

    The dict is decoded and validated like :func:`pirlctl.config.run_config.load_run_config` (the learner's own
    loader) does before it is returned, so a migrated config that the learner would refuse is never written.
    """
    check_is_sac(sac, source)
    policy_cfg, policy_source = load_flow_policy_config(policy, policy_path)
    cfg, repo_id, m = walk(sac, policy_cfg, policy_source, custom_policy=policy_path is not None)
    data = encode_run_config(cfg)
    check_loadable(data)
    report = MigrationReport(
        source=source,
        output=None,
        written=False,
        dry_run=False,
        policy=policy_source,
        dataset_repo_id=repo_id,
        changes=m.changes,
        stays_the_same=m.same,
        you_must_decide=m.decide,
    )
    return report, data


def check_loadable(data: dict[str, Any]) -> None:
    """Decode the migrated dict as ``load_run_config`` does (draccus decode, then ``validate``); a failure is a
    migrate-config bug and is said so. ``draccus.decode`` rejects unknown fields like the learner's parse does,
    without the ~1 s of argparse set-up ``draccus.parse`` spends on every registered config class."""
    problem: str | None = None
    try:
        draccus.decode(PiRLRunConfig, json.loads(json.dumps(data, default=str))).validate()
    except Exception as err:  # noqa: BLE001 - reported as one line below
        problem = f"the migrated config does not load ({one_line(err)[:160]}); please report this migrate-config bug"
    if problem is not None:
        raise MigrationError(problem)


def write_config(data: dict[str, Any], output: str | Path, *, force: bool) -> None:
    """Write the JSON atomically (temp file + rename); an existing file is replaced only with ``force``."""
    out = Path(output)
    if out.is_dir():
        raise MigrationError(f"output {out} is a directory; pass a file path with -o (e.g. {out / 'pirl.json'})")
    if out.exists() and not force:
        raise MigrationError(f"output {out} exists; pass --force to overwrite it, or choose another -o path")
    problem: str | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(data, indent=2, default=str) + "\n")
            if force:
                os.replace(tmp, out)
            else:
                os.link(tmp, out)  # fails if the file appeared meanwhile: never overwrite without --force
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except FileExistsError:
        problem = f"output {out} exists; pass --force to overwrite it, or choose another -o path"
    except OSError as err:
        problem = f"cannot write {out} ({err.strerror}); choose another -o path"
    if problem is not None:
        raise MigrationError(problem)


def migrate_config_file(
    source: str | Path,
    output: str | Path | None,
    *,
    policy: str | None = None,
    policy_path: str | Path | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> tuple[MigrationReport, dict[str, Any]]:
    """Read ``source``, migrate it, and write ``output`` (unless ``dry_run``); returns the report and the config."""
    if output is None and not dry_run:
        raise MigrationError("no output file; pass -o PIRL.json, or --dry-run to only print the report")
    if policy not in (None, "xvla") and (policy not in SUPPORTED_POLICIES or policy_path is None):
        load_flow_policy_config(policy, None)  # refuses; before reading anything: the cheapest problem to name first
    sac = read_sac_config(source)
    if output is not None and Path(output).resolve() == Path(source).resolve():
        raise MigrationError(f"output {output} is the SAC input itself; choose another -o path")
    if output is not None and not dry_run and not force and Path(output).exists():
        raise MigrationError(f"output {output} exists; pass --force to overwrite it, or choose another -o path")
    report, data = migrate(sac, policy=policy, policy_path=policy_path, source=str(source))
    report.output = str(output) if output is not None else None
    report.dry_run = dry_run
    if not dry_run and output is not None:
        write_config(data, output, force=force)
        report.written = True
    return report, data


__all__ = [
    "MigrationError",
    "MigrationItem",
    "MigrationReport",
    "check_is_sac",
    "check_loadable",
    "load_flow_policy_config",
    "migrate",
    "migrate_config_file",
    "read_sac_config",
    "write_config",
]
