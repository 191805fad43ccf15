"""Tiny, offline builds of LeRobot 0.6.1's π0, π0.5 and SmolVLA (tests, CI, the tiny pick-cube configs).

None of the three can be built small from its config alone (shared/reference/lerobot-policies.md):

- π0 / π0.5 take their transformer widths from ``get_gemma_config``, whose only names are ``gemma_2b`` and
  ``gemma_300m``, and build PaliGemma from transformers' defaults (full SigLIP, a 257,152-token vocabulary).
- SmolVLA's constructor calls ``AutoConfig.from_pretrained`` and ``AutoProcessor.from_pretrained`` on the hub
  (``smolvlm_with_expert.py:99,101``); only two token ids of the processor are ever read.

:func:`tiny_build` swaps those module attributes for small stand-ins while a policy is constructed (or loaded:
``from_pretrained`` constructs first) and restores every one of them on exit, also on error: nothing
process-global is left behind. A config opts in with the tag :data:`TINY_TAG` in LeRobot's own ``tags`` field, so a
saved tiny checkpoint's ``config.json`` still says it is tiny and reloads the same way. This module touches LeRobot
internals that are not public API; :func:`check_tiny_build_targets` fails loudly when 0.6.x changes them.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from pirlctl.lerobot_compat import LeRobotCompatError, check_lerobot_version

TINY_TAG = "pirlctl-tiny"  # in a policy config's ``tags``: build with the tiny dimensions below


@dataclass(frozen=True)
class TinyGemma:
    """Widths of the tiny PaliGemma + Gemma expert. π0 hard-codes 8 attention heads (modeling_pi0.py:124) and needs
    VLM and expert to share depth, heads, KV heads and head size; only width and MLP width may differ."""

    vlm_width: int = 32
    vlm_mlp: int = 64
    expert_width: int = 16
    expert_mlp: int = 32
    depth: int = 2
    num_heads: int = 8
    num_kv_heads: int = 1
    head_dim: int = 4
    vocab_size: int = 64
    vision_hidden: int = 16
    vision_mlp: int = 32
    vision_layers: int = 1
    vision_heads: int = 2
    vision_patch: int = 16


TINY_GEMMA = TinyGemma()
TINY_SMOLVLM_VOCAB = 64
TINY_FAKE_IMAGE_TOKEN = 5  # the two processor ids SmolVLA reads (modeling_smolvla.py:522-523)
TINY_GLOBAL_IMAGE_TOKEN = 6

_PI_MODULES = {"pi0": "lerobot.policies.pi0.modeling_pi0", "pi05": "lerobot.policies.pi05.modeling_pi05"}
_SMOLVLA_MODULE = "lerobot.policies.smolvla.smolvlm_with_expert"
_PI_TARGETS = ("get_gemma_config", "GemmaConfig", "PaliGemmaForConditionalGenerationWithPiGemma", "PiGemmaForCausalLM")
_SMOLVLA_TARGETS = ("AutoConfig", "AutoProcessor")


def is_tiny(config: Any) -> bool:
    """Whether a policy config asks for the tiny build (``TINY_TAG`` in its ``tags``)."""
    return TINY_TAG in (getattr(config, "tags", None) or [])


def check_tiny_build_targets(policy_type: str) -> None:
    """The attributes :func:`tiny_build` swaps must still exist in LeRobot; else one line saying what moved."""
    check_lerobot_version()
    names: tuple[str, ...]
    if policy_type in _PI_MODULES:
        module, names = _PI_MODULES[policy_type], _PI_TARGETS
    elif policy_type == "smolvla":
        module, names = _SMOLVLA_MODULE, _SMOLVLA_TARGETS
    else:
        raise ValueError(f"no tiny build for policy type {policy_type!r}; tiny builds exist for pi0, pi05, smolvla")
    mod = importlib.import_module(module)
    missing = [n for n in names if getattr(mod, n, None) is None]
    if missing:
        raise LeRobotCompatError(
            f"{module} no longer has {', '.join(missing)}; update pirlctl.policies.tiny_builds for this LeRobot"
        )


@contextlib.contextmanager
def _swapped(module: Any, replacements: dict[str, Any]) -> Iterator[None]:
    saved = {name: getattr(module, name) for name in replacements}
    try:
        for name, value in replacements.items():
            setattr(module, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def _pi_replacements(mod: Any, spec: TinyGemma) -> dict[str, Any]:
    gemma_config = mod.GemmaConfig
    real_paligemma, real_expert = mod.PaliGemmaForConditionalGenerationWithPiGemma, mod.PiGemmaForCausalLM

    def get_gemma_config(variant: str) -> Any:
        # gemma_2b names the VLM and gemma_300m the expert in every shipped config (π0 and π0.5 defaults)
        if variant == "gemma_2b":
            return gemma_config(
                spec.vlm_width, spec.depth, spec.vlm_mlp, spec.num_heads, spec.num_kv_heads, spec.head_dim
            )
        if variant == "gemma_300m":
            return gemma_config(
                spec.expert_width, spec.depth, spec.expert_mlp, spec.num_heads, spec.num_kv_heads, spec.head_dim
            )
        raise ValueError(f"Unknown variant: {variant}")

    def paligemma(config: Any) -> Any:
        # modeling_pi0.py:206-238 starts from transformers' PaliGemma defaults: shrink SigLIP and the vocabulary
        vision = config.vision_config
        vision.hidden_size, vision.intermediate_size = spec.vision_hidden, spec.vision_mlp
        vision.num_hidden_layers, vision.num_attention_heads = spec.vision_layers, spec.vision_heads
        vision.patch_size, vision.projection_dim = spec.vision_patch, spec.vlm_width
        config.projection_dim = spec.vlm_width
        config.text_config.vocab_size = spec.vocab_size
        config._vocab_size = spec.vocab_size  # noqa: SLF001 - the field modeling_pi0.py:207 sets
        config.image_token_index = spec.vocab_size
        return real_paligemma(config=config)

    def expert(config: Any) -> Any:
        config.vocab_size = spec.vocab_size  # the expert's lm_head is never used; keep it tiny
        return real_expert(config=config)

    return {
        "get_gemma_config": get_gemma_config,
        "PaliGemmaForConditionalGenerationWithPiGemma": paligemma,
        "PiGemmaForCausalLM": expert,
    }


def tiny_smolvlm_config() -> Any:
    """A hand-made SmolVLM config (SmolVLM2's layout, tiny sizes) standing in for the hub's."""
    from transformers import SmolVLMConfig

    fields: dict[str, Any] = dict(
        text_config={
            "model_type": "llama",
            "vocab_size": TINY_SMOLVLM_VOCAB,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 8,
            "max_position_embeddings": 256,
            "tie_word_embeddings": False,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "patch_size": 16,
            "image_size": 64,
        },
        scale_factor=2,
        vocab_size=TINY_SMOLVLM_VOCAB,
        image_token_id=TINY_SMOLVLM_VOCAB - 1,
    )
    return SmolVLMConfig(**fields)


def _smolvla_replacements(make_config: Any = tiny_smolvlm_config) -> dict[str, Any]:
    tokenizer = SimpleNamespace(
        fake_image_token_id=TINY_FAKE_IMAGE_TOKEN, global_image_token_id=TINY_GLOBAL_IMAGE_TOKEN
    )
    return {
        "AutoConfig": SimpleNamespace(from_pretrained=lambda *_a, **_k: make_config()),
        "AutoProcessor": SimpleNamespace(from_pretrained=lambda *_a, **_k: SimpleNamespace(tokenizer=tokenizer)),
    }


@contextlib.contextmanager
def tiny_build(policy_type: str, spec: TinyGemma = TINY_GEMMA) -> Iterator[None]:
    """Inside this block, constructing (or loading) a ``policy_type`` policy gives the tiny offline build."""
    check_tiny_build_targets(policy_type)
    if policy_type in _PI_MODULES:
        mod = importlib.import_module(_PI_MODULES[policy_type])
        with _swapped(mod, _pi_replacements(mod, spec)):
            yield
    else:
        with _swapped(importlib.import_module(_SMOLVLA_MODULE), _smolvla_replacements()):
            yield


@contextlib.contextmanager
def smolvlm_stand_in(make_config: Any) -> Iterator[None]:
    """Like the SmolVLA tiny build, with the VLM config ``make_config()`` (the full-size bench types SmolVLM2's)."""
    check_tiny_build_targets("smolvla")
    with _swapped(importlib.import_module(_SMOLVLA_MODULE), _smolvla_replacements(make_config)):
        yield


def build_context(config: Any) -> contextlib.AbstractContextManager[None]:
    """:func:`tiny_build` for a config tagged tiny, else a no-op context."""
    return tiny_build(str(config.type)) if is_tiny(config) else contextlib.nullcontext()


def patched_attributes() -> dict[str, Any]:
    """The current values of every attribute :func:`tiny_build` may swap (tests compare before/after)."""
    out: dict[str, Any] = {}
    for module, names in (*((m, _PI_TARGETS) for m in _PI_MODULES.values()), (_SMOLVLA_MODULE, _SMOLVLA_TARGETS)):
        mod = importlib.import_module(module)
        out.update({f"{module}.{n}": getattr(mod, n) for n in names})
    return out
