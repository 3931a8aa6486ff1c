"""Every user string shown in HTML is escaped: flow, pool and error views."""

from __future__ import annotations

import shutil

import torch

import lightflow as lf
from lightflow.graph.events import NodeFailed, RunStarted
from lightflow.widgets.explore import Explorer
from lightflow.widgets.flow_view import FlowWidget, error_html
from lightflow.widgets.pool_view import PoolWidget

torch.set_num_threads(1)
PAYLOAD = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def html_of(widget) -> str:
    """Every HTML string a widget tree shows."""
    out = []
    stack = [widget]
    while stack:
        w = stack.pop()
        value = getattr(w, "value", None)
        if isinstance(value, str):
            out.append(value)
        stack.extend(getattr(w, "children", ()))
    return "\n".join(out)


def test_flow_view_escapes_the_prompt(sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    flow = lf.prompt(PAYLOAD, negative=PAYLOAD).encode(sd).sample(sd, steps=2).decode(sd)
    w = FlowWidget(flow)
    text = html_of(w)
    assert PAYLOAD not in text and "<img" not in text
    assert ESCAPED in w.graph_html.value


def test_pool_view_escapes_model_labels(sd15_dir, tmp_path, fresh):
    folder = tmp_path / PAYLOAD
    shutil.copytree(sd15_dir, folder)
    sd = lf.checkpoint(folder)
    lf.prompt("a cat").encode(sd).run()  # loads the text encoder and tokenizer
    view = PoolWidget(lf.pool)
    try:
        assert any(row[0].startswith(PAYLOAD) for row in view.rows)
        text = html_of(view)
        assert PAYLOAD not in text and "<img" not in text and ESCAPED in text
    finally:
        view.close()


def test_error_views_escape_messages_and_places(sd15_dir, tmp_path, fresh):
    err = lf.LightflowError(f"bad prompt {PAYLOAD}", where=PAYLOAD, fix=PAYLOAD)
    box = error_html(err)
    assert PAYLOAD not in box and box.count(ESCAPED) == 3
    assert PAYLOAD not in error_html(RuntimeError(PAYLOAD), where=PAYLOAD)
    # a real failed run: the missing checkpoint's path carries the payload
    sd = lf.checkpoint(tmp_path / PAYLOAD)
    flow = lf.prompt(PAYLOAD).encode(sd).sample(sd, steps=2).decode(sd)
    w = FlowWidget(flow)
    w.start("final")
    assert w.wait(60) and w.last_error is not None
    assert ESCAPED in w.error_html.value and PAYLOAD not in html_of(w)
    # a node failure event naming a node with the payload in its parameters
    prompt_node = flow.nodes()[2]
    w._on_event(RunStarted(9, flow, "final", 8))
    w._on_event(NodeFailed(9, prompt_node, RuntimeError(PAYLOAD)))
    assert PAYLOAD not in html_of(w)
    ui = Explorer(flow, {"seed": (0, 10)}, debounce=0.01, settle=None)
    try:
        assert ui.wait_idle(60) and ui.last_error is not None
        assert ESCAPED in ui.error_html.value and PAYLOAD not in html_of(ui)
    finally:
        ui.close()
