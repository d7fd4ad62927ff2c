"""ERM plus a centre loss on live features, in the spirit of SSDG's asymmetry (Jia et al.,
CVPR 2020): live faces of every source domain form one compact cluster, spoof faces
(many attack types and domains) are left free."""
from __future__ import annotations

import torch.nn.functional as F

from fasbench.api import Context, Method
from fasbench_example.options import CenterLossOptions


class ExampleMethod(Method):
    """Cross-entropy + center_weight * spread of L2-normalised live features."""

    def __init__(self, opts: CenterLossOptions, ctx: Context) -> None:
        super().__init__()
        self.student = ctx.build_student()  # the configured student (student.* overrides)
        self.center_weight = opts.center_weight  # validated before the run started

    def training_step(self, batch):
        pooled = self.student.features(batch["image"])["pooled"]  # batch images are RGB in [0, 1]
        logits = self.student.classify(pooled)  # one forward pass (fasbench.api.Student contract)
        live = F.normalize(pooled[batch["label"] == 1], dim=1)
        # Mean squared distance of the live features to their centre (0 with < 2 live faces).
        spread = (live - live.mean(0)).pow(2).sum(1).mean() if len(live) > 1 else pooled.sum() * 0
        return {"ce": F.cross_entropy(logits, batch["label"]), "center": self.center_weight * spread}
