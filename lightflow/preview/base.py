"""The proxy-decoder protocol and image helpers shared by every proxy.

A proxy decoder turns UNet-space latents (batch, C, h, w) into images (batch, 3, H, W)
in [0, 1], far more cheaply than the full VAE.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["ProxyDecoder", "to_uint8"]


@runtime_checkable
class ProxyDecoder(Protocol):
    name: str

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents → images in [0, 1], shape (batch, 3, H, W)."""
        ...


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """The first image as an (H, W, 3) uint8 array: the bytes a widget would send."""
    first = images[0].detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return first.permute(1, 2, 0).cpu().numpy()
