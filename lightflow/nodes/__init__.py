"""The node library: importing it registers every op with the graph core."""

from . import control, image, latent, loaders, lora, sampling, schedulers, text  # noqa: F401
from .schedulers import SCHEDULERS, scheduler_table
from .values import Conditioning, PromptValue

__all__ = ["SCHEDULERS", "Conditioning", "PromptValue", "scheduler_table"]
