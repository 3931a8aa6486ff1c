"""Tiny random-weight Stable Diffusion pipelines, built offline in a couple of seconds.

Sizes follow diffusers' own fast tests (``get_dummy_components``); the tokenizer is a
byte-level CLIP BPE written from scratch. Constant-initialised parameters (zero biases,
unit norm weights) are perturbed so that every weight matters: a conversion that swaps two
biases changes the output, and images depend on prompt and seed.

Example::

    folder = build_sd15(tmp_path / "sd15")
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    image = pipe("a cat", num_inference_steps=2, output_type="np").images[0]   # 64x64
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
# Words that become single tokens (with a few shared prefixes, as real BPE has).
WORDS = (
    "a", "an", "the", "of", "and", "in", "cat", "dog", "car", "red", "blue", "green",
    "photo", "painting", "watercolor", "portrait", "landscape", "blurry", "house", "tree",
)  # fmt: skip
VOCAB_SIZE = 1000  # text encoder vocab; the tokenizer uses fewer ids

# Scheduler configs as the real checkpoints ship them.
SD15_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "clip_sample": False,
    "trained_betas": None,
}
SDXL_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "interpolation_type": "linear",
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
    "trained_betas": None,
}




def _merges(words: tuple[str, ...]) -> list[tuple[str, str]]:
    """Left-to-right merges that turn each word into one ``word</w>`` token."""
    out: list[tuple[str, str]] = []
    for word in words:
        if len(word) < 2:
            continue
        left = word[0]
        for k, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if k == len(word) - 1 else "")
            if (left, right) not in out:
                out.append((left, right))
            left += ch
    return out


def write_clip_tokenizer(folder: Path, max_length: int = 77, pad_token: str = EOS) -> None:
    """Write a small byte-level CLIP tokenizer to ``folder`` (loadable with ``CLIPTokenizer``).

    Ids: 256 byte characters, their 256 ``</w>`` forms, the merge results, then
    ``<|startoftext|>`` and ``<|endoftext|>`` (as CLIP orders them). About 600 ids in all.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    merges = _merges(WORDS)
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    assert len(vocab) <= VOCAB_SIZE
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    special = {
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": pad_token,
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        **special,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _perturb_constants(*models: torch.nn.Module, scale: float = 0.02) -> None:
    """Add small noise to every parameter whose values are all equal (zeros, ones)."""
    with torch.no_grad():
        for model in models:
            for p in model.parameters():
                flat = p.detach().reshape(-1)
                if flat.numel() > 0 and bool((flat == flat[0]).all()):
                    p.add_(torch.randn_like(p) * scale)


def _text_config(tokenizer: CLIPTokenizer, **kw: object) -> CLIPTextConfig:
    base: dict[str, object] = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 5,
        "num_attention_heads": 4,
        "layer_norm_eps": 1e-5,
        "vocab_size": VOCAB_SIZE,
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    base.update(kw)
    return CLIPTextConfig(**base)


def _tiny_vae(scaling_factor: float) -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def _load_tokenizer(folder: Path, max_length: int = 77, pad_token: str = EOS) -> CLIPTokenizer:
    write_clip_tokenizer(folder, max_length=max_length, pad_token=pad_token)
    return CLIPTokenizer.from_pretrained(str(folder))


def build_sd15(folder: Path, seed: int = 0) -> Path:
    """Build a tiny random-weight SD 1.x pipeline and save it (diffusers layout) in ``folder``.

    UNet (32, 64) channels, 2 levels, cross-attention dim 32; VAE (32, 64), 4 latent
    channels (64x64 images from 32x32 latents); CLIP text encoder hidden 32, 5 layers;
    PNDM scheduler as SD 1.5 ships. Returns ``folder``.
    """
    folder = Path(folder)
    tokenizer = _load_tokenizer(folder / "tokenizer")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    vae = _tiny_vae(scaling_factor=0.18215)
    text_encoder = CLIPTextModel(_text_config(tokenizer, hidden_act="quick_gelu"))
    _perturb_constants(unet, vae, text_encoder)
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def build_sdxl(folder: Path, seed: int = 0) -> Path:
    """Build a tiny random-weight SDXL base pipeline and save it (diffusers layout) in ``folder``.

    As diffusers' SDXL fast test, except that the second text encoder (OpenCLIP-style,
    ``CLIPTextModelWithProjection``) has hidden size 64 and 10 layers: diffusers' single-file
    loader tells the two encoders apart by hidden size, and recognises an SDXL base
    checkpoint by ``...resblocks.9...`` of that encoder. Cross-attention dim is 32 + 64;
    added condition input is 6 * 8 (time ids) + 32 (pooled projection) = 80. Returns ``folder``.
    """
    folder = Path(folder)
    tokenizer = _load_tokenizer(folder / "tokenizer")
    tokenizer_2 = _load_tokenizer(folder / "tokenizer_2", pad_token="!")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=96,
    )
    vae = _tiny_vae(scaling_factor=0.13025)
    text_encoder = CLIPTextModel(_text_config(tokenizer, hidden_act="quick_gelu"))
    text_encoder_2 = CLIPTextModelWithProjection(
        _text_config(
            tokenizer_2,
            hidden_size=64,
            num_hidden_layers=10,
            hidden_act="gelu",
            projection_dim=32,
        )
    )
    _perturb_constants(unet, vae, text_encoder, text_encoder_2)
    pipe = StableDiffusionXLPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet.eval(),
        scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER),
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder
