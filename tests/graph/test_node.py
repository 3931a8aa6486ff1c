"""Nodes are immutable values with content keys; building and showing never run anything."""

from __future__ import annotations

import time

import pytest

import lightflow as lf
from lightflow.graph.node import Node


def test_equal_subgraphs_share_a_key_and_params_change_it(sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    a = lf.prompt("a cat").encode(sd).sample(sd, seed=1)
    b = lf.prompt("a cat").encode(sd).sample(sd, seed=1)
    c = lf.prompt("a cat").encode(sd).sample(sd, seed=2)
    assert a.key == b.key and a == b and hash(a) == hash(b)
    assert a.key != c.key
    assert a.inputs["cond"].key == c.inputs["cond"].key  # upstream unchanged


def test_nodes_are_immutable(sd15_dir):
    node = lf.prompt("a cat")
    with pytest.raises(AttributeError):
        node.op = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        node.params["text"] = "a dog"  # type: ignore[index]
    assert node.params["text"] == "a cat"


def test_building_a_20_node_flow_loads_nothing_and_is_fast(fresh, sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    started = time.perf_counter()
    latent = lf.prompt("a cat").encode(sd).sample(sd, steps=2, seed=0)
    for i in range(5):  # hires-fix style chain: upscale, refine, ...
        latent = latent.upscale(1.0).sample(sd, cond=lf.prompt(f"a cat {i}").encode(sd),
                                            denoise=0.5, steps=2)
    flow = latent.decode(sd).save("/tmp/never-written.png")
    elapsed = time.perf_counter() - started
    assert len(flow.nodes()) >= 20
    text = flow.explain()
    assert repr(flow).startswith("<Node save(")
    assert "sample" in text and "upscale_latent" in text
    assert len(lf.pool) == 0 and lf.pool.stats["loads"] == 0
    assert lf.get_executor().cache.misses == 0 or len(lf.get_executor().cache) == 0
    assert elapsed < 1.0  # generous: building is pure Python (milliseconds in practice)


def test_explain_lists_every_node_with_types(sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    flow = lf.prompt("a cat").encode(sd).sample(sd, steps=3).decode(sd)
    lines = flow.explain().splitlines()
    assert lines[0].startswith("flow → IMAGE (8 nodes")
    assert any("encode(prompt=[" in line and "→ CONDITIONING" in line for line in lines)


def test_replace_changes_parameters_wherever_they_appear(sd15_dir):
    sd = lf.checkpoint(sd15_dir)
    flow = lf.prompt("a cat", negative="ugly").encode(sd).sample(sd, seed=1, size=64).decode(sd)
    dog = flow.replace(prompt="a dog", seed=5, size=(48, 32), scheduler="euler")
    params = {n.op: dict(n.params) for n in dog.nodes()}
    assert params["prompt"] == {"text": "a dog", "negative": "ugly"}
    assert params["sample"]["seed"] == 5 and params["sample"]["scheduler"] == "euler"
    assert (params["sample"]["width"], params["sample"]["height"]) == (48, 32)
    assert flow.replace().key == flow.key
    vae_a = next(n for n in flow.nodes() if n.op == "vae")
    vae_b = next(n for n in dog.nodes() if n.op == "vae")
    assert vae_a is vae_b  # untouched subgraphs are the same objects


def test_low_level_node_has_a_cheap_repr():
    node = Node("prompt", {"text": "x" * 100, "negative": ""}, {})
    assert len(repr(node)) < 120
