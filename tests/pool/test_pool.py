"""The model pool: shared, lazy, ref-counted, budgeted, observable, and thread-safe."""

from __future__ import annotations

import gc
import importlib
import random
import shutil
import threading
import time
import weakref

import pytest
import torch

import lightflow as lf
from lightflow.pool import ModelPool, ModelSpec, Source, resolve_source


def _branches(sd, n=3):
    return [lf.prompt(f"a cat {i}").encode(sd).sample(sd, steps=2, seed=i).decode(sd)
            for i in range(n)]


def test_three_branches_load_each_component_once_and_share_it(fresh, sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    seen = []
    unsubscribe = lf.pool.subscribe(lambda event, row: seen.append((event, row["label"])))
    try:
        for flow in _branches(sd):
            flow.run()
    finally:
        unsubscribe()
    loads = lf.pool.stats["loads_by_component"]
    assert loads == {"text_encoder": 1, "tokenizer": 1, "unet": 1, "scheduler": 1, "vae": 1}
    assert lf.pool.stats["hits"] >= 10
    assert sum(1 for e, label in seen if e == "load" and label.endswith("/text_encoder")) == 1
    spec = resolve_source(str(sd15_dir))
    with lf.pool.acquire(ModelSpec(spec, "text_encoder")) as a, \
            lf.pool.acquire(ModelSpec(resolve_source(str(sd15_dir)), "text_encoder")) as b:
        assert a is b


def test_nothing_is_read_until_a_node_runs(fresh, sd15_dir):
    flow = _branches(lf.checkpoint(sd15_dir), 1)[0]
    plan = lf.pool.plan(ModelSpec(resolve_source(str(sd15_dir)), c)
                        for c in ("unet", "vae", "text_encoder"))
    assert len(lf.pool) == 0 and plan.fits and len(plan.to_load) == 3
    flow.run()
    entries = {e["label"].split("/")[-1]: e for e in lf.pool.entries()}
    loaded = sum(entries[c]["bytes"] for c in ("unet", "vae", "text_encoder"))
    # headers give every stored tensor; non-persistent buffers (CLIP's position ids) differ
    assert abs(plan.bytes_needed["cpu"] - loaded) / loaded < 0.001


def test_rerunning_cells_and_reloading_lightflow_loads_nothing(fresh, sd15_dir):
    _branches(lf.checkpoint(sd15_dir), 1)[0].run()
    loads = lf.pool.stats["loads"]
    pool_id = id(lf.pool)
    # the notebook cells, run again: a new handle, a new (equal) flow
    again = _branches(lf.checkpoint(sd15_dir), 1)[0].replace(seed=42)
    assert again.run().executed_ops == ["sample", "decode"]
    import lightflow

    reloaded = importlib.reload(lightflow)
    assert id(reloaded.pool) == pool_id
    after = _branches(reloaded.checkpoint(sd15_dir), 1)[0].replace(seed=43)
    assert after.run().executed_ops == ["sample", "decode"]
    assert reloaded.pool.stats["loads"] == loads


def test_a_budget_below_the_sum_runs_stage_by_stage(fresh, sd15_dir, caplog):
    sizes = {c: ModelSpec(resolve_source(str(sd15_dir)), c).estimate_bytes()
             for c in ("unet", "vae", "text_encoder")}
    budget = max(sizes.values()) + 1024
    assert sum(sizes.values()) > budget
    lf.pool.set_budget(cpu=budget)
    lf.pool.reset_stats()
    try:
        with caplog.at_level("WARNING", logger="lightflow"):
            run = _branches(lf.checkpoint(sd15_dir), 1)[0].run()
        assert run.value.shape == (1, 3, 64, 64)
        assert lf.pool.stats["peak_bytes"]["cpu"] <= budget
        assert lf.pool.stats["evictions"] >= 2
        assert any("stage by stage" in r.message for r in caplog.records)
    finally:
        lf.pool.set_budget(cpu=ModelPool().budgets["cpu"])


def test_a_fourth_vae_evicts_the_least_recently_used_idle_vae(fresh, sd15_dir, tmp_path):
    specs = []
    for i in range(4):
        shutil.copytree(sd15_dir, tmp_path / f"m{i}")
        specs.append(ModelSpec(resolve_source(str(tmp_path / f"m{i}")), "vae"))
    for spec in specs[:3]:
        lf.pool.acquire(spec).release()
        time.sleep(0.01)
    lf.pool.acquire(specs[0]).release()  # m0 is now the most recent; m1 the least
    lf.pool.acquire(specs[3]).release()
    resident = {e["key"] for e in lf.pool.entries() if e["kind"] == "VAE"}
    assert specs[1].key not in resident
    assert {specs[0].key, specs[2].key, specs[3].key} <= resident
    assert lf.pool.stats["evictions"] == 1


def test_a_model_in_use_is_not_evicted_when_another_thread_needs_room(fresh, sd15_dir):
    unet = ModelSpec(resolve_source(str(sd15_dir)), "unet")
    vae = ModelSpec(resolve_source(str(sd15_dir)), "vae")
    lf.pool.set_budget(cpu=unet.estimate_bytes() + 1024)
    lf.pool.wait_timeout = 0.5
    outcome = {}
    try:
        lease = lf.pool.acquire(unet)

        def other() -> None:
            try:
                lf.pool.acquire(vae).release()
                outcome["ok"] = True
            except lf.PoolError as exc:
                outcome["error"] = exc

        t = threading.Thread(target=other)
        t.start()
        t.join(5)
        assert isinstance(outcome.get("error"), lf.PoolError)
        assert "in use" in str(outcome["error"])
        assert unet.key in lf.pool and lease.model is not None
        assert next(iter(lease.model.parameters())).abs().sum() > 0
        # once released, the other thread gets its room
        t2 = threading.Thread(target=other)
        t2.start()
        time.sleep(0.1)
        lease.release()
        t2.join(5)
        assert outcome.get("ok")
    finally:
        lf.pool.wait_timeout = 30.0
        lf.pool.set_budget(cpu=ModelPool().budgets["cpu"])


def test_clear_frees_the_modules(fresh, sd15_dir):
    _branches(lf.checkpoint(sd15_dir), 1)[0].run()
    refs = []
    for row in lf.pool.entries():
        with lf.pool.acquire(_spec_from_row(row)) as model:
            if isinstance(model, torch.nn.Module):
                refs.append(weakref.ref(model))
    assert len(refs) == 3
    lf.get_executor().cache.clear()
    assert lf.pool.clear() == 5
    gc.collect()
    assert all(r() is None for r in refs)
    assert len(lf.pool) == 0 and lf.pool.resident_bytes() == 0


def _spec_from_row(row):
    for entry in lf.pool._entries.values():
        if entry.key == row["key"]:
            ident, component, dtype, device = entry.key
            location = ident.split(":", 1)[1].rsplit("/", 1)[0]
            return ModelSpec(Source("folder", location), component, dtype, device)
    raise KeyError(row)


def test_release_drops_matching_idle_models(fresh, sd15_dir):
    _branches(lf.checkpoint(sd15_dir), 1)[0].run()
    assert lf.pool.release("VAE") == 1
    assert {e["kind"] for e in lf.pool.entries()} == {"UNET", "TEXT_ENCODER", "TOKENIZER",
                                                      "SCHEDULER"}
    text = repr(lf.pool)
    assert text.startswith("<ModelPool 4 models")


def test_eight_threads_acquire_and_release_without_deadlock(fresh, sd15_dir, tmp_path):
    specs = [ModelSpec(resolve_source(str(sd15_dir)), c) for c in ("vae", "unet", "tokenizer")]
    for i in range(3):
        shutil.copytree(sd15_dir, tmp_path / f"v{i}", ignore=shutil.ignore_patterns("unet"))
        specs.append(ModelSpec(resolve_source(str(tmp_path / f"v{i}")), "vae"))
    lf.pool.set_cap("VAE", 2)
    errors: list[BaseException] = []
    deadline = time.monotonic() + 10

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            held = [lf.pool.acquire(rng.choice(specs)) for _ in range(rng.randint(1, 2))]
            time.sleep(rng.random() * 0.005)
            for lease in held:
                lease.release()

    def guarded(seed: int) -> None:
        try:
            worker(seed)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), "deadlock"
        assert not errors, errors
        assert all(e["users"] == 0 for e in lf.pool.entries())
        assert all(not entry.holders for entry in lf.pool._entries.values())
        stats = lf.pool.stats
        assert stats["loads"] - stats["evictions"] == len(lf.pool)
    finally:
        lf.pool.set_cap("VAE", 3)


def test_memory_readings_degrade_cleanly_without_a_gpu():
    readings = lf.pool.memory()
    assert readings["host"]["total"] > readings["host"]["available"] > 0
    assert readings["host"]["rss"] > 0
    if not torch.cuda.is_available():
        assert readings["gpu"] == {"available": False, "reason": "no CUDA GPU visible to torch",
                                   "devices": []}
        assert readings["torch"]["available"] is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)")
def test_cuda_defaults_to_fp16_and_nvml_agrees_with_torch(fresh, sd15_dir):
    from lightflow.pool import gpu_memory

    run = _branches(lf.checkpoint(sd15_dir), 1)[0].run()
    assert run.models[0].dtype == "float16"
    info = gpu_memory()
    free, total = torch.cuda.mem_get_info(0)
    assert info["devices"][0]["total"] == total
    assert abs(info["devices"][0]["free"] - free) < 256 * 1024**2


def test_parse_budget_strings():
    from lightflow.pool import parse_bytes

    assert parse_bytes("6GB") == 6 * 1024**3
    assert parse_bytes("512 MiB") == 512 * 1024**2
    assert parse_bytes(1000) == 1000
    with pytest.raises(lf.ParameterError):
        parse_bytes("lots")
