"""Live previews while sampling: decode x0 (the predicted clean latent) of the first image
with a proxy decoder, emit it as an event, and throttle by measured cost so previews
never take more than ``settings.preview_budget`` (5%) of sampling time."""

from __future__ import annotations

import time
from typing import Any

from .base import to_uint8
from .choose import choose_proxy

__all__ = ["PreviewThrottle", "make_preview_hook"]


class PreviewThrottle:
    """Decides, step by step, whether a preview fits the time budget.

    A preview is made when (preview time so far + the last preview's cost) stays within
    ``budget`` x sampling time so far; the first preview is always made (to measure it),
    and ``every`` skips steps regardless.
    """

    def __init__(self, budget: float, every: int = 1):
        self.budget = budget
        self.every = max(1, every)
        self.spent = 0.0
        self.last_cost: float | None = None
        self.made = 0
        self.skipped = 0

    def allow(self, step: int, total: int, sampling_seconds: float) -> bool:
        if step % self.every and step != total:
            return False
        if self.last_cost is None:
            return True
        ok = self.spent + self.last_cost <= self.budget * sampling_seconds
        if not ok:
            self.skipped += 1
        return ok

    def record(self, seconds: float) -> None:
        self.spent += seconds
        self.last_cost = seconds
        self.made += 1


def make_preview_hook(settings: Any, ctx: Any, ref: Any) -> Any:
    if settings.preview is None:
        return None
    decoder = choose_proxy(settings.preview, ref.checkpoint, settings, ctx.model)
    throttle = PreviewThrottle(settings.preview_budget, settings.preview_every)
    started = time.perf_counter()

    def hook(state: Any) -> None:
        if state.x0 is None:
            return
        sampling = time.perf_counter() - started - throttle.spent
        if not throttle.allow(state.step, state.total, sampling):
            return
        t0 = time.perf_counter()
        image = to_uint8(decoder.decode(state.x0))
        cost = time.perf_counter() - t0
        throttle.record(cost)
        ctx.preview_ready(state.step, state.total, image, decoder.name, cost)
        ctx.info["previews"] = {"made": throttle.made, "skipped": throttle.skipped,
                                "seconds": throttle.spent, "decoder": decoder.name}

    return hook
