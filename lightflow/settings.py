"""User-facing settings: previews while sampling, draft mode defaults, cache size.

    >>> import lightflow as lf
    >>> lf.settings.preview = "latent_rgb"     # or "taesd", "bilinear", "auto", None
    >>> lf.settings.preview_every = 1          # every N steps (plus the last)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ParameterError

__all__ = ["DraftSettings", "Settings"]

PREVIEW_CHOICES = ("auto", "latent_rgb", "taesd", "bilinear", None)


@dataclass
class DraftSettings:
    """What draft mode swaps: the final decode for a proxy (always), and, when asked, caps
    the steps, replaces sampling by a null sampler, and the text encoder by a simple one."""

    decoder: str = "auto"
    max_steps: int | None = 3
    null_sampler: bool = False
    simple_text: bool = False

    def __post_init__(self) -> None:
        if self.decoder not in ("auto", "latent_rgb", "taesd", "bilinear"):
            raise ParameterError(f"unknown draft decoder {self.decoder!r}", where="lf.draft",
                                 fix="use auto, latent_rgb, taesd or bilinear")
        if self.max_steps is not None and self.max_steps < 1:
            raise ParameterError(f"max_steps must be >= 1 or None, got {self.max_steps}",
                                 where="lf.draft")


@dataclass
class Settings:
    preview: str | None = "auto"
    preview_every: int = 1
    preview_budget: float = 0.05  # previews never take more than this share of sampling time
    draft: DraftSettings = field(default_factory=DraftSettings)
    taesd: dict[str, str] = field(default_factory=dict)  # latent format → AutoencoderTiny path

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in {f.name for f in fields(self)}:
            raise ParameterError(f"unknown setting {name!r}", where="lf.settings",
                                 fix=f"settings are: {', '.join(f.name for f in fields(self))}")
        if name == "preview" and value not in PREVIEW_CHOICES:
            raise ParameterError(f"unknown preview decoder {value!r}", where="lf.settings",
                                 fix=f"use one of {PREVIEW_CHOICES}")
        if name == "preview_every" and (not isinstance(value, int) or value < 1):
            raise ParameterError(f"preview_every must be an integer >= 1, got {value!r}",
                                 where="lf.settings")
        object.__setattr__(self, name, value)

    def preview_hook(self, ctx: Any, ref: Any) -> Any:
        """The per-step preview callback for a sampling node (None when previews are off)."""
        from .preview.live import make_preview_hook

        return make_preview_hook(self, ctx, ref)
