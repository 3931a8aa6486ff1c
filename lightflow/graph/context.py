"""What an op's ``run`` function gets: models from the pool, events, stop checks."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ..errors import RunInterrupted
from .events import EventBus, PreviewReady, StepEvent

if TYPE_CHECKING:
    import torch

    from ..pool import ModelPool, ModelSpec
    from .node import Node

__all__ = ["RunContext"]


class RunContext:
    """Per-node services. Models acquired through :meth:`model` are held until the node
    finishes (so they cannot be evicted mid-use) and released even when it fails."""

    def __init__(self, *, run_id: int, node: Node, mode: str, bus: EventBus, pool: ModelPool,
                 stop: threading.Event, settings: Any):
        self.run_id = run_id
        self.node = node
        self.mode = mode
        self.bus = bus
        self.pool = pool
        self.stop = stop
        self.settings = settings
        self._leases = ExitStack()
        self.step = 0
        self.total_steps = 0
        self.info: dict[str, Any] = {}

    def model(self, spec: ModelSpec) -> Any:
        """The model for ``spec``, held by this node until it finishes."""
        return self._leases.enter_context(self.pool.acquire(spec))

    def release_models(self) -> None:
        self._leases.close()

    def check_stop(self) -> None:
        """Raise :class:`RunInterrupted` if a stop was requested (call between steps)."""
        if self.stop.is_set():
            raise RunInterrupted(f"stopped at step {self.step}/{self.total_steps}",
                                 where=self.node.label(), step=self.step, total=self.total_steps)

    def step_done(self, step: int, total: int, timestep: float, latent: torch.Tensor,
                  x0: torch.Tensor | None, started: float) -> None:
        self.step, self.total_steps = step, total
        self.bus.emit(StepEvent(self.run_id, self.node, step, total, float(timestep), latent, x0,
                                time.perf_counter() - started))

    def preview_ready(self, step: int, total: int, image: Any, decoder: str,
                      seconds: float) -> None:
        self.bus.emit(PreviewReady(self.run_id, self.node, step, total, image, decoder, seconds))
