"""Port types: what a node produces and what its inputs accept."""

from __future__ import annotations

from enum import Enum

__all__ = ["COMPONENT_TYPES", "MODEL_TYPES", "PortType"]


class PortType(str, Enum):
    """The type of a node's output (and of the inputs that accept it)."""

    CHECKPOINT = "CHECKPOINT"  # a whole checkpoint: gives UNET, TEXT_ENCODER, VAE on demand
    UNET = "UNET"
    TEXT_ENCODER = "TEXT_ENCODER"
    VAE = "VAE"
    TAESD = "TAESD"  # a tiny autoencoder used as a proxy decoder
    LORA = "LORA"
    CONTROLNET = "CONTROLNET"
    ADAPTER = "ADAPTER"  # a T2I-Adapter (used like a ControlNet, through .control/.adapter)
    PROMPT = "PROMPT"
    CONDITIONING = "CONDITIONING"
    LATENT = "LATENT"
    IMAGE = "IMAGE"

    def __str__(self) -> str:
        return self.value


#: Types whose value is a reference to weights in the pool, never a tensor.
MODEL_TYPES = frozenset(
    {PortType.CHECKPOINT, PortType.UNET, PortType.TEXT_ENCODER, PortType.VAE, PortType.TAESD,
     PortType.LORA, PortType.CONTROLNET, PortType.ADAPTER}
)

#: Component types a CHECKPOINT can stand in for; the value is the op that selects it.
COMPONENT_TYPES = {
    PortType.UNET: "unet",
    PortType.TEXT_ENCODER: "text_encoder",
    PortType.VAE: "vae",
}
