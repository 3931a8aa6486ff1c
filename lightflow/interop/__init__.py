"""Interoperability: ComfyUI workflows in and out.

    >>> from lightflow.interop import from_comfy, to_comfy
    >>> flow = from_comfy("workflow_api.json", models="ComfyUI/models")   # doctest: +SKIP
    >>> workflow = to_comfy(flow)                                          # doctest: +SKIP
"""

from __future__ import annotations

from .comfy import from_comfy, load_workflow, to_comfy
from .comfy_schema import NODES, SAMPLERS, sampler_table

__all__ = ["NODES", "SAMPLERS", "from_comfy", "load_workflow", "sampler_table", "to_comfy"]
