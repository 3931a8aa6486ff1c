"""The pool widget: a live table of resident models, budgets, memory, release buttons."""

from __future__ import annotations

import torch

import lightflow as lf
from lightflow.widgets.pool_view import PoolWidget

torch.set_num_threads(1)


def run_small_flow(folder):
    sd = lf.checkpoint(folder)
    flow = lf.prompt("a cat").encode(sd).sample(sd, steps=2, scheduler="euler").decode(sd)
    return flow.run()


def table_text(view: PoolWidget) -> str:
    return " ".join(getattr(cell, "value", "") for cell in view.table.children
                    if hasattr(cell, "value"))


def test_empty_pool(fresh):
    view = PoolWidget(lf.pool)
    assert view.rows == []
    assert "no model loaded" in table_text(view)
    assert "budgets" in view.header.value and "RAM" in view.memory_gauge.value
    view.close()


def test_table_updates_live_from_pool_events(sd15_dir, fresh):
    view = PoolWidget(lf.pool)
    run_small_flow(sd15_dir)  # no refresh call: the widget listens to the pool
    kinds = {row[1] for row in view.rows}
    assert {"UNET", "VAE", "TEXT_ENCODER"} <= kinds
    labels = [row[0] for row in view.rows]
    assert any(label.endswith("/unet") for label in labels)
    row = next(r for r in view.rows if r[1] == "UNET")
    assert row[2].endswith("MiB") and row[3] == "cpu" and row[4] == "0" and "ago" in row[5]
    text = table_text(view)
    for header in ("model", "kind", "size", "device", "users", "last used"):
        assert f"<b>{header}</b>" in text
    assert "5 models" in view.header.value or f"{len(view.rows)} models" in view.header.value
    view.close()


def test_release_buttons_drop_models(sd15_dir, fresh):
    run_small_flow(sd15_dir)
    view = PoolWidget(lf.pool)
    before = len(lf.pool)
    unet_label = next(r[0] for r in view.rows if r[1] == "UNET")
    view.release_buttons[unet_label].click()
    assert len(lf.pool) == before - 1
    assert unet_label not in [r[0] for r in view.rows]
    assert "released 1 model" in view.message.value
    view.release_all_button.click()
    assert len(lf.pool) == 0 and view.rows == []
    # the pool still works after a release (results cleared so that models are needed)
    lf.get_executor().cache.clear()
    run_small_flow(sd15_dir)
    assert len(view.rows) == len(lf.pool) > 0
    view.close()


def test_pool_mimebundle_is_the_widget(fresh):
    bundle = lf.pool._repr_mimebundle_()
    assert bundle["text/plain"].startswith("<ModelPool")
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_closed_widget_stops_listening(sd15_dir, fresh):
    listeners = len(lf.pool._listeners)
    view = PoolWidget(lf.pool)
    assert len(lf.pool._listeners) == listeners + 1
    view.close()
    assert len(lf.pool._listeners) == listeners
