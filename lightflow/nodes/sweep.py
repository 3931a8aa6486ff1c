"""Parameter sweeps: run the product of values, reusing everything upstream of each change.

    >>> s = flow.sweep(lora=[None, "ink.safetensors", ("ink.safetensors", 0.5)],
    ...                seed=[1, 2])                                   # doctest: +SKIP
    >>> s.grid                                  # rows: LoRAs, columns: seeds  # doctest: +SKIP
    >>> [item.values for item in s]             # doctest: +SKIP

Each combination is an ordinary flow (``flow.replace(...)`` plus LoRA nodes), so the
executor's cache reuses prompts, encodings and latents, and the pool keeps base weights
resident while LoRA adapters are switched.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..errors import ParameterError
from ..graph.node import Node
from ..graph.ops import build

__all__ = ["Sweep", "SweepItem", "sweep", "with_loras"]


@dataclass
class SweepItem:
    """One combination: its values, the flow that made it and its first image."""

    values: dict[str, Any]
    node: Node
    image: Image.Image


@dataclass
class Sweep:
    """The results of a sweep, in product order (the last axis varies fastest)."""

    items: list[SweepItem]
    axes: dict[str, list[Any]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[SweepItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> SweepItem:
        return self.items[index]

    @property
    def images(self) -> list[Image.Image]:
        return [item.image for item in self.items]

    @property
    def grid(self) -> Image.Image:
        """All images in one picture: one column per value of the last axis."""
        if not self.items:
            return Image.new("RGB", (1, 1))
        cols = len(list(self.axes.values())[-1]) if self.axes else len(self.items)
        rows = -(-len(self.items) // cols)
        w, h = self.items[0].image.size
        grid = Image.new("RGB", (cols * w, rows * h))
        for k, item in enumerate(self.items):
            grid.paste(item.image.resize((w, h)), ((k % cols) * w, (k // cols) * h))
        return grid

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.grid.save(buf, format="PNG")
        return buf.getvalue()

    def __repr__(self) -> str:
        shape = " x ".join(f"{name}[{len(v)}]" for name, v in self.axes.items())
        return f"<Sweep {len(self.items)} images: {shape}>"


def _lora_list(value: Any) -> list[tuple[str, float]]:
    """None → [], path → [(path, 1.0)], (path, strength) → [...], or a list of those."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [(os.fspath(value), 1.0)]
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], (int, float)):
        return [(os.fspath(value[0]), float(value[1]))]
    if isinstance(value, list):
        return [pair for v in value for pair in _lora_list(v)]
    raise ParameterError(f"a sweep LoRA value must be None, a path or (path, strength), got "
                         f"{value!r}", where="sweep", fix="lora=[None, 'a.safetensors', "
                                                          "('b.safetensors', 0.5)]")


def with_loras(flow: Node, loras: Sequence[tuple[str, float]]) -> Node:
    """``flow`` with its LoRA nodes replaced by ``loras`` on every checkpoint."""
    memo: dict[str, Node] = {}

    def rebuild(node: Node) -> Node:
        if node.key in memo:
            return memo[node.key]
        if node.op == "lora":
            out = rebuild(node.inputs["checkpoint"])
        elif node.op == "checkpoint":
            out = node
            for path, strength in loras:
                out = build("lora", {"checkpoint": out}, path=path, strength=strength,
                            text_strength=None)
        else:
            inputs = {k: rebuild(v) for k, v in node.inputs.items()}
            out = node if inputs == dict(node.inputs) else Node(node.op, dict(node.params),
                                                                inputs)
        memo[node.key] = out
        return out

    return rebuild(flow)


def sweep(flow: Node, **values: Any) -> Sweep:
    """Run ``flow`` for every combination of ``values`` (see the module docstring)."""
    if not values:
        raise ParameterError("nothing to sweep", where="sweep", fix="flow.sweep(seed=[1, 2])")
    axes = {name: list(v) if isinstance(v, (list, tuple, range)) else [v]
            for name, v in values.items()}
    if "lora" in axes and isinstance(values["lora"], tuple) and len(values["lora"]) == 2 \
            and isinstance(values["lora"][1], (int, float)):
        axes["lora"] = [values["lora"]]  # one (path, strength) pair, not two values
    empty = [name for name, v in axes.items() if not v]
    if empty:
        raise ParameterError(f"no values for {empty}", where="sweep", fix="give each a list")
    items = []
    for combo in itertools.product(*axes.values()):
        chosen = dict(zip(axes, combo, strict=True))
        node = flow
        if "lora" in chosen:
            node = with_loras(node, _lora_list(chosen["lora"]))
        others = {k: v for k, v in chosen.items() if k != "lora"}
        if others:
            node = node.replace(**others)
        items.append(SweepItem(chosen, node, node.image()))
    return Sweep(items, axes)
