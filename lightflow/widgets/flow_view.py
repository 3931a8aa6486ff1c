"""The flow widget: what a flow shows as the last expression of a notebook cell.

It shows the graph (nodes, edges, output types and each node's state, live), Run /
Preview / Stop buttons, a progress bar with step count, elapsed and remaining time, the
live per-step preview, the result image, a memory gauge and errors. Building it never
runs anything or loads a model; button-started runs execute in a background thread.

    >>> import lightflow as lf
    >>> from lightflow.widgets import FlowWidget
    >>> flow = lf.prompt("a cat").encode(sd).sample(sd, steps=20).decode(sd)  # doctest: +SKIP
    >>> w = FlowWidget(flow)              # doctest: +SKIP
    >>> w.start("final"); w.wait()        # what the Run button does  # doctest: +SKIP
"""

from __future__ import annotations

import html
import io
import threading
import time
from typing import Any

import ipywidgets as W

from ..errors import RunInterrupted
from ..graph.events import (
    Event,
    NodeFailed,
    NodeFinished,
    NodeStarted,
    PreviewReady,
    RunFinished,
    RunStarted,
    StepEvent,
)
from ..graph.node import Node, walk
from ..graph.ops import get_op
from ..graph.types import MODEL_TYPES

__all__ = ["FlowWidget", "error_html", "flow_widget_bundle", "image_widget", "memory_html",
           "png_bytes"]

STATE_COLORS = {"idle": "#888", "waiting": "#b58900", "running": "#268bd2", "done": "#2aa198",
                "cached": "#6c71c4", "failed": "#dc322f", "stopped": "#cb4b16",
                "model": "#586e75", "not run": "#888"}


def png_bytes(image: Any) -> bytes:
    """PNG bytes of a PIL image or an HxWx3 uint8 array (what ``ipywidgets.Image`` takes)."""
    from PIL import Image

    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _gb(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB"


def _bar(label: str, used: float, total: float) -> str:
    frac = 0.0 if total <= 0 else max(0.0, min(1.0, used / total))
    color = "#dc322f" if frac > 0.9 else "#b58900" if frac > 0.7 else "#2aa198"
    return (f'<div style="display:flex;align-items:center;gap:6px;font-size:12px">'
            f'<span style="width:44px">{html.escape(label)}</span>'
            f'<span style="display:inline-block;width:160px;height:10px;background:#eee;'
            f'border:1px solid #ccc"><span style="display:block;height:100%;width:'
            f'{100 * frac:.0f}%;background:{color}"></span></span>'
            f"<span>{html.escape(_gb(used))} / {html.escape(_gb(total))}</span></div>")


def memory_html(memory: dict[str, Any]) -> str:
    """A small gauge of host RAM (this process and the machine) and each GPU, if any."""
    host = memory.get("host", {})
    total = host.get("total", 0)
    parts = ['<div class="lightflow-memory">']
    if total:
        parts.append(_bar("RAM", total - host.get("available", 0), total))
        parts.append(f'<div style="font-size:11px;color:#666">kernel RSS '
                     f'{html.escape(_gb(host.get("rss", 0)))}</div>')
    gpu = memory.get("gpu", {})
    if gpu.get("available"):
        for dev in gpu.get("devices", []):
            parts.append(_bar(f"GPU{dev.get('index', 0)}", dev.get("used", 0),
                              dev.get("total", 0)))
    else:
        reason = gpu.get("reason", "no GPU")
        parts.append(f'<div style="font-size:11px;color:#666">GPU: {html.escape(str(reason))}'
                     "</div>")
    parts.append("</div>")
    return "".join(parts)


def error_html(error: BaseException, where: str | None = None) -> str:
    """An escaped error box: the error type, its message and the node it came from."""
    where = where or getattr(error, "where", None)
    message = getattr(error, "message", None) or str(error)
    fix = getattr(error, "fix", None)
    rows = [f"<b>{html.escape(type(error).__name__)}</b>: {html.escape(message)}"]
    if where:
        rows.append(f"<div>in <code>{html.escape(where)}</code></div>")
    if fix:
        rows.append(f"<div>fix: {html.escape(fix)}</div>")
    return ('<div class="lightflow-error" style="color:#dc322f;border:1px solid #dc322f;'
            'padding:4px 8px;border-radius:4px">' + "".join(rows) + "</div>")


def image_widget(width: str) -> W.Image:
    """A PNG image widget that stays hidden (no broken-image icon) until it has a value."""
    image = W.Image(format="png", layout=W.Layout(width=width, display="none"))

    def reveal(change: dict[str, Any]) -> None:
        image.layout.display = None if len(change["new"]) else "none"

    image.observe(reveal, names="value")
    return image


def _params_text(node: Node) -> str:
    parts = []
    for name, value in node.params.items():
        if value is None:
            continue
        text = repr(value)
        parts.append(f"{name}={text if len(text) <= 40 else text[:37] + '...'}")
    return ", ".join(parts)


class FlowWidget(W.VBox):
    """A live view of one flow. For tests and scripts: ``state`` (node key → idle, waiting,
    running, done, cached, failed, stopped, not run; ``model`` for model handles),
    ``progress``, ``progress_label``, ``preview_image``, ``result_image``, ``error_html``,
    ``status``, ``last_run``, ``last_error``, ``stopped_at``, ``run_thread``;
    :meth:`start`, :meth:`stop`, :meth:`wait`.
    """

    def __init__(self, flow: Node, *, min_interval: float = 0.05, **kwargs: Any):
        self.flow = flow
        self.min_interval = min_interval
        self.nodes: list[Node] = list(walk(flow))
        self.index = {n.key: i + 1 for i, n in enumerate(self.nodes)}
        self.state: dict[str, str] = {n.key: "model" if self._is_model(n) else "idle"
                                      for n in self.nodes}
        self.last_run: Any = None
        self.last_error: BaseException | None = None
        self.run_thread: threading.Thread | None = None
        self.previews_shown = 0
        self.stopped_at: tuple[int, int] | None = None
        self.stop_clicked_at: int | None = None  # the step the run had reached at Stop
        self._step = 0
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._alias: dict[str, str] = {}  # key of a draft stand-in → key of the flow's node
        self._last_ui = 0.0
        self._last_preview = 0.0
        self._failed_where: str | None = None
        self._started = 0.0
        self._mode = "final"

        title = f"lightflow flow → {flow.type.value} ({len(self.nodes)} nodes, #{flow.key[:8]})"
        self.title = W.HTML(f"<b>{html.escape(title)}</b>")
        self.graph_html = W.HTML()
        self.run_button = W.Button(description="Run", icon="play", button_style="primary",
                                   tooltip="final run (real decoder)")
        self.preview_button = W.Button(description="Preview", icon="eye",
                                       tooltip="draft run (proxy decoder, capped steps)")
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger",
                                    disabled=True, tooltip="halt within one sampling step")
        self.run_button.on_click(lambda _b: self.start("final"))
        self.preview_button.on_click(lambda _b: self.start("draft"))
        self.stop_button.on_click(lambda _b: self.stop())
        self.progress = W.IntProgress(value=0, min=0, max=1, description="",
                                      layout=W.Layout(width="260px"))
        self.progress_label = W.HTML("not run yet")
        self.status = W.HTML("")
        self.preview_image = image_widget("192px")
        self.result_image = image_widget("192px")
        self.result_label = W.HTML("")
        self.memory_gauge = W.HTML("")
        self.error_html = W.HTML("")
        for widget, cls in ((self.preview_image, "lightflow-preview"),
                            (self.result_image, "lightflow-result"),
                            (self.progress, "lightflow-progress"),
                            (self.progress_label, "lightflow-progress-label"),
                            (self.run_button, "lightflow-run"),
                            (self.preview_button, "lightflow-draft"),
                            (self.stop_button, "lightflow-stop"),
                            (self.status, "lightflow-status")):
            widget.add_class(cls)
        self.render_graph()
        self.refresh_memory()
        images = W.HBox([W.VBox([W.HTML("<i>live preview</i>"), self.preview_image]),
                         W.VBox([self.result_label, self.result_image])])
        super().__init__(children=[
            self.title, self.graph_html,
            W.HBox([self.run_button, self.preview_button, self.stop_button]),
            W.HBox([self.progress, self.progress_label]), self.status, images,
            self.memory_gauge, self.error_html], **kwargs)
        self.add_class("lightflow-flow-widget")

    # ------------------------------------------------------------------ rendering
    @staticmethod
    def _is_model(node: Node) -> bool:
        return get_op(node.op).output in MODEL_TYPES

    def render_graph(self) -> None:
        """Rebuild the graph table (every user string escaped)."""
        rows = []
        for n in self.nodes:
            edges = ", ".join(f"{html.escape(name)} ← [{self.index[child.key]}] "
                              f"{html.escape(child.op)}" for name, child in n.inputs.items())
            state = self.state[n.key]
            color = STATE_COLORS.get(state, "#888")
            rows.append(
                f'<tr data-key="{html.escape(n.key)}"><td>[{self.index[n.key]}]</td>'
                f"<td><b>{html.escape(n.op)}</b></td>"
                f"<td><code>{html.escape(_params_text(n))}</code></td><td>{edges}</td>"
                f"<td>{html.escape(n.type.value)}</td>"
                f'<td class="lightflow-state" style="color:{color}">{html.escape(state)}</td></tr>')
        head = "".join(f"<th style='text-align:left'>{h}</th>"
                       for h in ("#", "node", "parameters", "inputs", "output", "state"))
        self.graph_html.value = (f'<table class="lightflow-graph" style="font-size:12px">'
                                 f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
                                 "</tbody></table>")

    def refresh_memory(self) -> None:
        """Read the pool's memory monitors (cheap: psutil / NVML, no model is touched)."""
        from ..pool import get_pool

        try:
            self.memory_gauge.value = memory_html(get_pool().memory())
        except Exception as exc:  # a monitor failure must not break the view
            self.memory_gauge.value = f"<i>memory unavailable: {html.escape(str(exc))}</i>"

    def _set_state(self, node: Node | None, state: str) -> None:
        if node is None:
            return
        key = self._alias.get(node.key, node.key)
        if key in self.state:
            self.state[key] = state
            self.render_graph()

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self.run_thread is not None and self.run_thread.is_alive()

    def start(self, mode: str = "final") -> bool:
        """Run the flow in a background thread (``"final"`` or ``"draft"``). Returns
        False, starting nothing, while a run of this widget is still going."""
        with self._lock:
            if self.running:
                return False
            self._stop = threading.Event()
            self._mode = mode
            self.run_thread = threading.Thread(target=self._work, args=(mode, self._stop),
                                               name=f"lightflow-{mode}", daemon=True)
            self.run_button.disabled = self.preview_button.disabled = True
            self.stop_button.disabled = False
            self.run_thread.start()
            return True

    def stop(self) -> None:
        """Ask the running flow to stop; sampling halts before its next step."""
        if self.running and not self._stop.is_set():
            self.stop_clicked_at = self._step
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current run to finish; True when none is running any more."""
        thread = self.run_thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def _work(self, mode: str, stop: threading.Event) -> None:
        from ..recipe import run_to_images

        self.error_html.value = ""
        self.last_error = None
        self.stopped_at = self.stop_clicked_at = None
        self._step = 0
        self._alias = self._aliases(mode)
        try:
            run = self.flow.run(mode=mode, on_event=self._on_event, stop=stop)
            self.last_run = run
            if self.flow.type.value == "IMAGE":
                self.result_image.value = png_bytes(run_to_images(run)[0])
                what = "draft image (proxy decoder)" if mode == "draft" else "result"
                self.result_label.value = f"<i>{what}</i>"
        except RunInterrupted as exc:
            self.last_error = exc
            step, total = getattr(exc, "step", None), getattr(exc, "total", None)
            if step is not None and total:
                self.stopped_at = (step, total)
                text = f"stopped at step {step}/{total}"
                if self.stop_clicked_at is not None:
                    text += f" (Stop clicked at step {self.stop_clicked_at})"
            else:
                text = "stopped before sampling"
            self.status.value = f"<b>{html.escape(text)}</b>; nothing partial was cached"
            self.progress_label.value = html.escape(text)
        except Exception as exc:
            self.last_error = exc
            where = getattr(exc, "where", None) or self._failed_where
            self.error_html.value = error_html(exc, where)
            self.status.value = "<b>failed</b>"
        finally:
            ok = self.last_error is None
            for key, value in self.state.items():
                if value == "running":
                    self.state[key] = "stopped" if stop.is_set() else "failed"
                elif value == "waiting":  # never visited: a cached result downstream covered it
                    self.state[key] = "cached" if ok else "not run"
            self.render_graph()
            self.refresh_memory()
            self.run_button.disabled = self.preview_button.disabled = False
            self.stop_button.disabled = True

    def _aliases(self, mode: str) -> dict[str, str]:
        """Map the keys of draft stand-ins (decode → proxy_decode ...) to the flow's nodes."""
        self._failed_where = None
        if mode != "draft":
            return {}
        from ..graph.rewrite import prepare
        from ..runtime import get_settings

        try:
            rewritten = prepare(self.flow, mode, get_settings())
        except Exception:
            return {}
        alias: dict[str, str] = {}

        def pair(orig: Node, new: Node) -> None:
            if new.key in alias:
                return
            alias[new.key] = orig.key
            for name, child in orig.inputs.items():
                if name in new.inputs:
                    pair(child, new.inputs[name])

        pair(self.flow, rewritten)
        return alias

    # ------------------------------------------------------------------ events
    def _on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started = time.perf_counter()
            for key, value in self.state.items():
                if value != "model":
                    self.state[key] = "waiting"
            self.render_graph()
            self.progress.value, self.progress.max = 0, 1
            self.progress.bar_style = ""
            self.progress_label.value = "starting"
            self.status.value = html.escape(f"running ({event.mode})")
        elif isinstance(event, NodeStarted):
            self._set_state(event.node, "running")
        elif isinstance(event, NodeFinished):
            self._set_state(event.node, "cached" if event.cached else "done")
            self.refresh_memory()
        elif isinstance(event, NodeFailed):
            self._failed_where = event.node.label() if event.node is not None else None
            self._set_state(event.node, "stopped" if isinstance(event.error, RunInterrupted)
                            else "failed")
        elif isinstance(event, StepEvent):
            self._on_step(event)
        elif isinstance(event, PreviewReady):
            now = time.perf_counter()
            if event.step >= event.total or now - self._last_preview >= self.min_interval:
                self._last_preview = now
                self.preview_image.value = png_bytes(event.image)
                self.previews_shown += 1
        elif isinstance(event, RunFinished):
            elapsed = event.seconds
            if event.ok:
                self.progress.value = self.progress.max
                self.progress.bar_style = "success"
                self.progress_label.value = html.escape(f"done in {elapsed:.2f} s")
                self.status.value = html.escape(f"done ({self._mode}) in {elapsed:.2f} s")
            elif not isinstance(event.error, RunInterrupted):
                self.progress.bar_style = "danger"

    def _on_step(self, event: StepEvent) -> None:
        self._step = event.step
        now = time.perf_counter()
        last = event.step >= event.total
        if not last and now - self._last_ui < self.min_interval:
            return
        self._last_ui = now
        self.progress.max = max(1, event.total)
        self.progress.value = min(event.step, event.total)
        elapsed = now - self._started
        per_step = event.elapsed / max(1, event.step)
        left = per_step * (event.total - event.step)
        self.progress_label.value = html.escape(
            f"step {event.step}/{event.total} · {elapsed:.1f} s elapsed · ~{left:.1f} s left")


def flow_widget_bundle(flow: Node) -> dict[str, Any]:
    """The mime bundle ``Node._repr_mimebundle_`` shows: the widget view (no compute)."""
    widget = FlowWidget(flow)
    bundle = dict(widget._repr_mimebundle_())
    bundle["text/plain"] = repr(flow)
    return bundle
