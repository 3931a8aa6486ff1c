"""Prompt and text-encoding nodes.

Encoding goes through diffusers' own ``encode_prompt`` (the StableDiffusion / SDXL
pipelines' method, on a pipeline object that holds only the pool's text encoders and
tokenizers), so embeddings are exactly what diffusers computes: clip skip, SDXL's
penultimate hidden states, pooled embeddings and zeroed empty negatives included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..graph.ops import OpSpec, Port, register
from ..graph.types import PortType
from ._checks import as_int, as_text
from .loaders import ComponentRef
from .lora import lora_scope
from .values import Conditioning, PromptValue

__all__ = ["encode_text"]


def _check_prompt(params: dict[str, Any]) -> dict[str, Any]:
    params["text"] = as_text("prompt", "text", params.get("text"))
    params["negative"] = as_text("prompt", "negative", params.get("negative", ""))
    return params


def _run_prompt(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> PromptValue:
    return PromptValue(params["text"], params["negative"])


register(OpSpec(name="prompt", output=PortType.PROMPT, inputs=(), run=_run_prompt,
                params=("text", "negative"), check=_check_prompt,
                doc="A positive and a negative prompt."))


def _check_encode(params: dict[str, Any]) -> dict[str, Any]:
    if params.get("clip_skip") is not None:
        params["clip_skip"] = as_int("encode", "clip_skip", params["clip_skip"], lo=1, hi=24)
    return params


class _TextModelView:
    """What diffusers' clip-skip path reads (``text_encoder.text_model.final_layer_norm``):
    transformers 5 flattened ``CLIPTextModel``, which has no ``.text_model`` any more."""

    def __init__(self, encoder: Any):
        self.final_layer_norm = encoder.final_layer_norm


def _expose_text_model(encoder: Any) -> None:
    if not hasattr(encoder, "text_model") and hasattr(encoder, "final_layer_norm"):
        # a plain attribute, not a registered submodule: the state dict is unchanged
        object.__setattr__(encoder, "text_model", _TextModelView(encoder))


def encode_text(models: Mapping[str, Any], family: str, text: str, negative: str,
                device: str, clip_skip: int | None = None,
                force_zeros: bool = True) -> Conditioning:
    """Embeddings for one prompt and its negative with diffusers' encode_prompt."""
    if family == "sdxl":
        from diffusers import StableDiffusionXLPipeline

        pipe = StableDiffusionXLPipeline(
            vae=None, text_encoder=models["text_encoder"], text_encoder_2=models["text_encoder_2"],
            tokenizer=models["tokenizer"], tokenizer_2=models["tokenizer_2"], unet=None,
            scheduler=None, force_zeros_for_empty_prompt=force_zeros)
        embeds, neg, pooled, neg_pooled = pipe.encode_prompt(
            text, device=torch.device(device), num_images_per_prompt=1,
            do_classifier_free_guidance=True, negative_prompt=negative or None,
            clip_skip=clip_skip)
        return Conditioning(embeds, neg, "sdxl", pooled, neg_pooled,
                            int(models["text_encoder_2"].config.projection_dim))
    from diffusers import StableDiffusionPipeline

    if clip_skip:
        _expose_text_model(models["text_encoder"])
    pipe = StableDiffusionPipeline(
        vae=None, text_encoder=models["text_encoder"], tokenizer=models["tokenizer"], unet=None,
        scheduler=None, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    embeds, neg = pipe.encode_prompt(text, torch.device(device), 1, True, negative,
                                     clip_skip=clip_skip)
    return Conditioning(embeds, neg, "sd1")


def _run_encode(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> Conditioning:
    ref: ComponentRef = inputs["clip"]
    prompt: PromptValue = inputs["prompt"]
    models = {c: ctx.model(ref.spec(c)) for c in ref.components}
    force_zeros = bool(ref.checkpoint.source.model_index.get("force_zeros_for_empty_prompt",
                                                             True))
    with lora_scope(ctx, ref.loras, models, ref.family), torch.inference_mode():
        return encode_text(models, ref.family, prompt.text, prompt.negative,
                           ref.checkpoint.device, params.get("clip_skip"), force_zeros)


def _needs_encode(refs: dict[str, Any], params: Mapping[str, Any]) -> list[Any]:
    return refs["clip"].specs() if "clip" in refs else []


register(OpSpec(
    name="encode", output=PortType.CONDITIONING,
    inputs=(Port("prompt", (PortType.PROMPT,)), Port("clip", (PortType.TEXT_ENCODER,))),
    run=_run_encode, params=("clip_skip",), check=_check_encode, needs=_needs_encode,
    doc="Encode a prompt with a checkpoint's text encoder(s)."))
