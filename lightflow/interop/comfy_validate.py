"""Structural checks of an API-format ComfyUI workflow, before anything is built.

Every node must be a known type with exactly the inputs ComfyUI declares for it (no
unknown ones, every required one), links must be ``[node_id, output_index]`` pairs
pointing at an existing node's output of the right type, and widget values must have
the declared type and range. Errors name the node id (and type and input).

    >>> validate_workflow({"1": {"class_type": "Nope", "inputs": {}}})
    Traceback (most recent call last):
    lightflow.errors.FlowFormatError: node 1: unknown class_type 'Nope'...
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from ..errors import FlowFormatError, MissingInputError, ParameterError, TypeMismatchError
from .comfy_schema import NODES, ComfyInput

__all__ = ["check_full_checkpoint", "validate_workflow"]


def validate_workflow(workflow: dict[str, Any]) -> None:
    """Raise a LightflowError naming the first bad node; return None if all is well."""
    if not workflow:
        raise FlowFormatError("the workflow has no nodes", where="from_comfy")
    supported = ", ".join(sorted(NODES))
    for node_id, record in workflow.items():
        if not isinstance(record, dict) or not isinstance(record.get("class_type"), str):
            raise FlowFormatError("each node needs a 'class_type' string and 'inputs'",
                                  where=f"node {node_id}",
                                  fix="save the workflow with 'Save (API Format)'")
        kind = record["class_type"]
        if kind not in NODES:
            raise FlowFormatError(f"unknown class_type {kind!r}", where=f"node {node_id}",
                                  fix=f"supported node types: {supported}")
        inputs = record.get("inputs", {})
        if not isinstance(inputs, dict):
            raise FlowFormatError("'inputs' must be an object", where=f"node {node_id} ({kind})")
        _check_inputs(workflow, node_id, kind, inputs)


def _check_inputs(workflow: dict[str, Any], node_id: str, kind: str,
                  inputs: dict[str, Any]) -> None:
    spec = NODES[kind]
    where = f"node {node_id} ({kind})"
    names = [i.name for i in spec.inputs]
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise FlowFormatError(f"unknown input(s) {unknown}", where=where,
                              fix=f"{kind} takes: {', '.join(names)}")
    for inp in spec.inputs:
        if inp.name not in inputs:
            if inp.required:
                raise MissingInputError(f"input {inp.name!r} ({inp.type}) is missing",
                                        where=where, fix=f"connect or set {inp.name}")
            continue
        value = inputs[inp.name]
        if inp.is_link:
            _check_link(workflow, where, inp, value)
        else:
            _check_value(where, inp, value)


def _check_link(workflow: dict[str, Any], where: str, inp: ComfyInput, value: Any) -> None:
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], (str, int))
            or isinstance(value[1], bool) or not isinstance(value[1], int)):
        raise FlowFormatError(f"input {inp.name!r} must be a link [node_id, output_index], "
                              f"got {value!r}", where=where, fix=f"connect a {inp.type} output")
    source_id, index = str(value[0]), value[1]
    source = workflow.get(source_id)
    if source is None:
        raise FlowFormatError(f"input {inp.name!r} refers to node {source_id!r}, which does "
                              "not exist", where=where, fix="check the links")
    kind = source.get("class_type") if isinstance(source, dict) else None
    outputs = NODES[kind].outputs if kind in NODES else ()
    if not 0 <= index < len(outputs):
        raise FlowFormatError(f"input {inp.name!r} refers to output {index} of node "
                              f"{source_id} ({kind}), which has {len(outputs)} output(s)",
                              where=where, fix="check the links")
    if outputs[index] != inp.type:
        raise TypeMismatchError(f"input {inp.name!r} expects {inp.type}, but output {index} "
                                f"of node {source_id} ({kind}) is {outputs[index]}",
                                where=where, fix=f"connect a {inp.type} output")


def _check_value(where: str, inp: ComfyInput, value: Any) -> None:
    if isinstance(value, list):
        raise FlowFormatError(f"input {inp.name!r} must be a value, not a link", where=where,
                              fix="only widget values are supported for this input")
    ok = {
        "INT": (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()),
        "FLOAT": isinstance(value, (int, float)) and not isinstance(value, bool),
        "STRING": isinstance(value, str),
        "COMBO": isinstance(value, str),
    }[inp.type]
    if not ok:
        raise ParameterError(f"input {inp.name!r} must be {inp.type}, got {value!r}",
                             where=where, fix=f"set {inp.name} to a {inp.type.lower()}")
    if inp.choices is not None and value not in inp.choices:
        raise ParameterError(f"input {inp.name!r} is {value!r}", where=where,
                             fix=f"use one of: {', '.join(inp.choices)}")
    if inp.type in ("INT", "FLOAT"):
        if value != value or (inp.minimum is not None and value < inp.minimum) or (
                inp.maximum is not None and value > inp.maximum):
            raise ParameterError(f"input {inp.name!r}={value!r} is outside "
                                 f"[{inp.minimum}, {inp.maximum}]", where=where,
                                 fix=f"use a value in [{inp.minimum}, {inp.maximum}]")


def check_full_checkpoint(source: str, *, where: str) -> None:
    """VAELoader: lightflow loads a VAE from a whole checkpoint (folder or single file),
    not from a VAE-only weights file; refuse the latter with a clear message."""
    path = Path(source)
    if source.startswith("builtin:") or (path.is_dir() and
                                         (path / "model_index.json").is_file()):
        return
    if path.is_file() and path.suffix == ".safetensors":
        try:
            with open(path, "rb") as fh:
                (length,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(min(length, 100_000_000)))
        except (OSError, ValueError, struct.error):
            header = {}
        if any(k.startswith("first_stage_model.") for k in header):
            return
    raise ParameterError(f"{path.name} is not a whole checkpoint; lightflow cannot load a "
                         "VAE-only weights file yet", where=where,
                         fix="name a checkpoint (diffusers folder or single file) whose VAE "
                             "you want, or use the checkpoint loader's VAE output")
