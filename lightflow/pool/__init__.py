"""The kernel-resident model pool (``lf.pool``) and what it is built from.

The pool lives in a module of its own in ``sys.modules`` (``_lightflow_kernel``), so
``importlib.reload(lightflow)`` and re-running ``import lightflow`` cells keep the
same pool object and its resident models.
"""

from __future__ import annotations

import sys
import types

from .entries import Entry, Lease, ModelSpec, Plan, module_bytes, tier_of
from .memory import format_bytes, gpu_memory, host_memory, parse_bytes, torch_allocator
from .pool import ModelPool
from .source import BUILTIN, Source, resolve_source, safetensors_bytes

__all__ = [
    "BUILTIN",
    "Entry",
    "Lease",
    "ModelPool",
    "ModelSpec",
    "Plan",
    "Source",
    "format_bytes",
    "get_pool",
    "gpu_memory",
    "host_memory",
    "kernel_state",
    "module_bytes",
    "parse_bytes",
    "resolve_source",
    "safetensors_bytes",
    "tier_of",
    "torch_allocator",
]


def kernel_state() -> types.ModuleType:
    """The per-process holder of state that must survive reloads (pool, output cache)."""
    state = sys.modules.get("_lightflow_kernel")
    if state is None:
        state = types.ModuleType("_lightflow_kernel", "lightflow state kept across reloads")
        sys.modules["_lightflow_kernel"] = state
    return state


def get_pool() -> ModelPool:
    """The kernel's one model pool (created on first use)."""
    state = kernel_state()
    pool = getattr(state, "pool", None)
    if pool is None:
        pool = ModelPool()
        state.pool = pool
    return pool
