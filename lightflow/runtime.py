"""The kernel's executor, output cache and settings, and the draft/final mode switch.

They live in the kernel-state module (see :mod:`lightflow.pool`), so re-importing or
reloading lightflow keeps cached results as well as loaded models.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .graph.cache import OutputCache
from .graph.executor import Executor
from .pool import get_pool, kernel_state
from .settings import DraftSettings, Settings

__all__ = ["current_draft", "current_mode", "draft", "final", "get_executor", "get_settings"]

_MODE: contextvars.ContextVar[tuple[str, DraftSettings | None]] = contextvars.ContextVar(
    "lightflow_mode", default=("final", None))


def get_settings() -> Settings:
    state = kernel_state()
    if getattr(state, "settings", None) is None:
        state.settings = Settings()
    return state.settings


def get_executor() -> Executor:
    state = kernel_state()
    executor = getattr(state, "executor", None)
    if executor is None:
        executor = Executor(OutputCache(), get_pool(), get_settings())
        state.executor = executor
    return executor


def current_mode() -> str:
    return _MODE.get()[0]


def current_draft() -> DraftSettings:
    return _MODE.get()[1] or get_settings().draft


@contextmanager
def draft(**options: Any) -> Iterator[DraftSettings]:
    """Run flows in draft mode inside the block: a proxy decoder instead of the VAE and,
    by option, capped steps (``max_steps``), a null sampler, a simple text encoder.

        >>> with lf.draft(max_steps=4):     # doctest: +SKIP
        ...     img = flow.image()           # recorded as mode "draft"
    """
    base = get_settings().draft
    settings = DraftSettings(**{**base.__dict__, **options})
    token = _MODE.set(("draft", settings))
    try:
        yield settings
    finally:
        _MODE.reset(token)


@contextmanager
def final() -> Iterator[None]:
    """Run flows in final mode inside the block (no proxy is ever used)."""
    token = _MODE.set(("final", None))
    try:
        yield
    finally:
        _MODE.reset(token)


def output_cache() -> Any:
    return get_executor().cache
