"""Export lightflow flows as ComfyUI API-format workflows (``flow.to_comfy()``).

Every node written has exactly the inputs ComfyUI declares for its type
(:data:`~lightflow.interop.comfy_schema.NODES`). The mapping is the inverse of
:func:`~lightflow.interop.comfy.from_comfy`, so ``lf.from_comfy(flow.to_comfy(),
models=...)`` gives a flow with the same key when:

- checkpoints, LoRAs and ControlNets live in the models folder (or mapping) given to
  both calls (without ``models=`` names are the files' base names), and images in
  the ``inputs`` folder (without it: base names);
- sizes and the scheduler are explicit (``size=``/``width=``, ``scheduler="euler"``...),
  ``dtype``/``device`` are unset (ComfyUI picks its own), img2img's
  ``steps × denoise`` is a whole number, and the flow decodes with the base
  checkpoint's VAE (ComfyUI's LoRA loader has no VAE output).

    >>> import lightflow as lf
    >>> sd = lf.checkpoint()
    >>> flow = lf.prompt("a red seven").encode(sd).sample(
    ...     sd, steps=4, size=32, scheduler="euler").decode(sd)
    >>> sorted(n["class_type"] for n in flow.to_comfy().values())[:3]
    ['CLIPTextEncode', 'CLIPTextEncode', 'CheckpointLoaderSimple']
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from ..graph.node import Node
from ..graph.types import PortType
from .comfy_schema import NODES, scheduler_to_comfy
from .models import ModelDirs

__all__ = ["to_comfy"]

Ref = list[Any]  # [node_id, output_index]


def to_comfy(flow: Node | Sequence[Node], *, models: Any = None,
             inputs: str | os.PathLike[str] | None = None,
             filename_prefix: str = "lightflow") -> dict[str, Any]:
    """The flow(s) as a ComfyUI API-format dict (``json.dump`` it to ``*_api.json``).

    Each flow must end in an IMAGE; it is written as a ``SaveImage`` node (a ``save``
    node's file name becomes the ``filename_prefix``).
    """
    writer = _Writer(ModelDirs(models), Path(os.path.abspath(inputs)) if inputs else None)
    for root in ([flow] if isinstance(flow, Node) else list(flow)):
        if root.op == "save":
            writer.image(root)  # writes its SaveImage node
        elif root.type is PortType.IMAGE:
            writer.add("SaveImage", images=writer.image(root), filename_prefix=filename_prefix)
        else:
            raise ParameterError(f"to_comfy needs a flow ending in an IMAGE, got "
                                 f"{root.type.value}", where="to_comfy",
                                 fix="export the decoded flow: .decode(ckpt).to_comfy()")
    return writer.nodes


class _Writer:
    def __init__(self, dirs: ModelDirs, input_dir: Path | None):
        self.dirs = dirs
        self.input_dir = input_dir
        self.nodes: dict[str, Any] = {}
        self.memo: dict[tuple[str, Any], Any] = {}

    def add(self, class_type: str, **inputs: Any) -> str:
        spec = NODES[class_type]
        assert set(inputs) <= {i.name for i in spec.inputs} and set(spec.required) <= set(
            inputs), class_type
        node_id = str(len(self.nodes) + 1)
        ordered = {i.name: inputs[i.name] for i in spec.inputs if i.name in inputs}
        self.nodes[node_id] = {"class_type": class_type, "inputs": ordered}
        return node_id

    def _once(self, kind: str, key: Any, make: Any) -> Any:
        if (kind, key) not in self.memo:
            self.memo[(kind, key)] = make()
        return self.memo[(kind, key)]

    # ------------------------------------------------------------------ models
    def loader(self, ckpt: Node) -> str:
        """The id of the node whose outputs 0 and 1 are this CHECKPOINT's MODEL and CLIP."""
        def make() -> str:
            if ckpt.op == "checkpoint":
                name = self.dirs.name_for("checkpoints", ckpt.params["source"])
                return self.add("CheckpointLoaderSimple", ckpt_name=name)
            if ckpt.op == "lora":
                base = ckpt.inputs["checkpoint"]
                p = ckpt.params
                text = p["strength"] if p.get("text_strength") is None else p["text_strength"]
                return self.add("LoraLoader", model=self.model(base), clip=self.clip(base, None),
                                lora_name=self.dirs.name_for("loras", p["path"]),
                                strength_model=p["strength"], strength_clip=text)
            raise _unsupported(ckpt)
        return self._once("loader", ckpt.key, make)

    def model(self, node: Node) -> Ref:
        return [self.loader(_ckpt(node)), 0]

    def clip(self, node: Node, skip: int | None) -> Ref:
        ref: Ref = [self.loader(_ckpt(node)), 1]
        if skip is None:
            return ref
        return self._once("skip", (ref[0], skip), lambda: [
            self.add("CLIPSetLastLayer", clip=ref, stop_at_clip_layer=-skip - 1), 0])

    def vae(self, node: Node) -> Ref:
        base = _ckpt(node)
        while base.op == "lora":  # LoRAs never change the VAE
            base = base.inputs["checkpoint"]
        return [self.loader(base), 2]

    # ------------------------------------------------------------------ data
    def image(self, node: Node) -> Ref:
        return self._once("image", node.key, lambda: self._image(node))

    def _image(self, node: Node) -> Ref:
        p = node.params
        if node.op == "decode":
            return [self.add("VAEDecode", samples=self.latent(node.inputs["latent"]),
                             vae=self.vae(node.inputs["vae"])), 0]
        if node.op == "save":
            ref = self.image(node.inputs["image"])
            self.add("SaveImage", images=ref, filename_prefix=Path(p["path"]).stem)
            return ref
        if node.op == "upscale_image":
            return [self._resize("Image", node, self.image(node.inputs["image"])), 0]
        if node.op == "load_image":
            if p.get("path") is None:
                raise ParameterError("an in-memory image cannot be named in a workflow",
                                     where="to_comfy", fix="save it and use lf.image(path)")
            return [self.add("LoadImage", image=self._image_name(p["path"])), 0]
        raise _unsupported(node)

    def _image_name(self, path: str) -> str:
        if self.input_dir is not None:
            for base in (self.input_dir, self.input_dir.resolve()):
                try:
                    return Path(path).relative_to(base).as_posix()
                except ValueError:
                    continue
        return Path(path).name

    def _resize(self, what: str, node: Node, ref: Ref) -> str:
        p = node.params
        if p["method"] == "nearest":
            raise ParameterError("method 'nearest' has no ComfyUI equivalent", where="to_comfy",
                                 fix="use method='nearest-exact'")
        key = "samples" if what == "Latent" else "image"
        kind = f"{what}Upscale" if what == "Latent" else "ImageScale"
        if p.get("factor") is not None:
            return self.add(kind + "By", **{key: ref}, upscale_method=p["method"],
                            scale_by=p["factor"])
        return self.add(kind, **{key: ref}, upscale_method=p["method"],
                        width=p.get("width") or 0, height=p.get("height") or 0, crop="disabled")

    def latent(self, node: Node) -> Ref:
        return self._once("latent", node.key, lambda: self._latent(node))

    def _latent(self, node: Node) -> Ref:
        p = node.params
        if node.op == "sample":
            return [self._sample(node), 0]
        if node.op == "encode_image":
            return [self.add("VAEEncode", pixels=self.image(node.inputs["image"]),
                             vae=self.vae(node.inputs["vae"])), 0]
        if node.op == "upscale_latent":
            return [self._resize("Latent", node, self.latent(node.inputs["latent"])), 0]
        if node.op == "empty_latent":
            if p.get("channels", 4) != 4:
                raise ParameterError("EmptyLatentImage makes 4-channel latents",
                                     where="to_comfy", fix="use channels=4")
            return [self.add("EmptyLatentImage", width=p["width"], height=p["height"],
                             batch_size=p["batch"]), 0]
        raise _unsupported(node)

    def cond(self, node: Node) -> tuple[Ref, Ref]:
        return self._once("cond", node.key, lambda: self._cond(node))

    def _cond(self, node: Node) -> tuple[Ref, Ref]:
        if node.op == "encode":
            prompt = node.inputs["prompt"]
            if prompt.op != "prompt":
                raise _unsupported(prompt)
            clip = self.clip(node.inputs["clip"], node.params.get("clip_skip"))
            pos = self.add("CLIPTextEncode", text=prompt.params["text"], clip=clip)
            neg = self.add("CLIPTextEncode", text=prompt.params["negative"], clip=clip)
            return [pos, 0], [neg, 0]
        if node.op == "control":
            pos, neg = self.cond(node.inputs["cond"])
            p = node.params
            nid = self.add("ControlNetApplyAdvanced", positive=pos, negative=neg,
                           control_net=self._controlnet(node.inputs["model"]),
                           image=self.image(node.inputs["image"]), strength=p["strength"],
                           start_percent=p["start"], end_percent=p["end"])
            return [nid, 0], [nid, 1]
        raise _unsupported(node)

    def _controlnet(self, node: Node) -> Ref:
        if node.op not in ("controlnet", "t2i_adapter"):
            raise _unsupported(node)
        name = self.dirs.name_for("controlnet", node.params["source"])
        return self._once("cn", node.key, lambda: [
            self.add("ControlNetLoader", control_net_name=name), 0])

    def _sample(self, node: Node) -> str:
        p = node.params
        where = "to_comfy: " + node.label()
        sampler, scheduler = scheduler_to_comfy(p.get("scheduler"), where=where)
        if p["cfg"] < 1.0:
            raise ParameterError(f"cfg={p['cfg']} < 1 means no guidance in lightflow but "
                                 "blends toward the negative in ComfyUI", where=where,
                                 fix="use cfg=1.0 for no guidance")
        pos, neg = self.cond(node.inputs["cond"])
        common = {"model": self.model(node.inputs["unet"]), "seed": p["seed"],
                  "cfg": p["cfg"], "sampler_name": sampler, "scheduler": scheduler,
                  "positive": pos, "negative": neg}
        init = node.inputs.get("latent")
        if init is None:
            width, height = p.get("width"), p.get("height")
            if width is None or height is None:
                dw, dh = _default_size(node.inputs["unet"], where)
                width, height = width or dw, height or dh
            empty = self.add("EmptyLatentImage", width=width, height=height,
                             batch_size=p["batch"])
            return self.add("KSampler", **common, steps=p["steps"], latent_image=[empty, 0],
                            denoise=1.0)
        if p["batch"] != _batch(init):
            raise ParameterError(f"batch={p['batch']} repeats a latent of batch "
                                 f"{_batch(init)}; ComfyUI's KSampler does not",
                                 where=where, fix="use batch=1 for img2img from one image")
        steps, run = p["steps"], min(int(p["steps"] * p["denoise"]), p["steps"])
        if run < 1:
            raise ParameterError("denoise × steps leaves no step", where=where,
                                 fix="raise denoise or steps")
        denoise = 1.0 if run == steps else _comfy_denoise(run, steps)
        return self.add("KSampler", **common, steps=run, latent_image=self.latent(init),
                        denoise=denoise)


def _comfy_denoise(run: int, total: int) -> float:
    """The largest float d with int(run / d) == total (ComfyUI's schedule length)."""
    d = run / total
    while int(run / d) < total:
        d = math.nextafter(d, 0.0)
    return d


def _batch(node: Node) -> int:
    """The batch size of a LATENT or IMAGE node, known without running it."""
    if node.op in ("sample", "empty_latent"):
        return int(node.params["batch"])
    if node.op == "load_image":
        return 1
    first = next(iter(node.inputs.values()), None)
    return _batch(first) if first is not None else 1


def _ckpt(node: Node) -> Node:
    """The CHECKPOINT node behind a checkpoint or a component (unet/text_encoder/vae)."""
    if node.op in ("unet", "text_encoder", "vae"):
        return node.inputs["checkpoint"]
    if node.type is PortType.CHECKPOINT:
        return node
    raise _unsupported(node)


def _default_size(unet: Node, where: str) -> tuple[int, int]:
    """The checkpoint's native size (what ``sample`` uses when no size is given)."""
    from ..graph.ops import get_op

    base = _ckpt(unet)
    while base.op == "lora":
        base = base.inputs["checkpoint"]
    try:
        ref = get_op("checkpoint").run(None, {}, base.params)  # type: ignore[arg-type]
        folder = ref.folder
        config = json.loads((folder / "unet" / "config.json").read_text())
        side = int(config["sample_size"]) * ref.vae_scale_factor
        return side, side
    except Exception as exc:
        raise ParameterError("the flow's size is unset and the checkpoint's native size "
                             "cannot be read", where=where,
                             fix="pass size= (or width=/height=) to .sample()") from exc


def _unsupported(node: Node) -> ParameterError:
    ops = ("checkpoint, lora, unet, text_encoder, vae, prompt, encode, control, controlnet, "
           "t2i_adapter, sample, empty_latent, encode_image, decode, upscale_latent, "
           "upscale_image, load_image, save")
    return ParameterError(f"the {node.op!r} node has no ComfyUI equivalent", where="to_comfy",
                          fix=f"exportable ops: {ops}")
