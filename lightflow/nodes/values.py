"""Values that flow between nodes (besides plain tensors for LATENT and IMAGE).

LATENT values are ``torch.Tensor`` of shape (batch, channels, h, w), already multiplied
by the VAE's scaling factor (the space the UNet works in). IMAGE values are float
tensors (batch, 3, H, W) in [0, 1] on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Conditioning", "PromptValue"]


@dataclass(frozen=True)
class PromptValue:
    text: str
    negative: str


@dataclass(frozen=True)
class Conditioning:
    """Text conditioning for one prompt (batch 1); sampling repeats it per image.

    ``pooled``/``negative_pooled`` are SDXL's pooled embeddings; ``controls`` holds
    ControlNet/T2I-Adapter hints attached with ``.control(...)``.
    """

    embeds: torch.Tensor
    negative: torch.Tensor | None
    family: str
    pooled: torch.Tensor | None = None
    negative_pooled: torch.Tensor | None = None
    text_encoder_projection_dim: int | None = None
    controls: tuple[Any, ...] = field(default=())
