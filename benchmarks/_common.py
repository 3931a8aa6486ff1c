"""Shared helpers: timing by medians, tiny model building, result records."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class Result:
    """One benchmark row: a measured ratio against a goal."""

    name: str
    metric: str
    value: float
    goal: str
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def interleaved_medians(fns: dict[str, Callable[[int], Any]], repeats: int,
                        warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, calls interleaved (a, b, a, b, ...) so that machine
    noise hits both sides alike. Each call gets the iteration index."""
    for i in range(warmup):
        for fn in fns.values():
            fn(-1 - i)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn(i)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(ts) for name, ts in times.items()}
