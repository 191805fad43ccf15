"""X-VLA flow adapter (``lerobot.policies.xvla``, LeRobot 0.6.x).

X-VLA predicts the clean action x̂₀ directly. Its sampler (``XVLAModel.generate_actions``) re-noises each step
with the initial noise, x_t = x1·t + â·(1−t), so the adapter's x̂₁ is the carried noise hint (see
``pirlctl.algorithms.pi_rl.sampler``). The VLM prefix (Florence-2 encoder over images and the task tokens) is
computed once per observation. The action-token hidden states are read with a forward pre-hook on the
transformer's ``action_decoder``: their value is exactly the decoder input, and X-VLA's forward is not re-implemented.

Language without the hub: X-VLA's processor tokenises the task with ``facebook/bart-large``. When that tokenizer
is not in the local cache (tests, offline CI), :func:`tokenize_task` falls back to a deterministic hashing
tokenizer over the text config's vocabulary; the choice is recorded and must be the same for SFT, RL and eval.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from pirlctl.policies.base import DenoiseFn, DenoiseOutput

logger = logging.getLogger(__name__)

LANGUAGE_TOKENS_KEY = "observation.language.tokens"


@dataclass
class XVLAPrefix:
    enc: dict[str, Tensor]  # vlm_features [B,L,P], aux_visual_inputs [B,A,P]
    proprio: Tensor  # [B, S] padded proprio (X-VLA's own padding)
    domain_id: Tensor  # [B] long


class XVLAAdapter:
    """PI-RL view of an ``XVLAPolicy``."""

    def __init__(self, policy: nn.Module) -> None:
        self.policy: Any = policy
        model: Any = self.policy.model
        self.model = model
        cfg: Any = self.policy.config
        self.chunk_size = int(cfg.chunk_size)
        self.n_action_steps = int(cfg.n_action_steps)
        self.action_dim = int(model.dim_action)
        self.real_action_dim = int(getattr(model.action_space, "real_dim", model.dim_action))
        self.hidden_size = int(cfg.hidden_size)
        text_cfg = cfg.get_florence_config().text_config
        self.prefix_feature_dim = int(text_cfg.d_model) + int(model.dim_proprio)
        self._captured: Tensor | None = None
        model.transformer.action_decoder.register_forward_pre_hook(self._capture_hidden)

    def _capture_hidden(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        self._captured = args[0]

    def _dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.policy.config.dtype == "bfloat16" else torch.float32

    def encode(self, batch: dict[str, Tensor]) -> XVLAPrefix:
        inputs = self.policy._build_model_inputs(batch)
        dtype = self._dtype()
        enc = self.model.forward_vlm(inputs["input_ids"], inputs["image_input"].to(dtype=dtype), inputs["image_mask"])
        return XVLAPrefix(enc=enc, proprio=inputs["proprio"].to(dtype=dtype), domain_id=inputs["domain_id"])

    def denoise_fn(self, prefix: XVLAPrefix) -> DenoiseFn:
        model = self.model

        def denoise(x_t: Tensor, t: Tensor, hint: Tensor) -> DenoiseOutput:
            proprio_m, x_t_m = model.action_space.preprocess(prefix.proprio, x_t)
            x0 = model.transformer(
                domain_id=prefix.domain_id,
                action_with_noise=x_t_m,
                proprio=proprio_m,
                t=t.to(x_t.dtype),
                **prefix.enc,
            )
            hidden = self._captured
            assert hidden is not None, "X-VLA action_decoder hook did not fire"
            self._captured = None
            return DenoiseOutput(x0_hat=x0, x1_hat=hint, hidden=hidden)

        return denoise

    def prefix_features(self, prefix: XVLAPrefix) -> Tensor:
        pooled = prefix.enc["vlm_features"].mean(dim=1)
        return torch.cat([pooled, prefix.proprio.to(pooled.dtype)], dim=-1)

    def postprocess(self, x: Tensor) -> Tensor:
        return self.model.action_space.postprocess(x.clone())

    def frozen_parameter_prefixes(self) -> tuple[str, ...]:
        return ("model.vlm.",)

    def expert_block_prefixes(self) -> tuple[str, ...]:
        return tuple(f"model.transformer.blocks.{i}." for i in range(len(self.model.transformer.blocks)))


def hash_tokenize(text: str, vocab_size: int, max_length: int) -> list[int]:
    """Deterministic offline tokenizer: BART-style specials (bos 0, pad 1, eos 2), words hashed into the rest."""
    if vocab_size < 4:
        raise ValueError(f"vocab_size={vocab_size} too small for the hashing tokenizer (need >= 4)")
    ids = [0] + [3 + zlib.crc32(w.lower().encode()) % (vocab_size - 3) for w in text.split()][: max_length - 2]
    ids.append(2)
    return ids + [1] * (max_length - len(ids))


def tokenize_task(task: str, policy_config: Any, batch_size: int = 1) -> tuple[Tensor, str]:
    """Task text -> ``observation.language.tokens`` [B, L] long, and which tokenizer made them.

    Uses the policy's HF tokenizer from the local cache when present (never downloads), else :func:`hash_tokenize`.
    π0, π0.5 and SmolVLA configs go to :func:`pirlctl.policies.language.tokenize_task` (PaliGemma's pad id).
    """
    if not hasattr(policy_config, "get_florence_config"):
        from pirlctl.policies.language import tokenize_task as tokenize_prompt

        return tokenize_prompt(task, policy_config, batch_size)
    max_len = int(policy_config.tokenizer_max_length)
    vocab = int(policy_config.get_florence_config().text_config.vocab_size)
    ids: list[int] | None = None
    source = "hash"
    name = getattr(policy_config, "tokenizer_name", None)
    if name and vocab > 1000:  # a real-size vocabulary: try the cached tokenizer first
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
            ids = tok(task, padding="max_length", max_length=max_len, truncation=True)["input_ids"]
            source = name
        except Exception as err:  # noqa: BLE001 - any failure means "not cached": fall back, say so
            logger.warning("tokenizer %s not available offline (%s); using the hashing tokenizer", name, err)
    if ids is None:
        ids = hash_tokenize(task, vocab, max_len)
    return torch.tensor([ids] * batch_size, dtype=torch.long), source
