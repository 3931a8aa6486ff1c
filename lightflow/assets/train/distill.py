"""Proxies for the digits model: a distilled AutoencoderTiny and latent->RGB factors.

Both work on the UNet-space latents (already multiplied by the VAE's scaling factor),
which is what a sampler holds at every step:

- ``taesd/``: a diffusers ``AutoencoderTiny`` (scaling_factor 1.0) whose decoder is
  distilled from the VAE decoder (MSE + L1 on VAE decodes of training latents, clean
  and jittered) and whose encoder is fitted to the VAE's scaled posterior means.
- ``latent_rgb.json``: ``rgb ≈ latent @ factors + bias`` at latent resolution, fitted
  by least squares against the VAE decode area-downsampled to 8x8, rgb in [-1, 1].

Usage::

    python -m lightflow.assets.train.distill --model lightflow/assets/digits
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, AutoencoderTiny

from lightflow.assets.train import model as M
from lightflow.assets.train.data import make_dataset

log = logging.getLogger("lightflow.assets.train")
JITTER = 0.3  # std of the noise added to half the distillation latents (off-manifold x0)


@torch.no_grad()
def scaled_latents(vae: AutoencoderKL, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """UNet-space latents (posterior mean * scaling_factor) of images in [-1, 1]."""
    s = vae.config.scaling_factor
    return torch.cat(
        [
            vae.encode(images[i : i + batch]).latent_dist.mean * s
            for i in range(0, len(images), batch)
        ]
    )


@torch.no_grad()
def vae_decode(vae: AutoencoderKL, z: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Full VAE decode of UNet-space latents, (N, 3, 32, 32) clamped to [-1, 1]."""
    s = vae.config.scaling_factor
    return torch.cat(
        [vae.decode(z[i : i + batch] / s).sample for i in range(0, len(z), batch)]
    ).clamp(-1, 1)


def fit_latent_rgb(z: torch.Tensor, rgb: torch.Tensor) -> dict[str, Any]:
    """Least squares ``rgb8 ≈ z @ factors + bias``; z (N, 4, 8, 8), rgb (N, 3, 32, 32)."""
    small = F.adaptive_avg_pool2d(rgb, z.shape[-2:])  # (N, 3, 8, 8)
    x = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double().numpy()
    y = small.permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()
    x1 = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(x1, y, rcond=None)  # (5, 3)
    return {
        "factors": [[round(float(v), 6) for v in row] for row in sol[:-1]],
        "bias": [round(float(v), 6) for v in sol[-1]],
        "latent_space": "scaled",
        "output_range": [-1, 1],
        "note": "rgb = latent @ factors + bias per latent pixel; latent = UNet-space "
        "(VAE posterior times vae.config.scaling_factor)",
    }


def apply_latent_rgb(z: torch.Tensor, fit: dict[str, Any]) -> torch.Tensor:
    """(N, 4, h, w) scaled latents -> (N, 3, h, w) rgb in [-1, 1]."""
    f = torch.tensor(fit["factors"], dtype=z.dtype)
    b = torch.tensor(fit["bias"], dtype=z.dtype)
    return (torch.einsum("nchw,cd->ndhw", z, f) + b[None, :, None, None]).clamp(-1, 1)


def _fit(
    module: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    name: str,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / max(1, steps)))
    )
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(inputs), (batch,), generator=gen)
        out = module(inputs[idx])
        loss = F.mse_loss(out, targets[idx]) + 0.5 * F.l1_loss(out, targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            log.info(
                "%s step %d/%d loss %.4f (%.0fs)", name, step, steps, loss.item(), time.time() - t0
            )


def distill_proxies(folder: str | Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Write ``taesd/`` and ``latent_rgb.json`` into the model folder; return held-out PSNRs."""
    folder = Path(folder)
    torch.manual_seed(seed + 30)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
    data = make_dataset(seed=seed + 20, variants=1 if quick else 2)
    z = scaled_latents(vae, data.images)
    gen = torch.Generator().manual_seed(seed + 31)
    jittered = z + JITTER * torch.randn(z.shape, generator=gen)
    z_all = torch.cat([z, jittered])
    rgb_all = vae_decode(vae, z_all)

    fit = fit_latent_rgb(z_all, rgb_all)
    (folder / "latent_rgb.json").write_text(json.dumps(fit, indent=2) + "\n")

    taesd = M.build_taesd(quick)
    dec_steps, enc_steps = (5, 3) if quick else (1000, 300)
    _fit(taesd.decoder, z_all, rgb_all, dec_steps, 32, 2e-3, seed + 32, "taesd decoder")
    _fit(taesd.encoder, data.images, z, enc_steps, 32, 2e-3, seed + 33, "taesd encoder")
    taesd.eval().to(torch.float16).save_pretrained(str(folder / "taesd"), safe_serialization=True)
    scores = evaluate_proxies(folder, seed=seed)
    log.info("held-out PSNR vs VAE decode: %s", scores)
    return scores


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2)."""
    mse = F.mse_loss(a.float(), b.float()).item()
    return 10 * math.log10(4.0 / max(mse, 1e-12))


@torch.no_grad()
def evaluate_proxies(folder: str | Path, seed: int = 0) -> dict[str, float]:
    """PSNR vs the full VAE decode on held-out latents, every proxy shown at 32x32."""
    folder = Path(folder)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
    taesd = AutoencoderTiny.from_pretrained(folder / "taesd", torch_dtype=torch.float32).eval()
    fit = json.loads((folder / "latent_rgb.json").read_text())
    held = make_dataset(seed=seed + 40, variants=1, held_out=True)
    z = scaled_latents(vae, held.images)
    ref = vae_decode(vae, z)
    size = ref.shape[-2:]

    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp(-1, 1)

    return {
        "held_out_latents": len(z),
        "taesd": psnr(taesd.decode(z).sample.clamp(-1, 1), ref),
        "latent_rgb": psnr(up(apply_latent_rgb(z, fit)), ref),
        "bilinear": psnr(up(z[:, :3]), ref),
        "taesd_encode_roundtrip": psnr(vae_decode(vae, taesd.encode(held.images).latents), ref),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Distil the digits model's preview proxies.")
    p.add_argument("--model", type=Path, required=True, help="the trained model folder")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(json.dumps(distill_proxies(a.model, quick=a.quick, seed=a.seed), indent=2))


if __name__ == "__main__":
    main()
