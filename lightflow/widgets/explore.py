"""``lf.explore(flow, **controls)``: sliders and inputs for a flow's parameters.

While a control moves, debounced draft previews run in a background thread; once the
controls have been still for ``settle`` seconds (the slider was released) or on the
Final button, the real image is made. Each run is ``flow.replace(**values)``, so only
the nodes downstream of a change re-run (the executor's cache keeps the rest). A run
made stale by a newer change is stopped at its next sampling step.

    >>> import lightflow as lf
    >>> from lightflow.widgets.explore import explore     # or lf.explore
    >>> ui = explore(flow, seed=(0, 1000), cfg=(1.0, 12.0), steps=(1, 50),
    ...              prompt="text")     # doctest: +SKIP
    >>> ui.controls["seed"].value = 7; ui.wait_idle()   # doctest: +SKIP
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as W

from ..errors import ParameterError, RunInterrupted
from ..graph.events import Event, PreviewReady, StepEvent
from ..graph.fluent import _REPLACEABLE
from ..graph.node import Node, walk
from .flow_view import error_html, image_widget, png_bytes

__all__ = ["Explorer", "explore"]


def current_value(flow: Node, name: str) -> Any:
    """The value a replaceable parameter (``seed``, ``prompt`` ...) has in ``flow``."""
    if name == "size":
        name = "width"
    op, param = _REPLACEABLE.get(name, (None, None))
    for node in walk(flow):
        if node.op == op and node.params.get(param) is not None:
            return node.params[param]
    return None


def make_control(name: str, spec: Any, current: Any) -> W.ValueWidget:
    """A widget for one control spec: ``(lo, hi)`` or ``(lo, hi, step)`` → a slider (int or
    float by the bounds' type), ``"text"`` → a text box holding the flow's value (another
    string is the initial text), a list → a dropdown, a widget → itself."""
    if isinstance(spec, W.ValueWidget):
        return spec
    common = {"description": name, "continuous_update": True,
              "style": {"description_width": "70px"}, "layout": W.Layout(width="420px")}
    if isinstance(spec, tuple) and len(spec) in (2, 3) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
        lo, hi = spec[0], spec[1]
        value = current if isinstance(current, (int, float)) else lo
        if all(isinstance(v, int) for v in spec):
            step = spec[2] if len(spec) == 3 else 1
            return W.IntSlider(value=min(max(int(value), lo), hi), min=lo, max=hi, step=step,
                               **common)
        step = spec[2] if len(spec) == 3 else (hi - lo) / 100
        return W.FloatSlider(value=min(max(float(value), lo), hi), min=lo, max=hi, step=step,
                             **common)
    if isinstance(spec, str):
        text = current if spec == "text" and isinstance(current, str) else spec
        common["continuous_update"] = False  # a prompt updates on Enter or leaving the box
        return W.Text(value=text if text != "text" else "", **common)
    if isinstance(spec, (list, tuple)) and spec:
        options = list(spec)
        value = current if current in options else options[0]
        common.pop("continuous_update")
        return W.Dropdown(options=options, value=value, **common)
    raise TypeError(f"cannot make a control for {name}={spec!r}: use (lo, hi), (lo, hi, step), "
                    f"'text', a list of choices or an ipywidgets widget")


class Explorer(W.VBox):
    """The widget :func:`explore` returns. For scripts and tests: ``controls``, ``image``,
    ``status``, ``progress``, ``error_html``, ``last_run``, ``runs`` (``(mode, values)``
    of each finished run), :meth:`values`, :meth:`request_final`, :meth:`wait_idle`."""

    def __init__(self, flow: Node, controls: dict[str, Any], *, debounce: float = 0.15,
                 settle: float | None = 0.8, start: str | None = "draft",
                 min_interval: float = 0.05, **kwargs: Any):
        if not controls:
            raise TypeError("explore() needs at least one control, e.g. seed=(0, 1000)")
        unknown = set(controls) - set(_REPLACEABLE) - {"size"}
        if unknown:
            raise ParameterError(f"explore() cannot control {sorted(unknown)}", where="explore",
                                 fix=f"controls: {', '.join(sorted(_REPLACEABLE))}, size")
        self.flow = flow
        self.debounce = debounce
        self.settle = settle
        self.min_interval = min_interval
        self.controls = {name: make_control(name, spec, current_value(flow, name))
                         for name, spec in controls.items()}
        self.last_run: Any = None
        self.last_error: BaseException | None = None
        self.runs: list[tuple[str, dict[str, Any]]] = []
        self._cond = threading.Condition()
        self._version = 0
        self._changed_at = time.monotonic()
        self._drafted = self._finaled = 0
        self._final_requested = False
        self._busy = False
        self._closed = False
        self._last_ui = 0.0
        if start == "draft":
            self._drafted = -1
        elif start == "final":
            self._final_requested = True

        self.image = image_widget("256px")
        self.image.add_class("lightflow-explore-image")
        self.status = W.HTML("")
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="260px"))
        self.error_html = W.HTML("")
        self.final_button = W.Button(description="Final", icon="check", button_style="primary",
                                     tooltip="make the real image for these values")
        self.final_button.on_click(lambda _b: self.request_final())
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        super().__init__(children=[*self.controls.values(),
                                   W.HBox([self.final_button, self.progress, self.status]),
                                   self.image, self.error_html], **kwargs)
        self.add_class("lightflow-explorer")
        self._thread = threading.Thread(target=self._loop, name="lightflow-explore",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public
    def values(self) -> dict[str, Any]:
        """The controls' current values, as ``flow.replace`` takes them."""
        return {name: control.value for name, control in self.controls.items()}

    def current_flow(self) -> Node:
        """The flow for the current values (a branch of the original; nothing runs)."""
        return self.flow.replace(**self.values())

    def request_final(self) -> None:
        """Make the real image for the current values (what the Final button does)."""
        with self._cond:
            self._final_requested = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until every pending draft/final has run; True if idle before ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending() or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        """Stop the worker thread and close the widgets."""
        cond = getattr(self, "_cond", None)  # None when __init__ refused the controls
        if cond is not None:
            with cond:
                self._closed = True
                cond.notify_all()
        super().close()

    # ------------------------------------------------------------------ worker
    def _on_change(self, _change: Any) -> None:
        with self._cond:
            self._version += 1
            self._changed_at = time.monotonic()
            self._cond.notify_all()

    def _pending(self) -> bool:
        v = self._version
        return (self._final_requested or self._drafted != v
                or (self.settle is not None and self._finaled != v))

    def _next_job(self) -> tuple[str, int] | None:
        """Wait (holding the condition) for the next job: ``(mode, version)``."""
        while not self._closed:
            v = self._version
            quiet = time.monotonic() - self._changed_at
            if self._final_requested:
                self._final_requested = False
                return "final", v
            wait = None
            if self._drafted != v:
                if quiet >= self.debounce:
                    return "draft", v
                wait = self.debounce - quiet
            elif self.settle is not None and self._finaled != v:
                if quiet >= self.settle:
                    return "final", v
                wait = self.settle - quiet
            self._cond.notify_all()  # wake wait_idle()
            self._cond.wait(wait)
        return None

    def _loop(self) -> None:
        while True:
            with self._cond:
                job = self._next_job()
                if job is None:
                    return
                self._busy = True
            mode, version = job
            try:
                self._run(mode, version)
            finally:
                with self._cond:
                    self._drafted = max(self._drafted, version)
                    if mode == "final":
                        self._finaled = max(self._finaled, version)
                    self._busy = False
                    self._cond.notify_all()

    def _run(self, mode: str, version: int) -> None:
        from ..recipe import run_to_images

        stop = threading.Event()
        values = self.values()

        def on_event(event: Event) -> None:
            if self._version != version:
                stop.set()  # a newer change makes this run stale
            if isinstance(event, StepEvent):
                self.progress.max = max(1, event.total)
                self.progress.value = min(event.step, event.total)
            elif isinstance(event, PreviewReady) and mode == "final":
                now = time.perf_counter()
                if now - self._last_ui >= self.min_interval:
                    self._last_ui = now
                    self.image.value = png_bytes(event.image)

        self.status.value = html.escape(f"{mode} run…")
        try:
            flow = self.flow.replace(**values)
            run = flow.run(mode=mode, on_event=on_event, stop=stop)
            self.image.value = png_bytes(run_to_images(run)[0])
            self.last_run = run
            self.last_error = None
            self.runs.append((mode, values))
            self.error_html.value = ""
            label = "draft (proxy decoder)" if mode == "draft" else "final"
            ran = ", ".join(run.executed_ops) or "nothing (all cached)"
            self.status.value = html.escape(f"{label}: re-ran {ran} in {run.total_seconds:.2f} s")
        except RunInterrupted:
            self.status.value = html.escape(f"{mode} run superseded by a newer change")
        except Exception as exc:
            self.last_error = exc
            self.error_html.value = error_html(exc)
            self.status.value = "<b>failed</b>"


def explore(flow: Node, **controls: Any) -> Explorer:
    """Sliders / inputs for ``flow``'s parameters, with draft previews while they move and
    the final image on release (or the Final button).

        >>> explore(flow, seed=(0, 1000), cfg=(1.0, 12.0), prompt="text")  # doctest: +SKIP

    Options (keyword, not controls): ``debounce`` (s, default 0.15), ``settle`` (s of
    stillness before the final run, default 0.8; None: only the button), ``start``
    (``"draft"``, ``"final"`` or None: what runs when shown).
    """
    options = {k: controls.pop(k) for k in ("debounce", "settle", "start", "min_interval")
               if k in controls}
    return Explorer(flow, controls, **options)
