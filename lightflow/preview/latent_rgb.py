"""Latent→RGB proxy: a linear map plus bias per latent channel, the cheapest useful preview.

Published factors (from ComfyUI's ``latent_formats``; the same method InvokeAI uses) act
on UNet-space latents and give RGB in [-1, 1]. :func:`fit_latent_rgb` fits factors for
any VAE by least squares, as those were derived.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ParameterError

__all__ = ["FORMATS", "LatentRGB", "fit_latent_rgb"]

FORMATS: dict[str, dict[str, Any]] = {
    "sd1": {"factors": [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                        [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]],
            "bias": None},
    "sdxl": {"factors": [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
                         [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
             "bias": [0.1084, -0.0175, -0.0011]},
    "sd3": {"factors": [
        [-0.0922, -0.0175, 0.0749], [0.0311, 0.0633, 0.0954], [0.1994, 0.0927, 0.0458],
        [0.0856, 0.0339, 0.0902], [0.0587, 0.0272, -0.0496], [-0.0006, 0.1104, 0.0309],
        [0.0978, 0.0306, 0.0427], [-0.0042, 0.1038, 0.1358], [-0.0194, 0.0020, 0.0669],
        [-0.0488, 0.0130, -0.0268], [0.0922, 0.0988, 0.0951], [-0.0278, 0.0524, -0.0542],
        [0.0332, 0.0456, 0.0895], [-0.0069, -0.0030, -0.0810], [-0.0596, -0.0465, -0.0293],
        [-0.1448, -0.1463, -0.1189]], "bias": [0.2394, 0.2135, 0.1925]},
    "flux": {"factors": [
        [-0.0346, 0.0244, 0.0681], [0.0034, 0.0210, 0.0687], [0.0275, -0.0668, -0.0433],
        [-0.0174, 0.0160, 0.0617], [0.0859, 0.0721, 0.0329], [0.0004, 0.0383, 0.0115],
        [0.0405, 0.0861, 0.0915], [-0.0236, -0.0185, -0.0259], [-0.0245, 0.0250, 0.1180],
        [0.1008, 0.0755, -0.0421], [-0.0515, 0.0201, 0.0011], [0.0428, -0.0012, -0.0036],
        [0.0817, 0.0765, 0.0749], [-0.1264, -0.0522, -0.1103], [-0.0280, -0.0881, -0.0499],
        [-0.1262, -0.0982, -0.0778]], "bias": [-0.0329, -0.0718, -0.0851]},
}


class LatentRGB:
    """``rgb = latent · factors + bias`` per pixel, upsampled ``scale``x (nearest)."""

    name = "latent_rgb"

    def __init__(self, factors: Any, bias: Any = None, scale: int = 1):
        f = torch.as_tensor(factors, dtype=torch.float32)
        if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] < 1:
            raise ParameterError(f"latent→RGB factors must have shape (channels, 3), got "
                                 f"{tuple(f.shape)}", where="latent_rgb",
                                 fix="pass one [r, g, b] row per latent channel")
        b = torch.zeros(3) if bias is None else torch.as_tensor(bias, dtype=torch.float32)
        if b.shape != (3,):
            raise ParameterError(f"the bias must have 3 values, got shape {tuple(b.shape)}",
                                 where="latent_rgb", fix="pass [r, g, b]")
        self.factors, self.bias, self.scale = f, b, int(scale)

    @classmethod
    def for_format(cls, name: str, scale: int = 1) -> LatentRGB:
        if name not in FORMATS:
            raise ParameterError(f"no latent→RGB factors for {name!r}", where="latent_rgb",
                                 fix=f"use one of {', '.join(FORMATS)} or lf.fit_latent_rgb")
        return cls(FORMATS[name]["factors"], FORMATS[name]["bias"], scale)

    @classmethod
    def from_json(cls, path: str | Path, scale: int = 1) -> LatentRGB:
        try:
            data = json.loads(Path(path).read_text())
            return cls(data["factors"], data.get("bias"), scale)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ParameterError(f"cannot read latent→RGB factors from {path} ({exc})",
                                 where="latent_rgb", fix="write {factors: [[r,g,b],...], "
                                                         "bias: [r,g,b]}") from exc

    @property
    def channels(self) -> int:
        return int(self.factors.shape[0])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.shape[1] != self.channels:
            raise ParameterError(f"latents have {latents.shape[1]} channels, the factors "
                                 f"{self.channels}", where="latent_rgb",
                                 fix="use the factors of this model's latent format")
        x = latents.detach().float().cpu()
        rgb = torch.einsum("bchw,cr->brhw", x, self.factors) + self.bias.view(1, 3, 1, 1)
        rgb = ((rgb + 1) / 2).clamp(0, 1)
        if self.scale > 1:
            rgb = torch.nn.functional.interpolate(rgb, scale_factor=self.scale, mode="nearest")
        return rgb

    def to_json(self) -> dict[str, Any]:
        return {"factors": self.factors.tolist(), "bias": self.bias.tolist()}


def fit_latent_rgb(vae: Any, images: Any, scale: int | None = None) -> LatentRGB:
    """Fit factors for ``vae`` by least squares: encode ``images`` (PIL list or tensor in
    [0, 1]), decode the latents, and regress the decoded RGB (downsampled to latent
    resolution) on the latent channels plus a bias.

        >>> proxy = lf.fit_latent_rgb(vae, [Image.open(p) for p in paths])   # doctest: +SKIP
    """
    from ..nodes.image import pil_to_tensor, vae_decode, vae_encode

    x = images if isinstance(images, torch.Tensor) else pil_to_tensor(list(images))
    with torch.inference_mode():
        latents = vae_encode(vae, x).float().cpu()
        decoded = vae_decode(vae, latents) * 2 - 1
    small = torch.nn.functional.interpolate(decoded, size=latents.shape[-2:], mode="area")
    a = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    a = torch.cat([a, torch.ones(a.shape[0], 1)], dim=1).double()
    y = small.permute(0, 2, 3, 1).reshape(-1, 3).double()
    solution = torch.linalg.lstsq(a, y).solution.float()
    factor = scale or x.shape[-1] // latents.shape[-1]
    return LatentRGB(solution[:-1], solution[-1], factor)
