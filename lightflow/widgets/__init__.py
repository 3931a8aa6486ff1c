"""Views of flows, the pool and explore(): ipywidgets in notebooks, tqdm and logging
elsewhere. Nothing in the core imports this package; names load lazily so that
``lightflow.widgets.progress`` works without ipywidgets installed.

    >>> from lightflow.widgets import FlowWidget, PoolWidget             # doctest: +SKIP
    >>> from lightflow.widgets.explore import explore                    # doctest: +SKIP
    >>> from lightflow.widgets.progress import TqdmProgress              # no ipywidgets

``explore`` is the submodule's name here (a package attribute cannot be both the
function and the submodule); the function is ``lightflow.widgets.explore.explore``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Explorer",
    "FlowWidget",
    "PoolWidget",
    "TqdmProgress",
    "flow_widget_bundle",
    "log_events",
    "pool_widget_bundle",
]

_WHERE = {
    "Explorer": "explore",
    "FlowWidget": "flow_view", "flow_widget_bundle": "flow_view",
    "PoolWidget": "pool_view", "pool_widget_bundle": "pool_view",
    "TqdmProgress": "progress", "log_events": "progress",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
