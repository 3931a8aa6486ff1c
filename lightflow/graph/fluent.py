"""The fluent builder methods of :class:`~lightflow.graph.node.Node`.

Each method checks that it is called on a node of the right type and returns a new node;
nothing runs until ``run()``, ``image()``, ``images()`` or ``preview()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import MissingInputError, ParameterError, TypeMismatchError
from .types import PortType

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from PIL import Image

    from .events import Event
    from .executor import Run
    from .node import Node

__all__ = ["FluentMixin"]

_REPLACEABLE = {
    "prompt": ("prompt", "text"), "text": ("prompt", "text"), "negative": ("prompt", "negative"),
    "seed": ("sample", "seed"), "steps": ("sample", "steps"), "cfg": ("sample", "cfg"),
    "scheduler": ("sample", "scheduler"), "denoise": ("sample", "denoise"),
    "batch": ("sample", "batch"), "width": ("sample", "width"), "height": ("sample", "height"),
    "clip_skip": ("encode", "clip_skip"), "source": ("checkpoint", "source"),
}


_TYPE_FIXES = {
    (PortType.PROMPT, PortType.CONDITIONING): "encode the prompt first: .encode(ckpt).sample(...)",
    (PortType.PROMPT, PortType.LATENT): "encode and sample first: .encode(ckpt).sample(ckpt)",
    (PortType.CONDITIONING, PortType.LATENT): "sample first: .sample(ckpt).decode(ckpt)",
    (PortType.LATENT, PortType.IMAGE): "decode the latent first: .decode(ckpt)",
    (PortType.IMAGE, PortType.LATENT): "encode the image first: .encode_image(ckpt)",
    (PortType.LATENT, PortType.PROMPT): "prompts come from lf.prompt(...)",
}


def _as_image(image: Any) -> Any:
    """An IMAGE node from a node, a PIL image or a path (anything else is refused by build)."""
    import os

    from PIL import Image

    if isinstance(image, (str, os.PathLike, Image.Image)):
        from ..api import image as load_image

        return load_image(image)
    return image


def _build(op: str, inputs: dict[str, Any] | None = None, **params: Any) -> Node:
    from .ops import build

    return build(op, inputs, **params)


class FluentMixin:
    """Builder verbs shared by every node; each checks the node's output type."""

    __slots__ = ()

    op: str
    params: Any
    inputs: Any
    key: str

    # ------------------------------------------------------------------ typing helpers
    @property
    def type(self) -> PortType:
        """The output type of this node (LATENT, IMAGE, ...)."""
        from .ops import get_op

        return get_op(self.op).output

    def _expect(self, method: str, *types: PortType, fix: str = "") -> None:
        if self.type not in types:
            wanted = " or ".join(t.value for t in types)
            raise TypeMismatchError(
                f".{method}() is for {wanted} nodes, but this node ({self.op}) gives "
                f"{self.type.value}", where=f"{self.op}.{method}",
                fix=fix or _TYPE_FIXES.get((self.type, types[0]))
                or f"call .{method}() on a {wanted} node")

    # ------------------------------------------------------------------ checkpoints
    @property
    def unet(self) -> Node:
        self._expect("unet", PortType.CHECKPOINT)
        return _build("unet", {"checkpoint": self})

    @property
    def text_encoder(self) -> Node:
        self._expect("text_encoder", PortType.CHECKPOINT)
        return _build("text_encoder", {"checkpoint": self})

    @property
    def vae(self) -> Node:
        self._expect("vae", PortType.CHECKPOINT)
        return _build("vae", {"checkpoint": self})

    # ------------------------------------------------------------------ builders
    def lora(self, path: Any, strength: float = 1.0, *,
             text_strength: float | None = None) -> Node:
        """CHECKPOINT → CHECKPOINT with a LoRA on its UNet (``strength``) and text encoder(s)
        (``text_strength``, default ``strength``); chain calls to stack LoRAs.
        ``sd.lora("style.safetensors", 0.8).encode(...)`` works wherever ``sd`` does."""
        self._expect("lora", PortType.CHECKPOINT)
        return _build("lora", {"checkpoint": self}, path=path, strength=strength,
                      text_strength=text_strength)

    def control(self, model: Node, image: Any, strength: float = 1.0, *, start: float = 0.0,
                end: float = 1.0) -> Node:
        """CONDITIONING → CONDITIONING with a ControlNet or T2I-Adapter hint attached
        (stackable). ``image``: an IMAGE node, a PIL image or a path; ``start``/``end``: the
        fraction of the steps it acts on."""
        self._expect("control", PortType.CONDITIONING,
                     fix="encode the prompt first: .encode(ckpt).control(...)")
        return _build("control", {"cond": self, "model": model, "image": _as_image(image)},
                      strength=strength, start=start, end=end)

    def adapter(self, model: Node, image: Any, strength: float = 1.0, *, start: float = 0.0,
                end: float = 1.0) -> Node:
        """The same as :meth:`control`, named for T2I-Adapters."""
        return self.control(model, image, strength, start=start, end=end)

    def canny(self, low: int = 100, high: int = 200) -> Node:
        """IMAGE → IMAGE: OpenCV Canny edges (white on black), for canny ControlNets."""
        self._expect("canny", PortType.IMAGE)
        return _build("canny", {"image": self}, low=low, high=high)

    def sweep(self, **values: Any) -> Any:
        """Run the product of parameter values (``lora=[...]``, ``seed=[...]``, ``cfg=[...]``,
        any ``replace`` name); returns a ``Sweep`` (results list and ``.grid`` image)."""
        from ..nodes.sweep import sweep

        return sweep(self, **values)  # type: ignore[arg-type]

    def encode(self, clip: Node, *, clip_skip: int | None = None) -> Node:
        """PROMPT → CONDITIONING with a checkpoint's (or TEXT_ENCODER's) text encoder."""
        self._expect("encode", PortType.PROMPT,
                     fix="images are encoded with .encode_image(ckpt)"
                     if self.type is PortType.IMAGE else "")
        return _build("encode", {"prompt": self, "clip": clip}, clip_skip=clip_skip)

    def sample(self, model: Node, *, cond: Node | None = None, latent: Node | None = None,
               steps: int = 20, cfg: float = 7.0, seed: int = 0,
               size: int | tuple[int, int] | None = None, width: int | None = None,
               height: int | None = None, scheduler: Any = None, batch: int = 1,
               denoise: float = 1.0) -> Node:
        """Denoise to a LATENT: from CONDITIONING (txt2img; ``latent=`` for img2img) or
        from a LATENT (img2img; then pass ``cond=``). ``size`` is a side or (width, height).
        """
        self._expect("sample", PortType.CONDITIONING, PortType.LATENT)
        if self.type is PortType.LATENT:
            if cond is None:
                raise MissingInputError(
                    "sampling from a latent (img2img) needs a conditioning", where="sample",
                    fix="pass cond=lf.prompt('...').encode(ckpt)")
            latent = self  # type: ignore[assignment]
        else:
            cond = self  # type: ignore[assignment]
        if size is not None:
            if width is not None or height is not None:
                raise ParameterError("give size or width/height, not both", where="sample",
                                     fix="pass size=512 or width=..., height=...")
            width, height = (size, size) if isinstance(size, int) else tuple(size)
        return _build("sample", {"unet": model, "cond": cond, "latent": latent}, steps=steps,
                      cfg=cfg, seed=seed, width=width, height=height, scheduler=scheduler,
                      batch=batch, denoise=denoise)

    def decode(self, vae: Node, *, proxy: str | None = None) -> Node:
        """LATENT → IMAGE with the full VAE of ``vae`` (a checkpoint or VAE node), or with a
        proxy decoder (``proxy="taesd" | "latent_rgb" | "bilinear" | "auto"``: draft only).
        """
        self._expect("decode", PortType.LATENT)
        if proxy is not None:
            return _build("proxy_decode", {"latent": self, "vae": vae}, decoder=proxy)
        return _build("decode", {"latent": self, "vae": vae})

    def encode_image(self, vae: Node) -> Node:
        """IMAGE → LATENT with the VAE's encoder (the distribution's mode)."""
        self._expect("encode_image", PortType.IMAGE)
        return _build("encode_image", {"image": self, "vae": vae})

    def upscale(self, factor: float | None = None, *, width: int | None = None,
                height: int | None = None, method: str | None = None) -> Node:
        """Resize a LATENT (nearest-exact) or an IMAGE (bilinear) by a factor or to a size."""
        self._expect("upscale", PortType.LATENT, PortType.IMAGE)
        if self.type is PortType.LATENT:
            return _build("upscale_latent", {"latent": self}, factor=factor, width=width,
                          height=height, method=method or "nearest-exact")
        return _build("upscale_image", {"image": self}, factor=factor, width=width,
                      height=height, method=method or "bilinear")

    def save(self, path: str) -> Node:
        """A node that writes the images as PNG (recipe in the metadata) when run."""
        self._expect("save", PortType.IMAGE)
        return _build("save", {"image": self}, path=path)

    # ------------------------------------------------------------------ running
    def run(self, *, mode: str | None = None, on_event: Callable[[Event], None] | None = None,
            stop: threading.Event | None = None) -> Run:
        """Run the flow (final mode unless inside ``lf.draft()``) and return a ``Run``."""
        from ..runtime import current_mode, get_executor

        mode = mode or current_mode()
        if mode not in ("final", "draft"):
            raise ParameterError(f"mode must be 'final' or 'draft', got {mode!r}", where="run")
        listeners = [on_event] if on_event else []
        return get_executor().run(self, mode=mode, listeners=listeners, stop=stop)  # type: ignore[arg-type]

    def images(self, **kwargs: Any) -> list[Image.Image]:
        """Every image of the batch as PIL images (runs the flow)."""
        from ..recipe import run_to_images

        self._expect("images", PortType.IMAGE, PortType.LATENT,
                     fix="call it on the decoded image node")
        return run_to_images(self.run(**kwargs))

    def image(self, **kwargs: Any) -> Image.Image:
        """The first image of the batch (runs the flow; cached results cost ~nothing)."""
        return self.images(**kwargs)[0]

    def preview(self, **kwargs: Any) -> Image.Image:
        """A draft image: proxy decoder and draft settings (see ``lf.draft``)."""
        return self.image(mode="draft", **kwargs)

    # ------------------------------------------------------------------ editing
    def replace(self, **changes: Any) -> Node:
        """A new flow with parameters changed wherever they appear (prompt, seed, ...)."""
        unknown = set(changes) - set(_REPLACEABLE) - {"size"}
        if unknown:
            raise ParameterError(f"cannot replace {sorted(unknown)}", where="replace",
                                 fix=f"replaceable: {', '.join(sorted(_REPLACEABLE))}, size")
        if "size" in changes:
            size = changes.pop("size")
            changes["width"], changes["height"] = (size, size) if isinstance(size, int) else size
        targets: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            op, param = _REPLACEABLE[name]
            targets.setdefault(op, {})[param] = value
        memo: dict[str, Node] = {}
        found: set[str] = set()

        def rebuild(node: Node) -> Node:
            if node.key in memo:
                return memo[node.key]
            inputs = {k: rebuild(v) for k, v in node.inputs.items()}
            params = dict(node.params)
            if node.op in targets:
                params.update(targets[node.op])
                found.add(node.op)
            if inputs == dict(node.inputs) and params == dict(node.params):
                out = node
            else:
                out = _build(node.op, inputs, **params)
            memo[node.key] = out
            return out

        result = rebuild(self)  # type: ignore[arg-type]
        missing = set(targets) - found
        if missing:
            names = [n for n, (op, _) in _REPLACEABLE.items() if op in missing and n in changes]
            raise ParameterError(f"this flow has no {'/'.join(sorted(missing))} node for "
                                 f"{names}", where="replace", fix="check the flow with .explain()")
        return result

    def nodes(self) -> list[Node]:
        """Every node of the flow, inputs first."""
        from .node import walk

        return list(walk(self))  # type: ignore[arg-type]

    def explain(self) -> str:
        """A readable plan: each node, its type, parameters and inputs. Never runs."""
        from .ops import get_op

        order = self.nodes()
        index = {n.key: i + 1 for i, n in enumerate(order)}
        lines = [f"flow → {self.type.value} ({len(order)} nodes, key {self.key[:8]})"]
        for n in order:
            spec = get_op(n.op)
            ins = ", ".join(f"{k}=[{index[v.key]}]" for k, v in n.inputs.items())
            params = ", ".join(f"{k}={v!r}" for k, v in n.params.items() if v is not None)
            proxy = "  (proxy)" if spec.proxy else ""
            body = "; ".join(part for part in (params, ins) if part)
            lines.append(f"  [{index[n.key]}] {n.op}({body}) → {spec.output.value}{proxy}")
        return "\n".join(lines)

    def to_json(self, indent: int | None = 2) -> str:
        """The flow as JSON (no pickle); ``lf.from_json`` reads it back."""
        from .serialize import to_json

        return to_json(self, indent=indent)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": repr(self)}
        try:
            from ..widgets.flow_view import flow_widget_bundle

            bundle.update(flow_widget_bundle(self))  # type: ignore[arg-type]
        except ImportError:
            from ..widgets.html import flow_html

            bundle["text/html"] = flow_html(self)  # type: ignore[arg-type]
        return bundle


def _to_comfy(self: FluentMixin, **options: Any) -> dict[str, Any]:
    """The flow as a ComfyUI API-format workflow dict (``lf.from_comfy`` reads it back).

    Options: ``models=`` (folder or mapping, to name model files relative to it),
    ``inputs=`` (folder that LoadImage names are relative to), ``filename_prefix=``.

        >>> import json
        >>> json.dumps(flow.to_comfy())          # doctest: +SKIP
    """
    from ..interop.comfy import to_comfy

    return to_comfy(self, **options)  # type: ignore[arg-type]


FluentMixin.to_comfy = _to_comfy  # type: ignore[attr-defined]
