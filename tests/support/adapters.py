"""Tiny random-weight ControlNets, LoRAs and T2I-Adapters for the tiny test pipelines.

Example::

    from tests.support.adapters import build_controlnet, build_lora

    cn = build_controlnet(sd15_dir, tmp_path / "cn")          # ControlNetModel.from_unet
    lora = build_lora(sd15_dir, tmp_path / "style.safetensors")  # peft LoraConfig, diffusers format
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .tiny import _perturb_constants

__all__ = ["build_adapter_sd", "build_controlnet", "build_lora", "build_t2i_adapter",
           "edge_image"]


def build_controlnet(model_dir: Path, out: Path, seed: int = 1) -> Path:
    """A ControlNet made from the pipeline's UNet (``ControlNetModel.from_unet``), its zero
    convolutions perturbed so it changes the result. Saved as a diffusers folder."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
    torch.manual_seed(seed)
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "zero_conv" in name or "controlnet_mid_block" in name or "conv_out" in name:
                p.copy_(torch.randn_like(p) * 0.05)
    _perturb_constants(net)
    net.save_pretrained(out, safe_serialization=True)
    return Path(out)


def build_lora(model_dir: Path, out: Path, seed: int = 2, rank: int = 4,
               text: bool = True, scale: float = 1.0) -> Path:
    """A LoRA for the pipeline's UNet (and text encoder) from a peft ``LoraConfig`` with
    random A and B, saved in diffusers format (``save_lora_weights``) as one file."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    unet_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    unet_layers = {k: v * scale for k, v in unet_layers.items()}
    text_layers = None
    if text:
        encoder = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder")
        # peft directly: transformers' add_adapter wants a newer peft than diffusers does
        encoder = inject_adapter_in_model(
            LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                       target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]), encoder)
        text_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(encoder))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / (out.stem + "_dir")
    StableDiffusionPipeline.save_lora_weights(tmp, unet_lora_layers=unet_layers,
                                              text_encoder_lora_layers=text_layers,
                                              safe_serialization=True)
    shutil.move(str(tmp / "pytorch_lora_weights.safetensors"), out)
    shutil.rmtree(tmp)
    return out


def build_adapter_sd(model_dir: Path, out: Path, seed: int = 3) -> Path:
    """A copy of a tiny SD 1.x pipeline whose UNet has a cross-attention block *first*
    (as real SD 1.x UNets do), so a T2I-Adapter's features fit its down blocks."""
    from diffusers import UNet2DConditionModel

    out = Path(out)
    shutil.copytree(model_dir, out)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8)
    _perturb_constants(unet)
    shutil.rmtree(out / "unet")
    unet.save_pretrained(out / "unet", safe_serialization=True)
    return out


def build_t2i_adapter(out: Path, seed: int = 4, in_channels: int = 3,
                      channels: tuple[int, ...] = (32, 64), downscale: int = 2) -> Path:
    """A tiny full T2I-Adapter (features for a (32, 64)-channel UNet on 32x32 latents)."""
    from diffusers import T2IAdapter

    torch.manual_seed(seed)
    adapter = T2IAdapter(in_channels=in_channels, channels=list(channels), num_res_blocks=2,
                         downscale_factor=downscale, adapter_type="full_adapter")
    _perturb_constants(adapter)
    adapter.save_pretrained(out, safe_serialization=True)
    return Path(out)


def edge_image(size: int = 64, seed: int = 0) -> Image.Image:
    """A simple RGB picture with shapes (a good canny input)."""
    rng = np.random.default_rng(seed)
    array = np.zeros((size, size, 3), dtype=np.uint8)
    for _ in range(4):
        x0, y0 = rng.integers(0, size - 16, 2)
        w, h = rng.integers(8, 16, 2)
        array[y0:y0 + h, x0:x0 + w] = rng.integers(60, 255, 3)
    return Image.fromarray(array)
