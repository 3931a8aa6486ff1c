"""The embedded model loads through the same code as any checkpoint and matches diffusers."""

from __future__ import annotations

import numpy as np
import torch

import lightflow as lf
from lightflow.pool import BUILTIN


def test_builtin_handle_is_an_ordinary_checkpoint():
    assert lf.checkpoint().key == lf.checkpoint("builtin:digits").key
    assert lf.checkpoint().params["source"] == "builtin:digits"


def test_builtin_generation_equals_diffusers_pipeline():
    from diffusers import StableDiffusionPipeline

    sd = lf.checkpoint()
    flow = lf.prompt("a red seven").encode(sd).sample(sd, steps=12, cfg=5.0, seed=3).decode(sd)
    ours = flow.run().value.permute(0, 2, 3, 1).numpy()
    pipe = StableDiffusionPipeline.from_pretrained(BUILTIN["digits"], torch_dtype=torch.float32,
                                                   local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a red seven", num_inference_steps=12, guidance_scale=5.0, output_type="np",
                  generator=torch.Generator("cpu").manual_seed(3)).images
    assert ours.shape == theirs.shape == (1, 32, 32, 3)
    assert np.abs(ours - theirs).max() <= 1 / 255
    red = ours[0].reshape(-1, 3)
    bright = red[red.max(axis=1) > 0.5]
    assert len(bright) > 20 and (bright[:, 0] > bright[:, 1] + 0.3).mean() > 0.8  # it is red


def test_builtin_previews_use_its_tiny_autoencoder():
    sd = lf.checkpoint()
    previews = []
    lf.settings.preview_budget = 1.0  # which decoder, not how often (throttling: tests/preview)
    try:
        run = lf.prompt("a blue two").encode(sd).sample(sd, steps=6, seed=1).decode(sd).run(
            on_event=lambda e: previews.append(e) if isinstance(e, lf.PreviewReady) else None)
    finally:
        lf.settings.preview_budget = 0.05
    assert previews and {p.decoder for p in previews} == {"taesd"}
    assert previews[0].image.shape == (32, 32, 3)
    flow = lf.prompt("a blue two").encode(sd).sample(sd, steps=25, seed=1).decode(sd)
    final = flow.run()
    with lf.draft(max_steps=None):  # same sampling, only the decoder swapped
        draft = flow.run()
    assert draft.executed_ops == ["proxy_decode"]  # the sampled latent is shared
    assert any(i.get("decoder") == "taesd" for i in draft.info.values())
    assert run.value.shape == final.value.shape
    diff = np.abs(draft.value.numpy() - final.value.numpy()).mean()
    assert diff < 0.03  # the distilled tiny decoder is close to the full VAE
