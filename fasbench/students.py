"""Students: any timm backbone by name plus a linear live/spoof head (the ``timm`` student).

Its options (:class:`fasbench.students_options.TimmOptions`) are the ``student.*`` keys.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fasbench.api import Context, Student
from fasbench.errors import FasbenchError


def build(opts: Any, ctx: Context | None = None) -> TimmStudent:
    """The registered factory: ``TimmOptions`` -> :class:`TimmStudent`. With ``weights`` (a URI),
    every tensor is loaded from it (no pretrained download) and what was resolved (URI, commit,
    sha256) is recorded as the student's weights in the run record."""
    weights_uri = getattr(opts, "weights", None)
    student = TimmStudent(arch=opts.arch, pretrained=opts.pretrained and not weights_uri, num_classes=2,
                          drop_rate=opts.drop_rate, **dict(opts.timm_kwargs))
    if weights_uri:
        from fasbench import weights

        student.weights_info = weights.load_into(student, weights_uri).as_dict()
        if ctx is not None and isinstance(ctx.components.get("student"), dict):
            ctx.components["student"]["weights"] = student.weights_info
    return student


class TimmStudent(Student):
    """A timm backbone (``arch``, default resnet18) with a 2-way head (class 1 = live).

    ``features(x01)`` normalises with the backbone's pretrained mean/std and returns named
    tensors: ``"map"`` (last feature map), ``"pooled"`` (the pre-logits vector) and, with
    ``intermediates=True``, one ``"stage{i}"`` map per backbone stage (timm
    ``forward_intermediates``), for feature distillation.
    """

    def __init__(
        self,
        arch: str = "resnet18",
        pretrained: bool = False,
        num_classes: int = 2,
        drop_rate: float = 0.0,
        channels_last: bool = False,
        **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        import timm

        if arch not in timm.list_models() and arch not in timm.list_models(pretrained=True):
            close = timm.list_models(f"*{arch.split('.')[0]}*")[:5]
            raise FasbenchError(
                f"timm has no model {arch!r}" + (f"; close: {', '.join(close)}" if close else "")
                + " (see timm.list_models())"
            )
        try:
            self.backbone = timm.create_model(arch, pretrained=pretrained, num_classes=0, drop_rate=drop_rate, **timm_kwargs)
        except Exception as exc:  # pretrained download offline, bad kwargs
            raise FasbenchError(
                f"could not create timm model {arch!r} (pretrained={pretrained}): {exc}. "
                "Offline? set student.pretrained=false or pre-fetch the weights into the Hugging Face cache"
            ) from exc
        self.arch = arch
        self.num_features = int(self.backbone.num_features)
        self.head = nn.Linear(self.num_features, num_classes)
        cfg = getattr(self.backbone, "pretrained_cfg", {}) or {}
        self.mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def features(self, x01: torch.Tensor, intermediates: bool = False) -> dict[str, torch.Tensor]:
        x = self.normalize(x01)
        out: dict[str, torch.Tensor] = {}
        if intermediates:
            fmap, stages = self.backbone.forward_intermediates(x)
            out.update({f"stage{i}": s for i, s in enumerate(stages)})
        else:
            fmap = self.backbone.forward_features(x)
        out["map"] = fmap
        out["pooled"] = self.backbone.forward_head(fmap, pre_logits=True)
        return out

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head(pooled)
