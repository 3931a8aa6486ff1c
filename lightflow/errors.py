"""Every error lightflow raises is a :class:`LightflowError`.

Messages say what was wrong, where (the node or argument), and how to fix it::

    >>> raise ParameterError("steps must be >= 1, got 0", where="sample", fix="pass steps=20")
    Traceback (most recent call last):
    lightflow.errors.ParameterError: sample: steps must be >= 1, got 0. Fix: pass steps=20
"""

from __future__ import annotations

__all__ = [
    "CycleError",
    "FlowFormatError",
    "LightflowError",
    "MissingInputError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ParameterError",
    "PoolError",
    "ProxyInFinalError",
    "RunInterrupted",
    "TypeMismatchError",
    "UnsafeFileError",
]


class LightflowError(Exception):
    """Base class of every lightflow error.

    ``where`` names the node or argument at fault; ``fix`` says how to repair it.
    """

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None):
        self.message = message
        self.where = where
        self.fix = fix
        text = f"{where}: {message}" if where else message
        if fix:
            text = f"{text.rstrip('.')}. Fix: {fix}"
        super().__init__(text)


class TypeMismatchError(LightflowError, TypeError):
    """A node got an input of the wrong port type (found while building the chain)."""


class ParameterError(LightflowError, ValueError):
    """A literal parameter is out of range or of the wrong kind."""


class MissingInputError(LightflowError):
    """A node lacks a required input."""


class CycleError(LightflowError):
    """The graph has a cycle (possible through the low-level API or imported workflows)."""


class FlowFormatError(LightflowError, ValueError):
    """A saved flow, recipe or workflow file cannot be read."""


class ModelNotFoundError(LightflowError, FileNotFoundError):
    """A checkpoint or model file does not exist."""


class ModelLoadError(LightflowError):
    """A model file exists but cannot be loaded (corrupt, truncated, wrong component)."""


class UnsafeFileError(ModelLoadError):
    """A file would run code when loaded (a pickle with executable payload)."""


class PoolError(LightflowError):
    """The model pool cannot satisfy a request (budget too small, bad release...)."""


class ProxyInFinalError(LightflowError):
    """A flow that contains a proxy node was run in final mode."""


class RunInterrupted(LightflowError):
    """A run was stopped (stop flag or KeyboardInterrupt); nothing partial was cached.

    ``node`` is the node that was running and ``step`` the sampling step reached.
    """

    def __init__(self, message: str, *, where: str | None = None, step: int | None = None,
                 total: int | None = None):
        super().__init__(message, where=where)
        self.step = step
        self.total = total
