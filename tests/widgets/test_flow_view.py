"""The flow widget: state after events (synthetic and from real runs), buttons, Stop,
errors, and the tqdm/logging listeners used outside notebooks."""

from __future__ import annotations

import io
import logging
import threading

import numpy as np
import pytest
import torch

import lightflow as lf
from lightflow.graph.events import (
    NodeFailed,
    NodeFinished,
    NodeStarted,
    PreviewReady,
    RunFinished,
    RunStarted,
    StepEvent,
)
from lightflow.widgets.flow_view import FlowWidget, memory_html
from lightflow.widgets.progress import TqdmProgress, log_events

torch.set_num_threads(1)
PNG = b"\x89PNG"


def make_flow(folder, steps=4, prompt="a cat", seed=1):
    sd = lf.checkpoint(folder)
    return (lf.prompt(prompt).encode(sd)
            .sample(sd, steps=steps, seed=seed, scheduler="euler").decode(sd))


def by_op(widget: FlowWidget, op: str):
    return next(n for n in widget.nodes if n.op == op)


def test_new_widget_shows_graph_and_runs_nothing(sd15_dir):
    flow = make_flow(sd15_dir)
    w = FlowWidget(flow)
    assert w.last_run is None and w.run_thread is None
    assert {w.state[n.key] for n in w.nodes} == {"idle", "model"}
    assert w.state[by_op(w, "unet").key] == "model"
    table = w.graph_html.value
    for node in flow.nodes():
        assert f">{node.op}<" in table
    for type_name in ("CHECKPOINT", "PROMPT", "CONDITIONING", "LATENT", "IMAGE"):
        assert type_name in table
    assert "latent ← [6] sample" in table  # an edge, with the producing node's index
    assert w.preview_image.value == b"" and w.result_image.value == b""
    assert w.result_image.layout.display == "none"  # no broken-image icon before a result
    assert w.stop_button.disabled and not w.run_button.disabled
    assert "RAM" in w.memory_gauge.value


def test_mimebundle_has_the_widget_and_text(sd15_dir):
    flow = make_flow(sd15_dir)
    bundle = flow._repr_mimebundle_()
    assert bundle["text/plain"] == repr(flow)
    assert "model_id" in bundle["application/vnd.jupyter.widget-view+json"]


def test_synthetic_events_update_state_progress_and_preview(sd15_dir):
    flow = make_flow(sd15_dir, steps=10)
    w = FlowWidget(flow, min_interval=0.0)
    sample, encode, decode = by_op(w, "sample"), by_op(w, "encode"), by_op(w, "decode")
    w._on_event(RunStarted(1, flow, "final", 8))
    assert w.state[sample.key] == "waiting" and w.state[by_op(w, "vae").key] == "model"
    w._on_event(NodeFinished(1, encode, 0.0, True))
    assert w.state[encode.key] == "cached"
    w._on_event(NodeStarted(1, sample))
    assert w.state[sample.key] == "running"
    assert "running" in w.graph_html.value
    latent = torch.zeros(1, 4, 8, 8)
    w._on_event(StepEvent(1, sample, 3, 10, 500.0, latent, latent, 0.3))
    assert (w.progress.value, w.progress.max) == (3, 10)
    assert "step 3/10" in w.progress_label.value and "left" in w.progress_label.value
    image = np.zeros((8, 8, 3), np.uint8)
    w._on_event(PreviewReady(1, sample, 3, 10, image, "latent_rgb", 0.001))
    first = w.preview_image.value
    assert bytes(first).startswith(PNG)
    w._on_event(PreviewReady(1, sample, 4, 10, image + 200, "latent_rgb", 0.001))
    assert w.preview_image.value != first and w.previews_shown == 2
    w._on_event(NodeFinished(1, sample, 1.0, False))
    assert w.state[sample.key] == "done"
    w._on_event(NodeFailed(1, decode, RuntimeError("boom")))
    assert w.state[decode.key] == "failed"
    w._on_event(RunFinished(1, flow, False, 1.0, RuntimeError("boom")))
    assert w.progress.bar_style == "danger"


def test_run_button_runs_in_background_and_fills_everything(sd15_dir, fresh):
    flow = make_flow(sd15_dir, steps=4)
    w = FlowWidget(flow, min_interval=0.0)
    w.run_button.click()
    assert w.run_thread is not None
    assert w.wait(120)
    assert w.last_error is None, w.error_html.value
    assert w.last_run.mode == "final"
    assert w.last_run.executed_ops == ["prompt", "encode", "sample", "decode"]
    assert {w.state[n.key] for n in w.nodes} == {"model", "done"}
    assert w.progress.value == w.progress.max == 4 and w.progress.bar_style == "success"
    assert "done in" in w.progress_label.value
    assert bytes(w.preview_image.value).startswith(PNG) and w.previews_shown >= 2
    assert bytes(w.result_image.value).startswith(PNG) and w.result_image.layout.display is None
    assert w.error_html.value == "" and w.stop_button.disabled
    # a second run: everything comes from the cache
    w.start("final")
    assert w.wait(60)
    assert w.last_run.executed_ops == [] and w.state[by_op(w, "decode").key] == "cached"


def test_preview_button_makes_a_draft_image(sd15_dir, fresh):
    flow = make_flow(sd15_dir, steps=4)
    w = FlowWidget(flow)
    w.preview_button.click()
    assert w.wait(120)
    assert w.last_run.mode == "draft"
    assert "proxy_decode" in w.last_run.executed_ops
    assert bytes(w.result_image.value).startswith(PNG) and "draft" in w.result_label.value
    # the proxy_decode stand-in is shown on the flow's own decode node
    assert w.state[by_op(w, "decode").key] == "done"


def test_second_run_while_running_is_ignored(sd15_dir, fresh):
    flow = make_flow(sd15_dir, steps=60)
    w = FlowWidget(flow)
    started = []
    unsubscribe = lf.get_executor().bus.subscribe(
        lambda e: started.append(e) if isinstance(e, RunStarted) else None)
    try:
        assert w.start("final") is True
        assert w.start("final") is False
        w.run_button.click()
        w.preview_button.click()
        assert w.wait(300)
    finally:
        unsubscribe()
    assert len(started) == 1 and w.last_error is None


def test_stop_halts_within_one_step_and_leaves_flow_and_pool_usable(sd15_dir, fresh):
    flow = make_flow(sd15_dir, steps=200)
    w = FlowWidget(flow)
    clicked_at: list[int] = []

    def click_stop_at_step_5(event):
        if isinstance(event, StepEvent) and event.step == 5 and not clicked_at:
            clicked_at.append(event.step)
            w.stop_button.click()

    unsubscribe = lf.get_executor().bus.subscribe(click_stop_at_step_5)
    try:
        w.start("final")
        assert w.wait(300)
    finally:
        unsubscribe()
    assert isinstance(w.last_error, lf.RunInterrupted)
    step, total = w.stopped_at
    assert total == 200 and clicked_at[0] <= step <= clicked_at[0] + 1
    assert f"stopped at step {step}/200" in w.status.value
    assert w.stop_clicked_at == 5 and "Stop clicked at step 5" in w.status.value
    assert w.state[by_op(w, "sample").key] == "stopped"
    assert w.result_image.value == b"" and w.error_html.value == ""
    assert all(row["users"] == 0 for row in lf.pool.entries())
    # the same widget runs again (nothing partial was cached: sample executes)
    w.flow = flow.replace(steps=3)
    w.start("final")
    assert w.wait(120) and w.last_error is None
    assert "sample" in w.last_run.executed_ops


def test_errors_are_shown_in_the_widget_and_leave_things_usable(sd15_dir, tmp_path, fresh):
    sd = lf.checkpoint(tmp_path / "missing")
    bad = lf.prompt("a cat").encode(sd).sample(sd, steps=2).decode(sd)
    w = FlowWidget(bad)
    w.start("final")
    assert w.wait(60)
    assert isinstance(w.last_error, lf.ModelNotFoundError)
    assert "ModelNotFoundError" in w.error_html.value and "missing" in w.error_html.value
    assert "checkpoint" in w.error_html.value  # where it came from
    assert not w.run_button.disabled and w.stop_button.disabled
    good = FlowWidget(make_flow(sd15_dir, steps=2))
    good.start("final")
    assert good.wait(120) and good.last_error is None


def test_memory_gauge_renders_host_and_gpu():
    gauge = memory_html({"host": {"rss": 2**30, "available": 3 * 2**30, "total": 8 * 2**30},
                         "gpu": {"available": True, "devices": [
                             {"index": 0, "used": 2**30, "total": 4 * 2**30}]}})
    assert "RAM" in gauge and "GPU0" in gauge and "5.0 GiB / 8.0 GiB" in gauge
    no_gpu = memory_html({"host": {}, "gpu": {"available": False, "reason": "no CUDA"}})
    assert "no CUDA" in no_gpu


def test_tqdm_progress_and_logging_outside_notebooks(sd15_dir, fresh, caplog):
    out = io.StringIO()
    bar = TqdmProgress(file=out)
    with caplog.at_level(logging.INFO, logger="lightflow.progress"):
        make_flow(sd15_dir, steps=3).run(on_event=lambda e: (bar(e), log_events(e)))
    assert len(bar.bars) == 1 and bar.bars[0].n == bar.bars[0].total == 3
    assert "3/3" in out.getvalue()
    assert any("finished" in r.message for r in caplog.records)
    stop = threading.Event()
    bar = TqdmProgress(file=io.StringIO())

    def stop_at_2(event):
        bar(event)
        if isinstance(event, StepEvent) and event.step == 2:
            stop.set()

    with pytest.raises(lf.RunInterrupted):
        make_flow(sd15_dir, steps=50, seed=9).run(on_event=stop_at_2, stop=stop)
    assert bar.bars[0].n == 2
