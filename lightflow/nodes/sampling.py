"""The sampling node: txt2img from conditioning, img2img from an encoded image.

The loop mirrors diffusers' StableDiffusion(XL)Pipeline step for step (same noise from a
``torch.Generator`` seeded per run, same scheduler calls, same guidance), so results
match diffusers. It is written as a generator that yields after each step: the executor
checks for stop requests there, and previews are made from the predicted clean latent.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import MissingInputError, ParameterError
from ..graph.ops import OpSpec, Port, register
from ..graph.types import PortType
from ._checks import MAX_BATCH, MAX_STEPS, as_float, as_int, as_seed, as_side
from .control import ControlRunner
from .loaders import ComponentRef
from .lora import lora_scope
from .schedulers import make_scheduler, normalize_scheduler
from .values import Conditioning

__all__ = ["SampleState", "denoise_loop", "predicted_x0"]


def _check_sample(params: dict[str, Any]) -> dict[str, Any]:
    op = "sample"
    params["steps"] = as_int(op, "steps", params.get("steps", 20), lo=1, hi=MAX_STEPS)
    params["cfg"] = as_float(op, "cfg", params.get("cfg", 7.0), lo=0.0, hi=100.0)
    params["seed"] = as_seed(op, params.get("seed", 0))
    params["batch"] = as_int(op, "batch", params.get("batch", 1), lo=1, hi=MAX_BATCH)
    params["denoise"] = as_float(op, "denoise", params.get("denoise", 1.0), lo=0.0, hi=1.0,
                                 lo_open=True, fix="pass 0 < denoise <= 1 (1 = full noise)")
    params["width"] = as_side(op, "width", params.get("width"))
    params["height"] = as_side(op, "height", params.get("height"))
    params["scheduler"] = normalize_scheduler(params.get("scheduler"))
    return params


@dataclass
class SampleState:
    """What the loop yields after each step."""

    step: int
    total: int
    timestep: float
    latents: torch.Tensor
    x0: torch.Tensor | None


def predicted_x0(scheduler: Any, model_input: torch.Tensor, model_output: torch.Tensor,
                 t: torch.Tensor) -> torch.Tensor | None:
    """x0 from the (scaled) model input and the model output, for epsilon/v prediction.

    ``scale_model_input`` puts every diffusers scheduler's input in DDPM space
    (x_in = sqrt(a) x0 + sqrt(1-a) eps), so one formula serves all of them.
    """
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None:
        return None
    a = alphas.to(model_input.device)[int(t)].to(model_input.dtype)
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind == "epsilon":
        return (model_input - (1 - a).sqrt() * model_output) / a.sqrt()
    if kind == "v_prediction":
        return a.sqrt() * model_input - (1 - a).sqrt() * model_output
    if kind == "sample":
        return model_output
    return None


def denoise_loop(unet: Any, scheduler: Any, cond: Conditioning, latents: torch.Tensor,
                 timesteps: torch.Tensor, cfg: float, generator: torch.Generator,
                 add_cond: dict[str, torch.Tensor] | None = None,
                 want_x0: bool = True,
                 controls: Callable[..., dict[str, Any]] | None = None) -> Iterator[SampleState]:
    """The denoising loop of diffusers' pipelines, yielding after every step.

    ``controls(i, model_in, t, embeds, add_cond)`` gives extra UNet arguments (ControlNet
    and T2I-Adapter residuals, see :class:`~lightflow.nodes.control.ControlRunner`)."""
    batch = latents.shape[0]
    guided = cfg > 1.0
    embeds = cond.embeds.repeat(batch, 1, 1)
    if guided:
        embeds = torch.cat([cond.negative.repeat(batch, 1, 1), embeds])
    accepts = set(inspect.signature(scheduler.step).parameters)
    extra = {}
    if "eta" in accepts:
        extra["eta"] = 0.0
    if "generator" in accepts:
        extra["generator"] = generator
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        model_in = torch.cat([latents] * 2) if guided else latents
        model_in = scheduler.scale_model_input(model_in, t)
        residuals = controls(i, model_in, t, embeds, add_cond) if controls is not None else {}
        out = unet(model_in, t, encoder_hidden_states=embeds, added_cond_kwargs=add_cond,
                   return_dict=False, **residuals)[0]
        if guided:
            out_uncond, out_text = out.chunk(2)
            out = out_uncond + cfg * (out_text - out_uncond)
        x0 = None
        if want_x0:
            x0 = predicted_x0(scheduler, model_in[-batch:][:1], out[:1], t)
        latents = scheduler.step(out, t, latents, **extra, return_dict=False)[0]
        yield SampleState(i + 1, total, float(t), latents, x0)


def _sdxl_added_cond(cond: Conditioning, height: int, width: int, batch: int, guided: bool,
                     dtype: torch.dtype, device: str) -> dict[str, torch.Tensor]:
    ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype)
    pooled = cond.pooled
    if guided:
        pooled = torch.cat([cond.negative_pooled, pooled])
        ids = torch.cat([ids, ids])
    pooled = pooled.repeat_interleave(batch, dim=0) if guided else pooled.repeat(batch, 1)
    return {"text_embeds": pooled.to(device), "time_ids": ids.to(device).repeat(batch, 1)}


def _run_sample(ctx: Any, inputs: dict[str, Any], params: Mapping[str, Any]) -> torch.Tensor:
    from diffusers.utils.torch_utils import randn_tensor

    ref: ComponentRef = inputs["unet"]
    cond: Conditioning = inputs["cond"]
    init: torch.Tensor | None = inputs.get("latent")
    if cond.family != ref.family:
        raise ParameterError(f"the conditioning was made for {cond.family} but the UNet is "
                             f"{ref.family}", where=ctx.node.label(),
                             fix="encode the prompt with the same checkpoint you sample with")
    unet = ctx.model(ref.spec("unet"))
    base = ctx.model(ref.spec("scheduler"))
    scheduler = make_scheduler(base, params["scheduler"])
    device, dtype = ref.checkpoint.device, unet.dtype
    steps, cfg, batch = params["steps"], params["cfg"], params["batch"]
    generator = torch.Generator("cpu").manual_seed(params["seed"])
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps
    vae_factor = ref.checkpoint.vae_scale_factor
    if init is None:
        if params["denoise"] < 1.0:
            raise MissingInputError("denoise < 1 needs an initial latent", where="sample",
                                    fix="chain from lf.image(...).encode_image(ckpt)")
        height = params["height"] or unet.config.sample_size * vae_factor
        width = params["width"] or unet.config.sample_size * vae_factor
        shape = (batch, unet.config.in_channels, height // vae_factor, width // vae_factor)
        latents = randn_tensor(shape, generator=generator, device=torch.device(device),
                               dtype=dtype) * scheduler.init_noise_sigma
    else:
        height, width = init.shape[-2] * vae_factor, init.shape[-1] * vae_factor
        init_steps = min(int(steps * params["denoise"]), steps)
        start = max(steps - init_steps, 0)
        timesteps = timesteps[start * scheduler.order:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start * scheduler.order)
        if len(timesteps) == 0:
            raise ParameterError(f"denoise={params['denoise']} with steps={steps} leaves no step",
                                 where="sample", fix="raise denoise or steps")
        init = init.to(device=device, dtype=dtype)
        if init.shape[0] != batch:
            if init.shape[0] != 1:
                raise ParameterError(f"the initial latent has batch {init.shape[0]}, "
                                     f"but batch={batch}", where="sample",
                                     fix="use batch=1 or a single-image latent")
            init = init.repeat(batch, 1, 1, 1)
        noise = randn_tensor(init.shape, generator=generator, device=torch.device(device),
                             dtype=dtype)
        latents = scheduler.add_noise(init, noise, timesteps[:1].repeat(batch))
    cond = _to(cond, device, dtype)
    add_cond = None
    if cond.family == "sdxl":
        add_cond = _sdxl_added_cond(cond, height, width, batch, cfg > 1.0, dtype, device)
    ctx.total_steps = len(timesteps)
    previews = ctx.settings.preview_hook(ctx, ref) if hasattr(ctx.settings, "preview_hook") \
        else None
    controls = None
    if cond.controls:
        controls = ControlRunner(ctx, cond.controls, unet, ref.checkpoint.dtype, device, height,
                                 width, batch, cfg > 1.0, len(timesteps))
    started = time.perf_counter()
    with lora_scope(ctx, ref.loras, {"unet": unet}, ref.family), torch.inference_mode():
        for state in denoise_loop(unet, scheduler, cond, latents, timesteps, cfg, generator,
                                  add_cond, want_x0=True, controls=controls):
            latents = state.latents
            ctx.step_done(state.step, state.total, state.timestep, latents[:1], state.x0,
                          started)
            if previews is not None:
                previews(state)
            ctx.check_stop()
    ctx.info.update({"steps": len(timesteps), "seed": params["seed"],
                     "scheduler": type(scheduler).__name__})
    return latents


def _to(cond: Conditioning, device: str, dtype: torch.dtype) -> Conditioning:
    def move(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(device=device, dtype=dtype)

    return Conditioning(move(cond.embeds), move(cond.negative), cond.family, move(cond.pooled),
                        move(cond.negative_pooled), cond.text_encoder_projection_dim,
                        cond.controls)


def _needs_sample(refs: dict[str, Any], params: Mapping[str, Any]) -> list[Any]:
    ref = refs.get("unet")
    return [ref.spec("unet"), ref.spec("scheduler")] if ref else []


register(OpSpec(
    name="sample", output=PortType.LATENT,
    inputs=(Port("unet", (PortType.UNET,)), Port("cond", (PortType.CONDITIONING,)),
            Port("latent", (PortType.LATENT,), optional=True)),
    run=_run_sample, check=_check_sample, needs=_needs_sample,
    params=("steps", "cfg", "seed", "width", "height", "scheduler", "batch", "denoise"),
    doc="Denoise: txt2img from conditioning, or img2img from an initial latent."))
