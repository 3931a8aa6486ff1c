"""Bad weight files give a clear LightflowError; the pool is unchanged and keeps working."""

from __future__ import annotations

import pickle
import shutil

import pytest
import torch

import lightflow as lf


def _flow(sd):
    return lf.prompt("a cat").encode(sd).sample(sd, steps=2).decode(sd)


class _Payload:
    marker = ""

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _check_pool_still_works(sd15_dir, before):
    assert all(e["users"] == 0 for e in lf.pool.entries())
    assert before <= {e["key"] for e in lf.pool.entries()}
    assert _flow(lf.checkpoint(sd15_dir)).run().value.shape == (1, 3, 64, 64)


@pytest.fixture
def before(sd15_dir):
    _flow(lf.checkpoint(sd15_dir)).run()
    return {e["key"] for e in lf.pool.entries()}


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_that_would_run_code_is_refused(sd15_dir, tmp_path, before, writer):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = str(marker)
    path = tmp_path / "evil.ckpt"
    if writer == "torch.save":
        torch.save({"state_dict": {"x": payload}}, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump({"state_dict": {"x": payload}}, fh)
    with pytest.raises(lf.UnsafeFileError, match="could run code"):
        _flow(lf.checkpoint(path, config=sd15_dir)).run()
    assert not marker.exists(), "the payload ran"
    _check_pool_still_works(sd15_dir, before)


def test_a_truncated_safetensors_file(sd15_dir, sd15_file, tmp_path, before):
    path = tmp_path / "cut.safetensors"
    data = sd15_file.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(lf.ModelLoadError, match="corrupt or truncated"):
        _flow(lf.checkpoint(path, config=sd15_dir)).run()
    _check_pool_still_works(sd15_dir, before)


def test_a_corrupt_weight_file_in_a_folder(sd15_dir, tmp_path, before):
    folder = tmp_path / "broken"
    shutil.copytree(sd15_dir, folder)
    weights = next((folder / "unet").glob("*.safetensors"))
    weights.write_bytes(b"\x00" * 64)
    with pytest.raises(lf.ModelLoadError) as info:
        _flow(lf.checkpoint(folder)).run()
    assert "unet" in str(info.value)
    _check_pool_still_works(sd15_dir, before)


def test_the_wrong_component_in_a_folder(sd15_dir, tmp_path, before):
    folder = tmp_path / "swapped"
    shutil.copytree(sd15_dir, folder)
    unet_file = next((folder / "unet").glob("*.safetensors"))
    vae_file = next((folder / "vae").glob("*.safetensors"))
    shutil.copy(vae_file, unet_file)
    with pytest.raises(lf.ModelLoadError, match="unet"):
        _flow(lf.checkpoint(folder)).run()
    _check_pool_still_works(sd15_dir, before)


def test_a_single_file_without_config(sd15_file, sd15_dir, before):
    with pytest.raises(lf.ModelLoadError, match="config="):
        _flow(lf.checkpoint(sd15_file)).run()
    _check_pool_still_works(sd15_dir, before)


def test_tensors_only_ckpt_loads_with_weights_only(sd15_dir, sd15_ckpt):
    state = torch.load(sd15_ckpt, weights_only=True)
    assert isinstance(state["state_dict"], dict)
    assert _flow(lf.checkpoint(sd15_ckpt, config=sd15_dir)).run().value.shape[0] == 1
