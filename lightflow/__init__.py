"""lightflow: lazy, cached image-diffusion workflows for Jupyter, built on diffusers.

    >>> import lightflow as lf
    >>> sd = lf.checkpoint()                                  # embedded digits model
    >>> flow = lf.prompt("a red seven").encode(sd).sample(sd, steps=20, seed=1).decode(sd)
    >>> flow                                                  # doctest: +ELLIPSIS
    <Node decode() #...>
"""

from __future__ import annotations

from . import nodes as _nodes  # noqa: F401  (registers the node library)
from . import preview as _preview  # noqa: F401  (registers proxy ops and draft rules)
from .api import checkpoint, hold, image, prompt
from .errors import (
    CycleError,
    FlowFormatError,
    LightflowError,
    MissingInputError,
    ModelLoadError,
    ModelNotFoundError,
    ParameterError,
    PoolError,
    ProxyInFinalError,
    RunInterrupted,
    TypeMismatchError,
    UnsafeFileError,
)
from .graph.events import NodeFinished, NodeStarted, PreviewReady, RunFinished, StepEvent
from .graph.executor import Run
from .graph.node import Node
from .graph.serialize import GraphBuilder, from_json
from .graph.types import PortType
from .nodes.control import controlnet, t2i_adapter
from .nodes.schedulers import SCHEDULERS, scheduler_table
from .pool import get_pool as _get_pool
from .preview import fit_latent_rgb
from .recipe import load_recipe, save_image
from .runtime import draft, final, get_executor, get_settings

__version__ = "0.1.0"


def explore(flow: Node, **controls: object) -> object:
    """Sliders and inputs for a flow's parameters: draft previews while a control moves,
    the final image once it settles. ``lf.explore(flow, seed=(0, 1000), cfg=(1.0, 12.0))``
    (needs ipywidgets: ``pip install lightflow[notebook]``)."""
    from .widgets.explore import explore as _explore

    return _explore(flow, **controls)


def from_comfy(source: object, models: object = None, **options: object) -> Node | list[Node]:
    """A ComfyUI workflow (API or UI format: a path, JSON text or dict) as lightflow
    flow(s): one IMAGE node per SaveImage/PreviewImage node, a list when several.
    ``models=`` is a ComfyUI-style models folder or a mapping; see
    :func:`lightflow.interop.comfy.from_comfy`. ``flow.to_comfy()`` writes one back.

        >>> flow = lf.from_comfy("workflow_api.json", models="ComfyUI/models")  # doctest: +SKIP
    """
    from .interop.comfy import from_comfy as _from_comfy

    return _from_comfy(source, models, **options)  # type: ignore[arg-type]


pool = _get_pool()
settings = get_settings()

__all__ = [
    "SCHEDULERS",
    "CycleError",
    "FlowFormatError",
    "GraphBuilder",
    "LightflowError",
    "MissingInputError",
    "ModelLoadError",
    "ModelNotFoundError",
    "Node",
    "NodeFinished",
    "NodeStarted",
    "ParameterError",
    "PoolError",
    "PortType",
    "PreviewReady",
    "ProxyInFinalError",
    "Run",
    "RunFinished",
    "RunInterrupted",
    "StepEvent",
    "TypeMismatchError",
    "UnsafeFileError",
    "checkpoint",
    "controlnet",
    "draft",
    "explore",
    "final",
    "fit_latent_rgb",
    "from_comfy",
    "from_json",
    "get_executor",
    "hold",
    "image",
    "load_recipe",
    "pool",
    "prompt",
    "save_image",
    "scheduler_table",
    "settings",
    "t2i_adapter",
]
