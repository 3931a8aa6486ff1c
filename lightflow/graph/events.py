"""Events the executor emits while a flow runs; views (widgets, tqdm, logs) listen.

    >>> seen = []
    >>> bus = EventBus()
    >>> unsubscribe = bus.subscribe(seen.append)
    >>> bus.emit(RunStarted(run_id=1, node=None, mode="final", total_nodes=3))
    >>> type(seen[0]).__name__
    'RunStarted'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .node import Node

__all__ = [
    "Event",
    "EventBus",
    "Listener",
    "NodeFailed",
    "NodeFinished",
    "NodeStarted",
    "PreviewReady",
    "RunFinished",
    "RunStarted",
    "StepEvent",
]

log = logging.getLogger("lightflow")


@dataclass(frozen=True)
class Event:
    run_id: int
    node: Node | None


@dataclass(frozen=True)
class RunStarted(Event):
    mode: str
    total_nodes: int


@dataclass(frozen=True)
class RunFinished(Event):
    ok: bool
    seconds: float
    error: BaseException | None = None


@dataclass(frozen=True)
class NodeStarted(Event):
    pass


@dataclass(frozen=True)
class NodeFinished(Event):
    seconds: float
    cached: bool


@dataclass(frozen=True)
class NodeFailed(Event):
    error: BaseException


@dataclass(frozen=True)
class StepEvent(Event):
    """One sampling step done. ``latent`` is x_t after the step, ``x0`` the predicted
    clean latent for the first image of the batch (both detached, on the CPU side of the
    caller's choice)."""

    step: int  # 1-based: steps done so far
    total: int
    timestep: float
    latent: torch.Tensor
    x0: torch.Tensor | None
    elapsed: float


@dataclass(frozen=True)
class PreviewReady(Event):
    """A preview image (RGB uint8 numpy array HxWx3) made from x0 at ``step``."""

    step: int
    total: int
    image: Any
    decoder: str
    seconds: float = field(default=0.0)


Listener = Callable[[Event], None]


class EventBus:
    """Thread-safe fan-out of events. A failing listener is logged, never breaks a run."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a view's bug must not break the run
                log.exception("event listener %r failed on %s", listener, type(event).__name__)
