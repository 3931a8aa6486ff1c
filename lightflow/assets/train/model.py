"""Configs and builders for the digits model's components (all real diffusers/transformers).

Example::

    unet = build_unet(quick=False)      # UNet2DConditionModel, sample_size 8 -> 32x32 images
"""

from __future__ import annotations

from typing import Any

from diffusers import AutoencoderKL, AutoencoderTiny, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from lightflow.assets.train.tokenizer import BOS, EOS, MAX_LENGTH, build_vocab

LATENT_CHANNELS = 4
LATENT_SIZE = 8  # 32x32 images, vae_scale_factor 4
TEXT_DIM = 64


def vae_config(quick: bool = False) -> dict[str, Any]:
    """AutoencoderKL with 3 levels: (3, 32, 32) <-> (4, 8, 8)."""
    ch = (8, 16, 16) if quick else (16, 32, 64)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 3,
        "up_block_types": ("UpDecoderBlock2D",) * 3,
        "block_out_channels": ch,
        "layers_per_block": 1,
        "latent_channels": LATENT_CHANNELS,
        "norm_num_groups": 8,
        "sample_size": 32,
        "scaling_factor": 1.0,  # replaced by 1/std of the latents after training
    }


def unet_config(quick: bool = False) -> dict[str, Any]:
    """UNet2DConditionModel on 8x8x4 latents, cross-attending to the 64-d text states."""
    ch = (16, 32, 32) if quick else (64, 128, 128)
    return {
        "sample_size": LATENT_SIZE,
        "in_channels": LATENT_CHANNELS,
        "out_channels": LATENT_CHANNELS,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "block_out_channels": ch,
        "layers_per_block": 1,
        "attention_head_dim": 4 if quick else 8,
        "norm_num_groups": 8 if quick else 32,
        "cross_attention_dim": TEXT_DIM,
    }


def text_config(quick: bool = False) -> CLIPTextConfig:
    """A 2-layer, 64-wide CLIP text transformer over the tiny vocabulary."""
    vocab, _ = build_vocab()
    return CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=TEXT_DIM,
        intermediate_size=2 * TEXT_DIM if quick else 4 * TEXT_DIM,
        projection_dim=TEXT_DIM,
        num_hidden_layers=1 if quick else 2,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        bos_token_id=vocab[BOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[EOS],
    )


def scheduler_config() -> dict[str, Any]:
    """The training noise schedule (Stable Diffusion's), epsilon prediction."""
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "epsilon",
        "clip_sample": False,
        "steps_offset": 1,
    }


def taesd_config(quick: bool = False) -> dict[str, Any]:
    """AutoencoderTiny mapping (4, 8, 8) scaled latents <-> (3, 32, 32) (two 2x steps)."""
    ch = (16, 16, 16) if quick else (32, 32, 32)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "encoder_block_out_channels": ch,
        "decoder_block_out_channels": ch,
        "num_encoder_blocks": (1, 1, 1) if quick else (1, 2, 2),
        "num_decoder_blocks": (1, 1, 1) if quick else (2, 2, 1),
        "latent_channels": LATENT_CHANNELS,
        "upsampling_scaling_factor": 2,
        "latent_magnitude": 3,
        "latent_shift": 0.5,
        "scaling_factor": 1.0,  # decodes the UNet-space (already scaled) latents directly
    }


def build_vae(quick: bool = False) -> AutoencoderKL:
    return AutoencoderKL(**vae_config(quick))


def build_unet(quick: bool = False) -> UNet2DConditionModel:
    return UNet2DConditionModel(**unet_config(quick))


def build_text_encoder(quick: bool = False) -> CLIPTextModel:
    return CLIPTextModel(text_config(quick))


def build_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**scheduler_config())


def build_taesd(quick: bool = False) -> AutoencoderTiny:
    return AutoencoderTiny(**taesd_config(quick))
