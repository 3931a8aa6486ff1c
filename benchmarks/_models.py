"""Random-weight SD-shaped pipelines larger than the test ones, for memory and speed
benchmarks (built from configs, saved as diffusers folders; nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["build_sd15_scale", "build_sd_like"]


def build_sd_like(folder: Path, *, channels: tuple[int, ...] = (128, 256, 256),
                  sample_size: int = 32, text_hidden: int = 256, text_layers: int = 6,
                  vae_channels: tuple[int, ...] = (64, 128, 128, 128), seed: int = 0) -> Path:
    """An SD-1.x-shaped pipeline (UNet, VAE, CLIP text encoder) of configurable size."""
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.support.tiny import _load_tokenizer

    if (folder / "model_index.json").is_file():
        return folder
    torch.manual_seed(seed)
    down = ["CrossAttnDownBlock2D"] * (len(channels) - 1) + ["DownBlock2D"]
    up = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (len(channels) - 1)
    unet = UNet2DConditionModel(
        block_out_channels=channels, layers_per_block=2, sample_size=sample_size,
        in_channels=4, out_channels=4, down_block_types=tuple(down), up_block_types=tuple(up),
        cross_attention_dim=text_hidden, attention_head_dim=8)
    vae = AutoencoderKL(
        block_out_channels=vae_channels, in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * len(vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(vae_channels), layers_per_block=2)
    import tempfile

    tokenizer = _load_tokenizer(Path(tempfile.mkdtemp()))
    text = CLIPTextModel(CLIPTextConfig(
        hidden_size=text_hidden, intermediate_size=text_hidden * 4, num_hidden_layers=text_layers,
        num_attention_heads=8, vocab_size=max(1000, len(tokenizer)),
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_sd15_scale(folder: Path) -> Path:
    """Stable Diffusion 1.5's shapes (UNet 860M, CLIP-L text encoder, SD VAE), random."""
    return build_sd_like(folder, channels=(320, 640, 1280, 1280), sample_size=64,
                         text_hidden=768, text_layers=12, vae_channels=(128, 256, 512, 512))
