"""Options of the built-in ``timm`` student (torch-free: validated before anything heavy loads)."""
from __future__ import annotations

from typing import Any

from pydantic import Field, model_serializer

from fasbench.options import Options


class TimmOptions(Options):
    """``student.*`` keys of the ``timm`` student."""

    arch: str = "resnet18"  # any timm model name (timm.list_models())
    pretrained: bool = False  # ImageNet weights need the Hugging Face Hub (or its cache)
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    timm_kwargs: dict[str, Any] = Field(default_factory=dict)  # passed to timm.create_model
    # weights URI loaded over every tensor of the student (hf-hub:, local-dir:, file:), e.g. a student
    # pushed with `fasbench push`; set with +student.weights=URI (fasbench eval sets it itself)
    weights: str | None = None

    @model_serializer(mode="wrap")
    def _drop_unset_weights(self, handler):  # configs without weights keep their keys and config hash
        out = handler(self)
        if isinstance(out, dict) and out.get("weights") is None:
            out.pop("weights", None)
        return out
