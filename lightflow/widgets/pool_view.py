"""The pool widget: ``lf.pool`` as the last expression of a cell.

A live table of resident models (model, kind, size, device, users, last used), the
budgets, a memory gauge, and release buttons (per model and for every idle model).
It refreshes on the pool's events (load, hit, evict, offload, budget ...).

    >>> import lightflow as lf
    >>> from lightflow.widgets import PoolWidget
    >>> view = PoolWidget(lf.pool)        # doctest: +SKIP
    >>> view.rows                          # what the table shows  # doctest: +SKIP
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from typing import Any

import ipywidgets as W

from ..pool.memory import format_bytes
from .flow_view import memory_html

__all__ = ["PoolWidget", "pool_widget_bundle"]

COLUMNS = ("model", "kind", "size", "device", "users", "last used", "")


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


class PoolWidget(W.VBox):
    """A live view of a :class:`~lightflow.pool.ModelPool`.

    ``rows`` holds the table as shown (lists of strings); ``release_buttons`` maps each
    model's label to its button; :meth:`refresh` re-reads the pool.
    """

    def __init__(self, pool: Any, **kwargs: Any):
        self.pool = pool
        self.rows: list[list[str]] = []
        self.release_buttons: dict[str, W.Button] = {}
        self._lock = threading.Lock()
        self.header = W.HTML()
        self.table = W.GridBox(layout=W.Layout(
            grid_template_columns="minmax(160px,auto) 110px 80px 60px 50px 90px 80px",
            grid_gap="2px 8px"))
        self.table.add_class("lightflow-pool-table")
        self.memory_gauge = W.HTML()
        self.message = W.HTML()
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.release_all_button = W.Button(description="Release idle", icon="trash",
                                           tooltip="drop every model no flow is using")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.release_all_button.on_click(lambda _b: self.release(None))
        super().__init__(children=[
            self.header, self.table, W.HBox([self.refresh_button, self.release_all_button]),
            self.message, self.memory_gauge], **kwargs)
        self.add_class("lightflow-pool-widget")
        self.refresh()
        ref = weakref.ref(self)

        def listener(_event: str, _row: dict[str, Any]) -> None:
            view = ref()
            if view is None:
                unsubscribe()
            else:
                view.refresh()

        unsubscribe = pool.subscribe(listener) if hasattr(pool, "subscribe") else (lambda: None)
        self._unsubscribe = unsubscribe

    def refresh(self) -> None:
        """Re-read the pool's entries, budgets and memory and redraw the table."""
        now = time.time()
        entries = list(self.pool.entries())  # read the pool before taking our lock
        try:
            gauge = memory_html(self.pool.memory())
        except Exception as exc:
            gauge = f"<i>memory unavailable: {html.escape(str(exc))}</i>"
        budgets = ", ".join(f"{tier} {format_bytes(b)}" for tier, b in
                            getattr(self.pool, "budgets", {}).items())
        rows = [[str(e["label"]), str(e["kind"]), format_bytes(e["bytes"]), str(e["device"]),
                 str(e["users"]), _ago(now - e["last_used"])] for e in entries]
        with self._lock:
            cells: list[W.Widget] = [W.HTML(f"<b>{html.escape(h)}</b>") for h in COLUMNS]
            buttons: dict[str, W.Button] = {}
            for entry, row in zip(entries, rows, strict=True):
                cells.extend(W.HTML(html.escape(text)) for text in row)
                button = W.Button(description="release", disabled=entry["users"] > 0,
                                  tooltip="in use" if entry["users"] else "drop this model",
                                  layout=W.Layout(width="76px"))
                key = entry["key"]
                button.on_click(lambda _b, key=key: self.release(key))
                buttons[row[0]] = button
                cells.append(button)
            if not entries:
                cells.append(W.HTML("<i>no model loaded</i>"))
            old = self.table.children
            self.rows = rows
            self.release_buttons = buttons
            self.table.children = cells
            for widget in old:
                widget.close()
            n = len(entries)
            self.header.value = (f"<b>lightflow model pool</b>: {n} model{'s' * (n != 1)}"
                                 f" — budgets: {html.escape(budgets)}")
            self.memory_gauge.value = gauge

    def release(self, what: Any = None) -> int:
        """Drop idle models (all, or the one ``what`` names) and refresh."""
        try:
            count = int(self.pool.release(what))
            self.message.value = html.escape(f"released {count} model{'s' * (count != 1)}")
        except Exception as exc:
            count = 0
            self.message.value = (f'<span style="color:#dc322f">{html.escape(type(exc).__name__)}'
                                  f": {html.escape(str(exc))}</span>")
        self.refresh()
        return count

    def close(self) -> None:
        """Stop listening to the pool and close the widget."""
        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()
        super().close()


def pool_widget_bundle(pool: Any) -> dict[str, Any]:
    """The mime bundle ``lf.pool._repr_mimebundle_`` shows: the live pool widget."""
    widget = PoolWidget(pool)
    bundle = dict(widget._repr_mimebundle_())
    bundle["text/plain"] = repr(pool)
    return bundle
