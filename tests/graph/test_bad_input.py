"""Bad input gets a clear LightflowError naming the node or argument and the fix, and
loses nothing: after each case a valid flow still runs."""

from __future__ import annotations

import json
import math

import pytest

import lightflow as lf
from lightflow.graph.serialize import GraphBuilder


def _ok(sd):
    return lf.prompt("a cat").encode(sd).sample(sd, steps=2, seed=0).decode(sd)


def _cases(sd15_dir, sdxl_dir, tmp_path):
    sd = lf.checkpoint(sd15_dir)
    cond = lf.prompt("a cat").encode(sd)
    latent = cond.sample(sd, steps=2)
    flow_json = json.loads(_ok(sd).to_json())
    bad_folder = tmp_path / "not-a-pipeline"
    bad_folder.mkdir(exist_ok=True)
    cyc = GraphBuilder()
    cyc.add("a", "upscale_latent", {"factor": 2}, {"latent": "b"})
    cyc.add("b", "upscale_latent", {"factor": 2}, {"latent": "a"})
    dangling = json.loads(json.dumps(flow_json))
    dangling["nodes"][flow_json["output"]]["inputs"]["latent"] = "n99"
    unknown_op = json.loads(json.dumps(flow_json))
    unknown_op["nodes"]["n0"]["op"] = "os.system"
    xl = lf.checkpoint(sdxl_dir)
    return {
        "encode with a VAE": (lambda: lf.prompt("x").encode(sd.vae), lf.TypeMismatchError,
                              "clip"),
        "decode a prompt": (lambda: lf.prompt("x").decode(sd), lf.TypeMismatchError, "decode"),
        "sample a prompt": (lambda: lf.prompt("x").sample(sd), lf.TypeMismatchError, "encode"),
        "path string as model": (lambda: lf.prompt("x").encode("models/sd15"),
                                 lf.TypeMismatchError, "lf.checkpoint"),
        "latent where image": (lambda: latent.encode_image(sd), lf.TypeMismatchError,
                               "encode_image"),
        "steps=0": (lambda: cond.sample(sd, steps=0), lf.ParameterError, "steps"),
        "NaN cfg": (lambda: cond.sample(sd, cfg=math.nan), lf.ParameterError, "cfg"),
        "infinite cfg": (lambda: cond.sample(sd, cfg=math.inf), lf.ParameterError, "cfg"),
        "size not /8": (lambda: cond.sample(sd, size=500), lf.ParameterError, "multiple of 8"),
        "size too large": (lambda: cond.sample(sd, width=99_992), lf.ParameterError, "width"),
        "unknown scheduler": (lambda: cond.sample(sd, scheduler="warp9"), lf.ParameterError,
                              "dpmpp_2m"),
        "denoise=0": (lambda: cond.sample(sd, denoise=0), lf.ParameterError, "denoise"),
        "denoise>1": (lambda: cond.sample(sd, denoise=1.5), lf.ParameterError, "denoise"),
        "negative seed": (lambda: cond.sample(sd, seed=-1), lf.ParameterError, "seed"),
        "text seed": (lambda: cond.sample(sd, seed="abc"), lf.ParameterError, "seed"),
        "batch=0": (lambda: cond.sample(sd, batch=0), lf.ParameterError, "batch"),
        "prompt not text": (lambda: lf.prompt(123), lf.ParameterError, "text"),
        "bad dtype": (lambda: lf.checkpoint(sd15_dir, dtype="int8"), lf.ParameterError, "dtype"),
        "img2img without cond": (lambda: latent.sample(sd), lf.MissingInputError, "cond="),
        "replace unknown": (lambda: _ok(sd).replace(colour="red"), lf.ParameterError,
                            "replaceable"),
        "upscale without size": (lambda: latent.upscale(), lf.ParameterError, "factor"),
        "missing image file": (lambda: lf.image(tmp_path / "nope.png"), lf.ModelNotFoundError,
                               "nope.png"),
        "missing checkpoint": (lambda: _ok(lf.checkpoint(tmp_path / "nope.safetensors")).run(),
                               lf.ModelNotFoundError, "nope.safetensors"),
        "folder without model_index": (lambda: _ok(lf.checkpoint(bad_folder)).run(),
                                       lf.ModelNotFoundError, "model_index.json"),
        "denoise<1 without init": (lambda: cond.sample(sd, denoise=0.5, steps=2).run(),
                                   lf.MissingInputError, "encode_image"),
        "mixed families": (lambda: lf.prompt("x").encode(xl).sample(sd, steps=2).run(),
                           lf.ParameterError, "same checkpoint"),
        "bad run mode": (lambda: _ok(sd).run(mode="fast"), lf.ParameterError, "mode"),
        "flow JSON not JSON": (lambda: lf.from_json("{nodes: oops"), lf.FlowFormatError,
                               "JSON"),
        "flow JSON wrong shape": (lambda: lf.from_json({"hello": 1}), lf.FlowFormatError,
                                  "nodes"),
        "flow JSON unknown op": (lambda: lf.from_json(unknown_op), lf.FlowFormatError,
                                 "os.system"),
        "flow JSON dangling link": (lambda: lf.from_json(dangling), lf.FlowFormatError, "n99"),
        "cycle": (lambda: cyc.build("a"), lf.CycleError, "a → b → a"),
    }


CASE_NAMES = [
    "encode with a VAE", "decode a prompt", "sample a prompt", "path string as model",
    "latent where image", "steps=0", "NaN cfg", "infinite cfg", "size not /8",
    "size too large", "unknown scheduler", "denoise=0", "denoise>1", "negative seed",
    "text seed", "batch=0", "prompt not text", "bad dtype", "img2img without cond",
    "replace unknown", "upscale without size", "missing image file", "missing checkpoint",
    "folder without model_index", "denoise<1 without init", "mixed families", "bad run mode",
    "flow JSON not JSON", "flow JSON wrong shape", "flow JSON unknown op",
    "flow JSON dangling link", "cycle",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_a_clear_error_and_loses_nothing(name, sd15_dir, sdxl_dir, tmp_path):
    cases = _cases(sd15_dir, sdxl_dir, tmp_path)
    assert set(cases) == set(CASE_NAMES)
    make, error, mentions = cases[name]
    pool_before = {tuple(e["key"]) for e in lf.pool.entries()}
    with pytest.raises(error) as info:
        make()
    assert isinstance(info.value, lf.LightflowError)
    text = str(info.value)
    assert mentions in text, text
    assert info.value.where, "the error names the node or argument"
    assert all(e["users"] == 0 for e in lf.pool.entries())
    assert pool_before <= {tuple(e["key"]) for e in lf.pool.entries()}
    run = _ok(lf.checkpoint(sd15_dir)).run()
    assert run.value.shape == (1, 3, 64, 64)


def test_errors_say_how_to_fix(sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    with pytest.raises(lf.ParameterError) as info:
        lf.prompt("x").encode(sd).sample(sd, size=500)
    assert "Fix: use 496 or 504" in str(info.value)
    with pytest.raises(lf.TypeMismatchError) as info:
        lf.prompt("x").encode(sd).encode_image(sd)
    assert info.value.fix
