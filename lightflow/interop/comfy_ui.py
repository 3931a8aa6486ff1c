"""The ComfyUI editor's (UI) workflow format → the API format.

The UI format (``{"nodes": [...], "links": [...]}``, what "Save" writes and what PNGs
carry as ``workflow``) stores widget values by position in ``widgets_values``. For the
node types in :data:`~lightflow.interop.comfy_schema.NODES` the positions are known
(``ComfyNode.widgets()``: the widget inputs in declaration order, plus the UI-only
``control_after_generate`` after a seed and ``upload`` after LoadImage's image), so they
are mapped when the count matches exactly; anything else is refused, naming the node:

- a ``widgets_values`` list of another length (an older or newer node version);
- a widget turned into an input and linked from anything but a ``PrimitiveNode``;
- bypassed nodes (mode 4). Muted nodes (mode 2) are left out, as ComfyUI does.

``Reroute`` nodes are followed; ``Note``/``MarkdownNote``/``PrimitiveNode`` are UI only.

    >>> ui = {"nodes": [{"id": 9, "type": "PreviewImage", "inputs": [
    ...     {"name": "images", "type": "IMAGE", "link": None}], "widgets_values": []}],
    ...     "links": []}
    >>> ui_to_api(ui)
    {'9': {'class_type': 'PreviewImage', 'inputs': {}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import FlowFormatError
from .comfy_schema import NODES

__all__ = ["ui_to_api"]

_UI_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
_MUTED, _BYPASSED = 2, 4


def _links(data: Mapping[str, Any]) -> dict[int, tuple[str, int]]:
    """link id → (origin node id, origin slot), for list or dict link records."""
    out: dict[int, tuple[str, int]] = {}
    for link in data.get("links") or []:
        if isinstance(link, list) and len(link) >= 5:
            link_id, origin, slot = link[0], link[1], link[2]
        elif isinstance(link, Mapping):
            link_id, origin, slot = link.get("id"), link.get("origin_id"), link.get("origin_slot")
        else:
            raise FlowFormatError(f"bad link record {link!r}", where="workflow links")
        if not isinstance(link_id, int) or not isinstance(slot, int):
            raise FlowFormatError(f"bad link record {link!r}", where="workflow links")
        out[link_id] = (str(origin), slot)
    return out


def ui_to_api(data: Mapping[str, Any]) -> dict[str, Any]:
    """An API-format dict for a UI-format workflow (refusing what cannot be mapped)."""
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        raise FlowFormatError("'nodes' must be a list", where="workflow")
    by_id: dict[str, Mapping[str, Any]] = {}
    for node in nodes:
        if not isinstance(node, Mapping) or "id" not in node or not isinstance(
                node.get("type"), str):
            raise FlowFormatError("each node needs an 'id' and a 'type'", where="workflow nodes")
        by_id[str(node["id"])] = node
    links = _links(data)
    api: dict[str, Any] = {}
    for node_id, node in by_id.items():
        kind = node["type"]
        if kind in _UI_ONLY or node.get("mode", 0) == _MUTED:
            continue
        where = f"node {node_id} ({kind})"
        if node.get("mode", 0) == _BYPASSED:
            raise FlowFormatError("bypassed nodes are not supported", where=where,
                                  fix="remove the node or un-bypass it (Ctrl+B)")
        if kind not in NODES:
            raise FlowFormatError(f"unknown node type {kind!r}", where=f"node {node_id}",
                                  fix=f"supported node types: {', '.join(sorted(NODES))}")
        api[node_id] = {"class_type": kind, "inputs": _inputs(node, by_id, links, where)}
    return api


def _inputs(node: Mapping[str, Any], by_id: dict[str, Mapping[str, Any]],
            links: dict[int, tuple[str, int]], where: str) -> dict[str, Any]:
    spec = NODES[node["type"]]
    inputs: dict[str, Any] = {}
    names = spec.widgets()
    values = node.get("widgets_values")
    if values is None:
        values = []
    if isinstance(values, Mapping):
        values = [values.get(n) for n in names]
    if not isinstance(values, list) or len(values) != len(names):
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise FlowFormatError(f"widgets_values has {got} entries, expected {len(names)} "
                              f"({', '.join(names)})", where=where,
                              fix="export the workflow with 'Save (API Format)' instead")
    for name, value in zip(names, values, strict=True):
        if spec.input(name) is not None:
            inputs[name] = value
    for slot in node.get("inputs") or []:
        if not isinstance(slot, Mapping) or slot.get("link") is None:
            continue
        name = slot.get("name")
        inp = spec.input(name) if isinstance(name, str) else None
        if inp is None:
            raise FlowFormatError(f"unknown input {name!r}", where=where,
                                  fix=f"{spec.class_type} takes: "
                                      f"{', '.join(i.name for i in spec.inputs)}")
        origin = _follow(slot["link"], by_id, links, where)
        source = by_id[origin[0]]
        if inp.is_link:
            inputs[name] = [origin[0], origin[1]]
        elif source["type"] == "PrimitiveNode":
            primitive = source.get("widgets_values") or [None]
            inputs[name] = primitive[0]
        else:
            raise FlowFormatError(f"widget {name!r} is linked from a {source['type']} node",
                                  where=where, fix="set the value on the node itself")
    return inputs


def _follow(link_id: Any, by_id: dict[str, Mapping[str, Any]],
            links: dict[int, tuple[str, int]], where: str) -> tuple[str, int]:
    seen: set[Any] = set()
    while True:
        if link_id not in links:
            raise FlowFormatError(f"link {link_id!r} does not exist", where=where,
                                  fix="check the workflow's links")
        origin = links[link_id]
        source = by_id.get(origin[0])
        if source is None:
            raise FlowFormatError(f"link {link_id} comes from node {origin[0]}, which does "
                                  "not exist", where=where, fix="check the workflow's links")
        if source.get("mode", 0) == _MUTED:
            raise FlowFormatError(f"input comes from muted node {origin[0]}", where=where,
                                  fix="un-mute it (Ctrl+M) or disconnect it")
        if source["type"] != "Reroute":
            return origin
        if link_id in seen:
            raise FlowFormatError("reroute nodes form a cycle", where=where)
        seen.add(link_id)
        ins = [s for s in source.get("inputs") or [] if isinstance(s, Mapping)]
        link_id = ins[0].get("link") if ins else None
