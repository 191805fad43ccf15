"""Image augmentation of the policy's camera inputs: DrQ's random shift (Kostrikov, Yarats and Fergus, "Image
Augmentation Is All You Need", arXiv 2004.13649, section 3.1: pad by 4 with edge replication, random 84x84 crop).

One setting drives it, ``algorithm.image_shift`` (pixels; 0 = off), in both stages that train the policy:

- behaviour cloning (``pipeline.sft``) shifts every minibatch after the preprocessor;
- RL: the actor shifts each preprocessed observation BEFORE its policy call and sends the shifted one, so the
  learner re-scores exactly what the actor sampled from, and the PPO ratio at lr 0 stays exactly 1 (the learner
  never draws a shift of its own).

Evaluation never shifts. The shift acts on preprocessed images: it moves pixels, so it commutes with any per-pixel,
per-channel normalisation a preprocessor applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


def random_shift(images: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Each image moved by its own random integer offset of at most ``pad`` pixels along each axis.

    images: [..., C, H, W] (any dtype, any device); every index of the leading dims is one image with its own
    offset (dy, dx), drawn uniformly from {−pad..pad}², from ``generator`` (a CPU generator; None: torch's global
    one). Returns the same shape and dtype with ``out[..., c, y, x] = images[..., c, clamp(y + dy), clamp(x + dx)]``
    (clamped to the image): padding by ``pad`` with edge replication and cropping H×W back at (pad + dy, pad + dx),
    DrQ's transform. ``pad == 0`` returns ``images`` itself and draws nothing.
    """
    if pad < 0:
        raise ValueError(f"pad={pad} must be >= 0")
    if pad == 0:
        return images
    *_, c, h, w = images.shape
    flat = images.reshape(-1, c, h, w)
    n = flat.shape[0]
    offsets = torch.randint(-pad, pad + 1, (n, 2), generator=generator).to(images.device)  # [n, 2]: dy, dx
    rows = (torch.arange(h, device=images.device)[None, :] + offsets[:, :1]).clamp(0, h - 1)  # [n, H]
    cols = (torch.arange(w, device=images.device)[None, :] + offsets[:, 1:]).clamp(0, w - 1)  # [n, W]
    picked = flat[torch.arange(n, device=images.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2).reshape(images.shape)  # advanced indices first: [n, H, W, C] -> [n, C, H, W]


def image_keys(policy_cfg: Any) -> list[str]:
    """The policy's camera inputs (its VISUAL input features), in config order."""
    return list(getattr(policy_cfg, "image_features", {}) or {})


def shift_images(
    observation: dict[str, Any], keys: Iterable[str], pad: int, generator: torch.Generator | None = None
) -> dict[str, Any]:
    """``observation`` (batched [B, C, H, W] or one unbatched [C, H, W] per key) with each camera in ``keys`` shifted
    by :func:`random_shift`, each camera and each image with its own offset; other keys untouched. A new dict
    (the input is not modified); ``pad == 0`` returns ``observation`` itself."""
    if pad == 0:
        return observation
    out = dict(observation)
    for key in keys:
        if key in out:
            out[key] = random_shift(out[key], pad, generator)
    return out
