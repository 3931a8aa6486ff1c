"""ComfyUI's node types as lightflow reads and writes them, and the sampler table.

``NODES`` lists, for every supported ``class_type``, its inputs as ComfyUI's
``INPUT_TYPES`` declares them (name, type, default, required or optional, allowed
values) and its outputs. It is data only: reading a workflow validates against it,
writing one emits exactly these inputs, and the tests check exports against it.

``SAMPLERS`` maps ComfyUI's ``(sampler_name, scheduler)`` pairs to lightflow scheduler
names (:data:`lightflow.nodes.schedulers.SCHEDULERS`). The equivalences follow
diffusers' own table of k-diffusion / A1111 names; timesteps are spaced as the
checkpoint's diffusers scheduler config says, and noise comes from diffusers, so the
same seed does not give ComfyUI's image. Pairs not listed raise ``ParameterError``.

    >>> from lightflow.interop.comfy_schema import NODES, comfy_to_scheduler
    >>> [i.name for i in NODES["VAEDecode"].inputs]
    ['samples', 'vae']
    >>> comfy_to_scheduler("dpmpp_2m", "karras", where="node 3")
    'dpmpp_2m_karras'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError

__all__ = [
    "COMFY_SAMPLER_NAMES",
    "COMFY_SCHEDULER_NAMES",
    "LINK_TYPES",
    "NODES",
    "SAMPLERS",
    "ComfyInput",
    "ComfyNode",
    "comfy_to_scheduler",
    "sampler_table",
    "scheduler_to_comfy",
]

#: Input types that are links to another node's output (the rest are widget values).
LINK_TYPES = frozenset({"MODEL", "CLIP", "VAE", "CONDITIONING", "LATENT", "IMAGE", "MASK",
                        "CONTROL_NET"})
MAX_RESOLUTION = 16384


@dataclass(frozen=True)
class ComfyInput:
    """One input of a ComfyUI node type, as its ``INPUT_TYPES`` declares it."""

    name: str
    type: str  # a link type, "INT", "FLOAT", "STRING", "COMBO" (a list of names)
    default: Any = None
    required: bool = True
    choices: tuple[str, ...] | None = None  # fixed COMBO values (None: model/file names)
    minimum: float | None = None
    maximum: float | None = None

    @property
    def is_link(self) -> bool:
        return self.type in LINK_TYPES


@dataclass(frozen=True)
class ComfyNode:
    """A ComfyUI node type: its inputs, outputs, and the order of its UI widgets."""

    class_type: str
    inputs: tuple[ComfyInput, ...]
    outputs: tuple[str, ...]
    output_node: bool = False
    extra_widgets: tuple[tuple[str, str], ...] = ()  # (after input, UI-only widget)

    def input(self, name: str) -> ComfyInput | None:
        return next((i for i in self.inputs if i.name == name), None)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs if i.required)

    def widgets(self) -> list[str]:
        """Names of ``widgets_values`` entries in the editor's (UI) format, in order."""
        names: list[str] = []
        for inp in self.inputs:
            if inp.is_link:
                continue
            names.append(inp.name)
            names += [w for after, w in self.extra_widgets if after == inp.name]
        return names


def _i(name: str, type_: str, default: Any = None, **kw: Any) -> ComfyInput:
    return ComfyInput(name, type_, default, **kw)


_UPSCALE_LATENT = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")
_UPSCALE_IMAGE = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
_CROP = ("disabled", "center")
_SEED = {"minimum": 0, "maximum": 0xFFFFFFFFFFFFFFFF}
_SIDE = {"minimum": 0, "maximum": MAX_RESOLUTION}

COMFY_SAMPLER_NAMES: tuple[str, ...] = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
    "ipndm", "ipndm_v", "deis", "ddim", "uni_pc", "uni_pc_bh2",
)  # fmt: skip
COMFY_SCHEDULER_NAMES: tuple[str, ...] = (
    "normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta",
    "linear_quadratic", "kl_optimal",
)  # fmt: skip


def _sampler_inputs(seed_name: str) -> tuple[ComfyInput, ...]:
    return (
        _i(seed_name, "INT", 0, **_SEED),
        _i("steps", "INT", 20, minimum=1, maximum=10000),
        _i("cfg", "FLOAT", 8.0, minimum=0.0, maximum=100.0),
        _i("sampler_name", "COMBO", "euler", choices=COMFY_SAMPLER_NAMES),
        _i("scheduler", "COMBO", "normal", choices=COMFY_SCHEDULER_NAMES),
        _i("positive", "CONDITIONING"),
        _i("negative", "CONDITIONING"),
        _i("latent_image", "LATENT"),
    )


_NODE_LIST = [
    ComfyNode("CheckpointLoaderSimple", (_i("ckpt_name", "COMBO"),), ("MODEL", "CLIP", "VAE")),
    ComfyNode("VAELoader", (_i("vae_name", "COMBO"),), ("VAE",)),
    ComfyNode("CLIPTextEncode", (_i("text", "STRING", ""), _i("clip", "CLIP")),
              ("CONDITIONING",)),
    ComfyNode("CLIPSetLastLayer", (_i("clip", "CLIP"), _i("stop_at_clip_layer", "INT", -1,
                                                          minimum=-24, maximum=-1)), ("CLIP",)),
    ComfyNode("EmptyLatentImage", (_i("width", "INT", 512, minimum=16, maximum=MAX_RESOLUTION),
                                   _i("height", "INT", 512, minimum=16, maximum=MAX_RESOLUTION),
                                   _i("batch_size", "INT", 1, minimum=1, maximum=4096)),
              ("LATENT",)),
    ComfyNode("KSampler", (_i("model", "MODEL"), *_sampler_inputs("seed"),
                           _i("denoise", "FLOAT", 1.0, minimum=0.0, maximum=1.0)),
              ("LATENT",), extra_widgets=(("seed", "control_after_generate"),)),
    ComfyNode("KSamplerAdvanced", (
        _i("model", "MODEL"), _i("add_noise", "COMBO", "enable", choices=("enable", "disable")),
        *_sampler_inputs("noise_seed"),
        _i("start_at_step", "INT", 0, minimum=0, maximum=10000),
        _i("end_at_step", "INT", 10000, minimum=0, maximum=10000),
        _i("return_with_leftover_noise", "COMBO", "disable", choices=("disable", "enable")),
    ), ("LATENT",), extra_widgets=(("noise_seed", "control_after_generate"),)),
    ComfyNode("VAEDecode", (_i("samples", "LATENT"), _i("vae", "VAE")), ("IMAGE",)),
    ComfyNode("VAEEncode", (_i("pixels", "IMAGE"), _i("vae", "VAE")), ("LATENT",)),
    ComfyNode("LatentUpscale", (
        _i("samples", "LATENT"),
        _i("upscale_method", "COMBO", "nearest-exact", choices=_UPSCALE_LATENT),
        _i("width", "INT", 512, **_SIDE), _i("height", "INT", 512, **_SIDE),
        _i("crop", "COMBO", "disabled", choices=_CROP)), ("LATENT",)),
    ComfyNode("LatentUpscaleBy", (
        _i("samples", "LATENT"),
        _i("upscale_method", "COMBO", "nearest-exact", choices=_UPSCALE_LATENT),
        _i("scale_by", "FLOAT", 1.5, minimum=0.01, maximum=8.0)), ("LATENT",)),
    ComfyNode("ImageScale", (
        _i("image", "IMAGE"),
        _i("upscale_method", "COMBO", "nearest-exact", choices=_UPSCALE_IMAGE),
        _i("width", "INT", 512, **_SIDE), _i("height", "INT", 512, **_SIDE),
        _i("crop", "COMBO", "disabled", choices=_CROP)), ("IMAGE",)),
    ComfyNode("ImageScaleBy", (
        _i("image", "IMAGE"),
        _i("upscale_method", "COMBO", "nearest-exact", choices=_UPSCALE_IMAGE),
        _i("scale_by", "FLOAT", 1.0, minimum=0.01, maximum=8.0)), ("IMAGE",)),
    ComfyNode("LoadImage", (_i("image", "COMBO"),), ("IMAGE", "MASK"),
              extra_widgets=(("image", "upload"),)),
    ComfyNode("SaveImage", (_i("images", "IMAGE"), _i("filename_prefix", "STRING", "ComfyUI")),
              (), output_node=True),
    ComfyNode("PreviewImage", (_i("images", "IMAGE"),), (), output_node=True),
    ComfyNode("LoraLoader", (
        _i("model", "MODEL"), _i("clip", "CLIP"), _i("lora_name", "COMBO"),
        _i("strength_model", "FLOAT", 1.0, minimum=-100.0, maximum=100.0),
        _i("strength_clip", "FLOAT", 1.0, minimum=-100.0, maximum=100.0)), ("MODEL", "CLIP")),
    ComfyNode("ControlNetLoader", (_i("control_net_name", "COMBO"),), ("CONTROL_NET",)),
    ComfyNode("ControlNetApply", (
        _i("conditioning", "CONDITIONING"), _i("control_net", "CONTROL_NET"),
        _i("image", "IMAGE"), _i("strength", "FLOAT", 1.0, minimum=0.0, maximum=10.0)),
        ("CONDITIONING",)),
    ComfyNode("ControlNetApplyAdvanced", (
        _i("positive", "CONDITIONING"), _i("negative", "CONDITIONING"),
        _i("control_net", "CONTROL_NET"), _i("image", "IMAGE"),
        _i("strength", "FLOAT", 1.0, minimum=0.0, maximum=10.0),
        _i("start_percent", "FLOAT", 0.0, minimum=0.0, maximum=1.0),
        _i("end_percent", "FLOAT", 1.0, minimum=0.0, maximum=1.0),
        _i("vae", "VAE", required=False)), ("CONDITIONING", "CONDITIONING")),
]
NODES: dict[str, ComfyNode] = {n.class_type: n for n in _NODE_LIST}

# ------------------------------------------------------------------ samplers
#: (sampler_name, scheduler) → lightflow scheduler name. The first pair listed for a
#: lightflow name is the one ``to_comfy`` writes.
SAMPLERS: dict[tuple[str, str], str] = {
    ("euler", "normal"): "euler",
    ("euler", "karras"): "euler_karras",
    ("euler_ancestral", "normal"): "euler_a",
    ("heun", "normal"): "heun",
    ("dpm_2", "normal"): "dpm2",
    ("dpm_2_ancestral", "normal"): "dpm2_a",
    ("lms", "normal"): "lms",
    ("lms", "karras"): "lms_karras",
    ("dpmpp_2m", "normal"): "dpmpp_2m",
    ("dpmpp_2m", "karras"): "dpmpp_2m_karras",
    ("dpmpp_2m_sde", "normal"): "dpmpp_2m_sde",
    ("dpmpp_2m_sde", "karras"): "dpmpp_2m_sde_karras",
    ("dpmpp_2m_sde_gpu", "normal"): "dpmpp_2m_sde",
    ("dpmpp_2m_sde_gpu", "karras"): "dpmpp_2m_sde_karras",
    ("ddim", "ddim_uniform"): "ddim",
    ("ddim", "normal"): "ddim",
    ("uni_pc", "normal"): "unipc",
    ("deis", "normal"): "deis",
    ("ddpm", "normal"): "ddpm",
}
_EXPORT: dict[str, tuple[str, str]] = {}
for _pair, _name in SAMPLERS.items():
    _EXPORT.setdefault(_name, _pair)


def _supported() -> str:
    return ", ".join(f"{s}+{c}" for s, c in SAMPLERS)


def comfy_to_scheduler(sampler_name: Any, scheduler: Any, *, where: str) -> str:
    """The lightflow scheduler for a ComfyUI pair; ParameterError if none is faithful."""
    pair = (sampler_name, scheduler)
    if pair in SAMPLERS:
        return SAMPLERS[pair]
    if sampler_name not in COMFY_SAMPLER_NAMES:
        problem = f"unknown sampler_name {sampler_name!r}"
    elif scheduler not in COMFY_SCHEDULER_NAMES:
        problem = f"unknown scheduler {scheduler!r}"
    else:
        problem = (f"sampler_name {sampler_name!r} with scheduler {scheduler!r} has no "
                   "faithful diffusers equivalent")
    raise ParameterError(problem, where=where, fix=f"use one of: {_supported()}")


def scheduler_to_comfy(name: Any, *, where: str) -> tuple[str, str]:
    """``(sampler_name, scheduler)`` for a lightflow scheduler name."""
    if isinstance(name, str) and name in _EXPORT:
        return _EXPORT[name]
    if name is None:
        problem = "scheduler=None (the checkpoint's own scheduler) has no ComfyUI name"
    elif isinstance(name, str):
        problem = f"scheduler {name!r} has no ComfyUI equivalent"
    else:
        problem = "a scheduler given as a diffusers instance has no ComfyUI name"
    raise ParameterError(problem, where=where,
                         fix=f"pass scheduler= one of: {', '.join(sorted(_EXPORT))}")


def sampler_table() -> list[tuple[str, str, str]]:
    """(sampler_name, scheduler, lightflow scheduler) rows, for docs."""
    return [(s, c, name) for (s, c), name in SAMPLERS.items()]
