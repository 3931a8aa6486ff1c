"""Proxy decoders (latent→RGB, tiny autoencoder, bilinear), live previews, draft mode."""

from . import draft  # noqa: F401  (registers proxy ops and draft rules)
from .base import ProxyDecoder, to_uint8
from .bilinear import Bilinear
from .choose import choose_proxy
from .latent_rgb import FORMATS, LatentRGB, fit_latent_rgb
from .live import PreviewThrottle
from .taesd import TinyAutoencoder, taesd_spec

__all__ = [
    "FORMATS",
    "Bilinear",
    "LatentRGB",
    "PreviewThrottle",
    "ProxyDecoder",
    "TinyAutoencoder",
    "choose_proxy",
    "fit_latent_rgb",
    "taesd_spec",
    "to_uint8",
]
