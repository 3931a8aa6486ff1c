"""Which proxy decoder a checkpoint gets: the tiny autoencoder when one is configured for
its latent format (``lf.settings.taesd[family]`` or a ``taesd/`` folder beside the
checkpoint), else latent→RGB factors (a ``latent_rgb.json`` beside it, else the
published ones for its family); bilinear only when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ParameterError
from .base import ProxyDecoder
from .bilinear import Bilinear
from .latent_rgb import FORMATS, LatentRGB
from .taesd import TinyAutoencoder, taesd_spec

__all__ = ["choose_proxy", "taesd_path"]


def taesd_path(checkpoint: Any, settings: Any) -> Path | None:
    configured = settings.taesd.get(checkpoint.family)
    if configured:
        return Path(configured)
    folder = checkpoint.folder
    if folder is not None and (folder / "taesd" / "config.json").is_file():
        return folder / "taesd"
    return None


def choose_proxy(name: str, checkpoint: Any, settings: Any, acquire: Any) -> ProxyDecoder:
    """A proxy decoder for ``checkpoint``; ``acquire(spec)`` holds pool models (TAESD)."""
    scale = checkpoint.vae_scale_factor
    if name in ("auto", "taesd"):
        path = taesd_path(checkpoint, settings)
        if path is not None:
            spec = taesd_spec(path, "float32", checkpoint.device)
            return TinyAutoencoder(acquire(spec))
        if name == "taesd":
            raise ParameterError(f"no tiny autoencoder is configured for {checkpoint.family}",
                                 where="taesd", fix=f'set lf.settings.taesd["{checkpoint.family}"]'
                                                    " = 'path/to/taesd'")
        name = "latent_rgb"
    if name == "latent_rgb":
        folder = checkpoint.folder
        if folder is not None and (folder / "latent_rgb.json").is_file():
            return LatentRGB.from_json(folder / "latent_rgb.json", scale)
        if checkpoint.family in FORMATS:
            return LatentRGB.for_format(checkpoint.family, scale)
        raise ParameterError(f"no latent→RGB factors for {checkpoint.family}", where="preview",
                             fix="fit some with lf.fit_latent_rgb")
    if name == "bilinear":
        return Bilinear(scale)
    raise ParameterError(f"unknown proxy decoder {name!r}", where="preview",
                         fix="use auto, taesd, latent_rgb or bilinear")
