"""The model pool: the one owner of model weights in a kernel.

Nodes ask for a model by :class:`ModelSpec` (source identity, component, dtype,
device) and hold a :class:`Lease` while they use it. Models load lazily, are shared by
every flow, stay resident when idle (re-running a cell is free) and are offloaded
(device → host) or dropped, least recently used first, when a budget or a per-kind cap
needs room. A model in use is never moved or dropped.

    >>> import lightflow as lf
    >>> lf.pool.set_budget(cpu="12GB")          # doctest: +SKIP
    >>> with lf.pool.acquire(spec) as unet:     # doctest: +SKIP
    ...     unet(...)
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..errors import PoolError
from .entries import DEFAULT_CAPS, Entry, Lease, ModelSpec, Plan, module_bytes, tier_of
from .loaders import load_component
from .memory import format_bytes, gpu_memory, host_memory, parse_bytes, torch_allocator

__all__ = ["ModelPool"]

log = logging.getLogger("lightflow.pool")

class ModelPool:
    """The kernel's model pool. Thread-safe; reach the kernel's one instance as ``lf.pool``."""

    def __init__(self, *, cpu: int | str | None = None, gpu: int | str | None = None,
                 wait_timeout: float = 30.0):
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._entries: dict[tuple[str, str, str, str], Entry] = {}
        self.caps: dict[str, int] = dict(DEFAULT_CAPS)
        self.wait_timeout = wait_timeout
        self.budgets = {"cpu": _default_cpu_budget(), "gpu": _default_gpu_budget()}
        self.warn_fraction = 0.9
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.stats: dict[str, Any] = {}
        self.reset_stats()
        self.set_budget(cpu=cpu, gpu=gpu)

    # ----------------------------------------------------------------- configuration
    def set_budget(self, *, cpu: int | str | None = None, gpu: int | str | None = None) -> None:
        """Budgets per tier, e.g. ``set_budget(gpu="6GB", cpu="12GB")``; idle models are
        offloaded or dropped at once if over."""
        with self._lock:
            if cpu is not None:
                self.budgets["cpu"] = parse_bytes(cpu)
            if gpu is not None:
                self.budgets["gpu"] = parse_bytes(gpu)
            for tier in ("gpu", "cpu"):
                try:
                    self._make_room(tier, 0, kind=None, exclude=(), wait=False)
                except PoolError:
                    log.warning("models in use exceed the new %s budget", tier)
            self._emit("budget", {"budgets": dict(self.budgets)})

    def set_cap(self, kind: str, count: int) -> None:
        """At most ``count`` resident models of ``kind`` (e.g. ``set_cap("VAE", 2)``)."""
        from ..errors import ParameterError

        if count < 1:
            raise ParameterError(f"a cap must be >= 1, got {count}", where=f"set_cap({kind!r})")
        with self._lock:
            self.caps[kind.upper()] = int(count)

    def reset_stats(self) -> None:
        with self._lock:
            self.stats = {"loads": 0, "hits": 0, "evictions": 0, "offloads": 0, "onloads": 0,
                          "bytes_loaded": 0, "loads_by_component": {},
                          "peak_bytes": {"cpu": self.resident_bytes("cpu"),
                                         "gpu": self.resident_bytes("gpu")}}

    def subscribe(self, listener: Callable[[str, dict[str, Any]], None]) -> Callable[[], None]:
        """Listen to pool events (``load``, ``hit``, ``evict``, ``offload``, ``release``...)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # ----------------------------------------------------------------- acquiring
    def acquire(self, spec: ModelSpec) -> Lease:
        """The model for ``spec``, loaded if needed and held until the lease is released."""
        key = spec.key
        me = threading.get_ident()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if entry.device != entry.home:
                    self._make_room(tier_of(entry.home), entry.bytes, kind=None, exclude=(key,))
                    entry.obj = _move(entry.obj, entry.home)
                    entry.device = entry.home
                    self.stats["onloads"] += 1
                    self._track_peak()
                self.stats["hits"] += 1
                event = "hit"
            else:
                entry = self._load(spec)
                event = "load"
            entry.users += 1
            entry.holders[me] = entry.holders.get(me, 0) + 1
            entry.last_used = time.time()
            self._emit(event, entry.row())
            return Lease(self, entry)

    def _load(self, spec: ModelSpec) -> Entry:
        kind = spec.entry_kind
        tier = tier_of(spec.device)
        estimate = spec.estimate_bytes()
        self._enforce_cap(kind)
        self._make_room(tier, estimate, kind=kind, exclude=())
        if spec.loader is not None:
            obj = spec.loader()
            if isinstance(obj, torch.nn.Module):
                obj = obj.to(device=spec.device).eval()
        else:
            obj = load_component(spec.source, spec.component, getattr(torch, spec.dtype),
                                 spec.device)
        size = module_bytes(obj)
        if size > estimate:  # the estimate was short (e.g. .bin files): make room afterwards
            try:
                self._make_room(tier, size, kind=kind, exclude=(), wait=False)
            except PoolError:
                log.warning("%s is larger than estimated and the %s budget is exceeded",
                            spec.label(), tier)
        entry = Entry(spec.key, kind, spec.label(), obj, size, spec.device, spec.device)
        self._entries[spec.key] = entry
        self.stats["loads"] += 1
        self.stats["bytes_loaded"] += size
        by = self.stats["loads_by_component"]
        by[spec.component] = by.get(spec.component, 0) + 1
        self._track_peak()
        self._check_thresholds()
        return entry

    def _release(self, entry: Entry) -> None:
        me = threading.get_ident()
        with self._lock:
            entry.users = max(0, entry.users - 1)
            if entry.holders.get(me):
                entry.holders[me] -= 1
                if not entry.holders[me]:
                    del entry.holders[me]
            elif entry.holders:  # released from another thread than the one that acquired
                other = next(iter(entry.holders))
                entry.holders[other] -= 1
                if not entry.holders[other]:
                    del entry.holders[other]
            entry.last_used = time.time()
            self._cond.notify_all()
            self._emit("idle" if entry.users == 0 else "release", entry.row())

    # ----------------------------------------------------------------- room making
    def resident_bytes(self, tier: str | None = None) -> int:
        with self._lock:
            return sum(e.bytes for e in self._entries.values() if tier in (None, e.tier))

    def _idle_lru(self, tier: str | None, kind: str | None, exclude: Iterable[Any]) -> Entry | None:
        skip = set(exclude)
        idle = [e for e in self._entries.values()
                if e.users == 0 and e.key not in skip and (tier is None or e.tier == tier)
                and (kind is None or e.kind == kind)]
        return min(idle, key=lambda e: e.last_used) if idle else None

    def _enforce_cap(self, kind: str) -> None:
        cap = self.caps.get(kind)
        if cap is None:
            return
        while sum(1 for e in self._entries.values() if e.kind == kind) >= cap:
            victim = self._idle_lru(None, kind, ())
            if victim is None:
                log.warning("all %d %s models are in use; going over the cap", cap, kind)
                return
            self._drop(victim)

    def _make_room(self, tier: str, need: int, *, kind: str | None, exclude: Iterable[Any],
                   wait: bool = True) -> None:
        budget = self.budgets[tier]
        if need > budget:
            raise PoolError(f"a model of {format_bytes(need)} cannot fit the {tier} budget of "
                            f"{format_bytes(budget)}", where="pool",
                            fix=f'raise it: lf.pool.set_budget({tier}="...")')
        deadline = time.monotonic() + self.wait_timeout
        while self.resident_bytes(tier) + need > budget:
            victim = self._idle_lru(tier, None, exclude)
            if victim is not None:
                self._evict(victim)
                continue
            me = threading.get_ident()
            others_busy = any(set(e.holders) - {me} for e in self._entries.values()
                              if e.tier == tier)
            remaining = deadline - time.monotonic()
            if not (wait and others_busy and remaining > 0):
                busy = [e.label for e in self._entries.values() if e.users and e.tier == tier]
                raise PoolError(
                    f"not enough {tier} memory for {format_bytes(need)}: "
                    f"{format_bytes(self.resident_bytes(tier))} of {format_bytes(budget)} "
                    f"is held by models in use ({', '.join(busy) or 'none'})", where="pool",
                    fix=f'raise the budget (lf.pool.set_budget({tier}="...")) or wait for '
                        "the running flow to finish")
            self._cond.wait(timeout=min(remaining, 0.5))

    def _evict(self, entry: Entry) -> None:
        """Offload a device model to the host if the host has room, else drop it."""
        if entry.tier == "gpu":
            try:
                self._make_room("cpu", entry.bytes, kind=None, exclude=(entry.key,), wait=False)
                entry.obj = _move(entry.obj, "cpu")
                entry.device = "cpu"
                self.stats["offloads"] += 1
                _free_memory()
                self._emit("offload", entry.row())
                return
            except PoolError:
                pass
        self._drop(entry)

    def _drop(self, entry: Entry, collect: bool = True) -> None:
        self._entries.pop(entry.key, None)
        was_gpu = entry.tier == "gpu"
        entry.obj = None
        self.stats["evictions"] += 1
        self._emit("evict", entry.row())
        if collect:
            gc.collect()
            if was_gpu:
                _free_memory()

    def _track_peak(self) -> None:
        peak = self.stats["peak_bytes"]
        for tier in ("cpu", "gpu"):
            peak[tier] = max(peak[tier], self.resident_bytes(tier))

    def _check_thresholds(self) -> None:
        for tier in ("cpu", "gpu"):
            used, budget = self.resident_bytes(tier), self.budgets[tier]
            if budget and used > self.warn_fraction * budget:
                log.warning("pool %s memory at %s of %s budget", tier, format_bytes(used),
                            format_bytes(budget))

    # ----------------------------------------------------------------- planning
    def plan(self, specs: Iterable[ModelSpec]) -> Plan:
        """What running with these models needs, before anything loads."""
        with self._lock:
            specs = list({s.key: s for s in specs}.values())
            to_load = [s for s in specs if s.key not in self._entries]
            need = {"cpu": 0, "gpu": 0}
            sizes = {s.key: s.estimate_bytes() for s in to_load}
            for s in to_load:
                need[tier_of(s.device)] += sizes[s.key]
            keys = {s.key for s in specs}
            evict, warnings, fits = [], [], True
            for tier in ("cpu", "gpu"):
                free = self.budgets[tier] - self.resident_bytes(tier)
                if need[tier] <= free:
                    continue
                idle = sorted((e for e in self._entries.values() if e.users == 0 and
                               e.tier == tier and e.key not in keys), key=lambda e: e.last_used)
                for e in idle:
                    if need[tier] <= free:
                        break
                    evict.append(e.label)
                    free += e.bytes
                if need[tier] > free:
                    biggest = max((sizes.get(s.key, 0) for s in to_load
                                   if tier_of(s.device) == tier), default=0)
                    if biggest > self.budgets[tier]:
                        fits = False
                        warnings.append(f"a model of {format_bytes(biggest)} is larger than the "
                                        f"{tier} budget ({format_bytes(self.budgets[tier])})")
                    else:
                        warnings.append(
                            f"the flow's models ({format_bytes(need[tier])} to load) exceed the "
                            f"free {tier} budget; they will be loaded and evicted stage by stage")
            largest = max(sizes.values(), default=0)
            return Plan([s.label() for s in specs], [s.label() for s in to_load], need, evict,
                        fits, largest, warnings)

    # ----------------------------------------------------------------- observing
    def entries(self) -> list[dict[str, Any]]:
        """One row per resident model: key, label, kind, bytes, device, users, last_used."""
        with self._lock:
            return [e.row() for e in sorted(self._entries.values(), key=lambda e: -e.last_used)]

    def find(self, obj: Any) -> dict[str, Any] | None:
        with self._lock:
            for e in self._entries.values():
                if e.obj is obj:
                    return e.row()
        return None

    def memory(self) -> dict[str, Any]:
        """Host (psutil), GPU (pynvml or torch) and torch allocator readings, with budgets."""
        return {"host": host_memory(), "gpu": gpu_memory(), "torch": torch_allocator(),
                "budgets": dict(self.budgets),
                "resident": {"cpu": self.resident_bytes("cpu"),
                             "gpu": self.resident_bytes("gpu")}}

    def release(self, what: Any = None) -> int:
        """Drop idle models: all of them, or those whose label, kind or key matches ``what``.
        Returns how many were dropped; models in use stay."""
        with self._lock:
            victims = [e for e in list(self._entries.values())
                       if e.users == 0 and _matches(e, what)]
            for e in victims:
                self._drop(e, collect=False)
            if victims:
                _free_memory()
            return len(victims)

    def clear(self) -> int:
        """Drop every idle model and free their memory. Models in use stay (with a warning)."""
        with self._lock:
            busy = [e.label for e in self._entries.values() if e.users]
            if busy:
                log.warning("lf.pool.clear(): %s in use, kept", ", ".join(busy))
            return self.release()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __repr__(self) -> str:
        with self._lock:
            n = len(self._entries)
            cpu, gpu = self.resident_bytes("cpu"), self.resident_bytes("gpu")
        return (f"<ModelPool {n} model{'s' * (n != 1)}, cpu {format_bytes(cpu)}/"
                f"{format_bytes(self.budgets['cpu'])}, gpu {format_bytes(gpu)}/"
                f"{format_bytes(self.budgets['gpu'])}>")

    def _repr_html_(self) -> str:
        from .html import pool_table

        return pool_table(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": repr(self)}
        try:
            from ..widgets.pool_view import pool_widget_bundle

            bundle.update(pool_widget_bundle(self))
        except ImportError:
            bundle["text/html"] = self._repr_html_()
        return bundle

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, data)
            except Exception:
                log.exception("pool listener failed")


def _matches(entry: Entry, what: Any) -> bool:
    if what is None:
        return True
    if isinstance(what, str):
        return what in (entry.kind, entry.label) or what in entry.label or what == entry.key[1]
    if isinstance(what, tuple):
        return what == entry.key
    return entry.obj is what


def _move(obj: Any, device: str) -> Any:
    return obj.to(device) if isinstance(obj, torch.nn.Module) else obj


def _free_memory() -> None:
    """Give freed memory back: Python objects, glibc's heap (freed tensor storage otherwise
    stays in the process), and torch's CUDA cache."""
    gc.collect()
    _malloc_trim()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _malloc_trim() -> None:
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
        pass


def _default_cpu_budget() -> int:
    total = host_memory()["total"]
    return max(total - max(2 * 1024**3, total // 5), 1024**3)


def _default_gpu_budget() -> int:
    info = gpu_memory()
    if not info["available"] or not info["devices"]:
        return 0
    total = min(d["total"] for d in info["devices"])
    return max(total - max(1024**3, total // 10), 0)
