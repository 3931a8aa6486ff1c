"""A plain HTML table of the pool (every string escaped); the widget lives in widgets/."""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING

from .memory import format_bytes

if TYPE_CHECKING:
    from .pool import ModelPool

__all__ = ["pool_table"]


def pool_table(pool: ModelPool) -> str:
    rows = []
    now = time.time()
    for e in pool.entries():
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                e["label"], e["kind"], format_bytes(e["bytes"]), e["device"], e["users"],
                f"{now - e['last_used']:.0f} s ago")) + "</tr>")
    budgets = ", ".join(f"{t} {format_bytes(b)}" for t, b in pool.budgets.items())
    head = "".join(f"<th>{h}</th>" for h in ("model", "kind", "size", "device", "users",
                                             "last used"))
    body = "".join(rows) or '<tr><td colspan="6"><i>no model loaded</i></td></tr>'
    return (f'<div class="lightflow-pool"><b>lightflow model pool</b> — budgets: '
            f"{html.escape(budgets)}<table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")
