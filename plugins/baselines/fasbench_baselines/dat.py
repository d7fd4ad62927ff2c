"""DAT: domain-adversarial training with a gradient reversal layer (DANN, Ganin & Lempitsky,
ICML 2015), the feature-level alignment that DTDA's input-level attack replaces.

A domain discriminator learns to tell the source domains apart from the student's pooled
features; the gradient reversal layer trains the student to make it fail. ``single_side``
aligns only live faces (the single-side adversarial learning of SSDG, Jia et al. CVPR 2020:
spoof faces of different domains may stay apart). The reversal strength follows DANN's
schedule ``lambda(p) = max_lambda * (2 / (1 + exp(-gamma p)) - 1)`` over training progress p.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fasbench.api import Context, Method
from fasbench.errors import FasbenchError
from fasbench_baselines.options import DATOptions


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity forward, gradient multiplied by ``-lam`` backward."""
    return _GradReverse.apply(x, lam)


class DAT(Method):
    """Cross-entropy + a domain discriminator behind a gradient reversal layer."""

    def __init__(self, opts: DATOptions, ctx: Context) -> None:
        super().__init__()
        self.student = ctx.build_student()
        if ctx.num_domains < 2:
            raise FasbenchError(
                f"dat aligns source domains, but this task has {ctx.num_domains} ({''.join(ctx.domains)}); "
                "use a protocol with at least two source domains, e.g. MICO"
            )
        self.discriminator = nn.Sequential(
            nn.Linear(self.student.num_features, opts.hidden), nn.ReLU(inplace=True),
            nn.Dropout(opts.dropout), nn.Linear(opts.hidden, ctx.num_domains),
        )
        self.weight = opts.weight
        self.max_lambda = opts.max_lambda
        self.gamma = opts.gamma
        self.single_side = opts.single_side
        self.total_steps = max(1, int(ctx.cfg.trainer.max_steps))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))  # saved: resume continues the schedule

    def reversal(self) -> float:
        p = min(1.0, float(self.steps_done) / self.total_steps)
        return self.max_lambda * (2.0 / (1.0 + math.exp(-self.gamma * p)) - 1.0)

    def training_step(self, batch):
        feats = self.student.features(batch["image"])["pooled"]
        out = {"ce": F.cross_entropy(self.student.classify(feats), batch["label"])}
        keep = batch["label"] == 1 if self.single_side else torch.ones_like(batch["label"], dtype=torch.bool)
        logits = self.discriminator(grad_reverse(feats[keep], self.reversal()))
        out["domain_adv"] = self.weight * F.cross_entropy(logits.float(), batch["domain"][keep])
        self.steps_done += 1
        return out
