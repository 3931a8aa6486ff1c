"""Tiny-autoencoder proxy: diffusers' ``AutoencoderTiny`` (the TAESD family), held in the
model pool like any other model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ModelNotFoundError, ParameterError
from ..pool import ModelSpec, Source

__all__ = ["TinyAutoencoder", "taesd_spec"]


def taesd_spec(path: str | Path, dtype: str = "float32", device: str = "cpu") -> ModelSpec:
    """A pool request for the AutoencoderTiny folder at ``path`` (config + weights)."""
    folder = Path(path).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"no AutoencoderTiny folder at {folder}", where="taesd",
                                 fix="pass a folder saved with AutoencoderTiny.save_pretrained")
    source = Source("folder", str(folder.parent))

    def load() -> Any:
        from diffusers import AutoencoderTiny

        return AutoencoderTiny.from_pretrained(str(folder), torch_dtype=getattr(torch, dtype),
                                               local_files_only=True)

    return ModelSpec(source, folder.name, dtype, device, kind="TAESD", loader=load,
                     identity=source.identity(folder.name))


class TinyAutoencoder:
    """Decode UNet-space latents with an AutoencoderTiny, as diffusers' pipelines do when
    one replaces the VAE (``decode(latents / scaling_factor)``)."""

    name = "taesd"

    def __init__(self, model: Any):
        self.model = model

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        channels = self.model.config.latent_channels
        if latents.shape[1] != channels:
            raise ParameterError(f"the tiny autoencoder takes {channels} latent channels, the "
                                 f"model's latents have {latents.shape[1]}", where="taesd",
                                 fix="use the tiny autoencoder made for this model family")
        x = latents.to(device=self.model.device, dtype=self.model.dtype)
        with torch.inference_mode():
            out = self.model.decode(x / self.model.config.scaling_factor, return_dict=False)[0]
        return (out.float().cpu() / 2 + 0.5).clamp(0, 1)
