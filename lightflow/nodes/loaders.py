"""Checkpoint and component nodes: lazy references to weights that live in the pool.

Running these ops reads only file metadata: they resolve *which* weights a flow uses
(and their identity, for cache keys). Loading happens when a compute node acquires the
model from the pool.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ParameterError
from ..graph.ops import OpSpec, Port, register
from ..graph.types import PortType
from ..pool import ModelSpec, Source, resolve_source

__all__ = ["CheckpointRef", "ComponentRef", "default_device", "default_dtype"]

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}

#: The pool components each selectable part of a checkpoint is made of.
PARTS = {
    "unet": ("unet", "scheduler"),
    "vae": ("vae",),
    "text_encoder": ("text_encoder", "tokenizer"),
}
SDXL_TEXT = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> str:
    """fp16 on CUDA, fp32 on the CPU (lightflow's dtype policy)."""
    return "float16" if str(device).startswith("cuda") else "float32"


@dataclass(frozen=True)
class CheckpointRef:
    """A resolved checkpoint: where its files are, the dtype and device to load it in."""

    source: Source
    dtype: str
    device: str
    loras: tuple[Any, ...] = ()  # LoraRef values applied on top (lightflow.nodes.lora)

    @property
    def family(self) -> str:
        return self.source.family

    @property
    def identity(self) -> str:
        base = f"{self.source.kind}:{self.source.location}|{self.dtype}|{self.device}"
        return base + "".join(f"|{lora.identity}@{lora.strength}/{lora.text_strength}"
                              for lora in self.loras)

    def lora_identity(self, part: str) -> str:
        """What the LoRAs change in ``part`` (unet: strength, text encoder: text_strength)."""
        if part == "unet":
            return "".join(f"+{lora.identity}@{lora.strength}" for lora in self.loras)
        if part == "text_encoder":
            return "".join(f"+{lora.identity}@{lora.text_strength}" for lora in self.loras)
        return ""

    def spec(self, component: str) -> ModelSpec:
        return ModelSpec(self.source, component, self.dtype, self.device)

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell, from the VAE's config (8 for SD, 4 for builtin:digits)."""
        folder = self.source.location if self.source.kind == "folder" else self.source.config
        try:
            config = json.loads((Path(folder) / "vae" / "config.json").read_text())
            return 2 ** (len(config["block_out_channels"]) - 1)
        except (OSError, TypeError, KeyError, ValueError):
            return 8

    @property
    def folder(self) -> Path | None:
        """The diffusers folder holding configs (and optional proxies), if local."""
        folder = self.source.location if self.source.kind == "folder" else self.source.config
        return Path(folder) if folder and Path(folder).is_dir() else None

    def components(self, part: str) -> tuple[str, ...]:
        if part == "text_encoder" and self.family == "sdxl":
            return SDXL_TEXT
        return PARTS[part]


@dataclass(frozen=True)
class ComponentRef:
    """One selectable part of a checkpoint (UNET, TEXT_ENCODER or VAE)."""

    checkpoint: CheckpointRef
    part: str

    @property
    def identity(self) -> str:
        source = self.checkpoint.source
        files = ";".join(source.identity(c) for c in self.components)
        return (f"{self.part}|{self.checkpoint.dtype}|{self.checkpoint.device}|{files}"
                f"{self.checkpoint.lora_identity(self.part)}")

    @property
    def loras(self) -> tuple[Any, ...]:
        """The LoRAs applied to this part (none for the VAE)."""
        return self.checkpoint.loras if self.part in ("unet", "text_encoder") else ()

    @property
    def components(self) -> tuple[str, ...]:
        return self.checkpoint.components(self.part)

    @property
    def family(self) -> str:
        return self.checkpoint.family

    def spec(self, component: str | None = None) -> ModelSpec:
        return self.checkpoint.spec(component or self.part)

    def specs(self) -> list[ModelSpec]:
        return [self.checkpoint.spec(c) for c in self.components]


def _check_checkpoint(params: dict[str, Any]) -> dict[str, Any]:
    dtype = params.get("dtype")
    if dtype is not None:
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).replace("torch.", "")
        if str(dtype) not in _DTYPES:
            raise ParameterError(f"unknown dtype {dtype!r}", where="checkpoint",
                                 fix="use float32, float16 or bfloat16")
        params["dtype"] = _DTYPES[str(dtype)]
    device = params.get("device")
    if device is not None:
        device = str(device)
        if not (device == "cpu" or device.startswith(("cuda", "mps"))):
            raise ParameterError(f"unknown device {device!r}", where="checkpoint",
                                 fix='use "cpu", "cuda" or "cuda:N"')
        params["device"] = device
    return params


def _run_checkpoint(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> CheckpointRef:
    source = resolve_source(params["source"], params.get("config"))
    device = params.get("device") or default_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"device {device!r} was asked for but no CUDA GPU is visible",
                             where="checkpoint", fix='use device="cpu" or leave it unset')
    dtype = params.get("dtype") or default_dtype(device)
    return CheckpointRef(source, dtype, device)


register(OpSpec(
    name="checkpoint", output=PortType.CHECKPOINT, inputs=(), run=_run_checkpoint,
    params=("source", "config", "dtype", "device"), check=_check_checkpoint,
    doc="A diffusers folder, a single .safetensors/.ckpt file, a hub id or builtin:digits."))


def _component_op(part: str, output: PortType) -> None:
    def run(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> ComponentRef:
        return ComponentRef(inputs["checkpoint"], part)

    register(OpSpec(name=part, output=output,
                    inputs=(Port("checkpoint", (PortType.CHECKPOINT,)),), run=run,
                    doc=f"The {part} of a checkpoint."))


_component_op("unet", PortType.UNET)
_component_op("text_encoder", PortType.TEXT_ENCODER)
_component_op("vae", PortType.VAE)
