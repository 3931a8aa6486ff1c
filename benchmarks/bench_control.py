"""Three ControlNets on one SD-shaped workflow (issue 8): memory, lazy against up front.

Random weights on the CPU, each scenario in a fresh subprocess:

- ``lazy``: lightflow; the flow with three ControlNets is built (nothing loads), then run;
- ``eager``: a diffusers ``StableDiffusionControlNetPipeline`` with a ``MultiControlNetModel``
  of the three, everything loaded before the first run (the usual notebook pattern);
- ``lazy_one``: the same three ControlNets defined, but the run uses one of them.

Reported: bytes resident before the first run (the pool's, and RSS growth since start-up),
resident after, and the peak RSS during the run (sampled every 5 ms). The model has SD 1.5's
shapes (``benchmarks/_models.py::build_sd15_scale``: 3.4 GB UNet + 3 x 1.4 GB ControlNets in
fp32); ``--quick`` uses a smaller SD-shaped model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ._common import ROOT, Result

SCENARIO = r'''
import gc, json, sys, threading, time
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
import numpy as np
from PIL import Image
import lightflow as lf
from lightflow.nodes.control import controlnet
from lightflow.pool import host_memory
folder, nets, scenario, size = {folder!r}, {nets!r}, {scenario!r}, {size!r}
lf.settings.preview = None
rng = np.random.default_rng(0)
images = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
          for _ in nets]
peak = [0]
stop = threading.Event()
def watch():
    while not stop.is_set():
        peak[0] = max(peak[0], host_memory()["rss"])
        time.sleep(0.005)
gc.collect()
start_rss = host_memory()["rss"]
out = {{}}
if scenario == "eager":
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        folder, controlnet=[ControlNetModel.from_pretrained(n) for n in nets],
        safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    modules = [pipe.unet, pipe.vae, pipe.text_encoder, pipe.controlnet]
    out["resident_before"] = sum(p.numel() * p.element_size() for m in modules
                                 for p in m.parameters())
else:
    sd = lf.checkpoint(folder)
    cond = lf.prompt("a house").encode(sd)
    used = nets if scenario == "lazy" else nets[:1]
    for net, image in zip(used, images):
        cond = cond.control(controlnet(net), image, strength=0.8)
    flow = cond.sample(sd, steps=2, seed=1, size=size).decode(sd)
    out["resident_before"] = lf.pool.resident_bytes()
gc.collect()
out["rss_before"] = host_memory()["rss"] - start_rss
thread = threading.Thread(target=watch, daemon=True)
thread.start()
started = time.perf_counter()
if scenario == "eager":
    pipe("a house", images, num_inference_steps=2, height=size, width=size,
         guidance_scale=7.0, controlnet_conditioning_scale=[0.8] * len(nets),
         generator=torch.Generator().manual_seed(1))
else:
    flow.run()
    out["pool_peak"] = lf.pool.stats["peak_bytes"]["cpu"]
    out["resident_after"] = lf.pool.resident_bytes()
    out["controlnet_bytes"] = sum(e["bytes"] for e in lf.pool.entries()
                                  if e["kind"] == "CONTROLNET")
out["seconds"] = time.perf_counter() - started
stop.set()
thread.join()
out["rss_peak"] = peak[0] - start_rss
print("RESULT" + json.dumps(out))
'''


def _scenario(folder: Path, nets: list[str], scenario: str, size: int) -> dict:
    code = SCENARIO.format(root=str(ROOT), folder=str(folder), nets=nets, scenario=scenario,
                           size=size)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def _build(quick: bool) -> tuple[Path, list[str]]:
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    from ._models import build_sd15_scale, build_sd_like

    root = Path(tempfile.mkdtemp())
    folder = (build_sd_like(root / "sd_like", channels=(64, 128, 128)) if quick
              else build_sd15_scale(root / "sd15_scale"))
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    nets = []
    for k in range(3):
        torch.manual_seed(k)
        net = ControlNetModel.from_unet(unet)
        net.save_pretrained(root / f"cn{k}", safe_serialization=True)
        nets.append(str(root / f"cn{k}"))
    return folder, nets


def run(quick: bool = False) -> list[Result]:
    folder, nets = _build(quick)
    size = 256  # 32x32 latents through an 8x VAE
    lazy, eager, one = (_scenario(folder, nets, s, size) for s in ("lazy", "eager", "lazy_one"))
    mib = 2**20
    details = {
        "model": "build_sd_like (64,128,128)" if quick else "SD 1.5 shapes",
        "pool_before_lazy_MiB": lazy["resident_before"] / mib,
        "weights_before_eager_MiB": eager["resident_before"] / mib,
        "rss_before_lazy_MiB": lazy["rss_before"] / mib,
        "rss_before_eager_MiB": eager["rss_before"] / mib,
        "pool_after_lazy_MiB": lazy["resident_after"] / mib,
        "pool_after_lazy_one_of_three_MiB": one["resident_after"] / mib,
        "rss_peak_lazy_MiB": lazy["rss_peak"] / mib,
        "rss_peak_eager_MiB": eager["rss_peak"] / mib,
        "rss_peak_lazy_one_of_three_MiB": one["rss_peak"] / mib,
        "seconds_lazy": lazy["seconds"], "seconds_eager": eager["seconds"],
    }
    before = eager["rss_before"] / max(lazy["rss_before"], mib)
    peak = lazy["rss_peak"] / max(eager["rss_peak"], 1)
    one_ratio = lazy["controlnet_bytes"] / max(one["controlnet_bytes"], 1)
    return [
        Result("3 ControlNets: resident before the first run", "eager / lazy RSS growth",
               before, ">= 2", before >= 2, details),
        Result("3 ControlNets: peak during the run", "lazy / eager peak RSS growth", peak,
               "<= 1.10", peak <= 1.10, details),
        Result("3 ControlNets defined, 1 used", "ControlNet bytes resident 3 / 1", one_ratio,
               ">= 2.9", one_ratio >= 2.9, details),
    ]
