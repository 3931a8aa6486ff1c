"""Export a diffusers SD 1.x / SDXL folder as one original-format (LDM, "CompVis") checkpoint.

This is the reverse of diffusers' single-file loaders
(``diffusers/loaders/single_file_utils.py``). The key maps are ported from diffusers'
reverse conversion scripts ``scripts/convert_diffusers_to_original_stable_diffusion.py``
and ``scripts/convert_diffusers_to_original_sdxl.py`` (Copyright The HuggingFace Team,
Apache License 2.0), with two changes:

* the UNet and VAE block loops follow the model's ``config.json`` instead of SD's
  hard-coded 4 levels, so the tiny 2-level test models convert too;
* the OpenCLIP text projection is written as ``text_projection`` (transposed, as OpenCLIP
  stores it), which is what diffusers' loader reads.

Layout written:

* SD 1.x: ``model.diffusion_model.*``, ``first_stage_model.*``,
  ``cond_stage_model.transformer.text_model.*``
* SDXL: the same UNet/VAE prefixes, ``conditioner.embedders.0.transformer.text_model.*``
  (CLIP ViT-L layout) and ``conditioner.embedders.1.model.*`` (OpenCLIP ViT-bigG layout)

Example::

    path = export_single_file(folder, tmp_path / "model.safetensors", family="sdxl")
    pipe = StableDiffusionXLPipeline.from_single_file(path, config=str(folder))
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

StateDict = dict[str, torch.Tensor]
FAMILIES = ("sd1", "sdxl")

# (LDM, diffusers) pairs, as in diffusers' reverse scripts.
UNET_TOP = [
    ("time_embed.0.", "time_embedding.linear_1."),
    ("time_embed.2.", "time_embedding.linear_2."),
    ("input_blocks.0.0.", "conv_in."),
    ("out.0.", "conv_norm_out."),
    ("out.2.", "conv_out."),
    ("label_emb.0.0.", "add_embedding.linear_1."),  # SDXL
    ("label_emb.0.2.", "add_embedding.linear_2."),  # SDXL
]
UNET_RESNET = [
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("emb_layers.1", "time_emb_proj"),
    ("skip_connection", "conv_shortcut"),
]
VAE_ATTN = [
    ("norm.", "group_norm."),
    ("q.", "to_q."),
    ("k.", "to_k."),
    ("v.", "to_v."),
    ("proj_out.", "to_out.0."),
]
OPENCLIP = [
    ("transformer.resblocks.", "text_model.encoder.layers."),
    ("ln_1", "layer_norm1"),
    ("ln_2", "layer_norm2"),
    (".c_fc.", ".fc1."),
    (".c_proj.", ".fc2."),
    (".attn", ".self_attn"),
    ("ln_final.", "text_model.final_layer_norm."),
    ("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
    ("positional_embedding", "text_model.embeddings.position_embedding.weight"),
]


def _per_level(value: int | list[int] | tuple[int, ...], levels: int) -> list[int]:
    return list(value) if isinstance(value, (list, tuple)) else [int(value)] * levels


def _unet_prefixes(config: dict) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) for every UNet block, following the config."""
    n = len(config["block_out_channels"])
    layers = _per_level(config["layers_per_block"], n)
    pairs: list[tuple[str, str]] = []
    idx = 1  # input_blocks.0 is conv_in
    for i in range(n):
        for j in range(layers[i]):
            pairs.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{idx}.0."))
            pairs.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{idx}.1."))
            idx += 1
        if i < n - 1:
            pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{idx}.0.op."))
            idx += 1
    pairs.append(("mid_block.resnets.0.", "middle_block.0."))
    pairs.append(("mid_block.attentions.0.", "middle_block.1."))
    pairs.append(("mid_block.resnets.1.", "middle_block.2."))
    up_layers = list(reversed(layers))
    cross_up = ["CrossAttn" in t for t in config["up_block_types"]]
    idx = 0
    for i in range(n):
        for j in range(up_layers[i] + 1):
            pairs.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{idx}.0."))
            pairs.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{idx}.1."))
            if j == up_layers[i] and i < n - 1:
                slot = 2 if cross_up[i] else 1
                pairs.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{idx}.{slot}."))
            idx += 1
    return pairs


def _rename(key: str, pairs: list[tuple[str, str]], what: str) -> tuple[str, str]:
    """Return (LDM prefix, rest of key) for the diffusers key, or raise if nothing maps it."""
    for hf, ldm in pairs:
        if key.startswith(hf):
            return ldm, key[len(hf) :]
    raise KeyError(f"{what}: no LDM name for diffusers key {key!r}")


def convert_unet(sd: StateDict, config: dict) -> StateDict:
    """diffusers ``UNet2DConditionModel`` state dict -> LDM ``model.diffusion_model`` keys."""
    pairs = [(hf, ldm) for ldm, hf in UNET_TOP] + _unet_prefixes(config)
    out: StateDict = {}
    for key, value in sd.items():
        ldm, rest = _rename(key, pairs, "unet")
        if ".resnets." in key:
            for ldm_part, hf_part in UNET_RESNET:
                rest = rest.replace(hf_part, ldm_part)
        out[ldm + rest] = value
    return out


def convert_vae(sd: StateDict, config: dict) -> StateDict:
    """diffusers ``AutoencoderKL`` state dict -> LDM ``first_stage_model`` keys."""
    n = len(config["block_out_channels"])
    pairs: list[tuple[str, str]] = []
    for i in range(n):
        pairs.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        pairs.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        # decoder up blocks are numbered in reverse in LDM
        pairs.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block."))
        pairs.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    for part in ("encoder", "decoder"):
        pairs.append((f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1."))
        pairs.append((f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2."))
        pairs.append((f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."))
        pairs.append((f"{part}.conv_norm_out.", f"{part}.norm_out."))
        pairs.append((f"{part}.conv_in.", f"{part}.conv_in."))
        pairs.append((f"{part}.conv_out.", f"{part}.conv_out."))
    pairs += [("quant_conv.", "quant_conv."), ("post_quant_conv.", "post_quant_conv.")]
    out: StateDict = {}
    for key, value in sd.items():
        ldm, rest = _rename(key, pairs, "vae")
        rest = rest.replace("conv_shortcut", "nin_shortcut")
        if ".mid_block.attentions." in key:
            for ldm_part, hf_part in VAE_ATTN:
                if rest.startswith(hf_part):
                    rest = ldm_part + rest[len(hf_part) :]
            if value.ndim == 2:  # LDM uses 1x1 convolutions for q, k, v, proj_out
                value = value.reshape(*value.shape, 1, 1)
        out[ldm + rest] = value
    return out


def convert_clip(sd: StateDict) -> StateDict:
    """transformers ``CLIPTextModel`` state dict -> LDM (``text_model.*``) keys.

    transformers >= 5.6 saves ``CLIPTextModel`` without the ``text_model.`` level; LDM
    checkpoints (and diffusers' loader) always have it.
    """
    out: StateDict = {}
    for key, value in sd.items():
        if key.endswith("position_ids"):
            continue
        out[key if key.startswith("text_model.") else "text_model." + key] = value
    return out


def convert_openclip(sd: StateDict) -> StateDict:
    """transformers ``CLIPTextModelWithProjection`` state dict -> OpenCLIP keys.

    q/k/v projections are concatenated into ``attn.in_proj_weight``/``in_proj_bias``
    (order q, k, v), and ``text_projection.weight`` becomes ``text_projection`` transposed.
    """
    sd = {k if k.startswith(("text_model.", "text_projection")) else "text_model." + k: v
          for k, v in sd.items() if not k.endswith("position_ids")}  # fmt: skip
    out: StateDict = {}
    qkv: dict[str, dict[str, list[torch.Tensor | None]]] = {"weight": {}, "bias": {}}

    def relabel(key: str) -> str:
        for ldm, hf in OPENCLIP:
            key = key.replace(hf, ldm)
        return key

    for key, value in sd.items():
        if key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()
            continue
        head, _, kind = key.rpartition(".")
        if head.endswith((".q_proj", ".k_proj", ".v_proj")):
            pre, code = head[: -len(".q_proj")], head[-len("q_proj")]
            slots = qkv[kind].setdefault(pre, [None, None, None])
            slots["qkv".index(code)] = value
            continue
        out[relabel(key)] = value
    for kind, groups in qkv.items():
        for pre, tensors in groups.items():
            if any(t is None for t in tensors):
                raise KeyError(f"openclip: q/k/v {kind} incomplete for {pre!r}")
            out[f"{relabel(pre)}.in_proj_{kind}"] = torch.cat(tensors)  # type: ignore[arg-type]
    return out


def _load_component(folder: Path, name: str) -> tuple[StateDict, dict]:
    sub = folder / name
    files = sorted(sub.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {sub} (save with safe_serialization)")
    sd: StateDict = {}
    for f in files:
        sd.update(load_file(str(f)))
    config = json.loads((sub / "config.json").read_text())
    return sd, config


def ldm_state_dict(folder: Path, *, family: str) -> StateDict:
    """The whole pipeline in ``folder`` as one LDM-format state dict (``family``: sd1, sdxl)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    folder = Path(folder)
    unet, unet_cfg = _load_component(folder, "unet")
    vae, vae_cfg = _load_component(folder, "vae")
    te, _ = _load_component(folder, "text_encoder")
    out: StateDict = {}
    out.update({"model.diffusion_model." + k: v for k, v in convert_unet(unet, unet_cfg).items()})
    out.update({"first_stage_model." + k: v for k, v in convert_vae(vae, vae_cfg).items()})
    if family == "sd1":
        out.update({"cond_stage_model.transformer." + k: v for k, v in convert_clip(te).items()})
    else:
        te2, _ = _load_component(folder, "text_encoder_2")
        prefix0, prefix1 = "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."
        out.update({prefix0 + k: v for k, v in convert_clip(te).items()})
        out.update({prefix1 + k: v for k, v in convert_openclip(te2).items()})
    return {k: v.contiguous() for k, v in out.items()}


def export_single_file(folder: Path, out: Path, *, family: str) -> Path:
    """Write the pipeline in ``folder`` as one LDM-format ``.safetensors`` file at ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(ldm_state_dict(folder, family=family), str(out), metadata={"format": "pt"})
    return out


def export_ckpt(folder: Path, out: Path, family: str) -> Path:
    """Write the same state dict as a legacy ``.ckpt`` (``torch.save({"state_dict": sd})``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": ldm_state_dict(folder, family=family)}, str(out))
    return out
