"""Results carry their recipe: mode, the flow as JSON, seeds and model identities.

PNGs written by lightflow hold the recipe in a ``lightflow`` text chunk;
:func:`load_recipe` rebuilds the flow, whose final run reproduces the image exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, PngImagePlugin

from .errors import FlowFormatError, ModelNotFoundError

if TYPE_CHECKING:
    import torch

    from .graph.executor import Run
    from .graph.node import Node

__all__ = ["load_recipe", "recipe_of", "run_to_images", "save_image", "save_images"]

RECIPE_KEY = "lightflow"


def recipe_of(node: Node, mode: str, models: list[Any] | None = None) -> dict[str, Any]:
    from .graph.node import walk
    from .graph.serialize import to_dict

    seeds = [n.params["seed"] for n in walk(node) if "seed" in n.params]
    return {"lightflow_recipe": 1, "mode": mode, "flow": to_dict(node), "seeds": seeds,
            "models": sorted({getattr(m, "identity", repr(m)) for m in models or []})}


def _with_recipe(images: list[Image.Image], recipe: dict[str, Any]) -> list[Image.Image]:
    text = json.dumps(recipe)
    for im in images:
        im.info[RECIPE_KEY] = text
    return images


def run_to_images(run: Run) -> list[Image.Image]:
    """PIL images of a run's IMAGE value, each with its recipe in ``image.info``."""
    from .errors import TypeMismatchError
    from .nodes.image import tensor_to_pil

    value = run.value
    if not hasattr(value, "ndim") or value.ndim != 4 or value.shape[1] != 3:
        raise TypeMismatchError(f"{run.node.op} does not give images", where=run.node.op,
                                fix="call .image() on a decoded node (.decode(ckpt))")
    return _with_recipe(tensor_to_pil(value), recipe_of(run.node, run.mode, run.models))


def save_image(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Save a PIL image as PNG, keeping the recipe lightflow attached to it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    if RECIPE_KEY in image.info:
        info.add_text(RECIPE_KEY, image.info[RECIPE_KEY])
    image.save(out, format="PNG", pnginfo=info)
    return out


def save_images(images: torch.Tensor, path: str, ctx: Any) -> list[Path]:
    """The ``save`` op: one PNG per image (``name.png``, ``name-1.png``, ...)."""
    from .nodes.image import tensor_to_pil

    source = ctx.node.inputs["image"]
    pils = _with_recipe(tensor_to_pil(images), recipe_of(source, ctx.mode))
    base = Path(path)
    outs = []
    for i, im in enumerate(pils):
        target = base if i == 0 else base.with_name(f"{base.stem}-{i}{base.suffix or '.png'}")
        outs.append(save_image(im, target))
    ctx.info["saved"] = [str(p) for p in outs]
    return outs


def load_recipe(path: str | os.PathLike[str]) -> Node:
    """The flow that made a lightflow PNG (run it for the same image)."""
    from .graph.serialize import from_json

    file = Path(path)
    if not file.is_file():
        raise ModelNotFoundError(f"no such file: {path}", where="load_recipe")
    try:
        with Image.open(file) as im:
            text = im.info.get(RECIPE_KEY)
    except OSError as exc:
        raise FlowFormatError(f"{file.name} is not a readable image ({exc})",
                              where="load_recipe") from exc
    if text is None:
        raise FlowFormatError(f"{file.name} has no lightflow recipe", where="load_recipe",
                              fix="load a PNG saved by lightflow (.save() or lf.save_image)")
    try:
        recipe = json.loads(text)
        flow = recipe["flow"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FlowFormatError(f"{file.name}: the recipe is unreadable ({exc})",
                              where="load_recipe", fix="re-save the image") from exc
    return from_json(flow)
