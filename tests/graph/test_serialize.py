"""Flows round-trip through JSON (data only) and run from the command line."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

import lightflow as lf
from lightflow.cli import main


def test_json_round_trip_keeps_the_key(sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    img = Image.fromarray(np.zeros((64, 64, 3), np.uint8))
    flows = [
        lf.prompt("a cat", "blurry").encode(sd).sample(sd, steps=3, seed=2,
                                                       scheduler="euler_a").decode(sd),
        lf.image(img).encode_image(sd).sample(sd, cond=lf.prompt("a dog").encode(sd),
                                              denoise=0.6).decode(sd).upscale(2),
    ]
    for flow in flows:
        text = flow.to_json()
        assert json.loads(text)["lightflow"] == 1
        assert lf.from_json(text).key == flow.key


def test_scheduler_instances_are_stored_as_config(sd15_dir):
    from diffusers import DDIMScheduler

    sd = lf.checkpoint(sd15_dir)
    sched = DDIMScheduler.from_pretrained(sd15_dir, subfolder="scheduler")
    flow = lf.prompt("a cat").encode(sd).sample(sd, steps=2, scheduler=sched).decode(sd)
    back = lf.from_json(flow.to_json())
    assert back.key == flow.key
    named = lf.prompt("a cat").encode(sd).sample(sd, steps=2, scheduler="ddim").decode(sd)
    torch.testing.assert_close(back.run().value, named.run().value)


def test_cli_runs_a_saved_flow(sd15_dir, tmp_path, capsys):
    sd = lf.checkpoint(sd15_dir)
    flow = lf.prompt("a cat").encode(sd).sample(sd, steps=2, seed=3).decode(sd)
    path = tmp_path / "flow.json"
    path.write_text(flow.to_json())
    out = tmp_path / "out.png"
    assert main(["run", str(path), "-o", str(out), "-q"]) == 0
    saved = np.asarray(Image.open(out))
    expected = np.asarray(flow.image())
    assert saved.shape == (64, 64, 3) and np.array_equal(saved, expected)


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["run", str(bad), "-o", str(tmp_path / "x.png"), "-q"]) == 2
    assert "error:" in capsys.readouterr().err
