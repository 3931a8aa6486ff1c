"""Model names in ComfyUI workflows → files under ComfyUI-style model folders.

A workflow names models relative to folders (``ckpt_name`` under ``checkpoints/``,
``lora_name`` under ``loras/``, ``vae_name`` under ``vae/``, ``control_net_name`` under
``controlnet/``). ``models=`` says where those folders are:

- a directory laid out like ComfyUI's ``models/`` folder;
- a mapping of folder → directory or ``{name: source}`` (sources you trust: paths,
  ``builtin:digits``), plus optional ``configs``: ``{ckpt_name: diffusers folder}``.

Names come from untrusted JSON: an absolute name, a ``..`` component or a symlink that
leads out of its folder is refused (``ParameterError`` naming the node). A symlinked
*folder* is fine: containment is checked against the folder's real path.

Single-file checkpoints (``checkpoints/x.safetensors``) need the diffusers configs of
their family; they are taken from ``configs`` in a mapping, else the folder
``configs/x/`` or ``checkpoints/x/`` (a diffusers folder with ``model_index.json``).

    >>> dirs = ModelDirs({"checkpoints": {"digits.safetensors": "builtin:digits"}})
    >>> dirs.resolve("checkpoints", "digits.safetensors", where="node 4")
    'builtin:digits'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ModelNotFoundError, ParameterError

__all__ = ["FOLDERS", "ModelDirs", "check_name", "resolve_in"]

FOLDERS = ("checkpoints", "loras", "vae", "controlnet")
_KEYS = (*FOLDERS, "configs")


def check_name(name: Any, *, where: str, what: str) -> str:
    """A model or image name that stays inside its folder, or ParameterError."""
    if not isinstance(name, str) or not name.strip():
        raise ParameterError(f"{what} must be a non-empty name, got {name!r}", where=where,
                             fix=f"set {what} to a file name inside its folder")
    parts = name.replace("\\", "/").split("/")
    if ("\x00" in name or name.startswith(("/", "\\", "~")) or os.path.isabs(name)
            or (len(name) > 1 and name[1] == ":") or ".." in parts):
        raise ParameterError(f"{what} {name!r} escapes its folder", where=where,
                             fix="use a name relative to the folder, without '..' or a leading /")
    return name


def resolve_in(base: str | os.PathLike[str], name: str, *, where: str, what: str) -> Path:
    """``base/name`` after checking it exists and (symlinks followed) stays in ``base``."""
    check_name(name, where=where, what=what)
    root = Path(os.path.abspath(base))
    candidate = root.joinpath(*PurePosixPath(name.replace("\\", "/")).parts)
    if not candidate.exists():
        raise ModelNotFoundError(f"{what} {name!r} is not in {root}", where=where,
                                 fix=f"put the file in {root} or fix the name")
    real_root = root.resolve()
    real = candidate.resolve()
    if real != real_root and real_root not in real.parents:
        raise ParameterError(f"{what} {name!r} is a link that leads out of {root}",
                             where=where,
                             fix="copy the file into the folder (or link the whole folder)")
    return candidate


class ModelDirs:
    """Resolves model names from a workflow; see the module docstring for ``models=``."""

    def __init__(self, models: str | os.PathLike[str] | Mapping[str, Any] | None = None):
        self.root: Path | None = None
        self.folders: dict[str, Path | dict[str, str]] = {}
        if models is None:
            return
        if isinstance(models, (str, os.PathLike)):
            root = Path(os.path.abspath(os.fspath(models)))
            if not root.is_dir():
                raise ModelNotFoundError(f"models folder {root} does not exist",
                                         where="models", fix="pass a ComfyUI-style models dir")
            self.root = root
            self.folders = {k: root / k for k in _KEYS}
            return
        if not isinstance(models, Mapping):
            raise ParameterError(f"models must be a folder or a mapping, got "
                                 f"{type(models).__name__}", where="models",
                                 fix='models="path/to/models" or {"checkpoints": {...}}')
        for key, value in models.items():
            if key not in _KEYS:
                raise ParameterError(f"unknown models key {key!r}", where="models",
                                     fix=f"use: {', '.join(_KEYS)}")
            if isinstance(value, Mapping):
                self.folders[key] = {str(k): os.fspath(v) for k, v in value.items()}
            else:
                self.folders[key] = Path(os.path.abspath(os.fspath(value)))

    def resolve(self, folder: str, name: Any, *, where: str) -> str:
        """The source (path or ``builtin:``) that ``name`` stands for in ``folder``."""
        what = {"checkpoints": "ckpt_name", "loras": "lora_name", "vae": "vae_name",
                "controlnet": "control_net_name"}[folder]
        if isinstance(name, str) and name.startswith("builtin:") and folder in (
                "checkpoints", "vae"):
            return name
        check_name(name, where=where, what=what)
        place = self.folders.get(folder)
        if place is None:
            raise ModelNotFoundError(f"{what} {name!r} needs a models folder", where=where,
                                     fix=f"pass models='ComfyUI/models' (with {folder}/) or "
                                         f"models={{'{folder}': {{'{name}': 'path'}}}}")
        if isinstance(place, dict):
            if name not in place:
                known = ", ".join(sorted(place)) or "none"
                raise ModelNotFoundError(f"{what} {name!r} is not in the models mapping",
                                         where=where, fix=f"known {folder}: {known}")
            return place[name]
        return str(resolve_in(place, name, where=where, what=what))

    def config_for(self, folder: str, name: str, source: str, *, where: str) -> str | None:
        """The diffusers config folder for a single-file checkpoint (None if not needed)."""
        if source.startswith("builtin:") or not Path(source).is_file():
            return None
        configs = self.folders.get("configs")
        if isinstance(configs, dict):
            return configs.get(name)
        stem = PurePosixPath(name.replace("\\", "/")).stem
        places: list[tuple[Path, str]] = []
        if isinstance(configs, Path):
            places.append((configs, stem))
        models = self.folders.get(folder)
        if isinstance(models, Path):
            sibling = str(PurePosixPath(name.replace("\\", "/")).with_suffix(""))
            places.append((models, sibling))
        marker = "config.json" if folder == "controlnet" else "model_index.json"
        for base, sub in places:
            if (base / sub / marker).is_file():
                return str(resolve_in(base, sub, where=where, what="config folder"))
        return None

    def name_for(self, folder: str, source: str) -> str:
        """The name to write in a workflow for ``source`` (inverse of :meth:`resolve`)."""
        if source.startswith("builtin:"):
            return source
        place = self.folders.get(folder)
        if isinstance(place, dict):
            for name, value in place.items():
                if value == source or _same_file(value, source):
                    return name
        elif isinstance(place, Path):
            for base in (place, place.resolve()):
                try:
                    return Path(os.path.abspath(source)).relative_to(base).as_posix()
                except ValueError:
                    continue
        return Path(source).name


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
