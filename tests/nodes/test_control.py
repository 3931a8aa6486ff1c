"""ControlNet / T2I-Adapter nodes: equal to diffusers' pipelines (single and multi
ControlNet, T2I-Adapter) within 1/255, loaded lazily, and bad inputs refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lightflow as lf
from lightflow.nodes.control import canny, controlnet, t2i_adapter
from tests.support.adapters import (
    build_adapter_sd,
    build_controlnet,
    build_t2i_adapter,
    edge_image,
)

TOL = 1 / 255


@pytest.fixture(scope="module")
def nets(sd15_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("control")
    return build_controlnet(sd15_dir, root / "cn_a", seed=1), \
        build_controlnet(sd15_dir, root / "cn_b", seed=2)


def _np(node: lf.Node) -> np.ndarray:
    return node.run().value.permute(0, 2, 3, 1).numpy()


def _cn_pipe(folder, nets):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    models = [ControlNetModel.from_pretrained(n) for n in nets]
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        folder, controlnet=models if len(models) > 1 else models[0], safety_checker=None,
        requires_safety_checker=False, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_single_controlnet_matches_diffusers(sd15_dir, nets):
    sd = lf.checkpoint(sd15_dir)
    img = edge_image(seed=1)
    cond = lf.prompt("a red house", negative="blurry").encode(sd)
    flow = cond.control(controlnet(nets[0]), img, strength=0.8, end=0.75).sample(
        sd, steps=4, cfg=6.5, seed=7, batch=2).decode(sd)
    ours = _np(flow)
    theirs = _cn_pipe(sd15_dir, nets[:1])(
        "a red house", img, negative_prompt="blurry", num_inference_steps=4, guidance_scale=6.5,
        controlnet_conditioning_scale=0.8, control_guidance_end=0.75, num_images_per_prompt=2,
        output_type="np", generator=torch.Generator("cpu").manual_seed(7)).images
    plain = _np(cond.sample(sd, steps=4, cfg=6.5, seed=7, batch=2).decode(sd))
    assert ours.shape == theirs.shape == (2, 64, 64, 3)
    assert np.abs(ours - theirs).max() <= TOL
    assert np.abs(ours - plain).max() > 0.01  # the ControlNet does something


def test_multi_controlnet_matches_diffusers(sd15_dir, nets):
    sd = lf.checkpoint(sd15_dir)
    a, b = edge_image(seed=1), edge_image(seed=2)
    flow = (lf.prompt("a blue car").encode(sd)
            .control(controlnet(nets[0]), a, strength=0.6, start=0.0, end=1.0)
            .control(controlnet(nets[1]), b, strength=1.2, start=0.25, end=0.75)
            .sample(sd, steps=4, cfg=5.0, seed=3).decode(sd))
    theirs = _cn_pipe(sd15_dir, nets)(
        "a blue car", [a, b], num_inference_steps=4, guidance_scale=5.0,
        controlnet_conditioning_scale=[0.6, 1.2], control_guidance_start=[0.0, 0.25],
        control_guidance_end=[1.0, 0.75], output_type="np",
        generator=torch.Generator("cpu").manual_seed(3)).images
    assert np.abs(_np(flow) - theirs).max() <= TOL


def test_controlnet_loads_only_when_sampling_runs(fresh, sd15_dir, nets):
    sd = lf.checkpoint(sd15_dir)
    cond = lf.prompt("a cat").encode(sd).control(controlnet(nets[0]), edge_image())
    cond.run()
    assert not [e for e in lf.pool.entries() if e["kind"] == "CONTROLNET"]
    flow = cond.sample(sd, steps=2, seed=1).decode(sd)
    flow.run()
    assert [e["kind"] for e in lf.pool.entries()].count("CONTROLNET") == 1
    # strength is part of the cache key: a change re-samples, nothing is reloaded
    loads = lf.pool.stats["loads"]
    other = lf.prompt("a cat").encode(sd).control(controlnet(nets[0]), edge_image(),
                                                  strength=0.5).sample(sd, steps=2, seed=1)
    run = other.run()
    assert "sample" in run.executed_ops and "encode" in run.cached_ops
    assert lf.pool.stats["loads"] == loads


def test_canny_is_opencv_canny():
    import cv2

    img = edge_image(seed=4)
    edges = lf.image(img).canny(50, 150).run().value
    expected = cv2.Canny(np.asarray(img), 50, 150)
    assert edges.shape == (1, 3, 64, 64)
    assert torch.equal(edges[0, 0], torch.from_numpy(expected / 255.0).float())
    assert torch.equal(edges[0, 0], edges[0, 2])
    assert canny(torch.zeros(1, 3, 8, 8)).abs().sum() == 0
    with pytest.raises(lf.ParameterError):
        lf.image(img).canny(200, 100)


def test_canny_control_flow_runs(sd15_dir, nets):
    sd = lf.checkpoint(sd15_dir)
    edges = lf.image(edge_image(seed=5)).canny()
    image = lf.prompt("a house").encode(sd).control(controlnet(nets[0]), edges).sample(
        sd, steps=2, seed=2).decode(sd).image()
    assert image.size == (64, 64)


def test_control_image_of_another_size_is_resized_with_a_warning(sd15_dir, nets):
    sd = lf.checkpoint(sd15_dir)
    small = edge_image(size=48, seed=6)
    flow = lf.prompt("a tree").encode(sd).control(controlnet(nets[0]), small).sample(
        sd, steps=3, seed=4, size=64).decode(sd)
    with pytest.warns(UserWarning, match="resized"):
        ours = _np(flow)
    theirs = _cn_pipe(sd15_dir, nets[:1])(
        "a tree", small, height=64, width=64, num_inference_steps=3, guidance_scale=7.0,
        output_type="np",
        generator=torch.Generator("cpu").manual_seed(4)).images
    assert np.abs(ours - theirs).max() <= TOL


def test_control_image_of_the_wrong_type_is_refused(sd15_dir, nets):
    sd = lf.checkpoint(sd15_dir)
    cond = lf.prompt("a cat").encode(sd)
    latent = cond.sample(sd, steps=1)
    with pytest.raises(lf.TypeMismatchError, match="decode"):
        cond.control(controlnet(nets[0]), latent)
    with pytest.raises(lf.TypeMismatchError):
        cond.control(controlnet(nets[0]), 3)
    with pytest.raises(lf.TypeMismatchError):
        cond.control(sd, edge_image())  # a checkpoint is not a ControlNet
    with pytest.raises(lf.TypeMismatchError):
        lf.prompt("a cat").control(controlnet(nets[0]), edge_image())
    with pytest.raises(lf.ParameterError):
        cond.control(controlnet(nets[0]), edge_image(), start=0.8, end=0.2)
    with pytest.raises(lf.ModelNotFoundError):
        controlnet("/no/such/controlnet")


def test_controlnet_for_another_family_is_refused(fresh, sd15_dir, sdxl_dir, tmp_path):
    xl_net = build_controlnet(sdxl_dir, tmp_path / "cn_xl")
    sd = lf.checkpoint(sd15_dir)
    plain = lf.prompt("a cat").encode(sd).sample(sd, steps=2, seed=1).decode(sd)
    before = _np(plain)
    flow = lf.prompt("a cat").encode(sd).control(controlnet(xl_net), edge_image()).sample(
        sd, steps=2, seed=1).decode(sd)
    with pytest.raises(lf.ParameterError, match="another model family"):
        flow.run()
    assert not [e for e in lf.pool.entries() if e["kind"] == "CONTROLNET"]  # never loaded
    lf.get_executor().cache.clear()
    assert np.array_equal(_np(plain), before)


def test_t2i_adapter_matches_diffusers(sd15_dir, tmp_path):
    from diffusers import StableDiffusionAdapterPipeline, T2IAdapter

    folder = build_adapter_sd(sd15_dir, tmp_path / "sd_adapter")
    adapter = build_t2i_adapter(tmp_path / "t2i")
    sd = lf.checkpoint(folder)
    img = edge_image(seed=7)
    cond = lf.prompt("a red cat", negative="blurry").encode(sd)
    flow = cond.adapter(t2i_adapter(adapter), img, strength=0.7).sample(
        sd, steps=3, cfg=6.0, seed=5).decode(sd)
    ours = _np(flow)
    pipe = StableDiffusionAdapterPipeline.from_pretrained(
        folder, adapter=T2IAdapter.from_pretrained(adapter), safety_checker=None,
        requires_safety_checker=False, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a red cat", img, negative_prompt="blurry", num_inference_steps=3,
                  guidance_scale=6.0, adapter_conditioning_scale=0.7, output_type="np",
                  generator=torch.Generator("cpu").manual_seed(5)).images
    plain = _np(cond.sample(sd, steps=3, cfg=6.0, seed=5).decode(sd))
    assert np.abs(ours - theirs).max() <= TOL
    assert np.abs(ours - plain).max() > 0.01


def test_sdxl_controlnet_matches_diffusers(sdxl_dir, tmp_path):
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline

    net = build_controlnet(sdxl_dir, tmp_path / "cn_xl")
    sd = lf.checkpoint(sdxl_dir)
    img = edge_image(seed=8)
    flow = lf.prompt("a watercolor cat").encode(sd).control(controlnet(net), img, strength=0.9)
    ours = _np(flow.sample(sd, steps=3, cfg=5.0, seed=11).decode(sd))
    pipe = StableDiffusionXLControlNetPipeline.from_pretrained(
        sdxl_dir, controlnet=ControlNetModel.from_pretrained(net), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a watercolor cat", image=img, num_inference_steps=3, guidance_scale=5.0,
                  controlnet_conditioning_scale=0.9, output_type="np",
                  generator=torch.Generator("cpu").manual_seed(11)).images
    assert np.abs(ours - theirs).max() <= TOL
