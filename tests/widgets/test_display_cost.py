"""Displaying is cheap: a flow whose models are not loaded displays in under 200 ms and
loads nothing; outside notebooks no widget code is imported."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import lightflow as lf

ROOT = Path(__file__).resolve().parents[2]


def test_displaying_a_flow_loads_nothing_and_is_fast(sd15_dir, fresh):
    import lightflow.widgets.flow_view  # noqa: F401  (module import is not display cost)

    sd = lf.checkpoint(sd15_dir)
    flow = lf.prompt("a cat").encode(sd).sample(sd, steps=20, seed=1).decode(sd)
    loads, cached = lf.pool.stats["loads"], len(lf.get_executor().cache)
    started = time.perf_counter()
    bundle = flow._repr_mimebundle_()
    seconds = time.perf_counter() - started
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert lf.pool.stats["loads"] == loads and len(lf.pool) == 0
    assert len(lf.get_executor().cache) == cached  # nothing computed either
    assert seconds < 0.2, f"displaying took {seconds * 1000:.0f} ms"


def test_displaying_the_pool_loads_nothing(fresh):
    loads = lf.pool.stats["loads"]
    lf.pool._repr_mimebundle_()
    assert lf.pool.stats["loads"] == loads and len(lf.pool) == 0


def test_progress_module_and_core_do_not_import_ipywidgets():
    code = ("import sys, lightflow, lightflow.widgets, lightflow.widgets.progress; "
            "from lightflow.widgets import TqdmProgress; "
            "bad = [m for m in ('ipywidgets', 'IPython') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
