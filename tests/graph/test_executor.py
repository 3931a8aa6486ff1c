"""The executor runs only what changed, caches outputs by key in an LRU bounded in bytes,
emits events and stops cleanly between sampling steps."""

from __future__ import annotations

import threading

import pytest
import torch

import lightflow as lf
from lightflow.graph.cache import OutputCache


def _flow(sd, prompt="a cat", seed=1, steps=3):
    # DDIM: one UNet call per step (the checkpoint's PNDM adds a warm-up call)
    return lf.prompt(prompt).encode(sd).sample(sd, steps=steps, seed=seed,
                                               scheduler="ddim").decode(sd)


def test_rerun_seed_change_and_prompt_change(fresh, sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    first = _flow(sd).run()
    assert first.executed_ops == ["prompt", "encode", "sample", "decode"]
    again = _flow(lf.checkpoint(sd15_dir)).run()  # a new but equal handle and flow
    assert again.executed == [] and again.cached_ops == ["decode"]
    assert torch.equal(again.value, first.value)
    seed = _flow(sd, seed=2).run()
    assert seed.executed_ops == ["sample", "decode"]
    prompt = _flow(sd, prompt="a dog").run()
    assert prompt.executed_ops == ["prompt", "encode", "sample", "decode"]
    assert set(first.seconds) == {n.key for n in first.executed}
    assert lf.pool.stats["loads_by_component"]["unet"] == 1  # models loaded once


def test_editing_a_weight_file_invalidates_results(fresh, sd15_dir, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(sd15_dir, folder)
    sd = lf.checkpoint(folder)
    _flow(sd).run()
    vae_file = next((folder / "vae").glob("*.safetensors"))
    vae_file.touch()
    import os

    st = vae_file.stat()
    os.utime(vae_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    rerun = _flow(sd).run()
    assert rerun.executed_ops == ["decode"]  # only what depends on the edited VAE


def test_events_report_nodes_steps_and_progress(fresh, sd15_dir):
    events = []
    _flow(lf.checkpoint(sd15_dir), steps=4).run(on_event=events.append)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    steps = [e for e in events if isinstance(e, lf.StepEvent)]
    assert [e.step for e in steps] == [1, 2, 3, 4] and steps[-1].total == 4
    assert all(e.latent.shape[0] == 1 for e in steps)
    started = [e.node.op for e in events if isinstance(e, lf.NodeStarted)]
    assert started == ["prompt", "encode", "sample", "decode"]


def test_stop_flag_interrupts_between_steps_and_caches_nothing_partial(fresh, sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    flow = _flow(sd, steps=10)
    stop = threading.Event()

    def on_event(event):
        if isinstance(event, lf.StepEvent) and event.step == 3:
            stop.set()

    with pytest.raises(lf.RunInterrupted) as info:
        flow.run(on_event=on_event, stop=stop)
    assert info.value.step == 3 and info.value.total == 10
    assert "step 3/10" in str(info.value)
    assert all(e["users"] == 0 for e in lf.pool.entries())  # leases released
    rerun = flow.run()
    assert rerun.executed_ops == ["sample", "decode"]  # encode was cached, sample was not
    assert flow.run().executed == []


def test_keyboard_interrupt_becomes_run_interrupted(fresh, sd15_dir):
    """Jupyter's interrupt raises KeyboardInterrupt wherever the main thread is: here in
    an event listener during sampling."""
    sd = lf.checkpoint(sd15_dir)
    flow = _flow(sd, steps=5)

    def on_event(event):
        if isinstance(event, lf.StepEvent) and event.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(lf.RunInterrupted, match="KeyboardInterrupt"):
        flow.run(on_event=on_event)
    assert all(e["users"] == 0 for e in lf.pool.entries())
    assert flow.run().executed_ops == ["sample", "decode"]


def test_a_failing_listener_never_breaks_a_run(fresh, sd15_dir):
    def broken(event):
        raise RuntimeError("view bug")

    run = _flow(lf.checkpoint(sd15_dir)).run(on_event=broken)
    assert run.value.shape == (1, 3, 64, 64)


def test_output_cache_is_lru_bounded_in_bytes():
    cache = OutputCache(max_bytes=3 * 400)
    for name in "abc":
        cache.put(name, torch.zeros(100))  # 400 bytes each
    cache.get("a")  # a is now most recent
    cache.put("d", torch.zeros(100))
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.bytes == 1200 and cache.evictions == 1
    cache.put("huge", torch.zeros(10_000))
    assert "huge" not in cache and cache.bytes == 1200


def test_runs_record_mode_and_draft_results_are_cached_separately(fresh, sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    flow = _flow(sd, steps=6)
    final = flow.run()
    draft = flow.run(mode="draft")
    assert final.mode == "final" and draft.mode == "draft"
    # encoding is the same work in both modes and is shared; sampling (capped steps) and
    # decoding (proxy) are draft computations of their own
    assert draft.executed_ops == ["sample", "proxy_decode"]
    assert draft.cached_ops == ["encode"]
    assert not torch.equal(final.value, draft.value)
    again = flow.run()
    assert again.executed == [] and torch.equal(again.value, final.value)
    lf.get_executor().cache.clear()
    draft_first = _flow(sd, steps=6, seed=8).run(mode="draft")
    final_after = _flow(sd, steps=6, seed=8).run()
    assert final_after.executed_ops == ["sample", "decode"]  # no draft result reused
    assert draft_first.executed_ops[-1] == "proxy_decode"
