"""Train the embedded digits model end to end and save it in diffusers folder layout.

Usage::

    python -m lightflow.assets.train.train --out lightflow/assets/digits
    python -m lightflow.assets.train.train --out /tmp/digits --quick   # seconds, for tests

Stages: VAE (AutoencoderKL) on the coloured digits; latents of augmented copies;
text encoder (CLIPTextModel) + UNet (UNet2DConditionModel) with epsilon loss under
DDPMScheduler noise and 10% empty captions (classifier-free guidance); then the
proxies (see :mod:`lightflow.assets.train.distill`). Everything is seeded.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.training_utils import EMAModel
from transformers import CLIPTextModel, CLIPTokenizer

from lightflow.assets.train import model as M
from lightflow.assets.train.data import make_dataset
from lightflow.assets.train.tokenizer import save_tokenizer

log = logging.getLogger("lightflow.assets.train")


@dataclass(frozen=True)
class Settings:
    """Training hyper-parameters; ``quick()`` is the few-step variant used by the tests."""

    seed: int = 0
    quick: bool = False
    vae_steps: int = 700
    vae_batch: int = 32
    vae_lr: float = 1e-3
    variants: int = 8  # augmented (colour, shift) copies per digit for the UNet stage
    unet_steps: int = 5000
    unet_batch: int = 32
    unet_lr: float = 5e-4
    warmup: int = 200
    ema_decay: float = 0.999
    p_uncond: float = 0.10
    p_no_colour: float = 0.05
    checkpoint_every: int = 1000

    @classmethod
    def quick_settings(cls, seed: int = 0) -> Settings:
        return cls(
            seed=seed,
            quick=True,
            vae_steps=4,
            variants=1,
            unet_steps=6,
            warmup=2,
            checkpoint_every=0,
        )


def _lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def train_vae(images: torch.Tensor, s: Settings) -> AutoencoderKL:
    """Reconstruction (MSE + L1) with a tiny KL term; images (N, 3, 32, 32) in [-1, 1]."""
    gen = torch.Generator().manual_seed(s.seed + 1)
    vae = M.build_vae(s.quick)
    opt = torch.optim.AdamW(vae.parameters(), lr=s.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(min(50, s.warmup), s.vae_steps))
    t0 = time.time()
    for step in range(s.vae_steps):
        x = images[torch.randint(0, len(images), (s.vae_batch,), generator=gen)]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        kl = post.kl().mean() / z[0].numel()
        loss = F.mse_loss(rec, x) + 0.5 * F.l1_loss(rec, x) + 1e-5 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == s.vae_steps - 1:
            log.info(
                "vae step %d/%d loss %.4f (%.0fs)", step, s.vae_steps, loss.item(), time.time() - t0
            )
    return vae.eval()


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Posterior means of ``images``, raw (not yet multiplied by the scaling factor)."""
    return torch.cat(
        [vae.encode(images[i : i + batch]).latent_dist.mean for i in range(0, len(images), batch)]
    )


def _token_ids(tokenizer: CLIPTokenizer, texts: list[str]) -> torch.Tensor:
    return tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def train_unet(
    latents: torch.Tensor,
    captions: list[str],
    tokenizer: CLIPTokenizer,
    s: Settings,
    on_checkpoint: Callable[[UNet2DConditionModel, CLIPTextModel], None] | None = None,
) -> tuple[UNet2DConditionModel, CLIPTextModel]:
    """Text encoder + UNet, epsilon prediction; ``latents`` already scaled (UNet space)."""
    gen = torch.Generator().manual_seed(s.seed + 2)
    torch.manual_seed(s.seed + 3)
    unet, text = M.build_unet(s.quick), M.build_text_encoder(s.quick)
    noise_sched = M.build_scheduler()
    ids_full = _token_ids(tokenizer, captions)
    ids_plain = _token_ids(tokenizer, [" ".join(c.split()[::2]) for c in captions])  # 'a seven'
    ids_empty = _token_ids(tokenizer, [""])
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=s.unet_lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(s.warmup, s.unet_steps))
    ema = EMAModel(params, decay=s.ema_decay)
    alphas = noise_sched.alphas_cumprod
    t0 = time.time()
    running = 0.0
    for step in range(s.unet_steps):
        idx = torch.randint(0, len(latents), (s.unet_batch,), generator=gen)
        x0 = latents[idx]
        u = torch.rand(s.unet_batch, generator=gen)
        ids = torch.where((u < s.p_no_colour + s.p_uncond)[:, None], ids_plain[idx], ids_full[idx])
        ids = torch.where((u < s.p_uncond)[:, None], ids_empty.expand_as(ids), ids)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (s.unet_batch,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = alphas[t].sqrt()[:, None, None, None]
        xt = a * x0 + (1 - a**2).sqrt() * noise  # same as noise_sched.add_noise
        cond = text(ids).last_hidden_state  # (B, 16, 64)
        loss = F.mse_loss(unet(xt, t, cond).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema.step(params)
        running = loss.item() if step == 0 else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == s.unet_steps - 1:
            log.info(
                "unet step %d/%d loss %.4f (%.0fs)", step, s.unet_steps, running, time.time() - t0
            )
        last = step == s.unet_steps - 1
        due = s.checkpoint_every and (step + 1) % s.checkpoint_every == 0
        if on_checkpoint and due and not last:
            ema.store(params)
            ema.copy_to(params)
            on_checkpoint(unet, text)
            ema.restore(params)
    ema.copy_to(params)
    return unet.eval(), text.eval()


def save_pipeline(
    folder: Path,
    vae: AutoencoderKL,
    text: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    unet: UNet2DConditionModel,
    dtype: torch.dtype = torch.float16,
) -> None:
    """diffusers folder layout, weights as safetensors in ``dtype``."""
    sched = DDIMScheduler.from_config(M.build_scheduler().config, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sched,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.to(dtype)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    pipe.to(torch.float32)


def run(out: Path, s: Settings, distill: bool = True) -> None:
    torch.manual_seed(s.seed)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    tokenizer = save_tokenizer(out / "tokenizer")
    vae_data = make_dataset(seed=s.seed, variants=1)
    vae = train_vae(vae_data.images, s)
    t_vae = time.time() - t_start
    data = make_dataset(seed=s.seed + 10, variants=s.variants)
    raw = encode_latents(vae, data.images)
    scaling = float(1.0 / raw.std())
    vae.register_to_config(scaling_factor=scaling)
    log.info("latents %s std %.4f -> scaling_factor %.4f", tuple(raw.shape), raw.std(), scaling)

    def checkpoint(unet: UNet2DConditionModel, text: CLIPTextModel) -> None:
        save_pipeline(out, vae, text, tokenizer, unet)
        log.info("checkpoint written to %s", out)

    unet, text = train_unet(raw * scaling, data.captions, tokenizer, s, checkpoint)
    save_pipeline(out, vae, text, tokenizer, unet)
    t_unet = time.time() - t_start - t_vae
    log.info("saved %s (vae %.0fs, unet %.0fs)", out, t_vae, t_unet)
    if distill:
        from lightflow.assets.train.distill import distill_proxies

        distill_proxies(out, quick=s.quick, seed=s.seed)
    log.info("done in %.0fs", time.time() - t_start)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (diffusers layout)")
    p.add_argument("--quick", action="store_true", help="a few steps of tiny models (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--unet-steps", type=int, default=None)
    p.add_argument("--skip-distill", action="store_true", help="do not fit the proxies")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    s = Settings.quick_settings(a.seed) if a.quick else Settings(seed=a.seed)
    if a.unet_steps is not None:
        s = Settings(**{**s.__dict__, "unet_steps": a.unet_steps})
    run(a.out, s, distill=not a.skip_distill)


if __name__ == "__main__":
    main()
