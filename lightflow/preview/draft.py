"""Draft-mode ops and the rules that swap them in.

- ``proxy_decode`` replaces ``decode`` (always, in draft mode);
- ``sample`` gets its steps capped at ``max_steps``;
- ``null_sample`` (with ``null_sampler=True``) returns its input latent, or the initial
  noise for txt2img: for checking wiring without running the UNet;
- ``simple_encode`` (with ``simple_text=True``) gives deterministic embeddings of the
  right shape without loading the text encoder.

All three are proxy ops: final mode refuses a flow that contains one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch

from ..graph.node import Node
from ..graph.ops import OpSpec, Port, register
from ..graph.rewrite import register_draft_rule
from ..graph.types import PortType
from ..nodes.values import Conditioning
from .choose import choose_proxy

__all__: list[str] = []


def _check_proxy(params: dict[str, Any]) -> dict[str, Any]:
    from ..settings import DraftSettings

    DraftSettings(decoder=params.setdefault("decoder", "auto"))
    return params


def _run_proxy_decode(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> Any:
    ref = inputs["vae"]
    decoder = choose_proxy(params["decoder"], ref.checkpoint, ctx.settings, ctx.model)
    ctx.info["decoder"] = decoder.name
    return decoder.decode(inputs["latent"])


register(OpSpec(name="proxy_decode", output=PortType.IMAGE,
                inputs=(Port("latent", (PortType.LATENT,)), Port("vae", (PortType.VAE,))),
                run=_run_proxy_decode, params=("decoder",), check=_check_proxy, proxy=True,
                doc="Decode with a proxy (taesd, latent_rgb, bilinear or auto)."))


def _config(ref: Any, component: str) -> dict[str, Any]:
    folder = ref.checkpoint.folder
    if folder is None:
        return {}
    try:
        return json.loads((folder / component / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def _run_null_sample(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> Any:
    from diffusers.utils.torch_utils import randn_tensor

    if inputs.get("latent") is not None:
        return inputs["latent"].repeat(params["batch"] // inputs["latent"].shape[0] or 1, 1, 1, 1)
    ref = inputs["unet"]
    config = _config(ref, "unet")
    factor = ref.checkpoint.vae_scale_factor
    size = int(config.get("sample_size", 64)) * factor
    h, w = params.get("height") or size, params.get("width") or size
    shape = (params["batch"], int(config.get("in_channels", 4)), h // factor, w // factor)
    generator = torch.Generator("cpu").manual_seed(params["seed"])
    return randn_tensor(shape, generator=generator, dtype=torch.float32)


register(OpSpec(name="null_sample", output=PortType.LATENT,
                inputs=(Port("unet", (PortType.UNET,)), Port("cond", (PortType.CONDITIONING,)),
                        Port("latent", (PortType.LATENT,), optional=True)),
                run=_run_null_sample, proxy=True,
                params=("steps", "cfg", "seed", "width", "height", "scheduler", "batch",
                        "denoise"),
                doc="Draft stand-in for sample: returns its input latent (or the initial noise)."))


def _fake(shape: tuple[int, ...], text: str) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _run_simple_encode(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> Any:
    ref, prompt = inputs["clip"], inputs["prompt"]
    te = _config(ref, "text_encoder")
    length = int(te.get("max_position_embeddings", 77))
    if ref.family == "sdxl":
        te2 = _config(ref, "text_encoder_2")
        width = int(te.get("hidden_size", 768)) + int(te2.get("hidden_size", 1280))
        proj = int(te2.get("projection_dim", 1280))
        return Conditioning(_fake((1, length, width), prompt.text),
                            _fake((1, length, width), "neg:" + prompt.negative), "sdxl",
                            _fake((1, proj), "pool:" + prompt.text),
                            _fake((1, proj), "pool-neg:" + prompt.negative), proj)
    width = int(te.get("hidden_size", 768))
    return Conditioning(_fake((1, length, width), prompt.text),
                        _fake((1, length, width), "neg:" + prompt.negative), "sd1")


register(OpSpec(name="simple_encode", output=PortType.CONDITIONING,
                inputs=(Port("prompt", (PortType.PROMPT,)),
                        Port("clip", (PortType.TEXT_ENCODER,))),
                run=_run_simple_encode, params=("clip_skip",), proxy=True,
                doc="Draft stand-in for encode: deterministic embeddings of the right shape."))


def _decode_rule(node: Node, inputs: dict[str, Node], draft: Any) -> Node:
    return Node("proxy_decode", {"decoder": draft.decoder}, inputs)


def _sample_rule(node: Node, inputs: dict[str, Node], draft: Any) -> Node:
    params = dict(node.params)
    if draft.null_sampler:
        return Node("null_sample", params, inputs)
    if draft.max_steps is not None:
        params["steps"] = min(params["steps"], draft.max_steps)
    return Node("sample", params, inputs)


def _encode_rule(node: Node, inputs: dict[str, Node], draft: Any) -> Node:
    return Node("simple_encode" if draft.simple_text else "encode", dict(node.params), inputs)


register_draft_rule("decode", _decode_rule)
register_draft_rule("sample", _sample_rule)
register_draft_rule("encode", _encode_rule)
