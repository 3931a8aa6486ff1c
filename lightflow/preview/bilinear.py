"""Bilinear proxy: the latent's first three channels, normalised and resized."""

from __future__ import annotations

import torch

__all__ = ["Bilinear"]


class Bilinear:
    """The cheapest possible preview; shows structure, not colour."""

    name = "bilinear"

    def __init__(self, scale: int = 8):
        self.scale = int(scale)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        x = latents.detach().float().cpu()[:, :3]
        if x.shape[1] < 3:
            x = x.repeat(1, 3, 1, 1)[:, :3]
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - lo) / (hi - lo).clamp_min(1e-6)
        return torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="bilinear",
                                               align_corners=False).clamp(0, 1)
