"""Graph rewriting for draft mode.

Rules registered by op name (the preview package registers the draft rules) map a node,
with its already-rewritten inputs, to its draft stand-in. Final mode is the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .node import Node

__all__ = ["DRAFT_RULES", "prepare", "register_draft_rule"]

DraftRule = Callable[[Node, dict[str, Node], Any], Node]
DRAFT_RULES: dict[str, DraftRule] = {}


def register_draft_rule(op: str, rule: DraftRule) -> None:
    DRAFT_RULES[op] = rule


def prepare(root: Node, mode: str, settings: Any) -> Node:
    """The graph that actually runs in ``mode`` (draft rules applied bottom-up)."""
    if mode != "draft":
        return root
    from .. import preview  # noqa: F401  (registers the draft rules)
    from ..runtime import current_draft

    draft = current_draft()
    memo: dict[str, Node] = {}

    def visit(node: Node) -> Node:
        if node.key in memo:
            return memo[node.key]
        inputs = {k: visit(v) for k, v in node.inputs.items()}
        rule = DRAFT_RULES.get(node.op)
        if rule is not None:
            out = rule(node, inputs, draft)
        elif inputs != dict(node.inputs):
            out = Node(node.op, dict(node.params), inputs)
        else:
            out = node
        memo[node.key] = out
        return out

    return visit(root)
