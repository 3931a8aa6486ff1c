"""What the pool stores and hands out: requests (ModelSpec), resident entries, leases,
plans, and the byte counting they rely on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .source import Source

if TYPE_CHECKING:
    from .pool import ModelPool

__all__ = ["DEFAULT_CAPS", "KIND_OF_COMPONENT", "Entry", "Lease", "ModelSpec", "Plan",
           "module_bytes", "tier_of"]


KIND_OF_COMPONENT = {
    "unet": "UNET", "vae": "VAE", "text_encoder": "TEXT_ENCODER",
    "text_encoder_2": "TEXT_ENCODER", "tokenizer": "TOKENIZER", "tokenizer_2": "TOKENIZER",
    "scheduler": "SCHEDULER", "taesd": "TAESD", "controlnet": "CONTROLNET",
    "adapter": "ADAPTER", "lora": "LORA",
}
DEFAULT_CAPS = {"VAE": 3, "LORA": 5}


def tier_of(device: str) -> str:
    return "gpu" if str(device).startswith("cuda") else "cpu"


def module_bytes(obj: Any) -> int:
    """Bytes held by a module's parameters and buffers (each storage counted once)."""
    if not isinstance(obj, torch.nn.Module):
        return int(getattr(obj, "nbytes", 0) or 0)
    seen: set[int] = set()
    total = 0
    for tensor in [*obj.parameters(), *obj.buffers()]:
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen:
            continue
        seen.add(ptr)
        total += tensor.untyped_storage().nbytes()
    return total


@dataclass(frozen=True)
class ModelSpec:
    """What a node asks the pool for. ``loader`` overrides the checkpoint loader (LoRA
    files, standalone components); ``identity`` then names the weights."""

    source: Source
    component: str
    dtype: str = "float32"
    device: str = "cpu"
    kind: str = ""
    loader: Callable[[], Any] | None = field(default=None, compare=False, hash=False)
    identity: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        ident = self.identity or self.source.identity(self.component)
        return (ident, self.component, self.dtype, self.device)

    @property
    def entry_kind(self) -> str:
        return self.kind or KIND_OF_COMPONENT.get(self.component, self.component.upper())

    def estimate_bytes(self) -> int:
        size = torch.empty((), dtype=getattr(torch, self.dtype)).element_size()
        try:
            return self.source.weight_bytes(self.component, float_size=size)
        except Exception:  # a corrupt header is reported when loading, not when planning
            return 0

    def label(self) -> str:
        name = self.source.location.rstrip("/").rsplit("/", 1)[-1]
        return f"{name}/{self.component}"


@dataclass
class Entry:
    """One resident model."""

    key: tuple[str, str, str, str]
    kind: str
    label: str
    obj: Any
    bytes: int
    device: str
    home: str
    users: int = 0
    holders: dict[int, int] = field(default_factory=dict)
    last_used: float = field(default_factory=time.time)
    loaded_at: float = field(default_factory=time.time)

    @property
    def tier(self) -> str:
        return tier_of(self.device)

    def row(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "kind": self.kind, "bytes": self.bytes,
                "device": self.device, "users": self.users, "last_used": self.last_used}


class Lease:
    """A held model: ``with pool.acquire(spec) as model: ...`` (released exactly once)."""

    def __init__(self, pool: ModelPool, entry: Entry):
        self._pool = pool
        self.entry = entry
        self.model = entry.obj
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self.entry)

    def __enter__(self) -> Any:
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class Plan:
    """What running a set of models needs: bytes per tier, what must go, whether it fits."""

    needed: list[str]
    to_load: list[str]
    bytes_needed: dict[str, int]
    evict: list[str]
    fits: bool
    largest: int
    warnings: list[str]
