"""The entry points of the fluent API: checkpoints, prompts, images."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PIL import Image

from .graph.node import Node
from .graph.ops import build
from .nodes.image import ImageData

__all__ = ["checkpoint", "hold", "image", "prompt"]


def checkpoint(source: str | os.PathLike[str] | None = None, *, config: str | None = None,
               dtype: Any = None, device: str | None = None) -> Node:
    """A lazy handle on a checkpoint; nothing is read until a flow using it runs.

    ``source``: a diffusers folder, a single ``.safetensors``/``.ckpt`` file (with
    ``config=`` a diffusers folder of the same family), a hub id, or ``None`` /
    ``"builtin:digits"`` for the embedded model. ``dtype`` defaults to fp16 on CUDA and
    fp32 on the CPU.

        >>> sd = lf.checkpoint()                    # the embedded digits model
        >>> sd.type.value
        'CHECKPOINT'
    """
    text = "builtin:digits" if source is None else os.fspath(source)
    if config is not None:
        config = os.fspath(config)
    return build("checkpoint", source=text, config=config, dtype=dtype, device=device)


def prompt(text: str, negative: str = "") -> Node:
    """A prompt (and negative prompt); ``.encode(ckpt)`` turns it into conditioning.

        >>> lf.prompt("a red seven").text if False else lf.prompt("a red seven").op
        'prompt'
    """
    return build("prompt", text=text, negative=negative)


def image(source: str | os.PathLike[str] | Image.Image) -> Node:
    """An input image from a file or a PIL image (for img2img and control images)."""
    if isinstance(source, Image.Image):
        return build("load_image", data=ImageData.from_pil(source))
    return build("load_image", path=os.fspath(source))


@contextmanager
def hold(ckpt: Node, component: str) -> Iterator[Any]:
    """Hold one component of a checkpoint from the pool (loaded if needed) for direct use.

        >>> with lf.hold(lf.checkpoint(), "vae") as vae:     # doctest: +SKIP
        ...     images = vae.decode(latents / vae.config.scaling_factor).sample
    """
    from .errors import TypeMismatchError
    from .graph.ops import get_op
    from .graph.types import PortType
    from .pool import get_pool

    if not isinstance(ckpt, Node) or ckpt.type is not PortType.CHECKPOINT:
        raise TypeMismatchError("lf.hold needs a checkpoint node", where="hold",
                                fix="pass lf.checkpoint(...)")
    ref = get_op("checkpoint").run(None, {}, ckpt.params)  # resolves files; reads nothing
    with get_pool().acquire(ref.spec(component)) as model:
        yield model
