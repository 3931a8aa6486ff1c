"""Latent nodes: empty latents and latent resizing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..errors import ParameterError
from ..graph.ops import OpSpec, Port, register
from ..graph.types import PortType
from ._checks import MAX_BATCH, as_int, as_side
from .image import _check_resize, target_size

__all__: list[str] = []

_TORCH_MODES = {"nearest-exact": "nearest-exact", "nearest": "nearest", "bilinear": "bilinear",
                "bicubic": "bicubic", "area": "area"}


def _check_latent_resize(params: dict[str, Any]) -> dict[str, Any]:
    params.setdefault("method", "nearest-exact")
    if params["method"] not in _TORCH_MODES:
        raise ParameterError(f"unknown latent resize method {params['method']!r}",
                             where="upscale_latent", fix=f"use one of: {', '.join(_TORCH_MODES)}")
    return _check_resize(params)


def _run_upscale_latent(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> Any:
    latent: torch.Tensor = inputs["latent"]
    pixel = {k: (v // 8 if k in ("width", "height") and v else v) for k, v in params.items()}
    th, tw = target_size(latent.shape[-2], latent.shape[-1], pixel)
    mode = _TORCH_MODES[params["method"]]
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return torch.nn.functional.interpolate(latent, size=(th, tw), mode=mode, **kwargs)


register(OpSpec(name="upscale_latent", output=PortType.LATENT,
                inputs=(Port("latent", (PortType.LATENT,)),), run=_run_upscale_latent,
                params=("factor", "width", "height", "method"), check=_check_latent_resize,
                doc="Resize latents (width/height in pixels, 8 per latent cell)."))


def _check_empty(params: dict[str, Any]) -> dict[str, Any]:
    params["width"] = as_side("empty_latent", "width", params.get("width", 512))
    params["height"] = as_side("empty_latent", "height", params.get("height", 512))
    params["batch"] = as_int("empty_latent", "batch", params.get("batch", 1), lo=1, hi=MAX_BATCH)
    params["channels"] = as_int("empty_latent", "channels", params.get("channels", 4), lo=1,
                                hi=64)
    return params


def _run_empty(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> torch.Tensor:
    return torch.zeros(params["batch"], params["channels"], params["height"] // 8,
                       params["width"] // 8)


register(OpSpec(name="empty_latent", output=PortType.LATENT, inputs=(), run=_run_empty,
                params=("width", "height", "batch", "channels"), check=_check_empty,
                doc="A zero latent (ComfyUI's EmptyLatentImage)."))
