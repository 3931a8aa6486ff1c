"""``lightflow demo``: generate digits with the embedded model, offline, in seconds.

Writes ``grid.png`` (one image per prompt), ``emerging.gif`` (the per-step previews of the
first prompt: how the image emerges from noise) and prints timings and the pool's state.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PIL import Image

__all__ = ["DEFAULT_PROMPTS", "run_demo"]

log = logging.getLogger("lightflow.demo")

DEFAULT_PROMPTS = (
    "a red zero", "a green one", "a blue two", "a yellow three", "a cyan four",
    "a magenta five", "a white six", "an orange seven", "a red eight", "a green nine",
)


def _grid(images: list[Image.Image], columns: int, scale: int) -> Image.Image:
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * w * scale, rows * h * scale))
    for i, im in enumerate(images):
        big = im.resize((w * scale, h * scale), Image.Resampling.NEAREST)
        grid.paste(big, ((i % columns) * w * scale, (i // columns) * h * scale))
    return grid


def run_demo(out: Path, prompts: list[str] | tuple[str, ...] | None = None, seed: int = 0,
             steps: int = 20, quiet: bool = False, cfg: float = 4.0) -> dict[str, Path]:
    """Run the demo into ``out``; returns the paths written."""
    import lightflow as lf
    from lightflow.graph.events import PreviewReady
    from lightflow.pool.memory import format_bytes
    from lightflow.widgets.progress import TqdmProgress

    prompts = list(prompts or DEFAULT_PROMPTS)
    out.mkdir(parents=True, exist_ok=True)
    sd = lf.checkpoint()
    base = lf.prompt(prompts[0]).encode(sd).sample(sd, steps=steps, cfg=cfg, seed=seed)
    flows = [base.decode(sd).replace(prompt=p, seed=seed + i) for i, p in enumerate(prompts)]
    frames: list[Image.Image] = []

    def collect(event: object) -> None:
        if isinstance(event, PreviewReady):
            frames.append(Image.fromarray(event.image).resize((128, 128),
                                                               Image.Resampling.NEAREST))

    saved_budget, saved_every = lf.settings.preview_budget, lf.settings.preview_every
    lf.settings.preview_budget, lf.settings.preview_every = 1.0, 1  # every step for the GIF
    started = time.perf_counter()
    try:
        first = flows[0].run(on_event=_both(collect, TqdmProgress(disable=quiet)))
    finally:
        lf.settings.preview_budget, lf.settings.preview_every = saved_budget, saved_every
    first_seconds = time.perf_counter() - started
    images = lf.recipe.run_to_images(first)
    for flow in flows[1:]:
        images.append(flow.image())
    total = time.perf_counter() - started
    paths = {"grid": out / "grid.png", "gif": out / "emerging.gif"}
    _grid(images, columns=min(5, len(images)), scale=4).save(paths["grid"])
    final = images[0].resize((128, 128), Image.Resampling.NEAREST)
    frames = frames + [final] * 5
    frames[0].save(paths["gif"], save_all=True, append_images=frames[1:], duration=120, loop=0)
    for i, im in enumerate(images):
        lf.save_image(im, out / f"image-{i:02d}.png")
    print(f"{len(images)} images of {images[0].size[0]}x{images[0].size[1]} in {total:.2f} s "
          f"(first, with model loading and {len(frames) - 5} previews: {first_seconds:.2f} s)")
    print(f"wrote {paths['grid']} and {paths['gif']}")
    print(repr(lf.pool))
    for row in lf.pool.entries():
        print(f"  {row['label']:28} {row['kind']:13} {format_bytes(row['bytes']):>10} "
              f"{row['device']}")
    return paths


def _both(*listeners: object) -> object:
    def listen(event: object) -> None:
        for fn in listeners:
            fn(event)  # type: ignore[operator]

    return listen
