"""Flows as JSON, and the low-level graph builder that reads them.

The format is data only: op names looked up in the registry, literal parameters
checked by each op, inputs named by id. Nothing from a file is evaluated or unpickled.

    {"lightflow": 1, "output": "n3",
     "nodes": {"n0": {"op": "prompt", "params": {"text": "a cat", "negative": ""},
                      "inputs": {}}, ...}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import CycleError, FlowFormatError, LightflowError
from .node import Node, canonical, walk
from .ops import build

__all__ = ["FORMAT_VERSION", "GraphBuilder", "from_json", "to_dict", "to_json"]

FORMAT_VERSION = 1


def to_dict(root: Node) -> dict[str, Any]:
    order = list(walk(root))
    ids = {n.key: f"n{i}" for i, n in enumerate(order)}
    nodes = {
        ids[n.key]: {"op": n.op, "params": canonical(n.params),
                     "inputs": {k: ids[v.key] for k, v in n.inputs.items()}}
        for n in order
    }
    return {"lightflow": FORMAT_VERSION, "output": ids[root.key], "nodes": nodes}


def to_json(root: Node, indent: int | None = 2) -> str:
    return json.dumps(to_dict(root), indent=indent)


class GraphBuilder:
    """Build nodes from (id, op, params, input ids) records, in any order.

    Detects cycles, dangling references and bad records, naming the node id.

        >>> g = GraphBuilder()
        >>> g.add("p", "prompt", {"text": "a cat"})
        >>> g.build("p").op
        'prompt'
    """

    def __init__(self) -> None:
        self._records: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {}

    def add(self, node_id: str, op: str, params: Mapping[str, Any] | None = None,
            inputs: Mapping[str, str] | None = None) -> None:
        if node_id in self._records:
            raise FlowFormatError(f"node id {node_id!r} is used twice", where=f"node {node_id}")
        self._records[node_id] = (op, dict(params or {}), dict(inputs or {}))

    def build(self, output: str) -> Node:
        built: dict[str, Node] = {}
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done

        def visit(node_id: str, path: list[str]) -> Node:
            if node_id not in self._records:
                where = f"node {path[-1]}" if path else "output"
                raise FlowFormatError(f"refers to node {node_id!r}, which does not exist",
                                      where=where, fix="check the input links")
            if state.get(node_id) == 2:
                return built[node_id]
            if state.get(node_id) == 1:
                cycle = [*path[path.index(node_id):], node_id]
                raise CycleError(f"cycle {' → '.join(cycle)}", where=f"node {node_id}",
                                 fix="a node cannot depend on its own output; remove a link")
            state[node_id] = 1
            op, params, inputs = self._records[node_id]
            resolved = {name: visit(ref, [*path, node_id]) for name, ref in inputs.items()}
            try:
                node = build(op, resolved, **params)
            except LightflowError as exc:
                raise type(exc)(exc.message, where=f"node {node_id} ({op})"
                                f"{': ' + exc.where if exc.where else ''}", fix=exc.fix) from exc
            state[node_id] = 2
            built[node_id] = node
            return node

        return visit(output, [])


def from_json(data: str | bytes | Mapping[str, Any]) -> Node:
    """Read a flow written by ``node.to_json()``."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise FlowFormatError(f"not valid JSON ({exc})", where="flow JSON",
                                  fix="pass the text written by node.to_json()") from exc
    if not isinstance(data, Mapping) or "nodes" not in data or "output" not in data:
        raise FlowFormatError("not a lightflow flow (needs 'nodes' and 'output')",
                              where="flow JSON", fix="pass the text written by node.to_json()")
    version = data.get("lightflow")
    if version != FORMAT_VERSION:
        raise FlowFormatError(f"unsupported format version {version!r}", where="flow JSON",
                              fix=f"this lightflow reads version {FORMAT_VERSION}")
    nodes = data["nodes"]
    if not isinstance(nodes, Mapping):
        raise FlowFormatError("'nodes' must be an object of id → node", where="flow JSON")
    builder = GraphBuilder()
    for node_id, record in nodes.items():
        if not isinstance(record, Mapping) or not isinstance(record.get("op"), str):
            raise FlowFormatError("each node needs an 'op' string", where=f"node {node_id}")
        params = record.get("params", {})
        inputs = record.get("inputs", {})
        if not isinstance(params, Mapping) or not isinstance(inputs, Mapping) or not all(
                isinstance(v, str) for v in inputs.values()):
            raise FlowFormatError("'params' must be an object and 'inputs' map names to ids",
                                  where=f"node {node_id}")
        builder.add(str(node_id), record["op"], params, inputs)
    return builder.build(str(data["output"]))
