"""Static HTML views (no ipywidgets needed): every user string is escaped."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..graph.node import Node

__all__ = ["flow_html"]


def flow_html(node: Node) -> str:
    """The flow's plan as an escaped HTML list (shown where widgets are unavailable)."""
    lines = node.explain().splitlines()
    items = "".join(f"<li><code>{html.escape(line.strip())}</code></li>" for line in lines[1:])
    return (f'<div class="lightflow-flow"><b>{html.escape(lines[0])}</b>'
            f"<ol style='list-style:none;padding-left:0'>{items}</ol></div>")
