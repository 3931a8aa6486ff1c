"""50 LoRA switches between runs (issue 8): base weights never re-read, RSS drift, cost.

In a fresh subprocess on an SD-shaped random-weight model (``build_sd_like``):

- 50 runs, each with the next of 6 LoRAs round robin (cap 5: every switch also evicts one
  LoRA and deletes its adapters, the worst case), cache cleared between runs; pool counters
  must show the UNet / text encoder / VAE read once; RSS drift from run 10 to run 50;
- switching cost: a run whose LoRA differs from the previous run's (two resident LoRAs,
  alternating) against a run with the same LoRA again, medians, interleaved; compared with
  a fresh load (diffusers ``from_pretrained`` + ``load_lora_weights``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ._common import ROOT, Result

SCENARIO = r'''
import gc, json, statistics, sys, time
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
import lightflow as lf
from lightflow.pool import host_memory
folder, loras, switches = {folder!r}, {loras!r}, {switches!r}
lf.settings.preview = None
sd = lf.checkpoint(folder)
def flow(path, seed=1):
    ck = sd.lora(path, 0.8)
    return lf.prompt("a cat").encode(ck).sample(ck, steps=1, seed=seed, size=64).decode(ck)
rss = []
for i in range(switches):
    lf.get_executor().cache.clear()
    flow(loras[i % len(loras)]).run()
    gc.collect()
    rss.append(host_memory()["rss"])
out = {{"rss": rss, "loads": dict(lf.pool.stats["loads_by_component"])}}
times = {{"switch": [], "same": []}}
for i in range(8):
    for kind, path in (("same", loras[0]), ("switch", loras[1]), ("same", loras[1]),
                       ("switch", loras[0])):
        lf.get_executor().cache.clear()
        started = time.perf_counter()
        flow(path).run()
        times[kind].append(time.perf_counter() - started)
out["switch_s"] = statistics.median(times["switch"])
out["same_s"] = statistics.median(times["same"])
from diffusers import StableDiffusionPipeline
fresh = []
for _ in range(3):
    started = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.load_lora_weights(loras[0], adapter_name="x")
    fresh.append(time.perf_counter() - started)
    del pipe
    gc.collect()
out["fresh_s"] = statistics.median(fresh)
print("RESULT" + json.dumps(out))
'''


def run(quick: bool = False) -> list[Result]:
    from tests.support.adapters import build_lora

    from ._models import build_sd_like

    root = Path(tempfile.mkdtemp())
    folder = build_sd_like(root / "sd_like",
                           channels=(64, 128, 128) if quick else (128, 256, 256))
    loras = [str(build_lora(folder, root / f"lora{k}.safetensors", seed=k, rank=8))
             for k in range(6)]
    code = SCENARIO.format(root=str(ROOT), folder=str(folder), loras=loras, switches=50)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    out = json.loads(line[len("RESULT"):])
    rss, loads = out["rss"], out["loads"]
    drift = (rss[-1] - rss[9]) / rss[9]
    base_reads = max(loads.get(c, 0) for c in ("unet", "text_encoder", "vae"))
    overhead = max(out["switch_s"] - out["same_s"], 0.0)
    details = {"loads_by_component": loads, "rss_10_MiB": rss[9] / 2**20,
               "rss_50_MiB": rss[-1] / 2**20, "run_same_lora_s": out["same_s"],
               "run_switched_lora_s": out["switch_s"], "switch_overhead_s": overhead,
               "fresh_load_s": out["fresh_s"],
               "model": "build_sd_like " + ("(64,128,128)" if quick else "(128,256,256)")}
    ratio = out["fresh_s"] / max(overhead, 1e-3)
    return [
        Result("50 LoRA switches: base weights read", "max reads of unet/te/vae",
               base_reads, "== 1", base_reads == 1, details),
        Result("50 LoRA switches: RSS drift", "RSS drift (10th→50th run)", drift, "< 0.02",
               drift < 0.02, details),
        Result("LoRA switch vs fresh load", "fresh load s / switch overhead s", ratio,
               ">= 10", ratio >= 10, details),
    ]
