"""ComfyUI workflows in and out: fixture workflows run on the tiny models and equal the
fluent-API flows (same key, torch.equal images); exports round-trip and declare exactly
ComfyUI's inputs; bad workflows fail naming the node."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import lightflow as lf
from lightflow.interop.comfy_schema import NODES, SAMPLERS, scheduler_to_comfy
from lightflow.interop.comfy_validate import validate_workflow
from lightflow.nodes.schedulers import SCHEDULERS
from tests.support.adapters import build_controlnet, build_lora, edge_image

WORKFLOWS = Path(__file__).parent / "workflows"


def _workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


@dataclass
class Env:
    models: Path
    inputs: Path

    def ckpt(self, name: str = "tiny") -> lf.Node:
        path = self.models / "checkpoints" / name
        config = str(self.models / "checkpoints" / "tiny") if name.endswith(".safetensors") \
            else None
        return lf.checkpoint(str(path), config=config)


@pytest.fixture(scope="module")
def env(sd15_dir: Path, sd15_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("comfy")
    models, inputs = root / "models", root / "input"
    for sub in ("checkpoints", "vae", "loras", "controlnet"):
        (models / sub).mkdir(parents=True)
    inputs.mkdir()
    shutil.copytree(sd15_dir, models / "checkpoints" / "tiny")
    shutil.copy(sd15_file, models / "checkpoints" / "tiny.safetensors")
    shutil.copytree(sd15_dir, models / "vae" / "tiny")
    build_lora(sd15_dir, models / "loras" / "style.safetensors")
    build_controlnet(sd15_dir, models / "controlnet" / "canny")
    edge_image(80, seed=3).save(inputs / "photo.png")
    edge_image(64, seed=1).save(inputs / "edges.png")
    return Env(models, inputs)


def _same_result(imported: lf.Node, fluent: lf.Node) -> None:
    """Same key, and (run separately) bit-identical images."""
    assert imported.key == fluent.key
    first = imported.run().value
    lf.get_executor().cache.clear()
    second = fluent.run().value
    assert first.shape == second.shape and first.shape[1] == 3
    assert torch.equal(first, second)


# ---------------------------------------------------------------------- fixture workflows
def test_txt2img_workflow_matches_fluent(env: Env) -> None:
    flows = lf.from_comfy(WORKFLOWS / "txt2img_api.json", models=env.models)
    assert isinstance(flows, list) and len(flows) == 2  # SaveImage 9, PreviewImage 14
    sd = env.ckpt("tiny.safetensors")
    cond = lf.prompt("a photo of a cat", negative="blurry").encode(sd)  # layer -1: no skip
    base = cond.sample(sd, steps=3, cfg=6.5, seed=7, scheduler="euler_a", size=64, batch=2)
    # KSampler(steps=2, denoise=0.5) runs 2 steps of a 4-step schedule
    hires = base.upscale(1.5, method="bilinear").sample(
        sd, cond=cond, steps=4, cfg=5.0, seed=8, scheduler="dpmpp_2m_karras", denoise=0.5,
        batch=2)
    _same_result(flows[0], base.decode(sd))
    _same_result(flows[1], hires.decode(sd))
    assert flows[1].run().value.shape == (2, 3, 96, 96)


def test_img2img_workflow_matches_fluent(env: Env) -> None:
    flow = lf.from_comfy(WORKFLOWS / "img2img_api.json", models=env.models, inputs=env.inputs)
    sd, vae = env.ckpt("tiny"), lf.checkpoint(str(env.models / "vae" / "tiny"))
    cond = lf.prompt("a red house").encode(sd)
    photo = lf.image(env.inputs / "photo.png").upscale(width=64, height=64, method="bicubic")
    # KSampler(steps=3, denoise=0.6): 3 steps of 5; KSamplerAdvanced(start 2 of 4)
    first = photo.encode_image(vae).sample(sd, cond=cond, steps=5, cfg=5.0, seed=5,
                                           scheduler="ddim", denoise=0.6)
    second = first.upscale(width=96, height=80).sample(sd, cond=cond, steps=4, cfg=4.0, seed=9,
                                                       scheduler="lms", denoise=0.5)
    fluent = second.decode(vae).upscale(0.5, method="area")
    _same_result(flow, fluent)
    # LatentUpscale divides by 8 as ComfyUI does; the tiny VAE upsamples by 2
    assert flow.run().value.shape == (1, 3, 10, 12)


def test_lora_controlnet_workflow_matches_fluent(env: Env) -> None:
    flow = lf.from_comfy(WORKFLOWS / "lora_controlnet_api.json", models=env.models,
                         inputs=env.inputs)
    sd = env.ckpt("tiny")
    styled = sd.lora(env.models / "loras" / "style.safetensors", 0.8, text_strength=0.5)
    cn = lf.nodes.control.controlnet(env.models / "controlnet" / "canny")
    edges = lf.image(env.inputs / "edges.png")
    cond = (lf.prompt("a house", negative="blurry").encode(styled)
            .control(cn, edges, 0.9, start=0.0, end=0.8).control(cn, edges, 0.5))
    fluent = cond.sample(styled, steps=3, cfg=7.5, seed=1, scheduler="unipc", size=64).decode(sd)
    _same_result(flow, fluent)


def test_clip_set_last_layer_is_clip_skip(env: Env) -> None:
    wf = _workflow("txt2img_api.json")
    wf["10"]["inputs"]["stop_at_clip_layer"] = -3
    flows = lf.from_comfy(wf, models=env.models)
    encode = next(n for n in flows[0].nodes() if n.op == "encode")
    assert encode.params["clip_skip"] == 2


def test_ui_format_gives_the_api_flow(env: Env) -> None:
    flow = lf.from_comfy(WORKFLOWS / "txt2img_ui.json", models=env.models)
    sd = env.ckpt("tiny")
    fluent = lf.prompt("a watercolor cat", negative="blurry").encode(sd).sample(
        sd, steps=3, cfg=7.0, seed=42, scheduler="euler_karras", width=64, height=48).decode(sd)
    assert flow.key == fluent.key  # the seed comes from the PrimitiveNode; muted node skipped


# ---------------------------------------------------------------------- round trips
def _round_trip(flow: lf.Node, env: Env, **kw) -> dict:
    exported = flow.to_comfy(models=env.models, inputs=env.inputs, **kw)
    _assert_declared_inputs(exported)
    text = json.dumps(exported)  # plain JSON
    assert lf.from_comfy(json.loads(text), models=env.models, inputs=env.inputs).key == flow.key
    return exported


def _assert_declared_inputs(workflow: dict) -> None:
    """Every node's inputs are exactly ComfyUI's declared ones (required all present)."""
    validate_workflow(copy.deepcopy(workflow))
    for node in workflow.values():
        spec = NODES[node["class_type"]]
        declared = {i.name for i in spec.inputs}
        assert set(node["inputs"]) <= declared
        assert set(spec.required) <= set(node["inputs"])


def test_round_trip_txt2img(env: Env) -> None:
    sd = env.ckpt("tiny")
    flow = lf.prompt("a cat", negative="blurry").encode(sd, clip_skip=2).sample(
        sd, steps=5, cfg=6.0, seed=3, size=64, batch=2, scheduler="dpmpp_2m_karras").decode(sd)
    wf = _round_trip(flow, env)
    kinds = sorted(n["class_type"] for n in wf.values())
    assert kinds == ["CLIPSetLastLayer", "CLIPTextEncode", "CLIPTextEncode",
                     "CheckpointLoaderSimple", "EmptyLatentImage", "KSampler", "SaveImage",
                     "VAEDecode"]
    sampler = next(n for n in wf.values() if n["class_type"] == "KSampler")["inputs"]
    assert (sampler["sampler_name"], sampler["scheduler"], sampler["denoise"]) == (
        "dpmpp_2m", "karras", 1.0)


def test_round_trip_img2img(env: Env) -> None:
    sd = env.ckpt("tiny.safetensors")
    cond = lf.prompt("a house").encode(sd)
    flow = (lf.image(env.inputs / "photo.png").upscale(width=64, height=64)
            .encode_image(sd).sample(sd, cond=cond, steps=10, denoise=0.7, scheduler="euler")
            .upscale(2).sample(sd, cond=cond, steps=4, denoise=0.5, scheduler="lms_karras")
            .decode(sd).save("out/result.png"))
    wf = _round_trip(flow.inputs["image"], env)
    samplers = [n["inputs"] for n in wf.values() if n["class_type"] == "KSampler"]
    assert [(s["steps"], s["denoise"]) for s in samplers] == [(7, 0.7), (2, 0.5)]
    saved = flow.to_comfy(models=env.models, inputs=env.inputs)
    assert [n["inputs"]["filename_prefix"] for n in saved.values()
            if n["class_type"] == "SaveImage"] == ["result"]


def test_round_trip_lora_and_controlnet(env: Env) -> None:
    sd = env.ckpt("tiny")
    styled = sd.lora(env.models / "loras" / "style.safetensors", 0.7).lora(
        env.models / "loras" / "style.safetensors", 0.3, text_strength=0.0)
    cn = lf.nodes.control.controlnet(env.models / "controlnet" / "canny")
    edges = lf.image(env.inputs / "edges.png")
    cond = lf.prompt("a house", negative="blurry").encode(styled).control(
        cn, edges, 0.8, start=0.1, end=0.9).control(cn, edges.upscale(1.0), 0.4)
    flow = cond.sample(styled, steps=3, seed=2, size=64, scheduler="heun").decode(sd)
    wf = _round_trip(flow, env)
    loras = [n["inputs"] for n in wf.values() if n["class_type"] == "LoraLoader"]
    assert [(x["strength_model"], x["strength_clip"]) for x in loras] == [(0.7, 0.7), (0.3, 0.0)]
    assert sum(n["class_type"] == "ControlNetLoader" for n in wf.values()) == 1


def test_export_of_the_embedded_model_needs_no_models(tmp_path: Path) -> None:
    sd = lf.checkpoint()
    flow = lf.prompt("a red seven").encode(sd).sample(sd, steps=2, size=32,
                                                      scheduler="euler").decode(sd)
    wf = flow.to_comfy()
    assert wf["1"] == {"class_type": "CheckpointLoaderSimple",
                       "inputs": {"ckpt_name": "builtin:digits"}}
    assert lf.from_comfy(wf).key == flow.key


def test_default_size_and_scheduler_on_export() -> None:
    sd = lf.checkpoint()
    flow = lf.prompt("a red seven").encode(sd).sample(sd, steps=2, scheduler="ddim").decode(sd)
    empty = next(n for n in flow.to_comfy().values() if n["class_type"] == "EmptyLatentImage")
    assert (empty["inputs"]["width"], empty["inputs"]["height"]) == (32, 32)
    with pytest.raises(lf.ParameterError, match="scheduler=None"):
        flow.replace(scheduler=None).to_comfy()


def test_sampler_table_is_consistent() -> None:
    for (sampler, scheduler), name in SAMPLERS.items():
        assert name in SCHEDULERS
        assert SAMPLERS[scheduler_to_comfy(name, where="t")] == name
        assert sampler in NODES["KSampler"].input("sampler_name").choices
        assert scheduler in NODES["KSampler"].input("scheduler").choices


# ---------------------------------------------------------------------- bad workflows
def _txt2img() -> dict:
    wf = _workflow("txt2img_api.json")
    wf["4"]["inputs"]["ckpt_name"] = "builtin:digits"
    return wf


@pytest.mark.parametrize("edit, error, pattern", [
    (lambda w: w["3"].update(class_type="MysteryNode"), lf.FlowFormatError,
     r"node 3: unknown class_type 'MysteryNode'.*CLIPTextEncode.*KSampler"),
    (lambda w: w["3"]["inputs"].update(positive=["99", 0]), lf.FlowFormatError,
     r"node 3 \(KSampler\): input 'positive' refers to node '99'"),
    (lambda w: w["3"]["inputs"].update(positive=["6", 3]), lf.FlowFormatError,
     r"node 3 \(KSampler\): .*output 3 of node 6"),
    (lambda w: w["3"]["inputs"].update(positive=["4", 2]), lf.TypeMismatchError,
     r"node 3 \(KSampler\): input 'positive' expects CONDITIONING.*VAE"),
    (lambda w: w["3"]["inputs"].pop("seed"), lf.MissingInputError,
     r"node 3 \(KSampler\): input 'seed'"),
    (lambda w: w["3"]["inputs"].update(eta=0.5), lf.FlowFormatError, r"unknown input"),
    (lambda w: w["3"]["inputs"].update(steps="many"), lf.ParameterError, r"steps"),
    (lambda w: w["3"]["inputs"].update(scheduler="beta"), lf.ParameterError,
     r"node 3: sampler_name 'euler_ancestral' with scheduler 'beta'.*euler\+normal"),
    (lambda w: w["3"]["inputs"].update(sampler_name="dpmpp_sde"), lf.ParameterError,
     r"no faithful diffusers equivalent.*dpmpp_2m\+karras"),
    (lambda w: w["3"]["inputs"].update(cfg=0.5), lf.ParameterError, r"cfg=0.5"),
    (lambda w: (w["7"]["inputs"].update(clip=["4", 1]),
                w["10"]["inputs"].update(stop_at_clip_layer=-2)), lf.ParameterError,
     r"node 3.*different CLIPs"),
    (lambda w: w["5"]["inputs"].update(width=60), lf.ParameterError,
     r"node 5 \(EmptyLatentImage\).*multiple of 8"),
    (lambda w: w["9"]["inputs"].update(images=["5", 0]), lf.TypeMismatchError, r"node 9"),
])
def test_bad_workflow_names_the_node(edit, error, pattern) -> None:
    wf = _txt2img()
    edit(wf)
    with pytest.raises(error, match=pattern):
        lf.from_comfy(wf)


def test_cycle_is_refused() -> None:
    wf = _txt2img()
    wf["11"]["inputs"]["samples"] = ["12", 0]
    with pytest.raises(lf.CycleError, match=r"node (11|12).*cycle"):
        lf.from_comfy(wf)


def test_not_a_workflow() -> None:
    with pytest.raises(lf.FlowFormatError, match="no output node"):
        lf.from_comfy({"4": {"class_type": "CheckpointLoaderSimple",
                             "inputs": {"ckpt_name": "x"}}})
    with pytest.raises(lf.FlowFormatError, match="not valid JSON"):
        lf.from_comfy("{not json")
    with pytest.raises(lf.FlowFormatError, match="node 1"):
        lf.from_comfy({"1": ["not", "a", "node"]})


@pytest.mark.parametrize("name", ["../tiny", "/etc/passwd", "sub/../../tiny", "..\\tiny",
                                  "C:\\models\\x.safetensors", "~/x.safetensors"])
def test_model_names_cannot_escape(env: Env, name: str) -> None:
    wf = _txt2img()
    wf["4"]["inputs"]["ckpt_name"] = name
    with pytest.raises(lf.ParameterError, match=r"node 4.*escapes its folder"):
        lf.from_comfy(wf, models=env.models)


def test_symlink_out_of_folder_is_refused(env: Env, tmp_path: Path) -> None:
    outside = tmp_path / "secret.safetensors"
    outside.write_bytes(b"x")
    link = env.models / "loras" / "evil.safetensors"
    link.symlink_to(outside)
    try:
        wf = _workflow("lora_controlnet_api.json")
        wf["2"]["inputs"]["lora_name"] = "evil.safetensors"
        with pytest.raises(lf.ParameterError, match=r"node 2.*leads out of"):
            lf.from_comfy(wf, models=env.models, inputs=env.inputs)
        wf["2"]["inputs"]["lora_name"] = "style.safetensors"
        wf["4"]["inputs"]["image"] = "../input/edges.png"
        with pytest.raises(lf.ParameterError, match=r"node 4.*escapes"):
            lf.from_comfy(wf, models=env.models, inputs=env.inputs)
    finally:
        link.unlink()


def test_missing_models(env: Env) -> None:
    wf = _txt2img()
    wf["4"]["inputs"]["ckpt_name"] = "absent.safetensors"
    with pytest.raises(lf.ModelNotFoundError, match=r"node 4.*absent.safetensors"):
        lf.from_comfy(wf, models=env.models)
    with pytest.raises(lf.ModelNotFoundError, match=r"node 4.*needs a models folder"):
        lf.from_comfy(wf)
    mapped = lf.from_comfy(wf, models={"checkpoints": {"absent.safetensors": "builtin:digits"}})
    assert mapped[0].key == lf.from_comfy(_txt2img())[0].key


def test_unsupported_settings_are_errors_not_substitutes(env: Env) -> None:
    wf = _workflow("img2img_api.json")
    wf["10"]["inputs"]["return_with_leftover_noise"] = "enable"
    with pytest.raises(lf.ParameterError, match=r"node 10.*leftover"):
        lf.from_comfy(wf, models=env.models, inputs=env.inputs)
    wf = _workflow("img2img_api.json")
    wf["9"]["inputs"]["upscale_method"] = "bislerp"
    with pytest.raises(lf.ParameterError, match=r"node 9.*bislerp"):
        lf.from_comfy(wf, models=env.models, inputs=env.inputs)
    wf = _workflow("img2img_api.json")
    wf["2"]["inputs"]["vae_name"] = "tiny.safetensors"
    (env.models / "vae" / "tiny.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}")
    with pytest.raises(lf.ParameterError, match=r"node 2.*VAE-only"):
        lf.from_comfy(wf, models=env.models, inputs=env.inputs)


def test_ui_format_refuses_what_it_cannot_map(env: Env) -> None:
    ui = _workflow("txt2img_ui.json")
    sampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"] = sampler["widgets_values"][:-1]
    with pytest.raises(lf.FlowFormatError, match=r"node 3 \(KSampler\).*widgets_values"):
        lf.from_comfy(ui, models=env.models)
    ui = _workflow("txt2img_ui.json")
    next(n for n in ui["nodes"] if n["id"] == 8)["mode"] = 4
    with pytest.raises(lf.FlowFormatError, match=r"node 8.*bypassed"):
        lf.from_comfy(ui, models=env.models)


# ---------------------------------------------------------------------- CLI
def test_cli_runs_a_workflow(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lightflow.cli import main

    wf = _workflow("txt2img_api.json")
    wf["3"]["inputs"]["steps"] = 2
    del wf["14"]
    path = tmp_path / "workflow_api.json"
    path.write_text(json.dumps(wf))
    out = tmp_path / "out"
    assert main(["run", str(path), "--models", str(env.models), "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["image-00-00.png", "image-00-01.png"]
    wf["4"]["inputs"]["ckpt_name"] = "../escape.safetensors"
    path.write_text(json.dumps(wf))
    assert main(["run", str(path), "--models", str(env.models), "-o", str(out), "-q"]) == 2
    assert "escapes its folder" in capsys.readouterr().err
