"""Language tokens for π0, π0.5 and SmolVLA without the hub.

None of the three tokenises inside the model: the batch carries ``observation.language.tokens`` and
``observation.language.attention_mask``, written by LeRobot's processors with hub-only tokenizers
(``google/paligemma-3b-pt-224``; SmolVLA's ``vlm_model_name``). Offline, pirlctl's actor writes only the tokens, from
the cached tokenizer or, failing that, the hashing tokenizer below (PaliGemma's specials: pad 0, bos 2). When the
mask is absent the adapters take it as ``tokens != 0`` (pad 0 on both paths).

π0.5 has no state input: its processor writes the state, normalised to [-1, 1] and cut into 256 bins, into the
prompt (``processor_pi05.py:66-75``: "Task: ..., State: 12 200 ...;\\nAction: "). On the offline path (no mask in
the batch) the π0.5 adapter appends the same words, hashed, after the task tokens (:func:`state_prompt_tokens`), so
actor and learner see the state; when a processor wrote the mask it has already put the state in the prompt.

A pretrained checkpoint is different: its VLM learnt its tokenizer's ids, and hashed words mean nothing to it. So a
real-size π0 / π0.5 / SmolVLA loaded from a folder whose pipeline has no tokenizer step of its own must find its
tokenizer in the local HF cache; else :func:`pirlctl.policies.processors.require_pretrained_tokenizer` refuses in
one line naming what to download and where (a saved pipeline's own tokenizer step is checked the same way by
:func:`pirlctl.policies.processors.load_processors`).
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import torch
from torch import Tensor

from pirlctl.errors import PirlError

logger = logging.getLogger(__name__)

LANGUAGE_TOKENS_KEY = "observation.language.tokens"
LANGUAGE_MASK_KEY = "observation.language.attention_mask"
PAD_ID, BOS_ID = 0, 2  # PaliGemma's ids (eos is 1); the hashing tokenizer keeps them
FIRST_WORD_ID = 3
STATE_BINS = 256  # openpi PaligemmaTokenizer, processor_pi05.py:67
PALIGEMMA_VOCAB = 257_152  # modeling_pi0.py:207
SMOLVLM2_VOCAB = 49_280
TOKENIZER_NAMES = {"pi0": "google/paligemma-3b-pt-224", "pi05": "google/paligemma-3b-pt-224"}
VELOCITY_TYPES = ("pi0", "pi05", "smolvla")
REAL_VOCAB = 1000  # above this a vocabulary is a real tokenizer's (tiny builds hash: vocab_size)


class TokenizerMissingError(PirlError, ValueError):
    """A pretrained checkpoint's tokenizer is not in the local Hugging Face cache; the message says what to fetch."""


def word_id(word: str, vocab_size: int) -> int:
    """A word's id under the hashing tokenizer (deterministic across processes)."""
    return FIRST_WORD_ID + zlib.crc32(word.lower().encode()) % (vocab_size - FIRST_WORD_ID)


def hash_tokenize(text: str, vocab_size: int, max_length: int) -> list[int]:
    """Offline tokenizer with PaliGemma's specials: bos 2, words hashed into [3, vocab), right-padded with 0."""
    if vocab_size <= FIRST_WORD_ID:
        raise ValueError(f"vocab_size={vocab_size} too small for the hashing tokenizer (need > {FIRST_WORD_ID})")
    ids = [BOS_ID] + [word_id(w, vocab_size) for w in text.split()][: max_length - 1]
    return ids + [PAD_ID] * (max_length - len(ids))


def attention_mask_from_tokens(tokens: Tensor) -> Tensor:
    """[B, L] bool: every token but the pad id 0."""
    return tokens != PAD_ID


def vocab_size(policy_config: Any) -> int:
    """The text vocabulary of a π0 / π0.5 / SmolVLA config (the tiny build's when tagged tiny)."""
    from pirlctl.policies.tiny_builds import TINY_GEMMA, TINY_SMOLVLM_VOCAB, is_tiny

    if policy_config.type == "smolvla":
        return TINY_SMOLVLM_VOCAB if is_tiny(policy_config) else SMOLVLM2_VOCAB
    return TINY_GEMMA.vocab_size if is_tiny(policy_config) else PALIGEMMA_VOCAB


def tokenizer_name(policy_config: Any) -> str:
    return str(TOKENIZER_NAMES.get(policy_config.type) or policy_config.vlm_model_name)


def state_bins(state: Tensor) -> Tensor:
    """π0.5's discretisation: state in [-1, 1] -> bin index in [0, 255] (np.digitize over linspace(-1, 1, 257)[:-1],
    minus 1; values outside [-1, 1] land in the end bins). state [B, S] -> [B, S] long."""
    edges = torch.linspace(-1.0, 1.0, STATE_BINS + 1, device=state.device, dtype=torch.float64)[:-1]
    return (torch.bucketize(state.double(), edges, right=True) - 1).clamp(0, STATE_BINS - 1)


def state_prompt_tokens(state: Tensor, vocab: int) -> Tensor:
    """The hashed words ", State: b1 ... bS;\\nAction:" of π0.5's prompt. state [B, S] -> [B, S + 3] long."""
    bins = state_bins(state).tolist()
    rows = [[word_id("State:", vocab)] + [word_id(str(b), vocab) for b in row] + [word_id(";", vocab)] for row in bins]
    action = word_id("Action:", vocab)
    return torch.tensor([r + [action] for r in rows], dtype=torch.long, device=state.device)


def tokenize_task(task: str, policy_config: Any, batch_size: int = 1) -> tuple[Tensor, str]:
    """Task text -> ``observation.language.tokens`` [B, L] long (L = ``tokenizer_max_length``) and its tokenizer.

    A real-size vocabulary tries the policy's tokenizer from the local HF cache (never downloads); when it is not
    there, one warning names what to download, and the hashing tokenizer is used (recorded: SFT, RL and eval must
    agree). Tiny builds always hash.
    """
    max_len = int(policy_config.tokenizer_max_length)
    vocab = vocab_size(policy_config)
    name = tokenizer_name(policy_config)
    if vocab > 1000:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
            ids = tok(task, padding="max_length", max_length=max_len, truncation=True)["input_ids"]
            return torch.tensor([ids] * batch_size, dtype=torch.long), name
        except Exception as err:  # noqa: BLE001 - any failure means "not cached": fall back, say so
            logger.warning(
                "tokenizer %s is not in the local HF cache (%s); download it with `hf download %s` on a machine "
                "with access (HF_HOME must point at that cache here); using the hashing tokenizer",
                name,
                type(err).__name__,
                name,
            )
    ids = hash_tokenize(task, vocab, max_len)
    return torch.tensor([ids] * batch_size, dtype=torch.long), "hash"
