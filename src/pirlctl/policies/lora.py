"""LoRA adapters on a flow policy, through ``peft`` (``algorithm.trainable="lora"``; issue 21).

peft's ``inject_adapter_in_model`` replaces each targeted ``nn.Linear`` in place by a ``peft.tuners.lora.Linear``
that keeps the original layer as ``base_layer`` and adds ``lora_A`` / ``lora_B`` (y = W·x + (α/r)·B·A·x; B starts
at zero, so the adapted policy starts equal to the base one). peft also freezes every other parameter of the
model, so the trainable policy parameters (and the weight push) are exactly the adapters. Names change:
``<layer>.weight`` becomes ``<layer>.base_layer.weight``, plus ``<layer>.lora_A.default.weight`` and
``<layer>.lora_B.default.weight``.

LeRobot cannot load those names, so a saved policy folder holds the merged weights W + (α/r)·B·A under the plain
names (:func:`plain_layers`): ``pretrained_model/`` stays a LeRobot policy folder. The adapters themselves are
saved with the algorithm's tensors, and a resume restores base + adapters exactly (merging is not undone: a
subtraction would not give W back bit for bit, and actors check the frozen base by fingerprint).

peft is imported inside the functions: importing pirlctl stays cheap, and runs without LoRA never import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from pirlctl.errors import PirlError

ADAPTER = "default"  # peft's adapter name; one adapter per layer
LORA_MARK = ".lora_A."  # in a parameter name: the model carries peft LoRA layers
MERGE_ATOL = 1e-5  # merged weight in a checkpoint vs this base + adapters (plus 2 eps relative: one rounding)


class LoraTargetError(PirlError, ValueError):
    """``lora_targets`` names no linear layer of the policy (or the scope holds none). The message lists some."""


class LoraMergeError(PirlError, ValueError):
    """A checkpoint's merged weights are not this base plus the checkpoint's adapters."""


def lora_scope_excludes(adapter: Any, include_vlm: bool) -> tuple[str, ...]:
    """Module-name prefixes that never get adapters: the models' unused ``lm_head``s, and the VLM unless asked."""
    excluded = tuple(getattr(adapter, "unused_parameter_prefixes", ()))
    if not include_vlm:
        excluded += tuple(adapter.frozen_parameter_prefixes())
    return excluded


def linear_layers(policy: nn.Module, excluded: Sequence[str] = ()) -> list[str]:
    """Names of the ``nn.Linear`` modules of ``policy`` outside the ``excluded`` prefixes, in module order."""
    ex = tuple(excluded)
    return [n for n, m in policy.named_modules() if isinstance(m, nn.Linear) and not (n + ".").startswith(ex)]


def resolve_targets(candidates: Sequence[str], targets: Sequence[str], scope: str) -> list[str]:
    """The candidate layers that ``targets`` select (all of them when ``targets`` is empty).

    A target selects a layer whose name equals it or ends with ``"." + target`` (peft's ``target_modules`` rule).
    Every target must select at least one layer; ``scope`` says where the candidates come from, for the error.
    """
    if not candidates:
        raise LoraTargetError(
            f"the {scope} has no linear layer to put a LoRA adapter on; set algorithm.lora_vlm=true or use "
            "algorithm.trainable=action_expert"
        )
    if not targets:
        return list(candidates)
    unmatched = [t for t in targets if not any(c == t or c.endswith("." + t) for c in candidates)]
    if unmatched:
        leaves = list(dict.fromkeys(_short_name(c) for c in candidates))
        raise LoraTargetError(
            f"algorithm.lora_targets {unmatched} match no linear layer of the {scope}; its {len(candidates)} linear "
            f"layers end in {', '.join(leaves[:6])}{', ...' if len(leaves) > 6 else ''} (e.g. {candidates[0]}): "
            "name those, or leave lora_targets empty for all of them"
        )
    return [c for c in candidates if any(c == t or c.endswith("." + t) for t in targets)]


def _short_name(name: str) -> str:
    """The last part of a module name, two parts when the last is an index (``body.1``)."""
    parts = name.split(".")
    return ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


def apply_lora(
    policy: nn.Module, adapter: Any, *, rank: int, alpha: int, targets: Sequence[str] = (), include_vlm: bool = False
) -> list[str]:
    """Inject peft LoRA adapters into ``policy`` in place; returns the adapted layer names.

    Afterwards only the adapters require gradients (peft freezes the rest). ``lora_dropout`` is 0: a rollout and
    its re-score must compute the same function (ratio 1 at learning rate 0).
    """
    from peft import LoraConfig, inject_adapter_in_model

    excluded = lora_scope_excludes(adapter, include_vlm)
    scope = "policy (VLM included)" if include_vlm else "action expert (VLM excluded; algorithm.lora_vlm=true adds it)"
    chosen = resolve_targets(linear_layers(policy, excluded), targets, scope)
    # exact names as one anchored regex: a plain list would also match same-named layers elsewhere (peft matches
    # list entries as suffixes), e.g. inside the VLM
    pattern = "^(?:" + "|".join(re.escape(n) for n in chosen) + ")$"
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none", target_modules=pattern)
    inject_adapter_in_model(config, policy, adapter_name=ADAPTER)
    return chosen


def has_lora(policy: nn.Module) -> bool:
    """Whether ``policy`` carries LoRA adapters (without importing peft)."""
    return any(LORA_MARK in n for n, _ in policy.named_parameters())


def _lora_layers(policy: nn.Module) -> list[tuple[str, Any]]:
    from peft.tuners.lora import LoraLayer

    return [(n, m) for n, m in policy.named_modules() if isinstance(m, LoraLayer)]


@contextmanager
def plain_layers(policy: nn.Module, *, check_loaded: bool = False) -> Iterator[None]:
    """Inside: every LoRA layer of ``policy`` is replaced by its base ``nn.Linear`` holding the merged weight
    W + ΔW, so ``state_dict`` / ``save_pretrained`` / ``load_state_dict`` see a plain LeRobot policy. On exit the
    LoRA layers are put back and each base weight W is restored bit for bit (from a copy, not by subtraction).

    ``check_loaded``: the merged weights were overwritten inside (a checkpoint load); on exit each must equal
    W + ΔW of this base and the (already loaded) adapters within :data:`MERGE_ATOL` plus one rounding of the
    weights' dtype, else :class:`LoraMergeError`.
    A no-op for a policy without adapters.
    """
    if not has_lora(policy):
        yield
        return
    swapped: list[tuple[str, nn.Module, str, Any, Any, torch.Tensor]] = []  # (name, parent, child, LoRA, base, W)
    with torch.no_grad():
        for name, layer in _lora_layers(policy):
            base = layer.get_base_layer()
            original = base.weight.detach().clone()
            base.weight.add_(layer.get_delta_weight(ADAPTER).to(base.weight.dtype))
            parent_name, _, child = name.rpartition(".")
            parent = policy.get_submodule(parent_name)
            setattr(parent, child, base)
            swapped.append((name, parent, child, layer, base, original))
    bad: str | None = None
    try:
        yield
    finally:
        with torch.no_grad():
            for name, parent, child, layer, base, original in reversed(swapped):
                if check_loaded and bad is None:
                    want = original + layer.get_delta_weight(ADAPTER).to(original.dtype)
                    rtol = 2 * torch.finfo(original.dtype).eps  # one rounding of W + ΔW (bf16 saved on another device)
                    if not torch.allclose(base.weight, want, rtol=rtol, atol=MERGE_ATOL):
                        bad = name
                base.weight.copy_(original)
                setattr(parent, child, layer)
    if bad is not None:
        raise LoraMergeError(
            f"the checkpoint's merged weight of LoRA layer {bad!r} is not this run's base plus the checkpoint's "
            "adapters; resume with the policy_path and seed the run started with"
        )


def lora_parameter_count(policy: nn.Module) -> int:
    """Elements in the LoRA adapters of ``policy`` (what a LoRA push carries of the policy)."""
    return sum(p.numel() for n, p in policy.named_parameters() if ".lora_A." in n or ".lora_B." in n)
