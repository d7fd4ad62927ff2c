"""DAA: domain adversarial attack (the domain alignment of DTDA, arXiv 2401.01102).

Instead of training the feature extractor against a domain discriminator (DANN-style
adversarial feature training), DAA perturbs the *input images* so that a domain classifier
on the student's features can no longer tell the source domains apart, and trains the
student (and feeds the teachers) with the perturbed images.

Per batch:

1. ``delta`` starts at zero (or uniform noise in [-eps, eps]).
2. ``steps`` times: the student's features of ``x + delta`` go through the domain classifier;
   ``delta`` moves by ``step_size`` along the sign of the gradient that pushes the classifier's
   prediction towards the uniform distribution over the source domains (maximum uncertainty),
   is clipped to ``[-eps, eps]`` (in 0..1 pixel units, per channel in the student's
   normalisation) and kept inside the valid pixel range. Only ``delta`` gets a gradient
   (``torch.autograd.grad``); BatchNorm running statistics are not updated by the attack.
3. The domain classifier learns to classify the domains from the student's features of the
   clean images, detached (so the student is never trained to fool it: the images are).

The aligner returns the perturbed batch and the ``domain_cls`` loss of the classifier.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from fasbench.api import Context
from fasbench.errors import FasbenchError

OBJECTIVES = ("uniform", "untargeted")


@contextlib.contextmanager
def frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """Batch statistics as usual, but running mean/var stay unchanged (momentum 0)."""
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.momentum is not None:
            saved.append((m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def domain_uncertainty_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to the uniform distribution (0 when the classifier is maximally unsure)."""
    logp = logits.float().log_softmax(dim=1)
    return -(logp.mean(dim=1)).mean() - math.log(logits.shape[1])


class DomainAdversarialAttack(nn.Module):
    """The DAA aligner: domain classifier + PGD-style input attack (see the module docstring)."""

    def __init__(self, cfg: Any, ctx: Context) -> None:
        super().__init__()
        cfg = dict(cfg or {})
        self.epsilon = float(cfg.get("epsilon", 8 / 255))
        self.step_size = float(cfg.get("step_size", self.epsilon))
        self.steps = int(cfg.get("steps", 1))
        self.init = str(cfg.get("init", "zero"))
        self.objective = str(cfg.get("objective", "uniform"))
        self.feature = str(cfg.get("feature", "pooled"))
        self.weight = float(cfg.get("weight", 1.0))
        if not 0 <= self.epsilon <= 1 or self.step_size < 0 or self.steps < 0:
            raise FasbenchError(
                f"dtda.daa: epsilon={self.epsilon}, step_size={self.step_size}, steps={self.steps}; need "
                "0 <= epsilon <= 1 (pixel units, e.g. 0.0314 for 8/255), step_size >= 0, steps >= 0"
            )
        if self.init not in ("zero", "uniform"):
            raise FasbenchError(f"dtda.daa: init={self.init!r}; choose zero or uniform")
        if self.objective not in OBJECTIVES:
            raise FasbenchError(f"dtda.daa: objective={self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if ctx.num_domains < 2:
            raise FasbenchError(
                f"dtda.daa aligns source domains, but this task has {ctx.num_domains} ({''.join(ctx.domains)}); "
                "use a protocol with at least two source domains (e.g. MICO) or a method without DAA"
            )
        student = ctx.student
        if student is None:
            raise FasbenchError("dtda.daa must be built after the student (ctx.build_student() first)")
        dim = _feature_dim(student, self.feature, int(ctx.cfg.data.crop_size))
        hidden = int(cfg.get("hidden", 256))
        self.classifier = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(float(cfg.get("dropout", 0.0))),
            nn.Linear(hidden, ctx.num_domains),
        )
        self.mean = tuple(getattr(student, "mean", (0.485, 0.456, 0.406)))
        self.std = tuple(getattr(student, "std", (0.229, 0.224, 0.225)))

    # -- pieces, public so tests and analyses can call them ---------------------------------
    def features(self, student: nn.Module, x: torch.Tensor) -> torch.Tensor:
        f = student.features(x)[self.feature]
        return f.flatten(1) if f.ndim > 2 else f

    def _bounds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return self.epsilon / std, (0 - mean) / std, (1 - mean) / std

    def attack(self, x: torch.Tensor, domain: torch.Tensor, student: nn.Module,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The perturbed images (detached) and the student's features of the clean images
        (detached; None when the attack did not see them, i.e. ``init=uniform`` or ``steps=0``)."""
        eps, lo, hi = self._bounds(x)
        x = x.detach()
        if self.init == "uniform":
            u = torch.rand(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
            delta = ((u * 2 - 1) * eps).clamp(lo - x, hi - x)
        else:
            delta = torch.zeros_like(x)
        clean = None
        step = (self.step_size / self.epsilon) * eps if self.epsilon > 0 else eps
        with frozen_bn_stats(student):
            for k in range(self.steps):
                delta.requires_grad_(True)
                feats = self.features(student, x + delta)
                if k == 0 and self.init == "zero":
                    clean = feats.detach()
                logits = self.classifier(feats)
                if self.objective == "uniform":
                    loss = domain_uncertainty_loss(logits)  # descend: towards maximum uncertainty
                else:
                    loss = -F.cross_entropy(logits.float(), domain)  # descend: away from the true domain
                (grad,) = torch.autograd.grad(loss, delta)
                delta = delta.detach() - step * grad.sign()
                delta = torch.maximum(torch.minimum(delta, eps), -eps)
                delta = (x + delta).clamp(lo, hi) - x
        return (x + delta).detach(), clean

    def forward(self, batch: dict[str, torch.Tensor], student: nn.Module):
        if not self.training:
            return batch, {}
        x_adv, clean = self.attack(batch["image"], batch["domain"], student)
        if clean is None:
            with torch.no_grad(), frozen_bn_stats(student):
                clean = self.features(student, batch["image"])
        loss = F.cross_entropy(self.classifier(clean.detach()).float(), batch["domain"])
        return {**batch, "image": x_adv, "clean_image": batch["image"]}, {"domain_cls": self.weight * loss}


def _feature_dim(student: nn.Module, feature: str, size: int) -> int:
    if feature == "pooled" and hasattr(student, "num_features"):
        return int(student.num_features)
    was = student.training
    student.eval()
    with torch.no_grad():
        f = student.features(torch.zeros(1, 3, size, size))
    student.train(was)
    if feature not in f:
        raise FasbenchError(f"dtda.daa: the student has no feature {feature!r}; it has {sorted(f)}")
    return int(f[feature][0].numel())
