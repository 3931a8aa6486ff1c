"""Immutable, content-hashed graph nodes.

A node is a value: an op name, literal parameters and named input nodes. Its ``key``
is a hash of those and of its inputs' keys, so equal subgraphs share one key (one
computation, one cache entry) and changing a parameter changes only the keys of the
nodes downstream of it.

    >>> from lightflow.graph.node import Node
    >>> a = Node("prompt", {"text": "a cat", "negative": ""}, {})
    >>> b = Node("prompt", {"negative": "", "text": "a cat"}, {})
    >>> a.key == b.key
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from .fluent import FluentMixin

__all__ = ["Node", "canonical", "walk"]


def canonical(value: Any) -> Any:
    """A JSON-ready canonical form of a parameter value (used for hashing and saving)."""
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    to_json = getattr(value, "__lightflow_json__", None)
    if to_json is not None:
        return canonical(to_json())
    raise TypeError(f"parameter value {value!r} of type {type(value).__name__} cannot be saved")


def _digest(op: str, params: Mapping[str, Any], inputs: Mapping[str, Node]) -> str:
    payload = {
        "op": op,
        "params": canonical(params),
        "inputs": {name: node.key for name, node in sorted(inputs.items())},
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class Node(FluentMixin):
    """One step of a flow. Build nodes with the fluent API (``lf.prompt(...).encode(...)``).

    Nodes are immutable: builder methods return new nodes. ``repr`` is cheap and never
    runs anything.
    """

    __slots__ = ("__weakref__", "inputs", "key", "op", "params")

    op: str
    params: Mapping[str, Any]
    inputs: Mapping[str, Node]
    key: str

    def __init__(self, op: str, params: Mapping[str, Any], inputs: Mapping[str, Node]):
        frozen_params = _FrozenDict(params)
        frozen_inputs = _FrozenDict(inputs)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "params", frozen_params)
        object.__setattr__(self, "inputs", frozen_inputs)
        object.__setattr__(self, "key", _digest(op, frozen_params, frozen_inputs))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use .replace(...) instead")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.key == self.key

    def __reduce__(self) -> Any:
        return (type(self), (self.op, dict(self.params), dict(self.inputs)))

    @property
    def short_key(self) -> str:
        return self.key[:8]

    def label(self) -> str:
        """``op(param=value, ...)`` with long values shortened; used in messages and views."""
        parts = []
        for name, value in self.params.items():
            text = repr(value)
            if len(text) > 32:
                text = text[:29] + "..."
            parts.append(f"{name}={text}")
        return f"{self.op}({', '.join(parts)})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label()} #{self.short_key}>"


def walk(root: Node) -> Iterator[Node]:
    """Each distinct node reachable from ``root`` once, inputs before the nodes using them."""
    seen: set[str] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if node.key in seen:
            continue
        if expanded:
            seen.add(node.key)
            yield node
            continue
        stack.append((node, True))
        for child in reversed(list(node.inputs.values())):
            if child.key not in seen:
                stack.append((child, False))


class _FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses mutation (node parameters and inputs)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("node parameters are immutable; use .replace(...)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(canonical(self), sort_keys=True))
