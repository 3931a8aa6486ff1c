"""The tiny pipelines are reproducible and not degenerate, and their LDM export round-trips
through diffusers' own single-file loaders exactly (every tensor, atol 0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.loaders.single_file_utils import (
    create_diffusers_clip_model_from_ldm,
    infer_diffusers_model_type,
    load_single_file_checkpoint,
)
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .ldm import export_ckpt, export_single_file
from .tiny import build_sd15, build_sdxl

torch.set_num_threads(1)

PIPELINES = {"sd1": StableDiffusionPipeline, "sdxl": StableDiffusionXLPipeline}
BUILDERS = {"sd1": build_sd15, "sdxl": build_sdxl}
# component name -> transformers class, for the text encoders of each family
ENCODERS = {
    "sd1": {"text_encoder": CLIPTextModel},
    "sdxl": {"text_encoder": CLIPTextModel, "text_encoder_2": CLIPTextModelWithProjection},
}
# what diffusers' model-type detection says about each export
MODEL_TYPE = {"sd1": "v1", "sdxl": "xl_base"}


@pytest.fixture(scope="module", params=["sd1", "sdxl"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    family: str = request.param
    root = tmp_path_factory.mktemp(family)
    folder = BUILDERS[family](root / "diffusers")
    single = export_single_file(folder, root / "model.safetensors", family=family)
    ckpt = export_ckpt(folder, root / "model.ckpt", family=family)
    return family, folder, single, ckpt


def _assert_same_state(loaded: torch.nn.Module, original: torch.nn.Module) -> None:
    got, want = loaded.state_dict(), original.state_dict()
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        assert torch.equal(got[key], value), f"{key} differs after the round trip"


def _image(pipe: StableDiffusionPipeline, prompt: str = "a watercolor cat", seed: int = 0):
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator("cpu").manual_seed(seed)
    out = pipe(prompt, num_inference_steps=2, generator=generator, output_type="np")
    return out.images[0]


def test_tokenizer_makes_whole_words(tmp_path: Path) -> None:
    from .tiny import write_clip_tokenizer

    write_clip_tokenizer(tmp_path, max_length=16)
    tok = CLIPTokenizer.from_pretrained(str(tmp_path))
    ids = tok("A watercolor cat, zebra").input_ids
    pieces = tok.convert_ids_to_tokens(ids)
    assert pieces[:5] == ["<|startoftext|>", "a</w>", "watercolor</w>", "cat</w>", ",</w>"]
    assert pieces[-1] == "<|endoftext|>" and len(pieces) > 7  # "zebra" falls apart into bytes
    assert tok.model_max_length == 16
    assert len(tok) < 1000


def test_build_is_reproducible(tmp_path: Path) -> None:
    weights = "unet/diffusion_pytorch_model.safetensors"
    a = load_file(str(build_sd15(tmp_path / "a", seed=3) / weights))
    b = load_file(str(build_sd15(tmp_path / "b", seed=3) / weights))
    c = load_file(str(build_sd15(tmp_path / "c", seed=4) / weights))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv_out.weight"], c["conv_out.weight"])


def test_no_constant_parameters(exported) -> None:
    family, folder, _, _ = exported
    names = ["unet", "vae", *ENCODERS[family]]
    for name in names:
        for f in (folder / name).glob("*.safetensors"):
            for key, value in load_file(str(f)).items():
                flat = value.reshape(-1)
                assert not bool((flat == flat[0]).all()), f"{name}.{key} is constant"


def test_image_depends_on_prompt_and_seed(exported) -> None:
    family, folder, _, _ = exported
    pipe = PIPELINES[family].from_pretrained(str(folder))
    base = _image(pipe, "a watercolor cat", 0)
    assert base.shape == (64, 64, 3)
    assert base.std() > 0.01
    assert np.abs(base - _image(pipe, "a photo of a dog", 0)).max() > 1e-3
    assert np.abs(base - _image(pipe, "a watercolor cat", 1)).max() > 1e-2
    np.testing.assert_array_equal(base, _image(pipe, "a watercolor cat", 0))


def test_export_layout(exported) -> None:
    family, _, single, ckpt = exported
    sd = load_file(str(single))
    prefixes = {"model.diffusion_model.", "first_stage_model."}
    if family == "sd1":
        prefixes |= {"cond_stage_model.transformer.text_model."}
    else:
        prefixes |= {
            "conditioner.embedders.0.transformer.text_model.",
            "conditioner.embedders.1.model.",
        }
    assert all(k.startswith(tuple(prefixes)) for k in sd)
    assert all(any(k.startswith(p) for k in sd) for p in prefixes)
    assert infer_diffusers_model_type(sd) == MODEL_TYPE[family]
    legacy = torch.load(str(ckpt), map_location="cpu", weights_only=True)
    assert sorted(legacy["state_dict"]) == sorted(sd)
    assert all(torch.equal(legacy["state_dict"][k], v) for k, v in sd.items())


@pytest.mark.parametrize("kind", ["single", "ckpt"])
def test_unet_and_vae_round_trip(exported, kind: str) -> None:
    _, folder, single, ckpt = exported
    path = str(single if kind == "single" else ckpt)
    for cls, name in ((UNet2DConditionModel, "unet"), (AutoencoderKL, "vae")):
        loaded = cls.from_single_file(path, config=str(folder), subfolder=name)
        original = cls.from_pretrained(str(folder), subfolder=name)
        public = lambda cfg: {k: v for k, v in cfg.items() if not k.startswith("_")}  # noqa: E731
        assert public(loaded.config) == public(original.config)
        _assert_same_state(loaded, original)


def test_text_encoders_round_trip(exported) -> None:
    family, folder, single, _ = exported
    checkpoint = load_single_file_checkpoint(str(single), local_files_only=True)
    for name, cls in ENCODERS[family].items():
        # called as diffusers' load_single_file_sub_model calls it
        loaded = create_diffusers_clip_model_from_ldm(
            cls, checkpoint=checkpoint, config=str(folder), subfolder=name, local_files_only=True
        )
        original = cls.from_pretrained(str(folder), subfolder=name)
        _assert_same_state(loaded, original)


@pytest.mark.parametrize("kind", ["single", "ckpt"])
def test_pipeline_from_single_file_matches_folder(exported, kind: str) -> None:
    family, folder, single, ckpt = exported
    cls = PIPELINES[family]
    path = str(single if kind == "single" else ckpt)
    loaded = cls.from_single_file(path, config=str(folder), local_files_only=True)
    original = cls.from_pretrained(str(folder), local_files_only=True)
    assert type(loaded.scheduler) is type(original.scheduler)
    for name in ["unet", "vae", *ENCODERS[family]]:
        _assert_same_state(getattr(loaded, name), getattr(original, name))
    got, want = _image(loaded), _image(original)
    assert np.abs(got - want).max() < 1e-5
