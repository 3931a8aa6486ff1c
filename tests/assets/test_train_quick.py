"""The digits model's training scripts (quick mode) and the shipped model folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderTiny, StableDiffusionPipeline
from safetensors import safe_open
from transformers import CLIPTokenizer

from lightflow.assets.train.tokenizer import BOS, EOS, EOW, WORDS, save_tokenizer

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "lightflow" / "assets" / "digits"


def _generate(folder: Path, steps: int = 2) -> tuple[int, int]:
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(
        "a red seven", num_inference_steps=steps, generator=torch.Generator().manual_seed(0)
    ).images[0]
    return image.size


def _check_words(tok: CLIPTokenizer) -> None:
    vocab = tok.get_vocab()
    for word in WORDS:
        ids = tok(word).input_ids
        tokens = tok.convert_ids_to_tokens(ids)
        assert ids == [vocab[BOS], vocab[word + EOW], vocab[EOS]], (word, tokens)
    ids = tok("a green seven").input_ids  # the 'r e' from 'red' must not break 'green'
    assert tok.convert_ids_to_tokens(ids)[1:-1] == ["a</w>", "green</w>", "seven</w>"]


def test_every_vocabulary_word_is_one_token(tmp_path: Path) -> None:
    _check_words(save_tokenizer(tmp_path / "tok"))
    _check_words(CLIPTokenizer.from_pretrained(str(tmp_path / "tok")))


@pytest.mark.slow
def test_quick_training_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "digits"
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run(
        [sys.executable, "-m", "lightflow.assets.train.train", "--out", str(out), "--quick"],
        check=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    for name in (
        "model_index.json",
        "unet",
        "vae",
        "text_encoder",
        "tokenizer",
        "scheduler",
        "taesd",
        "latent_rgb.json",
    ):
        assert (out / name).exists(), name
    assert _generate(out) == (32, 32)
    fit = json.loads((out / "latent_rgb.json").read_text())
    assert len(fit["factors"]) == 4 and all(len(r) == 3 for r in fit["factors"])
    assert len(fit["bias"]) == 3 and fit["latent_space"] == "scaled"
    taesd = AutoencoderTiny.from_pretrained(str(out / "taesd"), torch_dtype=torch.float32)
    assert taesd.decode(torch.zeros(1, 4, 8, 8)).sample.shape == (1, 3, 32, 32)


@pytest.mark.skipif(not (SHIPPED / "model_index.json").exists(), reason="model not trained yet")
def test_shipped_model_loads_and_is_small() -> None:
    files = list(SHIPPED.rglob("*.safetensors"))
    assert {f.parent.name for f in files} >= {"unet", "vae", "text_encoder", "taesd"}
    assert sum(f.stat().st_size for f in files) < 25 * 1024 * 1024
    for f in files:
        with safe_open(str(f), "pt") as sf:
            assert all(sf.get_slice(k).get_dtype() == "F16" for k in sf.keys()), f
    _check_words(CLIPTokenizer.from_pretrained(str(SHIPPED / "tokenizer")))
    assert _generate(SHIPPED) == (32, 32)
