"""Loading one component of a checkpoint through diffusers / transformers.

Only the pool calls these. Classes are taken from ``model_index.json`` but restricted
to the diffusers and transformers libraries (a workflow file never chooses code to
import), and ``.ckpt`` files are only ever read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib
import logging
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError, ModelNotFoundError, UnsafeFileError
from .source import Source

__all__ = ["load_component", "read_single_file"]

log = logging.getLogger("lightflow.pool")

_ALLOWED_LIBRARIES = ("diffusers", "transformers")
_DEFAULT_CLASSES = {
    "unet": ("diffusers", "UNet2DConditionModel"),
    "vae": ("diffusers", "AutoencoderKL"),
    "text_encoder": ("transformers", "CLIPTextModel"),
    "tokenizer": ("transformers", "CLIPTokenizer"),
    "text_encoder_2": ("transformers", "CLIPTextModelWithProjection"),
    "tokenizer_2": ("transformers", "CLIPTokenizer"),
    "scheduler": ("diffusers", "PNDMScheduler"),
    "taesd": ("diffusers", "AutoencoderTiny"),
    "controlnet": ("diffusers", "ControlNetModel"),
    "adapter": ("diffusers", "T2IAdapter"),
}


def _component_class(source: Source, component: str) -> type:
    entry = source.model_index.get(component)
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[0] is not None:
        library, name = entry
    elif component in _DEFAULT_CLASSES:
        library, name = _DEFAULT_CLASSES[component]
    else:
        raise ModelLoadError(f"the checkpoint has no component {component!r}",
                             where=f"checkpoint {source.location}",
                             fix="check model_index.json lists it")
    if library not in _ALLOWED_LIBRARIES:
        raise ModelLoadError(f"component {component!r} names library {library!r}",
                             where=f"checkpoint {source.location}",
                             fix="only diffusers and transformers classes are loaded")
    cls = getattr(importlib.import_module(library), str(name), None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ModelLoadError(f"{library} has no loadable class {name!r}",
                             where=f"checkpoint {source.location}",
                             fix="update diffusers/transformers or fix model_index.json")
    return cls


def read_single_file(path: str) -> dict[str, torch.Tensor]:
    """The state dict of an original-format checkpoint file, never running pickled code."""
    file = Path(path)
    if not file.is_file():
        raise ModelNotFoundError(f"no such file: {path}", where="checkpoint",
                                 fix="check the path")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeFileError(
            f"{file.name} contains pickled objects other than tensors and was not loaded "
            "(loading it could run code)", where="checkpoint",
            fix="convert it to .safetensors with a tool you trust, or use the safetensors "
                "release of the model") from exc
    except Exception as exc:
        raise ModelLoadError(f"{file.name} is corrupt or truncated ({exc})", where="checkpoint",
                             fix="re-download or re-save the file") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{file.name} does not hold a state dict of tensors",
                             where="checkpoint", fix="pass a model checkpoint file")
    return state


def _check_loading_info(info: dict[str, Any], source: Source, component: str) -> None:
    missing = list(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    if missing or mismatched:
        sample = (missing + [m[0] if isinstance(m, tuple) else m for m in mismatched])[:3]
        raise ModelLoadError(
            f"the weights in {component}/ do not fit its model class "
            f"({len(missing)} missing, {len(mismatched)} mismatched, e.g. {sample})",
            where=f"checkpoint {source.location}",
            fix=f"check that {component}/ holds {component} weights (not another component's)")


def _from_folder(source: Source, component: str, dtype: torch.dtype) -> Any:
    cls = _component_class(source, component)
    module = cls.__module__
    kwargs: dict[str, Any] = {"subfolder": component}
    if source.kind == "folder":
        kwargs["local_files_only"] = True
    if "tokeniz" in module or "scheduling" in module or "schedulers" in module:
        return cls.from_pretrained(source.location, **kwargs)
    model, info = cls.from_pretrained(source.location, torch_dtype=dtype,
                                      output_loading_info=True, **kwargs)
    _check_loading_info(info, source, component)
    return model


def _from_single_file(source: Source, component: str, dtype: torch.dtype) -> Any:
    from diffusers import pipelines
    from diffusers.loaders.single_file import load_single_file_sub_model

    if source.config is None:
        raise ModelLoadError(
            "a single-file checkpoint needs the diffusers configs of its family",
            where=f"checkpoint {Path(source.location).name}",
            fix="pass config='path/to/diffusers/folder' (or a cached hub id) to lf.checkpoint")
    cls = _component_class(source, component)
    if component.startswith("tokenizer") or component == "scheduler":
        return cls.from_pretrained(source.config, subfolder=component, local_files_only=True)
    checkpoint = read_single_file(source.location)
    return load_single_file_sub_model(
        library_name=cls.__module__.split(".")[0], class_name=cls.__name__, name=component,
        checkpoint=checkpoint,
        pipelines=pipelines, is_pipeline_module=False, cached_model_config_path=source.config,
        local_files_only=True, torch_dtype=dtype)


def _quiet_progress_bars() -> None:
    """lightflow reports its own progress; the libraries' per-load bars are noise."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def load_component(source: Source, component: str, dtype: torch.dtype, device: str) -> Any:
    """Load ``component`` of ``source`` in ``dtype`` onto ``device`` (eval mode, no grad)."""
    _quiet_progress_bars()
    try:
        if source.kind == "file":
            obj = _from_single_file(source, component, dtype)
        else:
            obj = _from_folder(source, component, dtype)
    except (ModelLoadError, ModelNotFoundError):
        raise
    except OSError as exc:
        where = f"checkpoint {source.location}"
        if source.kind == "hub":
            raise ModelNotFoundError(
                f"cannot load {component!r} from the hub id {source.location!r} ({exc})",
                where=where, fix="download the model first, or pass a local folder/file") from exc
        raise ModelLoadError(f"cannot load {component!r}: {exc}", where=where,
                             fix="check the files are complete and readable") from exc
    except Exception as exc:
        raise ModelLoadError(f"cannot load {component!r}: {type(exc).__name__}: {exc}",
                             where=f"checkpoint {source.location}",
                             fix="check the file is a checkpoint of this family") from exc
    if isinstance(obj, torch.nn.Module):
        obj = obj.to(device=device).eval()
        obj.requires_grad_(False)
    return obj
