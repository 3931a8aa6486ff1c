"""Parameter checks shared by the node families. Each raises ParameterError naming
the op and argument and saying how to fix it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from ..pool.source import file_stamp as _stamp

MAX_SIDE = 8192
MAX_SEED = 2**64 - 1
MAX_STEPS = 10_000
MAX_BATCH = 64


def as_int(op: str, name: str, value: Any, *, lo: int | None = None, hi: int | None = None,
           fix: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise ParameterError(f"{name} must be a whole number, got {value!r}", where=op,
                             fix=fix or f"pass an integer {name}")
    value = int(value)
    if lo is not None and value < lo:
        raise ParameterError(f"{name} must be >= {lo}, got {value}", where=op,
                             fix=fix or f"pass {name}={lo} or more")
    if hi is not None and value > hi:
        raise ParameterError(f"{name} must be <= {hi}, got {value}", where=op,
                             fix=fix or f"pass {name}={hi} or less")
    return value


def as_float(op: str, name: str, value: Any, *, lo: float | None = None,
             hi: float | None = None, lo_open: bool = False, fix: str | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{name} must be a number, got {value!r}", where=op,
                             fix=fix or f"pass a number for {name}")
    value = float(value)
    if not math.isfinite(value):
        raise ParameterError(f"{name} must be finite, got {value}", where=op,
                             fix=fix or f"pass a finite {name}")
    if lo is not None and (value < lo or (lo_open and value <= lo)):
        bound = f"> {lo}" if lo_open else f">= {lo}"
        raise ParameterError(f"{name} must be {bound}, got {value}", where=op,
                             fix=fix or f"pass {name} {bound}")
    if hi is not None and value > hi:
        raise ParameterError(f"{name} must be <= {hi}, got {value}", where=op,
                             fix=fix or f"pass {name} <= {hi}")
    return value


def as_side(op: str, name: str, value: Any, multiple: int = 8) -> int | None:
    if value is None:
        return None
    side = as_int(op, name, value, lo=multiple, hi=MAX_SIDE)
    if side % multiple:
        lower = side - side % multiple
        raise ParameterError(f"{name} must be a multiple of {multiple}, got {side}", where=op,
                             fix=f"use {lower or multiple} or {lower + multiple}")
    return side


def as_seed(op: str, value: Any) -> int:
    return as_int(op, "seed", value, lo=0, hi=MAX_SEED,
                  fix=f"pass a seed between 0 and {MAX_SEED}")


def as_text(op: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ParameterError(f"{name} must be text, got {type(value).__name__}", where=op,
                             fix=f'pass {name}="..."')
    return value


def file_stamp(file: Path) -> tuple[str, str]:
    """(resolved path, "size:mtime_ns") of an input file: part of a node's key, so editing
    the file re-runs what depends on it."""
    return str(file.resolve()), _stamp(file)
