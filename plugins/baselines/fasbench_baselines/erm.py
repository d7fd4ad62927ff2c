"""ERM: the student trained with cross-entropy on live vs spoof, sources pooled."""
from __future__ import annotations

import torch.nn.functional as F

from fasbench.api import Context, Method
from fasbench_baselines.options import ERMOptions


class ERM(Method):
    """Empirical risk minimisation (class 1 = live)."""

    def __init__(self, opts: ERMOptions, ctx: Context) -> None:
        super().__init__()
        self.student = ctx.build_student()
        self.label_smoothing = opts.label_smoothing

    def training_step(self, batch):
        logits = self.student.logits(batch["image"])
        return {"ce": F.cross_entropy(logits, batch["label"], label_smoothing=self.label_smoothing)}
