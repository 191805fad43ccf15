"""A policy's own LeRobot processor pipelines: dataset statistics in, ``policy_preprocessor.json`` /
``policy_postprocessor.json`` out, and back.

A LeRobot policy is its weights plus two pipelines made by ``lerobot.policies.factory.make_pre_post_processors``
and saved next to ``config.json`` / ``model.safetensors`` with ``PolicyProcessorPipeline.save_pretrained``
(state such as normalisation statistics in ``policy_preprocessor_step_<i>_normalizer_processor.safetensors``).
This module builds them from a LeRobot dataset's statistics, writes them into a policy folder, loads them from
a folder (ours or one written by ``lerobot-train``) and checks their statistics against the policy's features.

Spaces. The preprocessor maps an observation (images in [0, 1], raw state) and, in training, the dataset's action
chunk into the policy's normalised space; the postprocessor maps the policy's output back. PI-RL's chain,
its log-probs and the stored latents all live in the policy's model space of NORMALISED actions; the env
receives ``postprocess(adapter.postprocess(chain[:, -1]))`` (the adapter first drops X-VLA's padding, then
LeRobot's unnormaliser restores env units), exactly LeRobot's ``predict_action_chunk`` followed by its
postprocessor.

Tokenizer (X-VLA: ``facebook/bart-large``, hub-only). LeRobot's X-VLA factory builds its
``TokenizerProcessorStep`` eagerly, which downloads the tokenizer. Our rule is the one :func:`tokenize_task`
already applies: when the policy's vocabulary is real-size (> 1000) and the tokenizer is in the local HF cache,
the pipeline keeps LeRobot's tokenizer step (LeRobot and pirlctl then tokenise identically); otherwise the step
is left out of the saved pipeline and the caller supplies ``observation.language.tokens`` (pirlctl's offline
hashing tokenizer, as today). A folder saved without the step loads in LeRobot with no hub access and no
pirlctl import; a LeRobot user feeds the tokens (``pirlctl.policies.xvla.hash_tokenize`` is 5 lines of
``zlib.crc32``). A checkpoint whose saved pipeline names a tokenizer that is not cached is refused in one line
that says what to download.

Images. pirlctl's own policies have always been trained on [0, 1] images; the folder pirlctl writes therefore
leaves out LeRobot's X-VLA ImageNet normalisation step (``xvla_imagenet_normalize``) so that the default job's
numbers do not change. A checkpoint written by ``lerobot-train`` keeps every step it was saved with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pirlctl.errors import PirlError

PREPROCESSOR_FILE = "policy_preprocessor.json"  # LeRobot's POLICY_PREPROCESSOR_DEFAULT_NAME + ".json"
POSTPROCESSOR_FILE = "policy_postprocessor.json"
DATASET_STATS_FILE = "meta/stats.json"  # LeRobot's STATS_PATH inside a dataset folder
TOKENIZER_STEP = "tokenizer_processor"
NORMALIZER_STEP = "normalizer_processor"
UNNORMALIZER_STEP = "unnormalizer_processor"
DEVICE_STEP = "device_processor"
# Steps of LeRobot's factory pipelines that pirlctl's own SFT folders leave out (why: module docstring).
OWN_SFT_OMITTED_STEPS = ("xvla_imagenet_normalize",)


class ProcessorError(PirlError, ValueError):
    """A policy's processors or statistics are missing or do not fit the policy."""


@dataclass
class PolicyProcessors:
    """The policy's pre/post-processor pipelines (LeRobot ``PolicyProcessorPipeline``\\ s) and how to feed them."""

    preprocessor: Any  # PolicyProcessorPipeline[dict, dict]
    postprocessor: Any  # PolicyProcessorPipeline[Tensor, Tensor]
    policy_config: Any
    tokenizes: bool  # the preprocessor holds a tokenizer step; else the caller supplies the language tokens

    def preprocess(self, batch: dict[str, Any], task: str | None = None) -> dict[str, Any]:
        """Batched observation (and, in training, ``action`` [B,T,A]) -> the policy's inputs (tensors), normalised.

        ``task`` is the task text: tokenised by the pipeline's own step when it has one, else by
        :func:`pirlctl.policies.xvla.tokenize_task` (unless the batch already carries the tokens).
        """
        import torch

        from pirlctl.policies.xvla import LANGUAGE_TOKENS_KEY, tokenize_task

        batch = dict(batch)
        size = _batch_size(batch)
        if task is not None:  # the pipeline's own steps read it (its tokenizer; π0.5's state-into-prompt step)
            batch["task"] = [task] * size
        if not self.tokenizes and task is not None and LANGUAGE_TOKENS_KEY not in batch:
            batch[LANGUAGE_TOKENS_KEY] = tokenize_task(task, self.policy_config, size)[0]
        # LeRobot's batch converter adds empty transition fields (action None, next.reward, info...): keep tensors
        return {k: v for k, v in self.preprocessor(batch).items() if isinstance(v, torch.Tensor)}

    def postprocess(self, action: Any) -> Any:
        """Policy-space actions [..., A] (normalised, padding already dropped) -> env actions [..., A]."""
        return self.postprocessor(action)

    def preprocess_one(self, observation: dict[str, Any], task: str | None = None) -> dict[str, Any]:
        """One unbatched raw observation -> the policy's unbatched inputs on the CPU: what the actor scores and
        sends to the learner (and evaluation scores), through :meth:`preprocess`."""
        batch = self.preprocess({k: v.unsqueeze(0) for k, v in observation.items()}, task=task)
        return {k: v[0].cpu() for k, v in batch.items()}

    def env_action(self, actions: Any) -> Any:
        """``PolicyStep.actions`` [B, n_exec, A] in the policy's normalised space -> the first observation's env
        actions [n_exec, A], float32 numpy, through :meth:`postprocess`: what the env executes."""
        import numpy as np

        return np.asarray(self.postprocess(actions)[0].detach().cpu().numpy(), dtype=np.float32)

    def save(self, folder: str | Path) -> None:
        """Write both pipelines into ``folder`` with LeRobot's own ``save_pretrained`` (LeRobot's file names)."""
        self.preprocessor.save_pretrained(folder)
        self.postprocessor.save_pretrained(folder)


def _batch_size(batch: dict[str, Any]) -> int:
    for v in batch.values():
        shape = getattr(v, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    return 1


# -- statistics ----------------------------------------------------------------------------------------------


def dataset_stats(dataset_root: str | Path, policy_config: Any) -> dict[str, dict[str, Any]]:
    """LeRobot's own statistics of a dataset folder (``meta/stats.json``, as ``lerobot-train`` reads them through
    ``LeRobotDatasetMetadata.stats``), kept for the policy's input and output features, as float32 tensors.

    Refuses (one line) a dataset without the file, or whose statistics do not fit the policy's features.
    """
    import torch

    root = Path(dataset_root)
    path = root / DATASET_STATS_FILE
    if not path.is_file():
        raise ProcessorError(
            f"{path} is missing: the dataset has no statistics to normalise with; re-record it "
            "(pirlctl pretrain --fresh) or recompute them with lerobot.datasets.compute_stats"
        )
    from lerobot.datasets.io_utils import load_stats

    raw = load_stats(root)
    if raw is None:  # pragma: no cover - load_stats returns None only when the file is missing
        raise ProcessorError(f"{path} could not be read; re-record the dataset")
    features = {**policy_config.input_features, **policy_config.output_features}
    stats = {
        key: {name: torch.as_tensor(value, dtype=torch.float32) for name, value in raw[key].items()}
        for key in features
        if key in raw
    }
    validate_stats(stats, policy_config, source=str(path))
    return stats


# The statistics each LeRobot NormalizationMode reads (lerobot/processor/normalize_processor.py); IDENTITY: none.
STATS_PER_MODE = {
    "MEAN_STD": ("mean", "std"),
    "MIN_MAX": ("min", "max"),
    "QUANTILES": ("q01", "q99"),
    "QUANTILE10": ("q10", "q90"),
}


def _stat_names(mode: str) -> tuple[str, ...]:
    return STATS_PER_MODE.get(mode, ())


def validate_stats(
    stats: dict[str, dict[str, Any]], policy_config: Any, *, source: str, outputs_only: bool = False
) -> None:
    """Each feature the policy normalises has the statistics its mode needs, with the feature's shape (images:
    one value per channel, [C,1,1] as LeRobot stores them, or the full [C,H,W]). Statistics present for an
    IDENTITY feature must still have its shape: a mismatch means the data are not this policy's data.
    LeRobot's normaliser silently passes a feature through when its statistics are absent, hence this check.
    ``outputs_only``: check the output features only (a postprocessor's unnormaliser)."""
    features = dict(policy_config.output_features)
    if not outputs_only:
        features = {**policy_config.input_features, **features}
    mapping = {
        str(getattr(k, "value", k)): str(getattr(v, "value", v)) for k, v in policy_config.normalization_mapping.items()
    }
    for key, feat in features.items():
        ftype = str(getattr(feat.type, "value", feat.type))
        mode = mapping.get(ftype, "IDENTITY")
        needed = _stat_names(mode)
        have = stats.get(key)
        if have is None:
            if needed:
                raise ProcessorError(
                    f"{source} has no statistics for {key!r}, which the policy normalises with {mode}; "
                    "use statistics of the dataset the policy is trained on (its meta/stats.json)"
                )
            continue
        missing = [n for n in needed if n not in have]
        if missing:
            raise ProcessorError(
                f"{source} lacks {'/'.join(missing)} for {key!r} ({mode} needs {'/'.join(needed)}); "
                "recompute the dataset statistics with LeRobot (lerobot.datasets.compute_stats)"
            )
        shape = tuple(int(s) for s in feat.shape)
        allowed = {shape, (shape[0], 1, 1)} if ftype == "VISUAL" else {shape}
        for name in needed or tuple(n for n in ("mean", "std", "min", "max") if n in have):
            got = tuple(int(s) for s in have[name].shape)
            if got not in allowed:
                raise ProcessorError(
                    f"{source}: {key!r} {name} has shape {list(got)} but the policy's feature is {list(shape)}; "
                    "the statistics are of another dataset or policy: use the dataset the policy is trained on"
                )


# -- building, saving, loading -------------------------------------------------------------------------------


def _tokenizer_cached(name: str) -> bool:
    """The HF tokenizer ``name`` loads from the local cache (never downloads)."""
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return False
    return True


def local_tokenizer_available(policy_config: Any) -> bool:
    """The rule of :func:`pirlctl.policies.xvla.tokenize_task`: a real-size vocabulary whose tokenizer is in the
    local HF cache."""
    name = getattr(policy_config, "tokenizer_name", None)
    get_florence = getattr(policy_config, "get_florence_config", None)
    if not name or get_florence is None or int(get_florence().text_config.vocab_size) <= 1000:
        return False
    return _tokenizer_cached(name)


@contextmanager
def _tokenizer_step_unloaded() -> Iterator[None]:
    """Lets LeRobot's factory build its pipelines without loading (downloading) the tokenizer: the tokenizer
    step is created inert and removed right after. Process-global while it lasts (LeRobot 0.6.1:
    ``TokenizerProcessorStep.__post_init__`` calls ``AutoTokenizer.from_pretrained``)."""
    from lerobot.processor import TokenizerProcessorStep

    original = TokenizerProcessorStep.__post_init__
    TokenizerProcessorStep.__post_init__ = lambda self: None
    try:
        yield
    finally:
        TokenizerProcessorStep.__post_init__ = original


def _registry_name(step: Any) -> str:
    return str(getattr(type(step), "_registry_name", type(step).__name__))


def _pipeline_without(pipeline: Any, names: tuple[str, ...]) -> Any:
    kept = [s for s in pipeline.steps if _registry_name(s) not in names]
    return type(pipeline)(
        steps=kept, name=pipeline.name, to_transition=pipeline.to_transition, to_output=pipeline.to_output
    )


def build_processors(policy_config: Any, stats: dict[str, dict[str, Any]] | None) -> PolicyProcessors:
    """pirlctl's processors for a policy it trains: LeRobot's ``make_pre_post_processors(config, dataset_stats)``,
    minus :data:`OWN_SFT_OMITTED_STEPS` and minus the tokenizer step when the tokenizer is not local."""
    from lerobot.policies.factory import make_pre_post_processors

    if stats is not None:
        validate_stats(stats, policy_config, source="the dataset statistics")
    tokenizes = local_tokenizer_available(policy_config)
    if tokenizes:
        pre, post = make_pre_post_processors(policy_config, dataset_stats=stats)
    else:
        with _tokenizer_step_unloaded():
            pre, post = make_pre_post_processors(policy_config, dataset_stats=stats)
    omitted = OWN_SFT_OMITTED_STEPS if tokenizes else (*OWN_SFT_OMITTED_STEPS, TOKENIZER_STEP)
    return PolicyProcessors(_pipeline_without(pre, omitted), _pipeline_without(post, omitted), policy_config, tokenizes)


def _normalizer_stats(pipeline: Any, step_name: str) -> dict[str, dict[str, Any]] | None:
    for step in pipeline.steps:
        if _registry_name(step) == step_name:
            return dict(getattr(step, "_tensor_stats", {}) or {})
    return None


def _step_files(folder: Path, config_file: str) -> list[str]:
    try:
        cfg = json.loads((folder / config_file).read_text())
    except (OSError, ValueError):
        return []
    return [str(s["state_file"]) for s in cfg.get("steps", []) if isinstance(s, dict) and s.get("state_file")]


def _step_names(folder: Path, config_file: str) -> list[str]:
    try:
        cfg = json.loads((folder / config_file).read_text())
    except (OSError, ValueError):
        return []
    return [str(s.get("registry_name")) for s in cfg.get("steps", []) if isinstance(s, dict)]


def _tokenizer_name(folder: Path) -> str | None:
    try:
        cfg = json.loads((folder / PREPROCESSOR_FILE).read_text())
    except (OSError, ValueError):
        return None
    for s in cfg.get("steps", []):
        if isinstance(s, dict) and s.get("registry_name") == TOKENIZER_STEP:
            name = (s.get("config") or {}).get("tokenizer_name")
            return str(name) if name else None
    return None


def require_pretrained_tokenizer(policy_config: Any, folder: str | Path) -> None:
    """Refuse (:class:`TokenizerMissingError`, one line) to load a real-size π0 / π0.5 / SmolVLA checkpoint from
    ``folder`` when its tokenizer is not in the local HF cache (never downloads) and the folder's own pipeline has
    no tokenizer step (that step's tokenizer is checked by ``load_processors``). Tiny builds and X-VLA pass."""
    from pirlctl.policies.language import (
        REAL_VOCAB,
        VELOCITY_TYPES,
        TokenizerMissingError,
        tokenizer_name,
        vocab_size,
    )

    if policy_config.type not in VELOCITY_TYPES or vocab_size(policy_config) <= REAL_VOCAB:
        return
    if _tokenizer_name(Path(folder)) is not None:
        return
    name = tokenizer_name(policy_config)
    problem: str | None = None
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means "not cached"
        from huggingface_hub.constants import HF_HUB_CACHE

        problem = (
            f"the tokenizer {name!r} of the {policy_config.type} checkpoint {folder} is not in the local Hugging Face "
            f"cache {HF_HUB_CACHE} ({type(err).__name__}); download it there once with `hf download {name}` (or set "
            "HF_HOME to a cache that has it); hashed tokens would mean nothing to a pretrained model"
        )
    if problem is not None:
        raise TokenizerMissingError(problem)


def has_processors(folder: str | Path) -> bool:
    """The folder holds LeRobot processor files (``lerobot-train`` checkpoints and pirlctl SFT folders do)."""
    return (Path(folder) / PREPROCESSOR_FILE).is_file() and (Path(folder) / POSTPROCESSOR_FILE).is_file()


def load_processors(folder: str | Path, policy_config: Any) -> PolicyProcessors:
    """The processors saved in a policy folder, loaded by LeRobot (``make_pre_post_processors(config,
    pretrained_path=folder)``), their statistics checked against the policy's features.

    A folder without processor files (pirlctl checkpoints before processors were saved) gets pirlctl's own
    pipeline with no statistics when the policy normalises nothing, and is refused otherwise.
    """
    from lerobot.policies.factory import make_pre_post_processors

    path = Path(folder)
    if not has_processors(path):
        modes = {str(getattr(v, "value", v)) for v in policy_config.normalization_mapping.values()}
        if modes <= {"IDENTITY"}:
            return build_processors(policy_config, None)
        raise ProcessorError(
            f"{path} has no {PREPROCESSOR_FILE}/{POSTPROCESSOR_FILE} but its policy normalises with "
            f"{'/'.join(sorted(modes - {'IDENTITY'}))}; save the checkpoint with its processors "
            "(lerobot-train or pirlctl pretrain write them)"
        )
    for name in (*_step_files(path, PREPROCESSOR_FILE), *_step_files(path, POSTPROCESSOR_FILE)):
        if not (path / name).is_file():
            raise ProcessorError(
                f"{path / name} is missing (named by the folder's processor files); copy the complete "
                "checkpoint folder, or re-save it with its processors"
            )
    tokenizer = _tokenizer_name(path)
    if tokenizer is not None and not _tokenizer_cached(tokenizer):
        from huggingface_hub.constants import HF_HUB_CACHE

        raise ProcessorError(
            f"the tokenizer {tokenizer!r} named in {path / PREPROCESSOR_FILE} is not in the local Hugging Face "
            f"cache ({HF_HUB_CACHE}); download it there once: hf download {tokenizer}"
        )
    # the device of this process, not the one the folder was saved on (as lerobot-eval does)
    overrides = {}
    if DEVICE_STEP in _step_names(path, PREPROCESSOR_FILE) and getattr(policy_config, "device", None):
        overrides[DEVICE_STEP] = {"device": str(policy_config.device)}
    pre, post = make_pre_post_processors(policy_config, pretrained_path=str(path), preprocessor_overrides=overrides)
    for pipeline, file, step_name in (
        (pre, PREPROCESSOR_FILE, NORMALIZER_STEP),
        (post, POSTPROCESSOR_FILE, UNNORMALIZER_STEP),
    ):
        found = _normalizer_stats(pipeline, step_name)
        if found is not None:
            validate_stats(found, policy_config, source=str(path / file), outputs_only=pipeline is post)
    tokenizes = any(_registry_name(s) == TOKENIZER_STEP for s in pre.steps)
    return PolicyProcessors(pre, post, policy_config, tokenizes)
