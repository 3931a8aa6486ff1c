"""lightflow txt2img against the equivalent diffusers pipeline call, same components, one
process. Each iteration uses a new prompt and seed on both sides, so lightflow caches
nothing and both encode, sample and decode. Goal: overhead <= 3% (ratio of medians)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ._common import Result, interleaved_medians


def run(quick: bool = False) -> list[Result]:
    from diffusers import StableDiffusionPipeline

    import lightflow as lf
    from tests.support.tiny import build_sd15

    steps, size, repeats = (4, 64, 5) if quick else (10, 128, 15)
    folder = build_sd15(Path(tempfile.mkdtemp()) / "sd15")
    sd = lf.checkpoint(folder)
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    lf.settings.preview = None  # like for like: diffusers makes no previews

    def ours(i: int) -> None:
        flow = lf.prompt(f"a cat {i}").encode(sd).sample(sd, steps=steps, seed=i + 100,
                                                         size=size).decode(sd)
        flow.run()

    def theirs(i: int) -> None:
        pipe(f"a cat {i}", num_inference_steps=steps, height=size, width=size,
             generator=torch.Generator("cpu").manual_seed(i + 100), output_type="pt")

    try:
        medians = interleaved_medians({"lightflow": ours, "diffusers": theirs}, repeats)
    finally:
        lf.settings.preview = "auto"
    ratio = medians["lightflow"] / medians["diffusers"]
    return [Result("txt2img overhead vs diffusers", "median time ratio", ratio, "<= 1.03",
                   ratio <= 1.03, {"steps": steps, "size": size, "repeats": repeats,
                                   "lightflow_s": medians["lightflow"],
                                   "diffusers_s": medians["diffusers"]})]
