"""Where a checkpoint's weights come from, and their identity.

A :class:`Source` is a resolved checkpoint location: a diffusers folder, a single
original-format file (``.safetensors`` or ``.ckpt``) with a diffusers config folder, or
a hub id. Its per-component *identity* includes file sizes and modification times, so
two handles on the same files share pool entries and an edited file is never served
stale. Sizes for planning come from safetensors headers (no tensor is read).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, ModelNotFoundError

__all__ = ["BUILTIN", "Source", "file_stamp", "resolve_source", "safetensors_bytes"]

_ASSETS = Path(__file__).resolve().parent.parent / "assets"
BUILTIN = {"digits": _ASSETS / "digits"}
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")
_FLOATS = frozenset({"F64", "F32", "F16", "BF16"})
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


@dataclass(frozen=True)
class Source:
    """A resolved checkpoint location. ``kind`` is ``folder``, ``file`` or ``hub``."""

    kind: str
    location: str
    config: str | None = None  # diffusers config folder (or hub id) for single files

    @cached_property
    def model_index(self) -> dict[str, Any]:
        """The pipeline's ``model_index.json`` (components and their classes)."""
        folder = self.location if self.kind == "folder" else self.config
        if folder is None or not Path(folder).is_dir():
            return {}
        path = Path(folder) / "model_index.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"cannot read {path}: {exc}", where="checkpoint",
                                 fix="check the diffusers folder is complete") from exc

    @property
    def family(self) -> str:
        """``sdxl`` when the pipeline has two text encoders, else ``sd1``."""
        index = self.model_index
        if "text_encoder_2" in index or "XL" in str(index.get("_class_name", "")):
            return "sdxl"
        return "sd1"

    def component_files(self, component: str) -> list[Path]:
        if self.kind == "file":
            return [Path(self.location)]
        if self.kind == "hub":
            return []
        folder = Path(self.location) / component
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file())

    def identity(self, component: str) -> str:
        """Location, component and (size, mtime) of each file it is read from."""
        if self.kind == "hub":
            return f"hub:{self.location}@{self.config or 'main'}/{component}"
        stamps = []
        for path in self.component_files(component):
            try:
                stamps.append(f"{path.name}:{file_stamp(path)}")
            except OSError:
                continue
        config = f"?config={self.config}" if self.kind == "file" and self.config else ""
        return f"{self.kind}:{self.location}/{component}{config}[{','.join(stamps)}]"

    def weight_bytes(self, component: str, float_size: int | None = None) -> int:
        """Bytes of a component's weights, from safetensors headers (no tensor is read).

        ``float_size`` gives the bytes per element of the dtype floats will be loaded in.
        """
        total = 0
        for path in self.component_files(component):
            if path.suffix == ".safetensors":
                prefix = _ldm_prefix(component) if self.kind == "file" else None
                total += safetensors_bytes(path, prefix=prefix, float_size=float_size)
            elif path.suffix in WEIGHT_SUFFIXES:
                total += path.stat().st_size
        return total


def file_stamp(path: str | os.PathLike[str]) -> str:
    """``"size:mtime_ns"`` of a file: part of every identity and node key built from files,
    so an edited file is never served stale."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def _ldm_prefix(component: str) -> tuple[str, ...] | None:
    return {
        "unet": ("model.diffusion_model.",),
        "vae": ("first_stage_model.",),
        "text_encoder": ("cond_stage_model.", "conditioner.embedders.0."),
        "text_encoder_2": ("conditioner.embedders.1.",),
    }.get(component)


def safetensors_bytes(path: str | os.PathLike[str], prefix: tuple[str, ...] | None = None,
                      float_size: int | None = None) -> int:
    """Sum of tensor sizes declared in a safetensors header, optionally for key prefixes.

    With ``float_size``, floating-point tensors are counted at that many bytes per element
    (the size they will have once loaded in the target dtype).
    """
    try:
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise ModelLoadError(f"{path} is not a readable safetensors file ({exc})",
                             where="checkpoint", fix="re-download or re-save the file") from exc
    total = 0
    for name, info in header.items():
        if name == "__metadata__" or (prefix and not name.startswith(prefix)):
            continue
        count = 1
        for dim in info.get("shape", []):
            count *= int(dim)
        dtype = info.get("dtype", "F32")
        size = _DTYPE_BYTES.get(dtype, 4)
        if float_size and dtype in _FLOATS:
            size = float_size
        total += count * size
    return total


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def _is_hub_id(text: str) -> bool:
    return bool(_HUB_ID.match(text)) and not text.endswith(SINGLE_FILE_SUFFIXES)


def resolve_source(source: str | os.PathLike[str] | None, config: str | None = None) -> Source:
    """Turn what the user passed to ``lf.checkpoint`` into a :class:`Source`.

    Only the file system's metadata is read (existence, model_index.json).
    """
    if source is None:
        source = "builtin:digits"
    text = os.fspath(source)
    if text.startswith("builtin:"):
        name = text.split(":", 1)[1]
        if name not in BUILTIN:
            names = ", ".join("builtin:" + n for n in BUILTIN)
            raise ModelNotFoundError(f"unknown built-in model {name!r}", where="checkpoint",
                                     fix=f"use one of: {names}")
        folder = BUILTIN[name]
        if not (folder / "model_index.json").is_file():
            raise ModelNotFoundError(f"the built-in model {name!r} is not installed at {folder}",
                                     where="checkpoint", fix="reinstall lightflow")
        return Source("folder", str(folder))
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelNotFoundError(
                f"{path} is a folder but not a diffusers pipeline (no model_index.json)",
                where="checkpoint", fix="point at the folder saved by save_pretrained, or a file")
        return Source("folder", str(path.resolve()))
    if path.is_file():
        if path.suffix not in SINGLE_FILE_SUFFIXES:
            raise ModelLoadError(f"{path.name}: unsupported checkpoint file type {path.suffix!r}",
                                 where="checkpoint",
                                 fix=f"use one of {', '.join(SINGLE_FILE_SUFFIXES)}")
        if config is not None and Path(config).expanduser().is_dir():
            config = str(Path(config).expanduser().resolve())
        return Source("file", str(path.resolve()), config)
    if not _is_hub_id(text):
        raise ModelNotFoundError(f"no such file or folder: {text}", where="checkpoint",
                                 fix="check the path (relative paths start from "
                                     f"{os.getcwd()})")
    return Source("hub", text, config)
