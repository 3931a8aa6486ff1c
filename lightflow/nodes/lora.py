"""LoRA nodes: ``ckpt.lora(path, strength)`` applies a LoRA through diffusers/peft adapters.

A LoRA file is a pool entry (kind ``LORA``): its state dict is read once (diffusers'
``lora_state_dict``, so diffusers, kohya and A1111 formats work). The first run that uses
it injects it as a named peft adapter into the *pooled* UNet / text encoder
(``load_lora_into_unet`` / ``load_lora_into_text_encoder``); every run then activates the
adapters it needs with ``set_adapters(names, weights)`` and disables them afterwards, so
other flows see the plain base model and base weights are never re-read or copied. When
the LORA entry is evicted (cap 5, ``lf.pool.release``), its adapters are deleted.

    >>> sd = lf.checkpoint("models/sd15")                            # doctest: +SKIP
    >>> styled = sd.lora("watercolor.safetensors", strength=0.8)     # still a CHECKPOINT
    >>> lf.prompt("a cat").encode(styled).sample(styled).decode(styled).image()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError, ModelNotFoundError
from ..graph.ops import OpSpec, Port, register
from ..graph.types import PortType
from ..pool import ModelSpec, Source
from ._checks import as_float, file_stamp
from .loaders import CheckpointRef

__all__ = ["LoraRef", "LoraWeights", "lora_scope", "lora_spec"]

log = logging.getLogger("lightflow.lora")


@dataclass(frozen=True)
class LoraRef:
    """A resolved LoRA: its file (identity from size and mtime) and the two strengths."""

    path: str
    stamp: str
    strength: float
    text_strength: float

    @property
    def identity(self) -> str:
        return f"lora:{self.path}[{self.stamp}]"

    @property
    def adapter_name(self) -> str:
        """The peft adapter name (same file and stamp → same adapter, any strength)."""
        return "lf_" + hashlib.sha1(self.identity.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return Path(self.path).stem


class LoraWeights:
    """A LoRA's state dict held by the pool. ``targets`` are the modules it is injected
    into; when the pool drops this object its adapters are deleted from them."""

    def __init__(self, name: str, state_dict: dict[str, torch.Tensor],
                 network_alphas: dict[str, float] | None, metadata: dict[str, Any] | None):
        self.name = name
        self.state_dict = state_dict
        self.network_alphas = network_alphas
        self.metadata = metadata
        self.nbytes = sum(t.numel() * t.element_size() for t in state_dict.values())
        self.targets: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()
        weakref.finalize(self, _delete_everywhere, name, self.targets)

    def __repr__(self) -> str:
        return f"<LoraWeights {self.name} {len(self.state_dict)} tensors>"


def _delete_everywhere(name: str, targets: weakref.WeakSet[torch.nn.Module]) -> None:
    for module in list(targets):
        try:
            remove_adapter(module, name)
        except Exception:  # never fail in a finalizer
            log.exception("could not delete LoRA adapter %s", name)


def adapter_names(module: torch.nn.Module) -> set[str]:
    """The LoRA adapters injected into ``module`` (diffusers' or lightflow's bookkeeping)."""
    return set(getattr(module, "peft_config", None) or {}) | set(
        getattr(module, _TEXT_ADAPTERS, None) or ())


_TEXT_ADAPTERS = "_lightflow_lora_adapters"


def remove_adapter(module: torch.nn.Module, name: str) -> None:
    """Delete adapter ``name`` from ``module``; with none left, drop peft's wrappers."""
    from diffusers.utils.peft_utils import delete_adapter_layers, recurse_remove_peft_layers

    delete_adapter_layers(module, name)
    config = getattr(module, "peft_config", None)
    if config is not None:
        config.pop(name, None)
    getattr(module, _TEXT_ADAPTERS, set()).discard(name)
    if not adapter_names(module):
        recurse_remove_peft_layers(module)
        if hasattr(module, "peft_config"):
            del module.peft_config
        if hasattr(module, "_hf_peft_config_loaded"):
            module._hf_peft_config_loaded = False


def lora_spec(ref: LoraRef, family: str = "sd1") -> ModelSpec:
    """The pool request for a LoRA file's state dict (kind LORA, on the CPU)."""
    file = Path(ref.path)
    source = Source("file", str(file))

    def load() -> LoraWeights:
        from diffusers.loaders import (
            StableDiffusionLoraLoaderMixin,
            StableDiffusionXLLoraLoaderMixin,
        )

        mixin = StableDiffusionXLLoraLoaderMixin if family == "sdxl" else \
            StableDiffusionLoraLoaderMixin
        try:
            state, alphas, metadata = mixin.lora_state_dict(
                str(file), local_files_only=True, return_lora_metadata=True)
        except Exception as exc:
            raise ModelLoadError(f"cannot read the LoRA {file.name}: {exc}", where="lora",
                                 fix="pass a LoRA .safetensors file (diffusers or kohya)") from exc
        if not state or not all("lora" in key or "lokr" in key for key in state):
            raise ModelLoadError(f"{file.name} is not a LoRA (its keys do not name LoRA layers)",
                                 where="lora", fix="pass a LoRA file, not a checkpoint")
        return LoraWeights(ref.adapter_name, state, alphas, metadata)

    return ModelSpec(source, "lora", "float32", "cpu", kind="LORA", loader=load,
                     identity=ref.identity)


def _inject(weights: LoraWeights, module: torch.nn.Module, target: str, lora: LoraRef) -> bool:
    """Load the adapter into ``module`` once; False when the LoRA has no keys for it."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin as Mixin

    name = weights.name
    if name in adapter_names(module):
        weights.targets.add(module)
        return True
    if module in weights.targets:  # tried before: the LoRA has nothing for this module
        return False
    prefix = f"{target}."
    if not any(k.startswith(prefix) for k in weights.state_dict):
        weights.targets.add(module)
        return False
    state = dict(weights.state_dict)
    try:
        if target == "unet":
            with warnings.catch_warnings():  # "multiple adapters": that is the point here
                warnings.simplefilter("ignore", UserWarning)
                Mixin.load_lora_into_unet(state, weights.network_alphas, module,
                                          adapter_name=name, metadata=weights.metadata)
        else:
            _load_into_text_encoder(weights, module, target)
    except Exception as exc:
        remove_adapter(module, name)
        detail = str(exc).split("\n")[0][:300]
        raise ModelLoadError(
            f"the LoRA {lora.name} does not fit this checkpoint's {target} ({detail})",
            where="lora", fix="use a LoRA trained for this base model (family and size)") from exc
    module.requires_grad_(False)
    weights.targets.add(module)
    return True


def _load_into_text_encoder(weights: LoraWeights, module: torch.nn.Module,
                            prefix: str) -> None:
    """diffusers' ``_load_lora_into_text_encoder`` through peft directly: transformers'
    own adapter integration needs a newer peft than diffusers does."""
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft
    from diffusers.utils.peft_utils import _create_lora_config
    from peft import inject_adapter_in_model, set_peft_model_state_dict

    name = weights.name
    state = {k.removeprefix(f"{prefix}."): v for k, v in weights.state_dict.items()
             if k.startswith(f"{prefix}.")}
    metadata = weights.metadata
    if metadata is not None:
        metadata = {k.removeprefix(f"{prefix}."): v for k, v in metadata.items()
                    if k.startswith(f"{prefix}.")} or None
    state = convert_state_dict_to_peft(convert_state_dict_to_diffusers(state))
    if not hasattr(module, "text_model"):
        state = {k.removeprefix("text_model."): v for k, v in state.items()}
    rank = {}
    for mod_name, _ in module.named_modules():
        if mod_name.endswith((".q_proj", ".k_proj", ".v_proj", ".out_proj", ".fc1", ".fc2")):
            key = f"{mod_name}.lora_B.weight"
            if key in state:
                rank[key] = state[key].shape[1]
    alphas = weights.network_alphas
    if alphas:
        alphas = {k.removeprefix(f"{prefix}."): v for k, v in alphas.items()
                  if k.split(".")[0] == prefix}
    config = _create_lora_config(state, alphas or None, metadata, rank, is_unet=False)
    setattr(module, _TEXT_ADAPTERS, getattr(module, _TEXT_ADAPTERS, set()) | {name})
    with warnings.catch_warnings():  # "multiple adapters": that is the point here
        warnings.simplefilter("ignore", UserWarning)
        inject_adapter_in_model(config, module, adapter_name=name)
    result = set_peft_model_state_dict(module, state, adapter_name=name)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) or [] if "lora_" in k]
    if unexpected:
        raise ValueError(f"{len(unexpected)} LoRA keys match no layer, e.g. {unexpected[0]}")


def _deactivate(module: torch.nn.Module) -> None:
    if adapter_names(module):
        from diffusers.utils.peft_utils import set_adapter_layers

        set_adapter_layers(module, enabled=False)


@contextmanager
def lora_scope(ctx: Any, loras: Sequence[LoraRef], modules: Mapping[str, Any],
               family: str) -> Iterator[None]:
    """Activate ``loras`` on ``modules`` ({"unet": m} or {"text_encoder": m, ...}) for the
    body, and leave them disabled afterwards (also when the body or loading fails)."""
    from diffusers.utils.peft_utils import set_adapter_layers, set_weights_and_activate_adapters

    targets = {k: m for k, m in modules.items()
               if k in ("unet", "text_encoder", "text_encoder_2")}
    try:
        for target, module in targets.items():
            names, weights = [], []
            for lora in loras:
                held = ctx.model(lora_spec(lora, family))
                if _inject(held, module, target, lora):
                    names.append(held.name)
                    weights.append(lora.strength if target == "unet" else lora.text_strength)
            if names:
                if target == "unet":
                    module.set_adapters(names, weights)
                else:
                    set_weights_and_activate_adapters(module, names, weights)
                set_adapter_layers(module, enabled=True)
            else:
                _deactivate(module)
        yield
    finally:
        for module in targets.values():
            _deactivate(module)


# ---------------------------------------------------------------------- the op
def _check_lora(params: dict[str, Any]) -> dict[str, Any]:
    path = params.get("path")
    if not isinstance(path, (str, os.PathLike)):
        raise ModelNotFoundError(f"a LoRA is given by its file path, got {type(path).__name__}",
                                 where="lora", fix="ckpt.lora('path/to/lora.safetensors')")
    file = Path(os.fspath(path)).expanduser()
    if file.is_dir():
        found = sorted(file.glob("*.safetensors"))
        if len(found) != 1:
            raise ModelNotFoundError(f"{file} holds {len(found)} .safetensors files",
                                     where="lora", fix="pass the LoRA file itself")
        file = found[0]
    if not file.is_file():
        raise ModelNotFoundError(f"no such LoRA file: {path}", where="lora",
                                 fix="check the path")
    params["path"], params["stamp"] = file_stamp(file)
    params["strength"] = as_float("lora", "strength", params.get("strength", 1.0),
                                  lo=-10.0, hi=10.0)
    if params.get("text_strength") is not None:
        params["text_strength"] = as_float("lora", "text_strength", params["text_strength"],
                                           lo=-10.0, hi=10.0)
    return params


def _run_lora(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> CheckpointRef:
    base: CheckpointRef = inputs["checkpoint"]
    text = params.get("text_strength")
    ref = LoraRef(params["path"], params["stamp"], params["strength"],
                  params["strength"] if text is None else text)
    return replace(base, loras=(*base.loras, ref))


register(OpSpec(
    name="lora", output=PortType.CHECKPOINT,
    inputs=(Port("checkpoint", (PortType.CHECKPOINT,)),), run=_run_lora,
    params=("path", "stamp", "strength", "text_strength"), check=_check_lora,
    doc="A checkpoint with a LoRA applied to its UNet and text encoder(s)."))
