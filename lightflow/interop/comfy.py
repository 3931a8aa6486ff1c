"""Run ComfyUI workflows on lightflow's engine: ``from_comfy`` (and ``to_comfy``).

A workflow in ComfyUI's API format (``{"3": {"class_type": "KSampler", "inputs":
{...}}, ...}``, links as ``[node_id, output_index]``) becomes lightflow nodes; the
editor's UI format (``nodes`` + ``links``) is converted to it first
(:mod:`lightflow.interop.comfy_ui`). The JSON is data: no code runs from it; every
node type must be in :data:`~lightflow.interop.comfy_schema.NODES`.

How ComfyUI's graph maps onto lightflow's:

- the two ``CLIPTextEncode`` nodes wired to a KSampler's ``positive``/``negative``
  become one ``lf.prompt(text, negative=...)`` encoded with their (shared) CLIP;
  ``CLIPSetLastLayer(-n)`` is ``clip_skip=n-1``;
- ``KSampler`` on an ``EmptyLatentImage`` with ``denoise`` 1 is txt2img (size and batch
  from the latent); otherwise it is img2img from the latent. ComfyUI runs ``steps``
  steps of a ``steps/denoise`` schedule; diffusers runs ``steps×denoise`` steps of a
  ``steps`` schedule, so ``KSampler(steps=10, denoise=0.5)`` is
  ``sample(steps=20, denoise=0.5)``: the same steps at the same noise levels;
- ``sampler_name`` × ``scheduler`` → a lightflow scheduler
  (:data:`~lightflow.interop.comfy_schema.SAMPLERS`); pairs without a faithful diffusers
  equivalent raise ``ParameterError``;
- noise comes from diffusers' ``torch.Generator`` (as in every lightflow flow), not
  ComfyUI's: the same seed gives a different image than ComfyUI does;
- ``SaveImage``/``PreviewImage`` are the outputs: ``from_comfy`` returns the image node
  feeding each (the caller saves it), one per output node, in node-id order.

    >>> import lightflow as lf
    >>> flow = lf.from_comfy("workflow_api.json", models="ComfyUI/models")  # doctest: +SKIP
    >>> flow.image()                                                        # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import CycleError, FlowFormatError, LightflowError
from ..graph.node import Node
from .comfy_nodes import HANDLERS
from .comfy_schema import NODES
from .comfy_validate import validate_workflow
from .models import ModelDirs

__all__ = ["from_comfy", "load_workflow", "to_comfy"]


def load_workflow(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[dict[str, Any],
                                                                                Path | None]:
    """The API-format dict of a workflow file, JSON text or dict (UI format converted)."""
    folder = None
    if isinstance(source, Mapping):
        data: Any = source
    else:
        text = os.fspath(source)
        if isinstance(text, str) and text.lstrip().startswith("{"):
            raw = text
        else:
            path = Path(text)
            if not path.is_file():
                raise FlowFormatError(f"no such workflow file: {text}", where="from_comfy",
                                      fix="pass a path to a ComfyUI workflow JSON, or a dict")
            folder = path.resolve().parent
            raw = path.read_text()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FlowFormatError(f"not valid JSON ({exc})", where="from_comfy") from exc
    if not isinstance(data, Mapping):
        raise FlowFormatError("a ComfyUI workflow is a JSON object", where="from_comfy")
    if "nodes" in data and "links" in data:
        from .comfy_ui import ui_to_api

        data = ui_to_api(data)
    elif isinstance(data.get("prompt"), Mapping) and "class_type" not in data["prompt"]:
        data = data["prompt"]  # the body of a POST /prompt request
    return {str(k): v for k, v in data.items()}, folder


def from_comfy(source: str | os.PathLike[str] | Mapping[str, Any],
               models: str | os.PathLike[str] | Mapping[str, Any] | None = None, *,
               inputs: str | os.PathLike[str] | None = None, dtype: Any = None,
               device: str | None = None) -> Node | list[Node]:
    """A ComfyUI workflow (API or UI format) as lightflow flow(s): one IMAGE node per
    ``SaveImage``/``PreviewImage`` node (a list when there are several).

    ``models``: a ComfyUI-style models folder or a mapping (see
    :mod:`lightflow.interop.models`); ``inputs``: the folder ``LoadImage`` names are in
    (default: the workflow file's folder, else the current directory); ``dtype`` and
    ``device`` apply to every checkpoint.

        >>> wf = {"4": {"class_type": "CheckpointLoaderSimple",
        ...             "inputs": {"ckpt_name": "builtin:digits"}}}         # doctest: +SKIP
    """
    workflow, folder = load_workflow(source)
    validate_workflow(workflow)
    input_dir = Path(os.fspath(inputs)) if inputs is not None else (folder or Path.cwd())
    reader = _Reader(workflow, ModelDirs(models), input_dir, dtype, device)
    outputs = sorted((nid for nid, rec in workflow.items()
                      if NODES[rec["class_type"]].output_node), key=_id_order)
    if not outputs:
        raise FlowFormatError("the workflow has no output node", where="from_comfy",
                              fix="add a SaveImage or PreviewImage node")
    flows = [reader.output(nid) for nid in outputs]
    return flows[0] if len(flows) == 1 else flows


def to_comfy(flow: Node | list[Node], **options: Any) -> dict[str, Any]:
    """A flow (or several) as a ComfyUI API-format dict; see :mod:`.comfy_export`."""
    from .comfy_export import to_comfy as _to_comfy

    return _to_comfy(flow, **options)


def _id_order(node_id: str) -> tuple[int, int | str]:
    return (0, int(node_id)) if node_id.isdigit() else (1, node_id)


class _Reader:
    """Translates validated API-format records to lightflow nodes, memoised per node."""

    def __init__(self, workflow: dict[str, Any], dirs: ModelDirs, input_dir: Path,
                 dtype: Any, device: str | None):
        self.workflow = workflow
        self.dirs = dirs
        self.input_dir = input_dir
        self.dtype, self.device = dtype, device
        self.done: dict[str, tuple[Any, ...]] = {}
        self.path: list[str] = []

    # ------------------------------------------------------------------ evaluation
    def output(self, node_id: str) -> Node:
        record = self.workflow[node_id]
        return self.link(node_id, record.get("inputs", {})["images"])

    def link(self, node_id: str, ref: list[Any]) -> Any:
        return self.values(str(ref[0]))[int(ref[1])]

    def values(self, node_id: str) -> tuple[Any, ...]:
        if node_id in self.done:
            return self.done[node_id]
        if node_id in self.path:
            cycle = [*self.path[self.path.index(node_id):], node_id]
            raise CycleError(f"cycle {' → '.join(cycle)}", where=f"node {node_id}",
                             fix="a node cannot depend on its own output; remove a link")
        record = self.workflow[node_id]
        kind = record["class_type"]
        self.path.append(node_id)
        try:
            spec = NODES[kind]
            args = {name: (self.link(node_id, value) if spec.input(name).is_link else value)
                    for name, value in record.get("inputs", {}).items()}
            where = f"node {node_id} ({kind})"
            try:
                out = HANDLERS[kind](self, node_id, spec, args)
            except LightflowError as exc:
                if exc.where and exc.where.startswith("node "):
                    raise
                raise type(exc)(exc.message, where=where + (f": {exc.where}" if exc.where
                                                           else ""), fix=exc.fix) from exc
        finally:
            self.path.pop()
        self.done[node_id] = out
        return out

    # ------------------------------------------------------------------ helpers
    def checkpoint(self, folder: str, name: str, where: str) -> Node:
        from ..api import checkpoint

        source = self.dirs.resolve(folder, name, where=where)
        config = self.dirs.config_for(folder, name, source, where=where)
        return checkpoint(source, config=config, dtype=self.dtype, device=self.device)
