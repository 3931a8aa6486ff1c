"""Proxy decoders, live previews from x0, draft and final modes, recipes in PNGs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import lightflow as lf
from lightflow.preview import Bilinear, LatentRGB, PreviewThrottle, TinyAutoencoder, fit_latent_rgb
from lightflow.preview import latent_rgb as latent_rgb_module


def _flow(sd, steps=4, seed=1, scheduler="euler"):
    return lf.prompt("a cat").encode(sd).sample(sd, steps=steps, seed=seed,
                                                scheduler=scheduler).decode(sd)


def test_proxy_decoders_make_images_of_the_right_size():
    latents = torch.randn(2, 4, 8, 8)
    for proxy in (LatentRGB.for_format("sd1", scale=8), LatentRGB.for_format("sdxl", 8),
                  Bilinear(8)):
        images = proxy.decode(latents)
        assert images.shape == (2, 3, 64, 64)
        assert 0 <= float(images.min()) and float(images.max()) <= 1
    assert LatentRGB.for_format("flux").decode(torch.randn(1, 16, 4, 4)).shape == (1, 3, 4, 4)


def test_fitted_factors_beat_bilinear_on_the_tiny_vae(sd15_dir):
    from diffusers import AutoencoderKL

    from lightflow.nodes.image import vae_decode, vae_encode

    vae = AutoencoderKL.from_pretrained(sd15_dir, subfolder="vae")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)) for _ in range(6)]
    proxy = fit_latent_rgb(vae, images[:4])
    from lightflow.nodes.image import pil_to_tensor

    held = pil_to_tensor(images[4:])
    with torch.no_grad():
        latents = vae_encode(vae, held)
        truth = vae_decode(vae, latents)

    def mse(pred: torch.Tensor) -> float:
        return float(((pred - truth) ** 2).mean())

    assert proxy.scale == 2 and proxy.decode(latents).shape == truth.shape
    assert mse(proxy.decode(latents)) < mse(Bilinear(2).decode(latents))


def test_bad_factors_and_bad_tiny_autoencoder_are_clear_errors(sd15_dir, tmp_path):
    with pytest.raises(lf.ParameterError, match="shape"):
        LatentRGB([[1.0, 2.0]])
    with pytest.raises(lf.ParameterError, match="3 values"):
        LatentRGB([[0.1, 0.2, 0.3]] * 4, bias=[0.0])
    with pytest.raises(lf.ParameterError, match="channels"):
        LatentRGB.for_format("sd1").decode(torch.randn(1, 16, 4, 4))
    from diffusers import AutoencoderTiny

    AutoencoderTiny(latent_channels=16).save_pretrained(tmp_path / "taesd16")
    lf.settings.taesd["sd1"] = str(tmp_path / "taesd16")
    try:
        sd = lf.checkpoint(sd15_dir)
        with pytest.raises(lf.ParameterError, match="16 latent channels"):
            lf.prompt("a cat").encode(sd).sample(sd, steps=2).decode(sd, proxy="taesd").run(
                mode="draft")
    finally:
        del lf.settings.taesd["sd1"]
    assert _flow(lf.checkpoint(sd15_dir), steps=2).run().value.shape == (1, 3, 64, 64)


def test_final_mode_never_uses_a_proxy_for_results(sd15_dir, monkeypatch):
    calls = []
    original = LatentRGB.decode
    monkeypatch.setattr(LatentRGB, "decode", lambda self, x: calls.append(1) or original(self, x))
    monkeypatch.setattr(Bilinear, "decode", lambda self, x: calls.append(2))
    monkeypatch.setattr(TinyAutoencoder, "decode", lambda self, x: calls.append(3))
    lf.settings.preview = None
    try:
        _flow(lf.checkpoint(sd15_dir), seed=11).run()
        assert calls == []
    finally:
        lf.settings.preview = "auto"
    previews = []
    run = _flow(lf.checkpoint(sd15_dir), seed=12).run(
        on_event=lambda e: previews.append(e) if isinstance(e, lf.PreviewReady) else None)
    assert len(calls) == len(previews) > 0  # proxies only ever made the preview events
    sd = lf.checkpoint(sd15_dir)
    explicit = lf.prompt("a cat").encode(sd).sample(sd, steps=2).decode(sd, proxy="latent_rgb")
    with pytest.raises(lf.ProxyInFinalError, match="proxy"):
        explicit.run()
    assert explicit.run(mode="draft").value.shape == (1, 3, 64, 64)
    assert run.mode == "final"


def test_previews_come_from_x0(sd15_dir):
    previews, steps = [], []

    def listen(event):
        if isinstance(event, lf.PreviewReady):
            previews.append(event)
        if isinstance(event, lf.StepEvent):
            steps.append(event)

    sd = lf.checkpoint(sd15_dir)
    latent = lf.prompt("a cat").encode(sd).sample(sd, steps=5, seed=3, scheduler="euler")
    lf.settings.preview_budget = 1.0
    try:
        final_latent = latent.run(on_event=listen).value
    finally:
        lf.settings.preview_budget = 0.05
    assert previews[-1].step == 5 and previews[-1].decoder == "latent_rgb"
    proxy = LatentRGB.for_format("sd1", scale=2)
    expected = proxy.decode(final_latent)[0].mul(255).round().permute(1, 2, 0).numpy()
    assert np.abs(previews[-1].image.astype(float) - expected).max() <= 1
    # x0 differs from the noisy latent at early steps: the preview is not of x_t
    assert not torch.allclose(steps[0].x0, steps[0].latent, atol=1e-2)
    assert all(p.image.shape == (64, 64, 3) and p.image.dtype == np.uint8 for p in previews)


def test_previews_are_throttled_by_measured_cost():
    throttle = PreviewThrottle(budget=0.05)
    made = 0
    sampling = 0.0
    for step in range(1, 101):
        sampling += 1.0  # one second per step
        if throttle.allow(step, 100, sampling):
            throttle.record(0.5)  # each preview costs half a step
            made += 1
    assert throttle.spent <= 0.05 * sampling + 0.5
    assert 5 <= made <= 11 and throttle.skipped > 0
    every = PreviewThrottle(budget=1.0, every=3)
    assert [s for s in range(1, 11) if every.allow(s, 10, 100.0)] == [3, 6, 9, 10]


def test_draft_modes_swap_stages_and_never_mix_with_final(fresh, sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    flow = _flow(sd, steps=10)
    with lf.draft(null_sampler=True, simple_text=True) as settings:
        assert settings.null_sampler
        wiring = flow.run()
    assert wiring.mode == "draft" and wiring.value.shape == (1, 3, 64, 64)
    assert set(wiring.executed_ops) == {"prompt", "simple_encode", "null_sample",
                                        "proxy_decode"}
    assert lf.pool.stats["loads_by_component"].get("unet") is None
    assert lf.pool.stats["loads_by_component"].get("text_encoder") is None
    draft = flow.run(mode="draft")
    assert draft.info and any(i.get("steps") == 3 for i in draft.info.values())
    final = flow.run()
    assert "decode" in final.executed_ops and "proxy_decode" not in final.executed_ops
    assert any(i.get("steps") == 10 for i in final.info.values())
    assert not torch.equal(final.value, draft.value)
    assert flow.run().executed == [] and flow.run(mode="draft").executed == []


def test_a_saved_png_recipe_reproduces_the_image(sd15_dir, tmp_path):
    sd = lf.checkpoint(sd15_dir)
    flow = _flow(sd, seed=21)
    image = flow.image()
    path = lf.save_image(image, tmp_path / "cat.png")
    recipe = json.loads(Image.open(path).info["lightflow"])
    assert recipe["mode"] == "final" and recipe["seeds"] == [21]
    assert any("unet" in m for m in recipe["models"])
    again = lf.load_recipe(path)
    assert again.key == flow.key
    lf.get_executor().cache.clear()
    assert np.array_equal(np.asarray(again.image()), np.asarray(Image.open(path)))
    saved = flow.save(tmp_path / "node.png")
    saved.run()
    assert lf.load_recipe(tmp_path / "node.png").key == flow.key


def test_unreadable_recipes_are_clear_errors(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    with pytest.raises(lf.FlowFormatError, match="no lightflow recipe"):
        lf.load_recipe(plain)
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("lightflow", "{broken")
    bad = tmp_path / "bad.png"
    Image.new("RGB", (8, 8)).save(bad, pnginfo=info)
    with pytest.raises(lf.FlowFormatError, match="unreadable"):
        lf.load_recipe(bad)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(lf.FlowFormatError):
        lf.load_recipe(tmp_path / "text.png")


def test_published_formats_are_carried():
    assert set(latent_rgb_module.FORMATS) == {"sd1", "sdxl", "sd3", "flux"}
    assert len(latent_rgb_module.FORMATS["sd3"]["factors"]) == 16


def test_hold_gives_a_pooled_component(sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    with lf.hold(sd, "vae") as vae:
        assert vae.config.latent_channels == 4
        users = {e["label"]: e["users"] for e in lf.pool.entries()}
        assert users[f"{sd15_dir.name}/vae"] >= 1
    with pytest.raises(lf.TypeMismatchError):
        with lf.hold(lf.prompt("x"), "vae"):
            pass
