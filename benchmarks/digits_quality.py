"""Quality of the embedded digits model, measured with diffusers' own pipeline.

- Digits: an SVC trained on sklearn's original 8x8 digits reads back every generated
  image (max over RGB -> 4x4 area average -> 8x8 scaled to 0..16, like the training data).
- Colour: the brightness-weighted mean colour of the lit pixels, normalised by its largest
  channel, is matched to the nearest named colour.
- Proxies: PSNR vs the full VAE decode on held-out latents for the TAESD decoder, the
  latent->RGB factors and bilinear resizing of the first three latent channels.

Usage::

    python benchmarks/digits_quality.py --model lightflow/assets/digits --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, StableDiffusionPipeline
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.svm import SVC

from lightflow.assets.train.data import COLOUR_NAMES, COLOURS, DIGIT_WORDS
from lightflow.assets.train.distill import evaluate_proxies

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "lightflow" / "assets" / "digits"
SCHEDULERS = {"ddim": None, "euler": EulerDiscreteScheduler, "dpm": DPMSolverMultistepScheduler}


def classifier() -> SVC:
    d = load_digits()
    return SVC(C=10.0, gamma=0.001).fit(d.data, d.target)


def to_digits_features(img: np.ndarray) -> np.ndarray:
    """(32, 32, 3) in [0, 1] -> (64,) like sklearn's digits (0..16)."""
    gray = img.max(axis=-1)
    h = gray.shape[0] // 8
    small = gray.reshape(8, h, 8, h).mean(axis=(1, 3))
    return (small * 16.0).reshape(-1)


def dominant_colour(img: np.ndarray) -> int:
    """Index into COLOUR_NAMES of the nearest named colour to the lit pixels' mean."""
    lum = img.max(axis=-1)
    w = np.clip(lum - 0.25, 0, None)
    if w.sum() <= 0:
        w = lum + 1e-6
    mean = (img * w[..., None]).sum(axis=(0, 1)) / w.sum()
    mean = mean / max(mean.max(), 1e-6)
    palette = np.array([COLOURS[c] for c in COLOUR_NAMES])
    return int(np.argmin(((palette - mean) ** 2).sum(axis=1)))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument(
        "--scheduler",
        choices=sorted(SCHEDULERS),
        default="ddim",
        help="ddim = the folder's own scheduler config",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument("--grid", type=Path, default=None, help="write the 10x10 grid PNG here")
    p.add_argument("--skip-proxies", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    t0 = time.time()
    pipe = StableDiffusionPipeline.from_pretrained(str(a.model), torch_dtype=torch.float32)
    if SCHEDULERS[a.scheduler] is not None:
        pipe.scheduler = SCHEDULERS[a.scheduler].from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    svc = classifier()

    rows: list[dict] = []
    images: list[np.ndarray] = []
    for d, word in enumerate(DIGIT_WORDS):
        colours = [(d + s) % len(COLOUR_NAMES) for s in range(a.seeds)]
        prompts = [f"a {COLOUR_NAMES[c]} {word}" for c in colours]
        gens = [torch.Generator().manual_seed(s) for s in range(a.seeds)]
        out = pipe(
            prompts,
            num_inference_steps=a.steps,
            guidance_scale=a.guidance,
            generator=gens,
            output_type="np",
        ).images  # (S, 32, 32, 3) in [0, 1]
        pred = svc.predict(np.stack([to_digits_features(im) for im in out]))
        for s, (im, c) in enumerate(zip(out, colours, strict=True)):
            rows.append(
                {
                    "digit": d,
                    "seed": s,
                    "colour": COLOUR_NAMES[c],
                    "read": int(pred[s]),
                    "colour_read": COLOUR_NAMES[dominant_colour(im)],
                }
            )
        images.extend(out)
    gen_s = time.time() - t0

    n = len(rows)
    digit_acc = sum(r["read"] == r["digit"] for r in rows) / n
    colour_acc = sum(r["colour_read"] == r["colour"] for r in rows) / n
    per_digit = {
        DIGIT_WORDS[d]: sum(r["read"] == d for r in rows if r["digit"] == d) / a.seeds
        for d in range(10)
    }
    result: dict = {
        "model": str(a.model),
        "images": n,
        "steps": a.steps,
        "guidance": a.guidance,
        "scheduler": type(pipe.scheduler).__name__,
        "digit_accuracy": digit_acc,
        "colour_accuracy": colour_acc,
        "per_digit": per_digit,
        "generation_s": round(gen_s, 1),
        "images_detail": rows,
    }
    if not a.skip_proxies:
        result["proxy_psnr_db"] = evaluate_proxies(a.model)

    print(
        f"model {a.model}  ({n} images, {result['scheduler']}, {a.steps} steps, "
        f"cfg {a.guidance}, {gen_s:.0f}s)"
    )
    print(f"{'metric':<28}{'value':>10}{'goal':>10}")
    print(f"{'digit read back':<28}{digit_acc:>9.0%}{'>= 80%':>10}")
    print(f"{'dominant colour':<28}{colour_acc:>9.0%}{'>= 95%':>10}")
    print("per digit: " + " ".join(f"{k}={v:.0%}" for k, v in per_digit.items()))
    if "proxy_psnr_db" in result:
        ps = result["proxy_psnr_db"]
        for k in ("taesd", "latent_rgb", "bilinear", "taesd_encode_roundtrip"):
            print(f"{'PSNR ' + k + ' (dB)':<28}{ps[k]:>10.2f}")
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    if a.grid:
        grid = np.stack(images).reshape(10, a.seeds, 32, 32, 3).transpose(0, 2, 1, 3, 4)
        grid = (grid.reshape(320, a.seeds * 32, 3) * 255).round().astype(np.uint8)
        Image.fromarray(grid).save(a.grid)
    return result


if __name__ == "__main__":
    main()
