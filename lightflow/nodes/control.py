"""ControlNet and T2I-Adapter nodes, and the canny edge preprocessor.

``cond.control(model, image, strength, start, end)`` attaches a hint to a conditioning
(stackable); the ControlNet / T2I-Adapter is loaded from the pool only when the sampling
that uses it runs, and the loop applies it as diffusers' ``StableDiffusionControlNetPipeline``
(``MultiControlNetModel`` for several) and ``StableDiffusionAdapterPipeline`` do.

    >>> cn = controlnet("models/control_canny")                          # doctest: +SKIP
    >>> edges = lf.image("house.png").canny(100, 200)                    # doctest: +SKIP
    >>> cond = lf.prompt("a house").encode(sd).control(cn, edges, strength=0.8)  # doctest: +SKIP
    >>> cond.sample(sd, steps=20).decode(sd).image()                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelLoadError, ModelNotFoundError, ParameterError
from ..graph.node import Node
from ..graph.ops import OpSpec, Port, build, register
from ..graph.types import PortType
from ..pool import ModelSpec, Source
from ..pool.source import file_stamp
from ._checks import as_float, as_int
from .values import Conditioning

__all__ = ["ControlHint", "ControlModelRef", "ControlRunner", "canny", "controlnet",
           "t2i_adapter"]

log = logging.getLogger("lightflow.control")

_CLASSES = {"controlnet": "ControlNetModel", "t2i_adapter": "T2IAdapter"}
_KINDS = {"controlnet": "CONTROLNET", "t2i_adapter": "ADAPTER"}


@dataclass(frozen=True)
class ControlModelRef:
    """A resolved ControlNet / T2I-Adapter: a diffusers folder (config.json + weights) or a
    single file with the folder of its config. Nothing is loaded until sampling."""

    kind: str  # "controlnet" | "t2i_adapter"
    location: str
    config_folder: str
    stamp: str

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.location}[{self.stamp}]"

    @property
    def name(self) -> str:
        return Path(self.location).stem

    def config(self) -> dict[str, Any]:
        try:
            return json.loads((Path(self.config_folder) / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read the config of {self.name}: {exc}",
                                 where=self.kind, fix="pass a folder saved by save_pretrained")\
                from exc

    def spec(self, dtype: str, device: str) -> ModelSpec:
        """The pool request for this model in the sampling UNet's dtype and device."""
        path = Path(self.location)
        source = Source("folder", str(path.parent))
        kind, location, config = self.kind, self.location, self.config_folder

        def load() -> Any:
            import diffusers

            cls = getattr(diffusers, _CLASSES[kind])
            torch_dtype = getattr(torch, dtype)
            try:
                if Path(location).is_dir():
                    model = cls.from_pretrained(location, torch_dtype=torch_dtype,
                                                local_files_only=True)
                else:
                    model = cls.from_single_file(location, config=config,
                                                 torch_dtype=torch_dtype, local_files_only=True)
            except Exception as exc:
                raise ModelLoadError(f"cannot load {Path(location).name}: {exc}", where=kind,
                                     fix=f"pass a diffusers {_CLASSES[kind]} folder") from exc
            model.requires_grad_(False)
            return model

        return ModelSpec(source, path.name, dtype, device, kind=_KINDS[kind], loader=load,
                         identity=self.identity)


@dataclass(frozen=True)
class ControlHint:
    """One control attached to a conditioning: model, image (1, 3, H, W) in [0, 1], strength
    and the fraction of steps [start, end] it acts on."""

    model: ControlModelRef
    image: torch.Tensor
    strength: float
    start: float
    end: float


# ---------------------------------------------------------------------- model nodes
def _check_model(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    source = params.get("source")
    if not isinstance(source, (str, os.PathLike)):
        raise ModelNotFoundError(f"a {kind} is given by a path, got {type(source).__name__}",
                                 where=kind, fix=f"lf.{kind}('path/to/folder')")
    path = Path(os.fspath(source)).expanduser()
    config = params.get("config")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} has no config.json", where=kind,
                                     fix=f"pass a folder saved with {_CLASSES[kind]}"
                                         ".save_pretrained")
        config = str(path.resolve())
        files = sorted(p for p in path.iterdir() if p.is_file())
    elif path.is_file():
        folder = Path(os.fspath(config)).expanduser() if config else path.parent
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(f"a single-file {kind} needs the folder of its config.json",
                                     where=kind, fix="pass config='folder/with/config.json'")
        config = str(folder.resolve())
        files = [path]
    else:
        raise ModelNotFoundError(f"no such {kind}: {source}", where=kind, fix="check the path")
    stamps = [f"{f.name}:{file_stamp(f)}" for f in files]
    params.update(source=str(path.resolve()), config=config, stamp=",".join(stamps))
    return params


def _model_op(kind: str, output: PortType) -> None:
    def run(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> ControlModelRef:
        return ControlModelRef(kind, params["source"], params["config"], params["stamp"])

    register(OpSpec(name=kind, output=output, inputs=(), run=run,
                    params=("source", "config", "stamp"),
                    check=lambda p: _check_model(kind, p),
                    doc=f"A diffusers {_CLASSES[kind]} (loaded when sampling needs it)."))


_model_op("controlnet", PortType.CONTROLNET)
_model_op("t2i_adapter", PortType.ADAPTER)


def controlnet(source: str | os.PathLike[str], *, config: str | None = None) -> Node:
    """A lazy ControlNet: a diffusers ``ControlNetModel`` folder, or a single file with
    ``config=`` the folder holding its config.json. ``controlnet("cn_canny").type`` is
    CONTROLNET; nothing is read but file metadata until a sampling run uses it."""
    return build("controlnet", source=os.fspath(source), config=config)


def t2i_adapter(source: str | os.PathLike[str], *, config: str | None = None) -> Node:
    """A lazy T2I-Adapter (a diffusers ``T2IAdapter`` folder); use it with ``.control``."""
    return build("t2i_adapter", source=os.fspath(source), config=config)


# ---------------------------------------------------------------------- control / canny ops
def _check_control(params: dict[str, Any]) -> dict[str, Any]:
    params["strength"] = as_float("control", "strength", params.get("strength", 1.0),
                                  lo=0.0, hi=10.0)
    params["start"] = as_float("control", "start", params.get("start", 0.0), lo=0.0, hi=1.0)
    params["end"] = as_float("control", "end", params.get("end", 1.0), lo=0.0, hi=1.0)
    if params["start"] >= params["end"]:
        raise ParameterError(f"start ({params['start']}) must be below end ({params['end']})",
                             where="control", fix="pass 0 <= start < end <= 1")
    return params


def _run_control(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> Conditioning:
    cond: Conditioning = inputs["cond"]
    image: torch.Tensor = inputs["image"]
    hint = ControlHint(inputs["model"], image[:1], params["strength"], params["start"],
                       params["end"])
    return replace(cond, controls=(*cond.controls, hint))


register(OpSpec(
    name="control", output=PortType.CONDITIONING,
    inputs=(Port("cond", (PortType.CONDITIONING,)),
            Port("model", (PortType.CONTROLNET, PortType.ADAPTER)),
            Port("image", (PortType.IMAGE,))),
    run=_run_control, params=("strength", "start", "end"), check=_check_control,
    doc="Attach a ControlNet or T2I-Adapter hint (stackable) to a conditioning."))


def _check_canny(params: dict[str, Any]) -> dict[str, Any]:
    params["low"] = as_int("canny", "low", params.get("low", 100), lo=0, hi=2000)
    params["high"] = as_int("canny", "high", params.get("high", 200), lo=0, hi=2000)
    if params["low"] > params["high"]:
        raise ParameterError(f"low ({params['low']}) must be <= high ({params['high']})",
                             where="canny", fix="swap the thresholds")
    return params


def canny(images: torch.Tensor, low: int = 100, high: int = 200) -> torch.Tensor:
    """OpenCV's Canny edges of (B, 3, H, W) images in [0, 1], as 3-channel images in {0, 1}
    (the recipe of diffusers' ControlNet docs: ``cv2.Canny(np.array(pil), low, high)``)."""
    import cv2

    arrays = (images.permute(0, 2, 3, 1).float().numpy() * 255).round().astype(np.uint8)
    edges = [cv2.Canny(np.ascontiguousarray(a), low, high) for a in arrays]
    out = torch.from_numpy(np.stack(edges).astype(np.float32) / 255.0)
    return out[:, None].repeat(1, 3, 1, 1).contiguous()


register(OpSpec(
    name="canny", output=PortType.IMAGE, inputs=(Port("image", (PortType.IMAGE,)),),
    run=lambda ctx, inputs, params: canny(inputs["image"], params["low"], params["high"]),
    params=("low", "high"), check=_check_canny,
    doc="Canny edges (OpenCV) of an image, for canny ControlNets and T2I-Adapters."))


# ---------------------------------------------------------------------- sampling support
def check_family(model: ControlModelRef, unet_config: Mapping[str, Any]) -> None:
    """Refuse a control model made for another model family (read from configs only)."""
    config = model.config()
    unet_xl = unet_config.get("addition_embed_type") == "text_time"
    if model.kind == "controlnet":
        problems = []
        for key in ("cross_attention_dim", "block_out_channels", "addition_embed_type"):
            mine, theirs = config.get(key), unet_config.get(key)
            if isinstance(mine, list) or isinstance(theirs, list):
                mine, theirs = list(mine or []), list(theirs or [])
            if mine != theirs:
                problems.append(f"{key} {mine} vs the UNet's {theirs}")
    else:
        xl = config.get("adapter_type") == "full_adapter_xl"
        problems = [f"adapter_type {config.get('adapter_type')} for a "
                    f"{'SDXL' if unet_xl else 'SD 1.x'} UNet"] if xl != unet_xl else []
        if not xl and not unet_xl and list(config.get("channels", [])) != \
                list(unet_config.get("block_out_channels", [])):
            problems.append(f"channels {config.get('channels')} vs the UNet's "
                            f"{unet_config.get('block_out_channels')}")
    if problems:
        raise ParameterError(
            f"the {model.kind} {model.name} was made for another model family "
            f"({'; '.join(problems)})", where="control",
            fix=f"use a {model.kind} trained for this checkpoint's family "
                f"({'SDXL' if unet_xl else 'SD 1.x'})")


def _prepare_image(hint: ControlHint, height: int, width: int) -> torch.Tensor:
    """The control image at the sampling size, like the pipelines' ``prepare_image``."""
    from diffusers.image_processor import VaeImageProcessor

    from .image import tensor_to_pil

    image = hint.image
    if image.ndim != 4 or image.shape[1] != 3:
        raise ParameterError(f"a control image must be (1, 3, H, W), got {tuple(image.shape)}",
                             where="control", fix="pass an RGB image")
    processor = VaeImageProcessor(do_convert_rgb=True, do_normalize=False)
    if tuple(image.shape[-2:]) != (height, width):
        warnings.warn(f"control image for {hint.model.name} is {image.shape[-1]}x"
                      f"{image.shape[-2]}, resized to the sampling size {width}x{height}",
                      stacklevel=2)
        log.warning("control image resized to %dx%d", width, height)
        return processor.preprocess(tensor_to_pil(image), height=height, width=width).float()
    return processor.preprocess(image, height=height, width=width).float()


def _adapter_input(model: Any, hint: ControlHint, height: int, width: int) -> torch.Tensor:
    from diffusers.pipelines.t2i_adapter.pipeline_stable_diffusion_adapter import (
        _preprocess_adapter_image,
    )

    from .image import tensor_to_pil

    if tuple(hint.image.shape[-2:]) != (height, width):
        warnings.warn(f"control image for {hint.model.name} resized to {width}x{height}",
                      stacklevel=2)
    images = tensor_to_pil(hint.image)
    if model.config.in_channels == 1:
        images = [im.convert("L") for im in images]
    return _preprocess_adapter_image(images, height, width)


class ControlRunner:
    """The controls of one sampling run, loaded and prepared; call it each step for the
    UNet's extra residual arguments."""

    def __init__(self, ctx: Any, hints: Sequence[ControlHint], unet: Any, dtype: str,
                 device: str, height: int, width: int, batch: int, guided: bool,
                 total: int):
        for hint in hints:
            check_family(hint.model, unet.config)
        self.total = total
        self.nets: list[tuple[Any, torch.Tensor, ControlHint]] = []
        adapters: list[tuple[Any, torch.Tensor, ControlHint]] = []
        for hint in hints:
            model = ctx.model(hint.model.spec(dtype, device))
            if hint.model.kind == "controlnet":
                image = _prepare_image(hint, height, width).repeat_interleave(batch, dim=0)
                image = image.to(device=device, dtype=model.dtype)
                self.nets.append((model, torch.cat([image] * 2) if guided else image, hint))
            else:
                x = _adapter_input(model, hint, height, width).to(device, model.dtype)
                adapters.append((model, x, hint))
        self.adapter_groups = self._adapter_states(adapters, batch, guided)

    @staticmethod
    def _adapter_states(adapters: list[tuple[Any, torch.Tensor, ControlHint]], batch: int,
                        guided: bool) -> list[tuple[float, float, list[torch.Tensor]]]:
        """Adapter features once per run (as the adapter pipelines do), grouped by span."""
        groups: dict[tuple[float, float], list[torch.Tensor]] = {}
        with torch.inference_mode():
            for model, x, hint in adapters:
                features = [f * hint.strength for f in model(x)]
                span = (hint.start, hint.end)
                if span in groups:
                    groups[span] = [a + f for a, f in zip(groups[span], features, strict=True)]
                else:
                    groups[span] = features
        out = []
        for (start, end), states in groups.items():
            states = [s.repeat(batch, 1, 1, 1) if batch > 1 else s for s in states]
            states = [torch.cat([s] * 2) if guided else s for s in states]
            out.append((start, end, states))
        return out

    def __call__(self, i: int, model_in: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor,
                 add_cond: dict[str, torch.Tensor] | None) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        down: list[torch.Tensor] | None = None
        mid: torch.Tensor | None = None
        for model, image, hint in self.nets:
            keep = 1.0 - float(i / self.total < hint.start or (i + 1) / self.total > hint.end)
            if keep == 0.0:  # diffusers runs it at scale 0: adding zeros changes nothing
                continue
            d, m = model(model_in, t, encoder_hidden_states=embeds, controlnet_cond=image,
                         conditioning_scale=hint.strength * keep, guess_mode=False,
                         added_cond_kwargs=add_cond, return_dict=False)
            if down is None:
                down, mid = list(d), m
            else:
                down = [a + b for a, b in zip(down, d, strict=True)]
                mid = mid + m
        if down is not None:
            extra["down_block_additional_residuals"] = down
            extra["mid_block_additional_residual"] = mid
        states: list[torch.Tensor] | None = None
        for start, end, group in self.adapter_groups:
            if not int(self.total * start) <= i < int(self.total * end):
                continue
            states = group if states is None else [
                a + b for a, b in zip(states, group, strict=True)]
        if states is not None:
            extra["down_intrablock_additional_residuals"] = [s.clone() for s in states]
        return extra
