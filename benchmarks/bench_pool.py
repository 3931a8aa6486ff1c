"""Model-pool memory benchmarks (issue 3). Each scenario runs in a fresh subprocess and
reports private memory (USS, PSS from psutil) and RSS, before and after.

- three branches sharing one text encoder/UNet/VAE against one branch (goal: within 10%)
  and against loading the models per branch (naive: a diffusers pipeline per branch);
  fp32 from safetensors (memory-mapped) and fp16 (a private cast) both reported;
- ``lf.pool.clear()`` gives private memory back (USS within 10% of before loading; "before"
  is measured after one warm-up load/run/clear, so library imports and initialisation are
  not counted as model memory);
- 100 build/run/release cycles: RSS drift under 5%.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ._common import ROOT, Result

SCENARIO = r'''
import gc, json, sys
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
import lightflow as lf
from lightflow.pool import host_memory
folder, scenario, dtype = {folder!r}, {scenario!r}, {dtype!r}
lf.settings.preview = None
def mem():
    gc.collect()
    m = host_memory(private=True)
    return {{k: m[k] for k in ("rss", "uss", "pss")}}
def branch(sd, i, steps=1):  # small and short: weights dominate (fp16 convs are slow on CPUs)
    return lf.prompt(f"a cat {{i}}").encode(sd).sample(sd, steps=steps, seed=i,
                                                      size=128).decode(sd)
out = {{}}
if scenario == "cycles":
    rss = []
    for i in range(100):
        sd = lf.checkpoint(folder, dtype=dtype)
        branch(sd, i, steps=1).run()
        lf.get_executor().cache.clear()
        lf.pool.clear()
        gc.collect()
        rss.append(host_memory()["rss"])
    out["rss"] = rss
else:
    # warm-up: libraries imported and initialised (lazy imports, kernels, thread pools) with
    # one load/run/clear of the same model, so "before" measures a kernel that has run it
    if scenario == "naive":
        from diffusers import StableDiffusionPipeline
        warm = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=getattr(torch, dtype))
        warm.set_progress_bar_config(disable=True)
        warm("warm", num_inference_steps=1, height=128, width=128)
        del warm
    else:
        branch(lf.checkpoint(folder, dtype=dtype), 99).run()
        lf.get_executor().cache.clear()
        lf.pool.clear()
    out["before"] = mem()
    if scenario == "one":
        branch(lf.checkpoint(folder, dtype=dtype), 0).run()
    elif scenario == "three":
        sd = lf.checkpoint(folder, dtype=dtype)
        for i in range(3):
            branch(sd, i).run()
    elif scenario == "naive":
        from diffusers import StableDiffusionPipeline
        pipes = [StableDiffusionPipeline.from_pretrained(folder, torch_dtype=getattr(torch, dtype))
                 for _ in range(3)]
        for i, p in enumerate(pipes):
            p.set_progress_bar_config(disable=True)
            p(f"a cat {{i}}", num_inference_steps=1, height=128, width=128,
              generator=torch.Generator().manual_seed(i))
    out["after"] = mem()
    if scenario in ("one", "three"):
        lf.get_executor().cache.clear()
        lf.pool.clear()
        out["cleared"] = mem()
print("RESULT" + json.dumps(out))
'''


def _scenario(folder: Path, scenario: str, dtype: str) -> dict:
    code = SCENARIO.format(root=str(ROOT), folder=str(folder), scenario=scenario, dtype=dtype)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def _delta(r: dict, key: str, end: str = "after") -> int:
    return r[end][key] - r["before"][key]


def run(quick: bool = False) -> list[Result]:
    from ._models import build_sd_like

    folder = build_sd_like(Path(tempfile.mkdtemp()) / "sd_like",
                           channels=(64, 128, 128) if quick else (128, 256, 256))
    results = []
    for dtype in ("float32", "float16"):
        one, three, naive = (_scenario(folder, s, dtype) for s in ("one", "three", "naive"))
        details = {}
        for key in ("uss", "pss", "rss"):
            details[f"{key}_one_MiB"] = _delta(one, key) / 2**20
            details[f"{key}_three_MiB"] = _delta(three, key) / 2**20
            details[f"{key}_naive_MiB"] = _delta(naive, key) / 2**20
        ratio = _delta(three, "pss") / _delta(one, "pss")
        naive_ratio = _delta(naive, "pss") / _delta(one, "pss")
        details["naive_over_one_pss"] = naive_ratio
        details["naive_over_one_rss"] = _delta(naive, "rss") / _delta(one, "rss")
        results.append(Result(f"3 branches vs 1 ({dtype})", "PSS growth ratio", ratio,
                              "<= 1.10", ratio <= 1.10, details))
        cleared = (three["cleared"]["uss"] - three["before"]["uss"]) / max(
            _delta(three, "uss"), 1)
        results.append(Result(f"pool.clear() frees memory ({dtype})",
                              "USS left / USS loaded", cleared, "<= 0.10", cleared <= 0.10,
                              {"uss_before_MiB": three["before"]["uss"] / 2**20,
                               "uss_loaded_MiB": three["after"]["uss"] / 2**20,
                               "uss_cleared_MiB": three["cleared"]["uss"] / 2**20}))
    cycles = _scenario(folder, "cycles", "float32")["rss"]
    drift = (cycles[-1] - cycles[9]) / cycles[9]
    results.append(Result("100 build/run/release cycles", "RSS drift (10th→100th)", drift,
                          "< 0.05", drift < 0.05,
                          {"rss_10_MiB": cycles[9] / 2**20, "rss_100_MiB": cycles[-1] / 2**20}))
    return results
