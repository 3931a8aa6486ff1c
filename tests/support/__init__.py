"""Test support: tiny random-weight pipelines and original-format (LDM) checkpoint export.

Nothing here downloads anything: every model is built from a config with random weights.

Example::

    from tests.support import build_sd15, export_single_file

    folder = build_sd15(tmp_path / "sd15")
    ckpt = export_single_file(folder, tmp_path / "sd15.safetensors", family="sd1")
"""

from .ldm import export_ckpt, export_single_file, ldm_state_dict
from .tiny import build_sd15, build_sdxl, write_clip_tokenizer

__all__ = [
    "build_sd15",
    "build_sdxl",
    "export_ckpt",
    "export_single_file",
    "ldm_state_dict",
    "write_clip_tokenizer",
]
