"""ComfyUI node types → lightflow nodes: one handler per ``class_type``.

Values flowing between ComfyUI nodes are kept as small records until a KSampler needs
them: a CLIP is a checkpoint node plus ``clip_skip``; a CONDITIONING is the text, its
CLIP and the ControlNets applied to it (so the positive and negative CLIPTextEncode
nodes of a KSampler become one ``lf.prompt(text, negative=...)``); a LATENT is a node or
an ``EmptyLatentImage`` size (txt2img when sampled with denoise 1).

    >>> _fraction(3, 5)         # KSampler(steps=3, denoise=0.6) → sample(steps=5, denoise=0.6)
    0.6
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ParameterError
from ..graph.node import Node
from ..graph.ops import build, registered_ops
from .comfy_schema import NODES, ComfyNode, comfy_to_scheduler
from .models import resolve_in

if TYPE_CHECKING:
    from .comfy import _Reader

__all__ = ["HANDLERS", "sample"]


@dataclass(frozen=True)
class _Clip:
    ckpt: Node  # a CHECKPOINT node (maybe with LoRAs)
    skip: int | None


@dataclass(frozen=True)
class _Control:
    controlnet: Node
    image: Node
    strength: float
    start: float
    end: float
    advanced: bool
    origin: str


@dataclass(frozen=True)
class _Cond:
    text: str
    clip: _Clip
    controls: tuple[_Control, ...]
    origin: str


@dataclass(frozen=True)
class _Latent:
    node: Node | None
    empty: tuple[int, int, int] | None = None  # EmptyLatentImage (width, height, batch)
    batch: int = 1

    def materialize(self) -> Node:
        if self.node is not None:
            return self.node
        assert self.empty is not None
        w, h, b = self.empty
        return build("empty_latent", width=w, height=h, batch=b)


def sample(node_id: str, model: Node, pos: _Cond, neg: _Cond, latent: _Latent, *, seed: int,
       steps: int, cfg: float, sampler: str, scheduler: str, skip: int) -> _Latent:
    """A KSampler that skips the first ``skip`` of ``steps`` (``skip`` from denoise
    or start_at_step has already been turned into whole steps by the caller)."""
    where = f"node {node_id}"
    name = comfy_to_scheduler(sampler, scheduler, where=where)
    if cfg < 1.0:
        raise ParameterError(f"cfg={cfg} < 1 blends toward the negative prompt in "
                             "ComfyUI; diffusers turns guidance off below 1", where=where,
                             fix="use cfg=1.0 (no guidance) or more")
    cond = _conditioning(node_id, pos, neg)
    common = {"steps": steps, "cfg": float(cfg), "seed": seed, "scheduler": name}
    unet = {"unet": model, "cond": cond}
    if latent.empty is not None and skip == 0:  # txt2img
        w, h, b = latent.empty
        return _Latent(build("sample", unet, **common, width=w, height=h, batch=b,
                             denoise=1.0), batch=b)
    denoise = 1.0 if skip == 0 else _fraction(steps - skip, steps)
    return _Latent(build("sample", {**unet, "latent": latent.materialize()}, **common,
                         width=None, height=None, batch=latent.batch, denoise=denoise),
                   batch=latent.batch)


def _fraction(run: int, total: int) -> float:
    """The smallest float d with int(total × d) == run (diffusers' img2img step count)."""
    d = run / total
    while int(total * d) < run:
        d = math.nextafter(d, math.inf)
    return d


def _conditioning(node_id: str, pos: _Cond, neg: _Cond) -> Node:
    where = f"node {node_id}"
    if pos.clip != neg.clip:
        raise ParameterError(f"positive (node {pos.origin}) and negative (node {neg.origin}) "
                             "are encoded with different CLIPs", where=where,
                             fix="lightflow encodes both prompts with one text encoder: wire "
                                 "both CLIPTextEncode nodes to the same CLIP output")
    advanced = [c for c in pos.controls if c.advanced]
    if any(not c.advanced for c in neg.controls) or advanced != list(neg.controls):
        raise ParameterError("positive and negative have different ControlNets", where=where,
                             fix="apply ControlNets with ControlNetApplyAdvanced to both, or "
                                 "with ControlNetApply to the positive only")
    cond = build("prompt", text=pos.text, negative=neg.text).encode(pos.clip.ckpt,
                                                                    clip_skip=pos.clip.skip)
    for c in pos.controls:
        cond = cond.control(c.controlnet, c.image, strength=c.strength,  # type: ignore[attr-defined]
                            start=c.start, end=c.end)
    return cond


# ---------------------------------------------------------------------- node handlers
Handler = Callable[["_Reader", str, ComfyNode, dict[str, Any]], tuple[Any, ...]]


def _ckpt_loader(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    ckpt = r.checkpoint("checkpoints", a["ckpt_name"], f"node {nid}")
    return ckpt, _Clip(ckpt, None), ckpt


def _vae_loader(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    from .comfy_validate import check_full_checkpoint

    ckpt = r.checkpoint("vae", a["vae_name"], f"node {nid}")
    check_full_checkpoint(ckpt.params["source"], where=f"node {nid}")
    return (ckpt,)


def _text(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    return (_Cond(a["text"], a["clip"], (), nid),)


def _last_layer(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    layer = a["stop_at_clip_layer"]
    return (_Clip(a["clip"].ckpt, None if layer == -1 else -layer - 1),)


def _empty(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    from ..nodes._checks import as_side

    w = as_side("EmptyLatentImage", "width", a["width"])
    h = as_side("EmptyLatentImage", "height", a["height"])
    return (_Latent(None, (w, h, a["batch_size"]), a["batch_size"]),)  # type: ignore[arg-type]


def _ksampler(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    steps, denoise = a["steps"], float(a.get("denoise", 1.0))
    if denoise <= 0.0:
        raise ParameterError("denoise=0 leaves nothing to sample", where=f"node {nid}",
                             fix="use 0 < denoise <= 1")
    total = steps if denoise > 0.9999 else int(steps / denoise)  # ComfyUI's schedule length
    return (sample(nid, a["model"], a["positive"], a["negative"], a["latent_image"],
                     seed=a["seed"], steps=total, cfg=a["cfg"], sampler=a["sampler_name"],
                     scheduler=a["scheduler"], skip=total - steps),)


def _ksampler_adv(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    steps, start = a["steps"], a["start_at_step"]
    if (a["add_noise"] != "enable" or a["return_with_leftover_noise"] != "disable"
            or a["end_at_step"] < steps):
        raise ParameterError("only add_noise='enable', return_with_leftover_noise='disable' "
                             "and end_at_step >= steps are supported", where=f"node {nid}",
                             fix="lightflow samples to the end of the schedule with fresh "
                                 "noise; split sampling is not available")
    if start >= steps:
        raise ParameterError(f"start_at_step={start} leaves no step of {steps}",
                             where=f"node {nid}", fix="use start_at_step < steps")
    return (sample(nid, a["model"], a["positive"], a["negative"], a["latent_image"],
                     seed=a["noise_seed"], steps=steps, cfg=a["cfg"],
                     sampler=a["sampler_name"], scheduler=a["scheduler"], skip=start),)


def _vae_decode(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    return (build("decode", {"latent": a["samples"].materialize(), "vae": a["vae"]}),)


def _vae_encode(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    return (_Latent(build("encode_image", {"image": a["pixels"], "vae": a["vae"]})),)


def _resize_args(nid: str, a: dict[str, Any], by: bool) -> dict[str, Any]:
    method = a["upscale_method"]
    if method == "bislerp":
        raise ParameterError("upscale_method 'bislerp' is not available", where=f"node {nid}",
                             fix="use nearest-exact, bilinear, area or bicubic")
    if by:
        return {"factor": float(a["scale_by"]), "width": None, "height": None,
                "method": method}
    if a["crop"] != "disabled":
        raise ParameterError(f"crop={a['crop']!r} is not available", where=f"node {nid}",
                             fix="use crop='disabled'")
    if not a["width"] and not a["height"]:
        raise ParameterError("width and height are both 0", where=f"node {nid}",
                             fix="give a width or a height")
    return {"factor": None, "width": a["width"] or None, "height": a["height"] or None,
            "method": method}


def _latent_up(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    args = _resize_args(nid, a, by=spec.class_type == "LatentUpscaleBy")
    latent = a["samples"]
    return (_Latent(build("upscale_latent", {"latent": latent.materialize()}, **args),
                    batch=latent.batch),)


def _image_up(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    args = _resize_args(nid, a, by=spec.class_type == "ImageScaleBy")
    return (build("upscale_image", {"image": a["image"]}, **args),)


def _load_image(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    name = a["image"]
    if isinstance(name, str) and name.endswith(" [input]"):
        name = name[: -len(" [input]")]
    path = resolve_in(r.input_dir, name, where=f"node {nid}", what="image")
    return build("load_image", path=str(path)), None


def _output(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    return ()


def _lora(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    sm, sc = float(a["strength_model"]), float(a["strength_clip"])
    model, clip = a["model"], a["clip"]
    if sm == 0 and sc == 0:  # ComfyUI returns its inputs unchanged
        return model, clip
    _need_op("lora", "LoraLoader")
    path = r.dirs.resolve("loras", a["lora_name"], where=f"node {nid}")
    text = None if sc == sm else sc
    return (build("lora", {"checkpoint": model}, path=path, strength=sm, text_strength=text),
            _Clip(build("lora", {"checkpoint": clip.ckpt}, path=path, strength=sm,
                        text_strength=text), clip.skip))


def _cn_loader(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    _need_op("controlnet", "ControlNetLoader")
    where = f"node {nid}"
    name = a["control_net_name"]
    path = r.dirs.resolve("controlnet", name, where=where)
    config = r.dirs.config_for("controlnet", name, path, where=where)
    folder = Path(config or (path if Path(path).is_dir() else Path(path).parent))
    try:  # ComfyUI's ControlNetLoader also loads T2I-Adapters
        kind = json.loads((folder / "config.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        kind = None
    op = "t2i_adapter" if kind == "T2IAdapter" else "controlnet"
    return (build(op, source=path, config=config),)


def _cn_apply(r: _Reader, nid: str, spec: ComfyNode, a: dict[str, Any]) -> tuple[Any, ...]:
    _need_op("control", spec.class_type)
    advanced = spec.class_type == "ControlNetApplyAdvanced"
    control = _Control(a["control_net"], a["image"], float(a["strength"]),
                       float(a.get("start_percent", 0.0)), float(a.get("end_percent", 1.0)),
                       advanced, nid)
    conds = (a["positive"], a["negative"]) if advanced else (a["conditioning"],)
    if control.strength == 0:  # ComfyUI returns its inputs unchanged
        return conds
    return tuple(_Cond(c.text, c.clip, (*c.controls, control), c.origin) for c in conds)


def _need_op(op: str, kind: str) -> None:
    if op not in registered_ops():
        raise ParameterError(f"{kind} needs lightflow's {op!r} op, which is not installed",
                             fix="update lightflow")


HANDLERS: dict[str, Handler] = {
    "CheckpointLoaderSimple": _ckpt_loader, "VAELoader": _vae_loader,
    "CLIPTextEncode": _text, "CLIPSetLastLayer": _last_layer, "EmptyLatentImage": _empty,
    "KSampler": _ksampler, "KSamplerAdvanced": _ksampler_adv, "VAEDecode": _vae_decode,
    "VAEEncode": _vae_encode, "LatentUpscale": _latent_up, "LatentUpscaleBy": _latent_up,
    "ImageScale": _image_up, "ImageScaleBy": _image_up, "LoadImage": _load_image,
    "SaveImage": _output, "PreviewImage": _output, "LoraLoader": _lora,
    "ControlNetLoader": _cn_loader, "ControlNetApply": _cn_apply,
    "ControlNetApplyAdvanced": _cn_apply,
}
assert set(HANDLERS) == set(NODES)
