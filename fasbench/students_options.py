"""Options of the built-in ``timm`` student (torch-free: validated before anything heavy loads)."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from fasbench.options import Options


class TimmOptions(Options):
    """``student.*`` keys of the ``timm`` student."""

    arch: str = "resnet18"  # any timm model name (timm.list_models())
    pretrained: bool = False  # ImageNet weights need the Hugging Face Hub (or its cache)
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    timm_kwargs: dict[str, Any] = Field(default_factory=dict)  # passed to timm.create_model
