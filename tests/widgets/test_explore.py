"""explore(): controls from the flow's values, debounced drafts while moving, the final
image on settling or on the button, and only downstream nodes re-run."""

from __future__ import annotations

import ipywidgets as W
import pytest
import torch

import lightflow as lf
from lightflow.widgets.explore import Explorer, explore

torch.set_num_threads(1)
PNG = b"\x89PNG"


def make_flow(folder):
    sd = lf.checkpoint(folder)
    return (lf.prompt("a cat").encode(sd)
            .sample(sd, steps=6, cfg=7.0, seed=3, scheduler="euler").decode(sd))


def test_controls_take_the_flows_values(sd15_dir):
    ui = explore(make_flow(sd15_dir), seed=(0, 1000), cfg=(1.0, 12.0), steps=(1, 50),
                 prompt="text", scheduler=["euler", "ddim"], start=None)
    try:
        c = ui.controls
        assert isinstance(c["seed"], W.IntSlider) and c["seed"].value == 3
        assert isinstance(c["cfg"], W.FloatSlider) and c["cfg"].value == 7.0
        assert isinstance(c["steps"], W.IntSlider) and c["steps"].value == 6
        assert isinstance(c["prompt"], W.Text) and c["prompt"].value == "a cat"
        assert isinstance(c["scheduler"], W.Dropdown) and c["scheduler"].value == "euler"
        assert ui.wait_idle(5) and ui.runs == []  # start=None: nothing runs when shown
    finally:
        ui.close()


def test_unknown_control_is_refused(sd15_dir):
    with pytest.raises(lf.ParameterError, match="colour"):
        explore(make_flow(sd15_dir), colour=(0, 1))


def test_moving_a_slider_drafts_then_finals_and_reruns_only_downstream(sd15_dir, fresh):
    flow = make_flow(sd15_dir)
    flow.run()  # the base final result is cached
    ui = explore(flow, seed=(0, 1000), cfg=(1.0, 12.0), debounce=0.05, settle=0.3, start=None)
    try:
        ui.controls["cfg"].value = 4.0
        assert ui.wait_idle(120)
        modes = [mode for mode, _ in ui.runs]
        assert modes[0] == "draft" and modes[-1] == "final"
        assert ui.runs[-1][1]["cfg"] == 4.0
        assert ui.last_run.mode == "final"
        assert ui.last_run.executed_ops == ["sample", "decode"]  # prompt/encode cached
        assert bytes(ui.image.value).startswith(PNG)
        assert "final" in ui.status.value and ui.error_html.value == ""
    finally:
        ui.close()


def test_quick_moves_are_debounced_into_few_drafts(sd15_dir, fresh):
    ui = explore(make_flow(sd15_dir), seed=(0, 1000), debounce=0.5, settle=None, start=None)
    try:
        for seed in range(10, 16):
            ui.controls["seed"].value = seed
        assert ui.wait_idle(120)
        assert [mode for mode, _ in ui.runs] == ["draft"]
        assert ui.runs[0][1]["seed"] == 15 and ui.last_run.mode == "draft"
    finally:
        ui.close()


def test_final_button_and_prompt_box(sd15_dir, fresh):
    ui = explore(make_flow(sd15_dir), prompt="text", debounce=0.05, settle=None, start=None)
    try:
        ui.controls["prompt"].value = "a red dog"
        assert ui.wait_idle(120)
        assert ui.runs[-1] == ("draft", {"prompt": "a red dog"})
        ui.final_button.click()
        assert ui.wait_idle(120)
        assert ui.runs[-1] == ("final", {"prompt": "a red dog"})
        assert "encode" in ui.last_run.executed_ops or "encode" in ui.last_run.cached_ops
        assert ui.current_flow().nodes()[2].params["text"] == "a red dog"
    finally:
        ui.close()


def test_start_draft_runs_when_shown_and_errors_show_inside(tmp_path, fresh):
    sd = lf.checkpoint(tmp_path / "nowhere")
    bad = lf.prompt("a cat").encode(sd).sample(sd, steps=2).decode(sd)
    ui = Explorer(bad, {"seed": (0, 10)}, debounce=0.01, settle=None)
    try:
        assert ui.wait_idle(60)
        assert isinstance(ui.last_error, lf.ModelNotFoundError)
        assert "ModelNotFoundError" in ui.error_html.value
    finally:
        ui.close()
