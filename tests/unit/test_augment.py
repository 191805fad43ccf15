"""DrQ's random shift (pirlctl.policies.augment) against a by-hand pad-and-crop, and the setting that drives it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig, PiRLConfigError
from pirlctl.policies.augment import image_keys, random_shift, shift_images


def _pad_and_crop(image: torch.Tensor, pad: int, dy: int, dx: int) -> torch.Tensor:
    """DrQ's transform written out: pad [C, H, W] by ``pad`` with edge replication, crop H×W at (pad+dy, pad+dx)."""
    _, h, w = image.shape
    padded = F.pad(image[None], (pad, pad, pad, pad), mode="replicate")[0]
    return padded[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]


def _offset_of(shifted: torch.Tensor, image: torch.Tensor, pad: int) -> tuple[int, int]:
    """The one (dy, dx) in {-pad..pad}^2 whose pad-and-crop of ``image`` is ``shifted``."""
    found = [
        (dy, dx)
        for dy in range(-pad, pad + 1)
        for dx in range(-pad, pad + 1)
        if torch.equal(_pad_and_crop(image, pad, dy, dx), shifted)
    ]
    assert len(found) == 1, found
    return found[0]


def test_each_image_is_a_pad_and_crop_of_itself_within_k_pixels_and_the_offsets_cover_the_range():
    images = torch.rand(64, 3, 12, 10)  # distinct random pixels: exactly one offset reproduces a shifted image
    out = random_shift(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    offsets = {_offset_of(out[i], images[i], 2) for i in range(len(images))}
    assert {dy for dy, _ in offsets} == {dx for _, dx in offsets} == {-2, -1, 0, 1, 2}  # every offset, no larger


def test_leading_dims_are_kept_and_each_image_gets_its_own_offset():
    images = torch.rand(2, 4, 3, 8, 8)
    out = random_shift(images, 3, torch.Generator().manual_seed(1))
    assert out.shape == images.shape
    flat_in, flat_out = images.reshape(-1, 3, 8, 8), out.reshape(-1, 3, 8, 8)
    assert len({_offset_of(flat_out[i], flat_in[i], 3) for i in range(8)}) > 1
    one = torch.rand(3, 8, 8)  # one unbatched image, as the actor holds it
    assert _offset_of(random_shift(one, 3, torch.Generator().manual_seed(2)), one, 3)


def test_integer_images_shift_too():
    images = torch.randint(0, 255, (4, 3, 9, 9), dtype=torch.uint8)
    out = random_shift(images, 1, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == images.shape


def test_the_same_generator_seed_gives_the_same_shifts_and_another_seed_others():
    images = torch.rand(16, 3, 8, 8)
    a = random_shift(images, 4, torch.Generator().manual_seed(7))
    b = random_shift(images, 4, torch.Generator().manual_seed(7))
    c = random_shift(images, 4, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_k_zero_is_the_identity_and_draws_nothing():
    images = torch.rand(4, 3, 8, 8)
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    assert random_shift(images, 0, g) is images
    obs = {"observation.images.front": images, "observation.state": torch.rand(4, 5)}
    assert shift_images(obs, ["observation.images.front"], 0, g) is obs
    assert torch.equal(g.get_state(), state)  # the SFT minibatch draws that share the generator are unchanged


def test_shift_images_moves_each_camera_and_nothing_else():
    obs = {"a": torch.rand(8, 3, 8, 8), "b": torch.rand(8, 3, 8, 8), "observation.state": torch.rand(8, 5)}
    out = shift_images(obs, ["a", "b", "absent"], 2, torch.Generator().manual_seed(0))
    assert out is not obs and out["observation.state"] is obs["observation.state"]
    assert not torch.equal(out["a"], obs["a"]) and not torch.equal(out["b"], obs["b"])
    assert torch.equal(obs["a"], obs["a"].clone())  # the input dict's tensors are untouched


def test_image_keys_are_the_policys_visual_inputs():
    from pirlctl.config.run_config import load_run_config
    from pirlctl.configs import CONFIGS_DIR

    cfg = load_run_config(CONFIGS_DIR / "pick_cube_tiny_pixels.json")
    assert image_keys(cfg.policy) == ["observation.images.front", "observation.images.wrist"]
    assert cfg.pirl.image_shift == 0  # off unless asked for


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_an_invalid_image_shift_is_refused_in_one_line_naming_the_field(bad):
    with pytest.raises(PiRLConfigError, match=r"pi_rl\.image_shift=.* use a number of pixels >= 0"):
        PiRLConfig(image_shift=bad)
