"""The training data: sklearn's 8x8 digits, upscaled to 32x32, coloured, captioned.

Example::

    ds = make_dataset(seed=0, variants=2)
    ds.images.shape          # (3594, 3, 32, 32), values in [-1, 1]
    ds.captions[0]           # 'a red zero'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

SIZE = 32
DIGIT_WORDS: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "white": (1.0, 1.0, 1.0),
    "orange": (1.0, 0.5, 0.0),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
HELD_OUT_EVERY = 10  # every 10th sklearn image is held out (proxy PSNR, sanity checks)


@dataclass(frozen=True)
class DigitsDataset:
    """Images in [-1, 1] (N, 3, 32, 32) with their captions, digits and colour indexes."""

    images: torch.Tensor
    captions: list[str]
    digits: np.ndarray
    colours: np.ndarray


def caption(digit: int, colour: int | None) -> str:
    """'a red seven' (or 'a seven' when ``colour`` is None)."""
    if colour is None:
        return f"a {DIGIT_WORDS[digit]}"
    return f"a {COLOUR_NAMES[colour]} {DIGIT_WORDS[digit]}"


def base_images(held_out: bool = False) -> tuple[torch.Tensor, np.ndarray]:
    """sklearn digits upscaled to (N, 1, 32, 32) intensity in [0, 1], and their labels.

    ``held_out=False`` gives the training split, ``True`` every 10th image.
    """
    digits = load_digits()
    idx = np.arange(len(digits.target))
    keep = (idx % HELD_OUT_EVERY == 0) if held_out else (idx % HELD_OUT_EVERY != 0)
    small = torch.from_numpy(digits.images[keep] / 16.0).float()[:, None]  # (N, 1, 8, 8)
    big = F.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return big.clamp(0, 1), digits.target[keep]


def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift (C, H, W) by (dy, dx) pixels, filling with black."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = img[:, ys, xs]
    return out


def make_dataset(
    seed: int = 0, variants: int = 4, held_out: bool = False, max_shift: int = 1
) -> DigitsDataset:
    """``variants`` random (colour, shift) copies of every digit in the split."""
    gen = np.random.default_rng(seed)
    gray, labels = base_images(held_out)
    palette = torch.tensor([COLOURS[c] for c in COLOUR_NAMES])  # (K, 3)
    images, captions, digits, colours = [], [], [], []
    for _ in range(variants):
        cols = gen.integers(0, len(COLOUR_NAMES), size=len(labels))
        shifts = gen.integers(-max_shift, max_shift + 1, size=(len(labels), 2))
        for g, label, col, (dy, dx) in zip(gray, labels, cols, shifts, strict=True):
            rgb = _shift(g, int(dy), int(dx)) * palette[col][:, None, None]  # (3, 32, 32)
            images.append(rgb * 2 - 1)
            captions.append(caption(int(label), int(col)))
            digits.append(int(label))
            colours.append(int(col))
    return DigitsDataset(
        images=torch.stack(images),
        captions=captions,
        digits=np.array(digits),
        colours=np.array(colours),
    )
