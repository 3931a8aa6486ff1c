"""Image nodes: load, VAE decode/encode, resize, save.

IMAGE values are float tensors (batch, 3, H, W) in [0, 1] on the CPU; conversion to
and from PIL goes through diffusers' ``VaeImageProcessor`` so values match diffusers'
pipelines exactly.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ModelNotFoundError, ParameterError
from ..graph.ops import OpSpec, Port, register
from ..graph.types import PortType
from ._checks import as_float, as_side, file_stamp
from .loaders import ComponentRef

__all__ = ["ImageData", "tensor_to_pil", "vae_decode", "vae_encode"]

_RESIZE = {"nearest-exact": Image.Resampling.NEAREST, "nearest": Image.Resampling.NEAREST,
           "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
           "area": Image.Resampling.BOX, "lanczos": Image.Resampling.LANCZOS}


class ImageData:
    """An in-memory image as a parameter: PNG bytes, keyed by their hash."""

    __slots__ = ("png", "sha256")

    def __init__(self, png: bytes):
        self.png = png
        self.sha256 = hashlib.sha256(png).hexdigest()

    @classmethod
    def from_pil(cls, image: Image.Image) -> ImageData:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return cls(buf.getvalue())

    def __lightflow_json__(self) -> dict[str, str]:
        import base64

        return {"png_base64": base64.b64encode(self.png).decode(), "sha256": self.sha256}

    def __repr__(self) -> str:
        return f"<image {self.sha256[:8]}>"


def pil_to_tensor(images: list[Image.Image]) -> torch.Tensor:
    arrays = [np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [0, 1] → PIL images, rounded like diffusers' ``numpy_to_pil``."""
    from diffusers.image_processor import VaeImageProcessor

    array = images.detach().cpu().permute(0, 2, 3, 1).float().numpy()
    return VaeImageProcessor.numpy_to_pil(array)


def _check_load(params: dict[str, Any]) -> dict[str, Any]:
    data = params.get("data")
    if isinstance(data, dict):  # from a saved flow: {"png_base64": ..., "sha256": ...}
        import base64
        import binascii

        try:
            data = params["data"] = ImageData(base64.b64decode(data["png_base64"],
                                                               validate=True))
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ParameterError("the embedded image is not valid base64 PNG data",
                                 where="image", fix="re-save the flow") from exc
    elif data is not None and not isinstance(data, ImageData):
        raise ParameterError(f"image data must be a PIL image, got {type(data).__name__}",
                             where="image", fix="pass a path or a PIL.Image")
    path = params.get("path")
    if data is None and path is None:
        raise ParameterError("lf.image needs a path or a PIL image", where="image",
                             fix="lf.image('photo.png') or lf.image(pil_image)")
    if path is not None:
        file = Path(os.fspath(path)).expanduser()
        if not file.is_file():
            raise ModelNotFoundError(f"no such image file: {path}", where="image",
                                     fix="check the path")
        params["path"], params["stamp"] = file_stamp(file)
    return params


def _run_load(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> torch.Tensor:
    try:
        if params.get("data") is not None:
            image = Image.open(io.BytesIO(params["data"].png))
        else:
            image = Image.open(params["path"])
        image.load()
    except (OSError, ValueError) as exc:
        raise ParameterError(f"cannot read the image ({exc})", where="image",
                             fix="pass a PNG/JPEG/WebP file or a PIL image") from exc
    return pil_to_tensor([image])


register(OpSpec(name="load_image", output=PortType.IMAGE, inputs=(), run=_run_load,
                params=("path", "stamp", "data"), check=_check_load,
                doc="An image from a file or a PIL image."))


def vae_decode(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Latents (UNet space) → images in [0, 1], as diffusers' pipelines decode them."""
    config = vae.config
    latents = latents.to(device=vae.device, dtype=vae.dtype)
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        mean_t = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
        std_t = torch.tensor(std).view(1, -1, 1, 1).to(latents)
        latents = latents * std_t / config.scaling_factor + mean_t
    else:
        latents = latents / config.scaling_factor
    image = vae.decode(latents, return_dict=False)[0]
    return (image / 2 + 0.5).clamp(0, 1).float().cpu()


def vae_encode(vae: Any, images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] → latents (UNet space), using the distribution's mode."""
    config = vae.config
    x = (images * 2 - 1).to(device=vae.device, dtype=vae.dtype)
    latents = vae.encode(x).latent_dist.mode()
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        mean_t = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
        std_t = torch.tensor(std).view(1, -1, 1, 1).to(latents)
        return (latents - mean_t) * config.scaling_factor / std_t
    return latents * config.scaling_factor


def _vae_ref(inputs: dict[str, Any]) -> ComponentRef:
    return inputs["vae"]


def _run_decode(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> torch.Tensor:
    vae = ctx.model(_vae_ref(inputs).spec("vae"))
    latent = inputs["latent"]
    if latent.shape[1] != vae.config.latent_channels:
        raise ParameterError(f"the latent has {latent.shape[1]} channels, the VAE expects "
                             f"{vae.config.latent_channels}", where="decode",
                             fix="decode with the VAE of the checkpoint that sampled it")
    with torch.inference_mode():
        return vae_decode(vae, latent)


def _run_encode_image(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> torch.Tensor:
    vae = ctx.model(_vae_ref(inputs).spec("vae"))
    images = inputs["image"]
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    height, width = images.shape[-2:]
    if height % factor or width % factor:
        new_h, new_w = height - height % factor, width - width % factor
        images = torch.nn.functional.interpolate(images, size=(new_h, new_w), mode="bilinear",
                                                 antialias=True, align_corners=False)
    with torch.inference_mode():
        return vae_encode(vae, images)


def _needs_vae(refs: dict[str, Any], params: Mapping[str, Any]) -> list[Any]:
    return [refs["vae"].spec("vae")] if "vae" in refs else []


_VAE = Port("vae", (PortType.VAE,))
register(OpSpec(name="decode", output=PortType.IMAGE,
                inputs=(Port("latent", (PortType.LATENT,)), _VAE), run=_run_decode,
                needs=_needs_vae, doc="Decode latents with the full VAE."))
register(OpSpec(name="encode_image", output=PortType.LATENT,
                inputs=(Port("image", (PortType.IMAGE,)), _VAE), run=_run_encode_image,
                needs=_needs_vae, doc="Encode an image to latents (img2img)."))


def _check_resize(params: dict[str, Any]) -> dict[str, Any]:
    op = "upscale"
    method = params.get("method", "bilinear")
    if method not in _RESIZE:
        raise ParameterError(f"unknown method {method!r}", where=op,
                             fix=f"use one of: {', '.join(_RESIZE)}")
    params["method"] = method
    if params.get("factor") is not None:
        params["factor"] = as_float(op, "factor", params["factor"], lo=0.0, hi=16.0,
                                    lo_open=True)
    params["width"] = as_side(op, "width", params.get("width"), multiple=1)
    params["height"] = as_side(op, "height", params.get("height"), multiple=1)
    if params.get("factor") is None and not (params["width"] or params["height"]):
        raise ParameterError("give a factor or a width/height", where=op,
                             fix="e.g. .upscale(2) or .upscale(width=768, height=768)")
    return params


def target_size(h: int, w: int, params: Mapping[str, Any], multiple: int = 1) -> tuple[int, int]:
    """(height, width) after resizing by factor or to width/height (aspect kept if one)."""
    if params.get("factor") is not None:
        th, tw = round(h * params["factor"]), round(w * params["factor"])
    else:
        tw = params.get("width") or round(w * params["height"] / h)
        th = params.get("height") or round(h * params["width"] / w)
    return max(multiple, th - th % multiple), max(multiple, tw - tw % multiple)


def _run_resize_image(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> torch.Tensor:
    images = inputs["image"]
    th, tw = target_size(images.shape[-2], images.shape[-1], params)
    pils = [im.resize((tw, th), _RESIZE[params["method"]]) for im in tensor_to_pil(images)]
    return pil_to_tensor(pils)


register(OpSpec(name="upscale_image", output=PortType.IMAGE,
                inputs=(Port("image", (PortType.IMAGE,)),), run=_run_resize_image,
                params=("factor", "width", "height", "method"), check=_check_resize,
                doc="Resize images (PIL resampling)."))


def _check_save(params: dict[str, Any]) -> dict[str, Any]:
    path = params.get("path")
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ParameterError("save needs a file path", where="save", fix='.save("out.png")')
    params["path"] = os.fspath(path)
    return params


def _run_save(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> torch.Tensor:
    from ..recipe import save_images

    save_images(inputs["image"], params["path"], ctx)
    return inputs["image"]


register(OpSpec(name="save", output=PortType.IMAGE, inputs=(Port("image", (PortType.IMAGE,)),),
                run=_run_save, params=("path",), check=_check_save,
                tags=frozenset({"uncached"}),
                doc="Write PNGs (with the recipe in their metadata); passes the image on."))
