"""Scheduler names and how each becomes a diffusers scheduler.

``scheduler=None`` uses the checkpoint's own scheduler config. A short name picks a
diffusers class (and options) and builds it *from the checkpoint's config*, as
``Class.from_config(pipe.scheduler.config)`` does in diffusers. A diffusers scheduler
instance is also accepted; it is stored as its class name and config (JSON, no code).
"""

from __future__ import annotations

from typing import Any

from ..errors import ParameterError

__all__ = ["SCHEDULERS", "make_scheduler", "normalize_scheduler", "scheduler_table"]

#: name → (diffusers class, config overrides, description)
SCHEDULERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "ddim": ("DDIMScheduler", {}, "DDIM"),
    "ddpm": ("DDPMScheduler", {}, "DDPM (ancestral, needs many steps)"),
    "pndm": ("PNDMScheduler", {}, "PNDM / PLMS"),
    "euler": ("EulerDiscreteScheduler", {}, "Euler"),
    "euler_karras": ("EulerDiscreteScheduler", {"use_karras_sigmas": True}, "Euler, Karras sigmas"),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, "Euler ancestral"),
    "heun": ("HeunDiscreteScheduler", {}, "Heun (2 UNet calls per step)"),
    "lms": ("LMSDiscreteScheduler", {}, "LMS"),
    "lms_karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}, "LMS, Karras sigmas"),
    "dpm2": ("KDPM2DiscreteScheduler", {}, "DPM2"),
    "dpm2_a": ("KDPM2AncestralDiscreteScheduler", {}, "DPM2 ancestral"),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}, "DPM++ 2M"),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True},
                        "DPM++ 2M Karras"),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"},
                     "DPM++ 2M SDE"),
    "dpmpp_2m_sde_karras": ("DPMSolverMultistepScheduler",
                            {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
                            "DPM++ 2M SDE Karras"),
    "unipc": ("UniPCMultistepScheduler", {}, "UniPC"),
    "deis": ("DEISMultistepScheduler", {}, "DEIS"),
}


def scheduler_table() -> list[tuple[str, str, str]]:
    """(name, diffusers class with options, description) rows, for docs and the README."""
    rows = []
    for name, (cls, opts, desc) in SCHEDULERS.items():
        extra = ", ".join(f"{k}={v!r}" for k, v in opts.items())
        rows.append((name, f"{cls}({extra})" if extra else cls, desc))
    return rows


def _scheduler_class(name: str) -> type:
    import diffusers

    cls = getattr(diffusers, name, None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, diffusers.SchedulerMixin):
        raise ParameterError(f"{name!r} is not a diffusers scheduler class", where="sample",
                             fix=f"use a scheduler name: {', '.join(SCHEDULERS)}")
    return cls


def normalize_scheduler(value: Any) -> Any:
    """None, a known short name, or a ``{"class", "config"}`` dict (from an instance)."""
    if value is None:
        return None
    if isinstance(value, str):
        name = value.strip().lower().replace("-", "_").replace(" ", "_").replace("+", "p")
        if name not in SCHEDULERS:
            raise ParameterError(f"unknown scheduler {value!r}", where="sample",
                                 fix=f"use one of: {', '.join(SCHEDULERS)}")
        return name
    if isinstance(value, dict):
        cls = value.get("class")
        config = value.get("config")
        if not isinstance(cls, str) or not isinstance(config, dict):
            raise ParameterError("a scheduler dict needs 'class' (str) and 'config' (dict)",
                                 where="sample", fix="pass a scheduler name or instance")
        _scheduler_class(cls)
        return {"class": cls, "config": {k: v for k, v in config.items()
                                         if not k.startswith("_")}}
    config = getattr(value, "config", None)
    if config is not None and hasattr(value, "set_timesteps"):
        return normalize_scheduler({"class": type(value).__name__, "config": dict(config)})
    raise ParameterError(f"scheduler must be a name or a diffusers scheduler, got "
                         f"{type(value).__name__}", where="sample",
                         fix=f"use one of: {', '.join(SCHEDULERS)}")


def make_scheduler(base: Any, choice: Any) -> Any:
    """A fresh scheduler instance (schedulers are stateful: one per sampling run)."""
    if choice is None:
        return type(base).from_config(base.config)
    if isinstance(choice, str):
        cls_name, overrides, _ = SCHEDULERS[choice]
        return _scheduler_class(cls_name).from_config(base.config, **overrides)
    return _scheduler_class(choice["class"]).from_config(choice["config"])
