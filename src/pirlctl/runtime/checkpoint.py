"""Crash-safe checkpoints in LeRobot's layout, with a verified manifest.

::

    <output_dir>/checkpoints/<iteration:06d>/
        pretrained_model/      policy config.json + model.safetensors (PreTrainedPolicy.save_pretrained)
        algorithm/             PI-RL config.json + model.safetensors (value head, noise head)
        training_state/        optimizers/<name>/..., rng_state.safetensors, training_step.json
        run_config.json
        manifest.json          sha256 of every file, config hash, pirlctl / lerobot / torch versions
    <output_dir>/checkpoints/last -> <iteration:06d>

A checkpoint is written into a hidden temporary folder, fsynced, then renamed into place; ``last`` is swapped with
an atomic ``os.replace`` of a symlink. A process killed mid-write leaves only a ``.tmp-*`` folder (removed on the
next save) and ``last`` still points at a complete checkpoint. Upstream LeRobot rewrites in place (PR 4562) and
re-initialises the policy on resume (PR 4560); here the policy weights are restored too.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lerobot.optim.optimizers import load_optimizer_state, save_optimizer_state
from lerobot.utils.random_utils import load_rng_state, save_rng_state
from safetensors.torch import load_file, load_model
from torch import nn

CHECKPOINTS_DIR = "checkpoints"
LAST_LINK = "last"
MANIFEST = "manifest.json"
TRAINING_STEP = "training_step.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, tampered with or incompatible. One line, with the fix."""


def versions() -> dict[str, str]:
    def v(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {"pirlctl": v("pirlctl"), "lerobot": v("lerobot"), "torch": torch.__version__}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class CheckpointInfo:
    path: Path
    iteration: int
    counters: dict[str, Any]
    config_hash: str
    versions: dict[str, str]


def save_checkpoint(
    output_dir: str | Path,
    iteration: int,
    *,
    policy: nn.Module,
    algorithm: Any,
    run_config_json: dict[str, Any],
    config_hash: str,
    counters: dict[str, Any],
) -> Path:
    """Write checkpoint ``iteration`` atomically and point ``last`` at it. Returns its folder."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    name = f"{iteration:06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    policy.save_pretrained(tmp / "pretrained_model")  # type: ignore[operator]
    algorithm.save_pretrained(tmp / "algorithm")
    state_dir = tmp / "training_state"
    state_dir.mkdir(parents=True, exist_ok=True)
    optimizers = algorithm.get_optimizers()
    if optimizers:
        save_optimizer_state(optimizers, state_dir / "optimizers")
    save_rng_state(state_dir)
    (state_dir / TRAINING_STEP).write_text(json.dumps({"iteration": iteration, **counters}, indent=2))
    (tmp / "run_config.json").write_text(json.dumps(run_config_json, indent=2, default=str))
    files = {str(p.relative_to(tmp)): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    manifest = {"iteration": iteration, "files": files, "config_hash": config_hash, "versions": versions()}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    _fsync_tree(tmp)
    final = root / name
    if final.exists():  # re-saving the same iteration (e.g. final save right after a periodic one)
        trash = root / f".tmp-old-{name}-{os.getpid()}"
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(tmp, final)
    link_tmp = root / f".tmp-link-{os.getpid()}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(name, link_tmp)
    os.replace(link_tmp, root / LAST_LINK)
    return final


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from itself, its ``last`` link, a run folder, or a run's ``checkpoints`` folder."""
    p = Path(path)
    for cand in (p, p / LAST_LINK, p / CHECKPOINTS_DIR / LAST_LINK):
        if (cand / MANIFEST).is_file():
            return cand.resolve()
    raise CheckpointError(f"no checkpoint at {p} (no {MANIFEST}); pass a checkpoint folder or a run folder")


def verify_checkpoint(
    path: str | Path, *, expected_config_hash: str | None = None, force: bool = False
) -> CheckpointInfo:
    """Check the manifest: every file present with its sha256, and the config hash when one is expected."""
    ckpt = resolve_checkpoint(path)
    try:
        manifest = json.loads((ckpt / MANIFEST).read_text())
        files: dict[str, str] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {ckpt}: unreadable manifest ({err}); it is corrupt, re-save it") from err
    if not force:
        for rel, digest in files.items():
            f = ckpt / rel
            if not f.is_file():
                raise CheckpointError(f"checkpoint {ckpt}: file {rel} is missing; the checkpoint is incomplete")
            if _sha256(f) != digest:
                raise CheckpointError(
                    f"checkpoint {ckpt}: {rel} does not match its sha256 (corrupted or tampered); "
                    "use another checkpoint, or --force to load it anyway"
                )
        if expected_config_hash is not None and manifest.get("config_hash") != expected_config_hash:
            raise CheckpointError(
                f"checkpoint {ckpt} was written with a different policy/algorithm config; "
                "use the run's own config (run_config.json inside the checkpoint) or --force"
            )
    try:
        counters = json.loads((ckpt / "training_state" / TRAINING_STEP).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {ckpt}: unreadable {TRAINING_STEP}") from err
    return CheckpointInfo(
        path=ckpt,
        iteration=int(counters.get("iteration", manifest.get("iteration", 0))),
        counters=counters,
        config_hash=str(manifest.get("config_hash", "")),
        versions=dict(manifest.get("versions", {})),
    )


def load_policy_weights(policy: nn.Module, ckpt: Path) -> None:
    """The policy's weights from a checkpoint (strict: every key must match)."""
    missing, unexpected = load_model(policy, str(ckpt / "pretrained_model" / "model.safetensors"), strict=False)
    if unexpected or missing:
        raise CheckpointError(
            f"checkpoint {ckpt}: policy weights do not fit this policy (missing {list(missing)[:2]}, "
            f"unexpected {list(unexpected)[:2]}); the policy config differs from the one that saved it"
        )


def restore_checkpoint(info: CheckpointInfo, *, policy: nn.Module, algorithm: Any, restore_rng: bool = True) -> None:
    """Load policy weights, algorithm tensors, optimizer state and RNG from a verified checkpoint, in place."""
    ckpt = info.path
    load_policy_weights(policy, ckpt)
    algorithm.load_state_dict(load_file(str(ckpt / "algorithm" / "model.safetensors")))
    opt_dir = ckpt / "training_state" / "optimizers"
    optimizers = algorithm.get_optimizers()
    if optimizers and opt_dir.is_dir():
        load_optimizer_state(optimizers, opt_dir)
    if restore_rng:
        load_rng_state(ckpt / "training_state")
    algorithm.optimization_step = info.iteration
