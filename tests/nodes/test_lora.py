"""LoRA nodes: equal to a diffusers pipeline with the same LoRA at the same scale, switched
between runs without re-reading base weights, deleted on eviction, bad files refused with
the base model left unpatched; sweeps."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

import lightflow as lf
from lightflow.nodes.lora import adapter_names
from tests.support.adapters import build_lora

TOL = 1 / 255


@pytest.fixture(scope="module")
def loras(sd15_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    return build_lora(sd15_dir, root / "a.safetensors", seed=2), \
        build_lora(sd15_dir, root / "b.safetensors", seed=3)


def _np(node: lf.Node) -> np.ndarray:
    return node.run().value.permute(0, 2, 3, 1).numpy()


def _flow(ckpt: lf.Node, seed: int = 7) -> lf.Node:
    return lf.prompt("a photo of a cat", negative="blurry").encode(ckpt).sample(
        ckpt, steps=4, cfg=6.5, seed=seed).decode(ckpt)


def _pipe_with_lora(folder, path, weights):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None,
                                                   requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(path), adapter_name="x")
    pipe.set_adapters(["x"], adapter_weights=[weights])
    return pipe


def _theirs(pipe, seed: int = 7) -> np.ndarray:
    return pipe("a photo of a cat", negative_prompt="blurry", num_inference_steps=4,
                guidance_scale=6.5, output_type="np",
                generator=torch.Generator("cpu").manual_seed(seed)).images


@pytest.mark.parametrize("strength,text_strength", [(0.7, None), (1.0, 0.3)])
def test_lora_matches_diffusers(sd15_dir, loras, strength, text_strength):
    sd = lf.checkpoint(sd15_dir)
    styled = sd.lora(loras[0], strength, text_strength=text_strength)
    ours = _np(_flow(styled))
    weights = strength if text_strength is None else {"unet": strength,
                                                      "text_encoder": text_strength}
    pipe = _pipe_with_lora(sd15_dir, loras[0], weights)
    assert pipe.text_encoder is not None
    theirs = _theirs(pipe)
    assert np.abs(ours - theirs).max() <= TOL
    assert np.abs(ours - _np(_flow(sd))).max() > 0.01


def test_lora_changes_the_text_encoding(sd15_dir, loras):
    sd = lf.checkpoint(sd15_dir)
    plain = lf.prompt("a cat").encode(sd).run().value.embeds
    styled = lf.prompt("a cat").encode(sd.lora(loras[0], 0.5)).run().value.embeds
    unet_only = lf.prompt("a cat").encode(sd.lora(loras[0], 0.5, text_strength=0.0))
    assert (plain - styled).abs().max() > 1e-3
    assert torch.allclose(unet_only.run().value.embeds, plain, atol=1e-6)


def test_switching_loras_never_rereads_base_weights(fresh, sd15_dir, loras):
    sd = lf.checkpoint(sd15_dir)
    plain = _np(_flow(sd))
    first_a = _np(_flow(sd.lora(loras[0], 0.8)))
    for _ in range(3):
        lf.get_executor().cache.clear()
        a = _np(_flow(sd.lora(loras[0], 0.8)))
        b = _np(_flow(sd.lora(loras[1], 0.8)))
        both = _np(_flow(sd.lora(loras[0], 0.8).lora(loras[1], 0.4)))
        again = _np(_flow(sd))
        assert np.array_equal(a, first_a)
        assert np.array_equal(again, plain)  # adapters are off for the plain flow
        assert np.abs(a - b).max() > 0.01 and np.abs(both - a).max() > 0.01
    by = lf.pool.stats["loads_by_component"]
    assert by["unet"] == 1 and by["text_encoder"] == 1 and by["vae"] == 1
    assert by["lora"] == 2  # each LoRA file read once


def test_strength_is_part_of_the_cache_key(fresh, sd15_dir, loras):
    sd = lf.checkpoint(sd15_dir)
    _flow(sd.lora(loras[0], 0.5)).run()
    run = _flow(sd.lora(loras[0], 0.9)).run()
    assert {"encode", "sample", "decode"} <= set(run.executed_ops)
    run = _flow(sd.lora(loras[0], 0.9, text_strength=0.2)).run()
    assert {"encode", "sample"} <= set(run.executed_ops)
    assert _flow(sd.lora(loras[0], 0.9)).run().cached_ops == ["decode"]


def test_evicted_lora_adapters_are_deleted(fresh, sd15_dir, loras):
    sd = lf.checkpoint(sd15_dir)
    _flow(sd.lora(loras[0]).lora(loras[1])).run()
    unet = next(e for e in lf.pool._entries.values() if e.key[1] == "unet").obj
    assert len(adapter_names(unet)) == 2
    assert lf.pool.release("LORA") == 2
    gc.collect()
    assert adapter_names(unet) == set()
    assert not any("lora" in type(m).__name__.lower() for m in unet.modules())


def test_lora_cap_evicts_the_least_recent(fresh, sd15_dir, loras):
    lf.pool.set_cap("LORA", 1)
    try:
        sd = lf.checkpoint(sd15_dir)
        _flow(sd.lora(loras[0])).run()
        _flow(sd.lora(loras[1])).run()
        assert [e["kind"] for e in lf.pool.entries()].count("LORA") == 1
        unet = next(e for e in lf.pool._entries.values() if e.key[1] == "unet").obj
        assert len(adapter_names(unet)) == 1
    finally:
        lf.pool.set_cap("LORA", 5)


def test_lora_for_another_model_fails_and_leaves_the_base_unpatched(fresh, sd15_dir, sdxl_dir,
                                                                    tmp_path):
    xl_lora = build_lora(sdxl_dir, tmp_path / "xl.safetensors")
    sd = lf.checkpoint(sd15_dir)
    plain = _np(_flow(sd))
    with pytest.raises(lf.ModelLoadError, match="does not fit"):
        _flow(sd.lora(xl_lora)).run()
    unet = next(e for e in lf.pool._entries.values() if e.key[1] == "unet").obj
    assert adapter_names(unet) == set()
    lf.get_executor().cache.clear()
    assert np.array_equal(_np(_flow(sd)), plain)
    assert lf.pool.stats["loads_by_component"]["unet"] == 1


def test_bad_lora_inputs(sd15_dir, tmp_path):
    sd = lf.checkpoint(sd15_dir)
    with pytest.raises(lf.ModelNotFoundError):
        sd.lora(tmp_path / "missing.safetensors")
    with pytest.raises(lf.ParameterError):
        sd.lora(sd15_dir / "unet" / "diffusion_pytorch_model.safetensors", strength="strong")
    with pytest.raises(lf.TypeMismatchError):
        lf.prompt("a cat").lora("x.safetensors")
    not_a_lora = sd.lora(sd15_dir / "vae" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(lf.ModelLoadError, match="not a LoRA"):
        _flow(not_a_lora).run()


def test_sweep_runs_the_product_and_reuses_upstream(fresh, sd15_dir, loras):
    sd = lf.checkpoint(sd15_dir)
    flow = _flow(sd)
    result = flow.sweep(lora=[None, (loras[0], 0.8)], seed=[1, 2])
    assert len(result) == 4 and [i.values["seed"] for i in result] == [1, 2, 1, 2]
    assert result.grid.size == (128, 128)
    assert np.array_equal(np.asarray(result[0].image), np.asarray(_flow(sd, seed=1).image()))
    assert np.array_equal(np.asarray(result[3].image),
                          np.asarray(_flow(sd.lora(loras[0], 0.8), seed=2).image()))
    assert lf.pool.stats["loads_by_component"]["unet"] == 1
    assert lf.pool.stats["loads_by_component"]["lora"] == 1


def test_sdxl_lora_matches_diffusers(sdxl_dir, tmp_path):
    from diffusers import StableDiffusionXLPipeline

    path = build_lora(sdxl_dir, tmp_path / "xl.safetensors", text=False)
    sd = lf.checkpoint(sdxl_dir)
    styled = sd.lora(path, 0.6)
    ours = _np(lf.prompt("a watercolor cat").encode(styled).sample(
        styled, steps=3, cfg=5.0, seed=11).decode(styled))
    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_dir, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(path), adapter_name="x")
    pipe.set_adapters(["x"], adapter_weights=[0.6])
    theirs = pipe("a watercolor cat", num_inference_steps=3, guidance_scale=5.0,
                  output_type="np", generator=torch.Generator("cpu").manual_seed(11)).images
    assert np.abs(ours - theirs).max() <= TOL
