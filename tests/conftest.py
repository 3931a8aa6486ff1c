"""Session-scoped tiny models, built from configs and saved the ways users have them:
a diffusers folder, an original-format single .safetensors file and a .ckpt."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import build_sd15, build_sdxl, export_ckpt, export_single_file  # noqa: E402


@pytest.fixture(scope="session")
def sd15_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sd15(tmp_path_factory.mktemp("models") / "sd15")


@pytest.fixture(scope="session")
def sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sdxl(tmp_path_factory.mktemp("models") / "sdxl")


@pytest.fixture(scope="session")
def sd15_file(sd15_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_single_file(sd15_dir, tmp_path_factory.mktemp("files") / "sd15.safetensors",
                              family="sd1")


@pytest.fixture(scope="session")
def sd15_ckpt(sd15_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_ckpt(sd15_dir, tmp_path_factory.mktemp("files") / "sd15.ckpt", "sd1")


@pytest.fixture
def fresh():
    """An empty output cache and pool with reset counters (models are reloaded)."""
    import lightflow as lf

    lf.get_executor().cache.clear()
    lf.pool.clear()
    lf.pool.reset_stats()
    yield lf
    lf.get_executor().cache.clear()
