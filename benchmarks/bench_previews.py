"""Proxy-decoder benchmarks (issue 5), measured side by side in one process.

1. Decoders at SD 1.5 scale (random weights; a 1x4x64x64 latent to a 512x512 image):
   the full VAE against latent→RGB (to the uint8 array a widget sends), the tiny
   autoencoder and bilinear. Goals: latent→RGB >= 1000x, tiny autoencoder >= 8x faster.
2. Preview overhead while sampling (previews off vs latent→RGB vs throttled tiny
   autoencoder), goal <= 5%; and a 20-step draft against its final run, goal >= 5x. These
   use an SD-shaped model smaller than SD 1.5 (see benchmarks/_models.py) at 256x256 so the
   benchmark runs in minutes on 2 cores.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ._common import Result, interleaved_medians, median_seconds


def _decoders(quick: bool) -> list[Result]:
    from diffusers import AutoencoderKL, AutoencoderTiny

    from lightflow.nodes.image import vae_decode
    from lightflow.preview import Bilinear, LatentRGB, TinyAutoencoder, to_uint8

    torch.manual_seed(0)
    side = 32 if quick else 64
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                        latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4).eval()
    tiny = TinyAutoencoder(AutoencoderTiny().eval())
    rgb, bil = LatentRGB.for_format("sd1", scale=8), Bilinear(8)
    latents = torch.randn(1, 4, side, side)
    with torch.inference_mode():
        full, _ = median_seconds(lambda: to_uint8(vae_decode(vae, latents)), 1 if quick else 3)
        taesd, _ = median_seconds(lambda: to_uint8(tiny.decode(latents)), 3)
    rgb_s, _ = median_seconds(lambda: to_uint8(rgb.decode(latents)), 50)
    bil_s, _ = median_seconds(lambda: to_uint8(bil.decode(latents)), 50)
    size = {"image_px": side * 8, "full_vae_s": full, "taesd_s": taesd, "latent_rgb_s": rgb_s,
            "bilinear_s": bil_s}
    return [
        Result("latent→RGB vs full VAE decode", "speed-up", full / rgb_s, ">= 1000",
               full / rgb_s >= 1000, size),
        Result("tiny autoencoder vs full VAE decode", "speed-up", full / taesd, ">= 8",
               full / taesd >= 8, size),
        Result("bilinear vs full VAE decode (reference)", "speed-up", full / bil_s, "—", True,
               size),
    ]


def _sampling(quick: bool) -> list[Result]:
    from diffusers import AutoencoderTiny

    import lightflow as lf

    from ._models import build_sd_like

    tmp = Path(tempfile.mkdtemp())
    folder = build_sd_like(tmp / "sd_like", channels=(64, 128, 128) if quick else (128, 256, 256))
    AutoencoderTiny().save_pretrained(tmp / "taesd")
    sd = lf.checkpoint(folder)
    steps = 10 if quick else 30

    shares: dict[str, list[float]] = {"latent_rgb": [], "taesd": []}
    counts: dict[str, list[int]] = {"latent_rgb": [], "taesd": []}

    def sample_with(preview: str | None, offset: int):
        def go(i: int) -> None:  # a new seed every call: nothing comes from the cache
            lf.settings.preview = preview
            node = lf.prompt("a cat").encode(sd).sample(sd, steps=steps,
                                                        seed=1000 + 10 * i + offset)
            run = node.run()
            assert "sample" in run.executed_ops
            if preview is not None:  # preview time inside this very sampling run
                made = run.info.get(node.key, {}).get("previews", {"seconds": 0.0, "made": 0})
                shares[preview].append(made["seconds"] / run.seconds[node.key])
                counts[preview].append(made["made"])
        return go

    lf.settings.taesd["sd1"] = str(tmp / "taesd")
    try:
        medians = interleaved_medians({"off": sample_with(None, 0),
                                       "latent_rgb": sample_with("latent_rgb", 1),
                                       "taesd": sample_with("taesd", 2)}, 2 if quick else 3)
    finally:
        lf.settings.preview = "auto"
        del lf.settings.taesd["sd1"]
    modes = _draft_vs_final(tmp, quick)
    rgb, taesd = max(shares["latent_rgb"]), max(shares["taesd"])
    details = {f"{k}_s": v for k, v in medians.items()} | {
        "steps": steps, "image_px": 256, "previews_made": counts,
        "median_ratio_latent_rgb": medians["latent_rgb"]
        / medians["off"], "median_ratio_taesd": medians["taesd"] / medians["off"],
        "note": "value = largest share of a sampling run's time spent making previews, "
                "measured inside the run; the median ratios are noisier (machine load)"}
    speed = modes["final"] / modes["draft"]
    model = "SD-like (smaller UNet)" if quick else "SD 1.5 shapes"
    return [
        Result("preview overhead, latent→RGB", "preview share of sampling", rgb, "<= 0.05",
               rgb <= 0.05, details),
        Result("preview overhead, tiny autoencoder (throttled)", "preview share of sampling",
               taesd, "<= 0.05", taesd <= 0.05, details),
        Result("draft vs final, 20 steps at 256x256", "speed-up", speed, ">= 5", speed >= 5,
               {"final_s": modes["final"], "draft_s": modes["draft"], "model": model,
                "draft": "taesd decode, steps capped at 3 (defaults)"}),
    ]


def _draft_vs_final(tmp: Path, quick: bool) -> dict[str, float]:
    """A 20-step flow at 256x256, final against draft (default draft settings), on SD 1.5's
    shapes (random weights; a smaller SD-like model with --quick)."""
    import lightflow as lf

    from ._models import build_sd15_scale, build_sd_like

    folder = (build_sd_like(tmp / "sd_like_q", channels=(64, 128, 128)) if quick
              else build_sd15_scale(tmp / "sd15_scale"))
    sd = lf.checkpoint(folder)
    lf.settings.taesd["sd1"] = str(tmp / "taesd")
    try:
        flow = lf.prompt("a cat").encode(sd).sample(sd, steps=20, size=256).decode(sd)
        warm = flow.replace(steps=1, seed=1)
        warm.run()
        warm.run(mode="draft")  # models loaded before timing

        def final(i: int) -> None:
            assert "sample" in flow.replace(seed=2000 + i).run().executed_ops

        def draft(i: int) -> None:
            assert "sample" in flow.replace(seed=3000 + i).run(mode="draft").executed_ops

        return interleaved_medians({"final": final, "draft": draft}, 2, warmup=0)
    finally:
        del lf.settings.taesd["sd1"]
        lf.get_executor().cache.clear()
        lf.pool.clear()


def run(quick: bool = False) -> list[Result]:
    return _decoders(quick) + _sampling(quick)


def draft_only(quick: bool = False) -> Result:
    """Just the draft-vs-final row (``python -c "from benchmarks.bench_previews import
    draft_only; print(draft_only())"``)."""
    from diffusers import AutoencoderTiny

    tmp = Path(tempfile.mkdtemp())
    AutoencoderTiny().save_pretrained(tmp / "taesd")
    modes = _draft_vs_final(tmp, quick)
    speed = modes["final"] / modes["draft"]
    return Result("draft vs final, 20 steps at 256x256", "speed-up", speed, ">= 5", speed >= 5,
                  {"final_s": modes["final"], "draft_s": modes["draft"],
                   "model": "SD-like (smaller UNet)" if quick else "SD 1.5 shapes"})
