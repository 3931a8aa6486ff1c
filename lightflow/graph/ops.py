"""The op registry: what each op accepts, produces, checks and runs.

Node families in :mod:`lightflow.nodes` register their ops here. :func:`build` is the
one way nodes are made: it checks input types and parameters, so a wrong connection
fails on the line that makes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import FlowFormatError, MissingInputError, ParameterError, TypeMismatchError
from .types import COMPONENT_TYPES, PortType

if TYPE_CHECKING:
    from .context import RunContext
    from .node import Node

__all__ = ["OpSpec", "Port", "build", "get_op", "register", "registered_ops"]

RunFn = Callable[["RunContext", dict[str, Any], Mapping[str, Any]], Any]
CheckFn = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Port:
    """A named input of an op and the types it accepts."""

    name: str
    types: tuple[PortType, ...]
    optional: bool = False

    def describe(self) -> str:
        return " or ".join(t.value for t in self.types)


@dataclass(frozen=True)
class OpSpec:
    """How an op is built and run.

    ``check`` validates and normalises literal parameters (raising ParameterError);
    ``run`` computes the output from resolved inputs. ``proxy`` marks ops that stand in
    for a costly stage and so are refused in final mode. ``needs`` lists the pool models
    (ModelSpec) the op will acquire, given its model inputs, for planning before a run.
    """

    name: str
    output: PortType
    inputs: tuple[Port, ...]
    run: RunFn
    params: tuple[str, ...] = ()
    check: CheckFn | None = None
    proxy: bool = False
    needs: Callable[[dict[str, Any], Mapping[str, Any]], list[Any]] | None = None
    doc: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)

    def port(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)


_REGISTRY: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    """Add (or replace, on module reload) an op."""
    _REGISTRY[spec.name] = spec
    return spec


def registered_ops() -> dict[str, OpSpec]:
    _ensure_nodes_loaded()
    return dict(_REGISTRY)


def _ensure_nodes_loaded() -> None:
    if not _REGISTRY:
        from .. import nodes, preview  # noqa: F401  (register the node library)


def get_op(name: str) -> OpSpec:
    _ensure_nodes_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise FlowFormatError(f"unknown op {name!r}", where=name,
                              fix=f"use one of: {known}") from None


def node_type(node: Node) -> PortType:
    return get_op(node.op).output


def build(op: str, inputs: Mapping[str, Node | None] | None = None, **params: Any) -> Node:
    """Make a node after checking its inputs' types and its parameters.

    A CHECKPOINT given where a component (UNET, TEXT_ENCODER, VAE) is expected is
    replaced by the node selecting that component from it.
    """
    from .node import Node

    spec = get_op(op)
    given = {k: v for k, v in (inputs or {}).items() if v is not None}
    unknown = set(given) - {p.name for p in spec.inputs}
    if unknown:
        raise MissingInputError(f"unknown input(s) {sorted(unknown)}", where=op,
                                fix=f"inputs are: {[p.name for p in spec.inputs]}")
    resolved: dict[str, Node] = {}
    for port in spec.inputs:
        node = given.get(port.name)
        if node is None:
            if not port.optional:
                raise MissingInputError(f"input {port.name!r} ({port.describe()}) is missing",
                                        where=op, fix=f"connect a {port.describe()} node")
            continue
        resolved[port.name] = _coerce(op, port, node)
    unknown_params = set(params) - set(spec.params)
    if unknown_params:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown_params)}", where=op,
                             fix=f"parameters are: {list(spec.params)}")
    checked = spec.check(dict(params)) if spec.check else dict(params)
    return Node(op, checked, resolved)


def _coerce(op: str, port: Port, node: Any) -> Node:
    from .node import Node

    if not isinstance(node, Node):
        hint = _hint_for_value(node)
        raise TypeMismatchError(
            f"input {port.name!r} expects a {port.describe()} node, got {type(node).__name__}",
            where=op, fix=hint)
    got = node_type(node)
    if got in port.types:
        return node
    if got is PortType.CHECKPOINT:
        for wanted in port.types:
            if wanted in COMPONENT_TYPES:
                return build(COMPONENT_TYPES[wanted], {"checkpoint": node})
    raise TypeMismatchError(
        f"input {port.name!r} expects {port.describe()}, got {got.value} from {node.label()}",
        where=op, fix=_hint_for_types(port, got))


def _hint_for_value(value: Any) -> str:
    if isinstance(value, str):
        return "wrap the text with lf.prompt(...) or the path with lf.checkpoint(...)/lf.image(...)"
    return "pass a node made by the lightflow API (lf.checkpoint, lf.prompt, lf.image, ...)"


def _hint_for_types(port: Port, got: PortType) -> str:
    if PortType.TEXT_ENCODER in port.types:
        return "pass the checkpoint (or ckpt.text_encoder), not its " + got.value
    if PortType.VAE in port.types:
        return "pass the checkpoint (or ckpt.vae) here"
    if PortType.UNET in port.types:
        return "pass the checkpoint (or ckpt.unet) here"
    if PortType.LATENT in port.types and got is PortType.IMAGE:
        return "encode the image first: .encode_image(ckpt)"
    if PortType.IMAGE in port.types and got is PortType.LATENT:
        return "decode the latent first: .decode(ckpt)"
    if PortType.CONDITIONING in port.types and got is PortType.PROMPT:
        return "encode the prompt first: .encode(ckpt)"
    return f"connect a node whose output is {port.describe()}"
