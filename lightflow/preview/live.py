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

    A preview is made when (preview time so far + its expected cost) stays within
    ``budget`` x sampling time so far. The expected cost is the last measured one, else
    the ``estimate`` the caller gives (a cost remembered from earlier runs, or a prior);
    ``every`` skips steps regardless.
    """

    def __init__(self, budget: float, every: int = 1):
        self.budget = budget
        self.every = max(1, every)
        self.spent = 0.0
        self.last_cost: float | None = None
        self.made = 0
        self.skipped = 0

    def allow(self, step: int, total: int, sampling_seconds: float,
              estimate: float = 0.0) -> bool:
        if step % self.every and step != total:
            return False
        expected = self.last_cost if self.last_cost is not None else estimate
        ok = self.spent + expected <= self.budget * sampling_seconds
        if not ok:
            self.skipped += 1
        return ok

    def record(self, seconds: float) -> None:
        self.spent += seconds
        self.last_cost = seconds
        self.made += 1


#: Measured preview cost per (decoder, latent shape, device), kept for later runs.
_COSTS: dict[tuple[str, tuple[int, ...], str], float] = {}


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
        key = (decoder.name, tuple(state.x0.shape), str(state.x0.device))
        # never measured: a network decoder is assumed to cost about one sampling step,
        # a linear map nothing (both are replaced by the measured cost after one preview)
        prior = sampling / state.step if decoder.name == "taesd" else 0.0
        if not throttle.allow(state.step, state.total, sampling, _COSTS.get(key, prior)):
            return
        t0 = time.perf_counter()
        image = to_uint8(decoder.decode(state.x0))
        cost = time.perf_counter() - t0
        _COSTS[key] = cost
        throttle.record(cost)
        ctx.preview_ready(state.step, state.total, image, decoder.name, cost)
        ctx.info["previews"] = {"made": throttle.made, "skipped": throttle.skipped,
                                "seconds": throttle.spent, "decoder": decoder.name}

    return hook
