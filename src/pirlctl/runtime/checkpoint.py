"""Crash-safe checkpoints in LeRobot's layout, with a verified manifest.

::

    <output_dir>/checkpoints/<iteration:06d>/
        pretrained_model/      policy config.json + model.safetensors (PreTrainedPolicy.save_pretrained) and its
                               processors (policy_preprocessor.json / policy_postprocessor.json + state files):
                               a complete LeRobot policy folder (--policy.path=<ckpt>/pretrained_model)
        algorithm/             PI-RL config.json + model.safetensors (value head, noise head)
        training_state/        optimizers/<name>/..., rng_state.safetensors, training_step.json
        run_config.json
        manifest.json          sha256 of every file, config hash, pirlctl / lerobot / torch versions
    <output_dir>/checkpoints/last -> <iteration:06d>

A checkpoint is written into a hidden temporary folder, fsynced, then renamed into place; ``last`` is swapped with
an atomic ``os.replace`` of a symlink. A process killed mid-write leaves only a ``.tmp-*`` folder (removed on the
next save) and ``last`` still points at a complete checkpoint. Upstream LeRobot rewrites in place (PR 4562) and
re-initialises the policy on resume (PR 4560); here the policy weights are restored too.

Resume (:func:`find_resume_checkpoint`) takes ``last`` when it verifies, else the newest checkpoint that does, and
says which ones it skipped and why; it never falls back to "no checkpoint" over a run that has some. ``keep`` in
:func:`save_checkpoint` (``runtime.keep_checkpoints``) bounds disk use: older folders are renamed out of the way
(atomic), then deleted; the one ``last`` points at (the checkpoint just written) always stays.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lerobot.optim.optimizers import load_optimizer_state, save_optimizer_state
from lerobot.utils.random_utils import load_rng_state, save_rng_state
from safetensors.torch import load_file, load_model
from torch import nn

from pirlctl.errors import PirlError
from pirlctl.policies.lora import LoraMergeError, has_lora, plain_layers
from pirlctl.versions import package_version

CHECKPOINTS_DIR = "checkpoints"
LAST_LINK = "last"
MANIFEST = "manifest.json"
TRAINING_STEP = "training_step.json"


class CheckpointError(PirlError, RuntimeError):
    """A checkpoint is missing, corrupt, tampered with or incompatible. One line, with the fix."""


# what restore_checkpoint reads: a manifest that lists none of these cannot describe a loadable checkpoint
REQUIRED_FILES = (
    "pretrained_model/model.safetensors",
    "algorithm/model.safetensors",
    f"training_state/{TRAINING_STEP}",
)
MANIFEST_DIGEST = "manifest_sha256"  # sha256 of the manifest's other fields: a hand edit or bit rot shows


def versions() -> dict[str, str]:
    return {
        "pirlctl": package_version("pirlctl", "unknown"),
        "lerobot": package_version("lerobot", "unknown"),
        "torch": torch.__version__,
    }


def _one_line(err: BaseException) -> str:
    """``Type: first line of the message``, at most 160 characters: CheckpointError messages stay one line."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != MANIFEST_DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file and every folder under ``root`` (a folder's entries are durable only once it is synced)."""
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            continue
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        elif path.is_dir():
            _fsync_dir(path)
    _fsync_dir(root)


def _point_last(root: Path, target: str) -> None:
    """Atomically make ``root/last`` a relative symlink to ``target`` (a new link renamed over the old one)."""
    link_tmp = root / f".tmp-link-{os.getpid()}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(target, link_tmp)
    os.replace(link_tmp, root / LAST_LINK)
    _fsync_dir(root)


def _remove_leftovers(root: Path, *, promote: bool = False) -> None:
    """Clear the ``.tmp-*`` folders, links and files of interrupted saves, except the folder ``last`` points at.

    A save killed while it re-writes an existing iteration may leave ``last`` on its complete ``.tmp-*`` copy (the
    old copy already moved away); that one stays until ``last`` points elsewhere. With ``promote`` (after ``last``
    has moved), a complete copy whose iteration folder is missing is renamed into place instead of deleted.
    """
    last = root / LAST_LINK
    keep = last.resolve() if last.is_symlink() else None
    for stale in sorted(root.glob(".tmp-*")):  # a new copy (".tmp-0…") before an old one (".tmp-old-0…")
        if stale.is_symlink() or not stale.is_dir():
            stale.unlink(missing_ok=True)
            continue
        if stale.resolve() == keep:
            continue
        match = re.fullmatch(r"\.tmp-(?:old-)?(\d{6,})-.+", stale.name)
        if promote and match and not (root / match[1]).exists():
            try:
                verify_checkpoint(stale)
            except CheckpointError:
                pass
            else:
                os.replace(stale, root / match[1])
                continue
        shutil.rmtree(stale, ignore_errors=True)


_ITERATION_DIR = re.compile(r"\d{6,}")


def _prune(root: Path, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest iteration folders; never the one ``last`` points at. Returns their names.

    ``last`` points at the checkpoint just written, hashed from the bytes written and fsynced: the newest verified
    one. Each folder is first renamed to a ``.tmp-prune-*`` name (atomic; the name never matches a save's leftover,
    so it is not promoted back), then removed; a kill mid-delete leaves a leftover the next save clears.
    """
    if keep <= 0:
        return []
    last = root / LAST_LINK
    protected = last.resolve() if last.is_symlink() else None
    removed = []
    for folder in iteration_folders(root.parent)[keep:]:
        if folder.resolve() == protected:
            continue
        trash = root / f".tmp-prune-{folder.name}-{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(folder.name)
    if removed:
        _fsync_dir(root)
    return removed


def iteration_folders(output_dir: str | Path) -> list[Path]:
    """The run's ``checkpoints/<iteration>`` folders, newest (highest iteration) first; leftovers and links left out."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _ITERATION_DIR.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: int(p.name), reverse=True)


def has_checkpoints(output_dir: str | Path) -> bool:
    """Whether the run folder holds any checkpoint (complete or not, verified or not)."""
    root = Path(output_dir) / CHECKPOINTS_DIR
    return bool(iteration_folders(output_dir)) or (root / LAST_LINK).is_symlink()


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
    keep: int = 0,
    processors: Any = None,
) -> Path:
    """Write checkpoint ``iteration`` atomically and point ``last`` at it. Returns its folder.

    ``processors`` (a :class:`pirlctl.policies.processors.PolicyProcessors`) are saved into ``pretrained_model/``
    after the policy, with LeRobot's file names, and listed in the manifest like every other file.

    Invariant: at every instant (a SIGKILL can land anywhere) ``last`` is either absent (first save) or a
    symlink to a complete, fsynced checkpoint. ``keep`` > 0: then only the ``keep`` newest iteration folders stay
    (see :func:`_prune`); 0 keeps all.
    """
    root = Path(output_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    name = f"{iteration:06d}"
    # unique even if a crashed save with a reused pid left its folder, which ``last`` may point at
    tmp = root / f".tmp-{name}-{os.getpid()}-{secrets.token_hex(4)}"
    with plain_layers(policy):  # LoRA adapters merged into plain weights: a LeRobot policy folder (policies/lora.py)
        policy.save_pretrained(tmp / "pretrained_model")  # type: ignore[operator]
    if processors is not None:
        processors.save(tmp / "pretrained_model")
    algorithm.save_pretrained(tmp / "algorithm")
    state_dir = tmp / "training_state"
    state_dir.mkdir(parents=True, exist_ok=True)
    optimizers = algorithm.get_optimizers()
    if optimizers:
        save_optimizer_state(optimizers, state_dir / "optimizers")
    save_rng_state(state_dir)
    (state_dir / TRAINING_STEP).write_text(json.dumps({**counters, "iteration": iteration}, indent=2))
    (tmp / "run_config.json").write_text(json.dumps(run_config_json, indent=2, default=str))
    files = {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    manifest: dict[str, Any] = {
        "iteration": iteration,
        "files": files,
        "config_hash": config_hash,
        "versions": versions(),
    }
    manifest[MANIFEST_DIGEST] = _manifest_digest(manifest)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    _fsync_tree(tmp)
    final = root / name
    if final.exists() or final.is_symlink():
        # Re-saving an iteration (the final save right after a periodic one). A non-empty folder cannot be renamed
        # over atomically, and ``last`` may point at ``final``: before each rename, ``last`` moves onto a complete
        # copy that the rename leaves alone (the new copy, then the old one), so it never dangles.
        trash = root / f".tmp-old-{tmp.name.removeprefix('.tmp-')}"
        _point_last(root, tmp.name)
        os.replace(final, trash)
        _point_last(root, trash.name)
        os.replace(tmp, final)
    else:
        os.replace(tmp, final)
    _point_last(root, name)
    _remove_leftovers(root, promote=True)
    _prune(root, keep)
    return final


def point_last(ckpt: Path) -> None:
    """Atomically point its run's ``last`` at checkpoint folder ``ckpt`` (after a resume that fell back to it)."""
    _point_last(ckpt.parent, ckpt.name)


@dataclass
class ResumePoint:
    """Where a resume starts: the checkpoint chosen, and one line per newer candidate skipped (newest first)."""

    info: CheckpointInfo
    skipped: list[str]

    @property
    def note(self) -> str | None:
        """One line for logs and reports when the resume did not start from ``last``; None when it did."""
        if not self.skipped:
            return None
        return f"resumed from {self.info.path.name} (iteration {self.info.iteration}), skipping " + " | ".join(
            self.skipped
        )


def find_resume_checkpoint(
    output_dir: str | Path, *, expected_config_hash: str | None = None, force: bool = False
) -> ResumePoint:
    """``last`` when it verifies, else the newest iteration folder that does. Nothing is changed on disk.

    Raises :class:`CheckpointError` (one line) when the run holds no checkpoint, or when none verifies: a run is
    never silently restarted from scratch over its checkpoints.
    """
    root = Path(output_dir) / CHECKPOINTS_DIR
    candidates = ([root / LAST_LINK] if (root / LAST_LINK).is_symlink() else []) + iteration_folders(output_dir)
    skipped: list[str] = []
    seen: set[Path] = set()
    for cand in candidates:
        resolved = cand.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            info = verify_checkpoint(cand, expected_config_hash=expected_config_hash, force=force)
        except CheckpointError as err:
            name = f"{LAST_LINK} -> {resolved.name}" if cand.name == LAST_LINK else cand.name
            skipped.append(f"{name}: {_short(err)}")
            continue
        return ResumePoint(info, skipped)
    if not skipped:
        raise CheckpointError(f"no checkpoint in {root}; start without resume, or pass --resume-from PATH")
    raise CheckpointError(
        f"no checkpoint in {root} verifies ({skipped[0]}); pick one with --resume-from PATH (and --force to load a "
        "damaged one), or start over with `pirlctl train --fresh` or another output_dir"
    )


def _short(err: BaseException, limit: int = 160) -> str:
    """A CheckpointError's message without the checkpoint path it starts with, at most ``limit`` characters."""
    text = re.sub(r"^checkpoint \S+:? ", "", str(err).strip().splitlines()[0] if str(err).strip() else "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from itself, its ``last`` link, a run folder, or a run's ``checkpoints`` folder."""
    p = Path(path)
    for cand in (p, p / LAST_LINK, p / CHECKPOINTS_DIR / LAST_LINK):
        if (cand / MANIFEST).is_file():
            return cand.resolve()
    raise CheckpointError(f"no checkpoint at {p} (no {MANIFEST}); pass a checkpoint folder or a run folder")


def _read_manifest(ckpt: Path) -> dict[str, Any]:
    """The manifest, its shape checked: every listed path inside the checkpoint, every digest a hex string."""
    try:
        manifest = json.loads((ckpt / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise CheckpointError(
            f"checkpoint {ckpt}: unreadable {MANIFEST} ({_one_line(err)}); use another checkpoint or re-save this one"
        ) from err
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(rel, str)
        and isinstance(digest, str)
        and rel
        and not Path(rel).is_absolute()
        and ".." not in Path(rel).parts
        for rel, digest in files.items()
    ):
        raise CheckpointError(
            f"checkpoint {ckpt}: malformed {MANIFEST} (files must map relative paths to sha256 digests); "
            "use another checkpoint or re-save this one"
        )
    return manifest


def verify_checkpoint(
    path: str | Path, *, expected_config_hash: str | None = None, force: bool = False
) -> CheckpointInfo:
    """Check the manifest and return what it describes.

    Refused (:class:`CheckpointError`, one line naming the problem and the fix): an unreadable or malformed
    manifest, a file the checkpoint needs that is missing, and, unless ``force``: a manifest edited after it was
    written, a file whose sha256 differs, a file the manifest does not list, or a config hash other than
    ``expected_config_hash``. ``force`` loads a damaged or foreign checkpoint anyway, when its files are there.
    """
    ckpt = resolve_checkpoint(path)
    manifest = _read_manifest(ckpt)
    files: dict[str, str] = manifest["files"]
    for rel in (*REQUIRED_FILES, *files):
        if not (ckpt / rel).is_file():
            raise CheckpointError(
                f"checkpoint {ckpt}: file {rel} is missing; the checkpoint is incomplete, use another one"
            )
    if not force:
        if manifest.get(MANIFEST_DIGEST) != _manifest_digest(manifest):
            raise CheckpointError(
                f"checkpoint {ckpt}: {MANIFEST} was edited or corrupted after it was written (its own checksum "
                "differs); use another checkpoint, or --force to load it anyway"
            )
        unlisted = sorted(set(REQUIRED_FILES) - set(files))
        on_disk = {p.relative_to(ckpt).as_posix() for p in ckpt.rglob("*") if p.is_file()} - {MANIFEST}
        unlisted += sorted(on_disk - set(files))
        if unlisted:
            raise CheckpointError(
                f"checkpoint {ckpt}: {unlisted[0]} is not in {MANIFEST} (added or tampered with); "
                "use another checkpoint, or --force to load it anyway"
            )
        for rel, digest in files.items():
            if _sha256(ckpt / rel) != digest:
                raise CheckpointError(
                    f"checkpoint {ckpt}: {rel} does not match its sha256 (corrupted or tampered with); "
                    "use another checkpoint, or --force to load it anyway"
                )
        saved_hash = manifest.get("config_hash")
        if expected_config_hash is not None and saved_hash != expected_config_hash:
            raise CheckpointError(
                f"checkpoint {ckpt} was written with another policy/algorithm config (hash {str(saved_hash)[:12]}, "
                f"this run's {expected_config_hash[:12]}); resume with the run's own config "
                "(run_config.json inside the checkpoint), or --force"
            )
    try:
        counters = json.loads((ckpt / "training_state" / TRAINING_STEP).read_text(encoding="utf-8"))
        if not isinstance(counters, dict):
            raise ValueError("not a JSON object")
        iteration = int(counters.get("iteration", manifest.get("iteration", 0)))
    except (OSError, ValueError, TypeError, OverflowError, RecursionError) as err:
        raise CheckpointError(
            f"checkpoint {ckpt}: unreadable training_state/{TRAINING_STEP} ({_one_line(err)}); use another checkpoint"
        ) from err
    raw_versions = manifest.get("versions")
    return CheckpointInfo(
        path=ckpt,
        iteration=iteration,
        counters=counters,
        config_hash=str(manifest.get("config_hash", "")),
        versions={str(k): str(v) for k, v in raw_versions.items()} if isinstance(raw_versions, dict) else {},
    )


def load_policy_weights(policy: nn.Module, ckpt: Path) -> None:
    """The policy's weights from a checkpoint (strict: every key must match)."""
    try:
        missing, unexpected = load_model(policy, str(ckpt / "pretrained_model" / "model.safetensors"), strict=False)
    except Exception as err:  # noqa: BLE001 - safetensors / torch raise many types for a bad file
        raise CheckpointError(
            f"checkpoint {ckpt}: policy weights do not load ({_one_line(err)}); the file is damaged or the policy "
            "config differs from the one that saved it"
        ) from err
    if unexpected or missing:
        raise CheckpointError(
            f"checkpoint {ckpt}: policy weights do not fit this policy (missing {list(missing)[:2]}, "
            f"unexpected {list(unexpected)[:2]}); the policy config differs from the one that saved it"
        )


def restore_checkpoint(info: CheckpointInfo, *, policy: nn.Module, algorithm: Any, restore_rng: bool = True) -> None:
    """Load policy weights, algorithm tensors, optimizer state and RNG from a verified checkpoint, in place.

    The algorithm tensors are read and matched before anything is written, so a checkpoint of another algorithm
    config leaves the policy untouched. Any failure is a :class:`CheckpointError`, except the processors':
    those saved in ``pretrained_model/`` replace ``algorithm.processors`` (loaded with
    :func:`pirlctl.policies.processors.load_processors`, refused in one line as there when they do not fit).
    """
    ckpt = info.path
    try:
        algo_state = load_file(str(ckpt / "algorithm" / "model.safetensors"))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(
            f"checkpoint {ckpt}: algorithm/model.safetensors does not load ({_one_line(err)}); use another checkpoint"
        ) from err
    own = algorithm.state_dict()
    mismatch = sorted(set(own) ^ set(algo_state)) or [
        k for k in own if tuple(own[k].shape) != tuple(algo_state[k].shape)
    ]
    if mismatch:
        raise CheckpointError(
            f"checkpoint {ckpt}: algorithm tensors do not fit this algorithm (first mismatch {mismatch[0]!r}); "
            "the PI-RL config differs from the one that saved it"
        )
    from pirlctl.policies.processors import has_processors, load_processors

    folder = ckpt / "pretrained_model"
    processors = load_processors(folder, policy.config) if has_processors(folder) else None
    lora = has_lora(policy)
    if lora:  # adapters first: the folder's merged weights are checked against this base plus them
        algorithm.load_state_dict(algo_state)
    try:
        with plain_layers(policy, check_loaded=True):
            load_policy_weights(policy, ckpt)
    except LoraMergeError as err:
        raise CheckpointError(f"checkpoint {ckpt}: {err}") from err
    if not lora:
        algorithm.load_state_dict(algo_state)
    if processors is not None:
        algorithm.processors = processors
    opt_dir = ckpt / "training_state" / "optimizers"
    optimizers = algorithm.get_optimizers()
    step = "optimizer state"
    try:
        if optimizers and opt_dir.is_dir():
            load_optimizer_state(optimizers, opt_dir)
        step = "RNG state"
        if restore_rng:
            load_rng_state(ckpt / "training_state")
    except Exception as err:  # noqa: BLE001 - safetensors / torch / json raise many types for a bad file
        raise CheckpointError(
            f"checkpoint {ckpt}: {step} does not load ({_one_line(err)}); use another checkpoint"
        ) from err
    algorithm.optimization_step = info.iteration
