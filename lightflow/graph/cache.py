"""The output cache: node results keyed by run key, bounded in bytes, LRU-evicted."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

__all__ = ["OutputCache", "nbytes_of"]


def nbytes_of(value: Any) -> int:
    """Best-effort size in bytes of a node result (tensors, arrays, images, containers)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if hasattr(value, "element_size") and hasattr(value, "nelement"):
        return int(value.element_size() * value.nelement())
    if hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "getbands"):
        width, height = value.size
        return width * height * len(value.getbands())
    if isinstance(value, (list, tuple)):
        return sum(nbytes_of(v) for v in value)
    if isinstance(value, dict):
        return sum(nbytes_of(v) for v in value.values())
    fields = getattr(value, "__dataclass_fields__", None)
    if fields:
        return sum(nbytes_of(getattr(value, name)) for name in fields)
    return 64


class OutputCache:
    """Least-recently-used cache of node outputs, bounded by total bytes.

    A value larger than the whole budget is not cached (the run still returns it).
    """

    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return False, None
            self._items.move_to_end(key)
            self.hits += 1
            return True, item[0]

    def put(self, key: str, value: Any) -> None:
        size = nbytes_of(value)
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, old) = self._items.popitem(last=False)
                self._bytes -= old
                self.evictions += 1

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = max_bytes
            while self._bytes > self.max_bytes and self._items:
                _, (_, old) = self._items.popitem(last=False)
                self._bytes -= old
                self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
