"""Memory readings: host (psutil), GPU (pynvml, falling back to torch), torch allocator.

Every reading degrades cleanly: no NVML or no GPU gives ``{"available": False,
"reason": ...}``, never an exception.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import psutil

__all__ = ["format_bytes", "gpu_memory", "host_memory", "parse_bytes", "torch_allocator"]

log = logging.getLogger("lightflow.pool")
_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2,
          "MIB": 1024**2, "G": 1024**3, "GB": 1024**3, "GIB": 1024**3, "T": 1024**4,
          "TB": 1024**4, "TIB": 1024**4}


def parse_bytes(value: str | int | float) -> int:
    """``"6GB"`` / ``"512 MiB"`` / ``1024`` → bytes (binary units)."""
    from ..errors import ParameterError

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ParameterError(f"a memory size must be >= 0, got {value}", where="budget")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).upper() not in _UNITS:
        raise ParameterError(f"cannot read {value!r} as a memory size", where="budget",
                             fix='write it like "6GB", "512MB" or a number of bytes')
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def format_bytes(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def host_memory(private: bool = False) -> dict[str, int]:
    """This process's RSS (and USS/PSS when ``private``), the machine's available and total."""
    proc = psutil.Process(os.getpid())
    vm = psutil.virtual_memory()
    out = {"rss": proc.memory_info().rss, "available": vm.available, "total": vm.total}
    if private:
        try:
            full = proc.memory_full_info()
            out["uss"] = full.uss
            out["pss"] = getattr(full, "pss", full.uss)
        except (psutil.AccessDenied, AttributeError):
            pass
    return out


def gpu_memory() -> dict[str, Any]:
    """Per-device used/free/total bytes from NVML, else torch; says why when unavailable."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return {"available": False, "reason": "torch is not installed", "devices": []}
    if not torch.cuda.is_available():
        return {"available": False, "reason": "no CUDA GPU visible to torch", "devices": []}
    devices: list[dict[str, Any]] = []
    source = "nvml"
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            for index in range(torch.cuda.device_count()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                info = pynvml.nvmlDeviceGetMemoryInfo(handle)
                name = pynvml.nvmlDeviceGetName(handle)
                devices.append({"index": index, "name": name if isinstance(name, str)
                                else name.decode(), "used": int(info.used),
                                "free": int(info.free), "total": int(info.total)})
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # NVML missing or refused: torch's view instead
        log.debug("NVML unavailable (%s); using torch.cuda.mem_get_info", exc)
        source = "torch"
        devices = []
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            devices.append({"index": index, "name": torch.cuda.get_device_name(index),
                            "used": total - free, "free": free, "total": total})
    return {"available": True, "source": source, "devices": devices}


def torch_allocator() -> dict[str, Any]:
    """torch's CUDA allocator counters (allocated, reserved, peak) per device, if any."""
    import torch

    if not torch.cuda.is_available():
        return {"available": False, "reason": "no CUDA GPU visible to torch"}
    return {"available": True, "devices": [
        {"index": i, "allocated": torch.cuda.memory_allocated(i),
         "reserved": torch.cuda.memory_reserved(i),
         "peak_allocated": torch.cuda.max_memory_allocated(i)}
        for i in range(torch.cuda.device_count())]}
