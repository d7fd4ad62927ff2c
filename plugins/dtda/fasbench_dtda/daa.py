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
   is clipped to ``[-eps, eps]`` and ``x + delta`` to [0, 1]. Everything is in pixel units:
   batches are RGB in [0, 1] and the student normalises its own input, so ``eps = 8/255`` is
   8 grey levels in every channel. Only ``delta`` gets a gradient (``torch.autograd.grad``);
   BatchNorm running statistics are not updated by the attack.
3. The domain classifier learns to classify the domains from the student's features of the
   clean images, detached (so the student is never trained to fool it: the images are).

The aligner returns the perturbed batch and the ``domain_cls`` loss of the classifier.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from fasbench.api import Aligner, Context, Student
from fasbench.errors import FasbenchError
from fasbench_dtda.options import DAAOptions


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


class DomainAdversarialAttack(Aligner):
    """The DAA aligner: domain classifier + PGD-style input attack (see the module docstring)."""

    def __init__(self, opts: DAAOptions, ctx: Context) -> None:
        super().__init__()
        self.epsilon = opts.epsilon
        self.step_size = opts.step_size
        self.steps = opts.steps
        self.init = opts.init
        self.objective = opts.objective
        self.feature = opts.feature
        self.weight = opts.weight
        if ctx.num_domains < 2:
            raise FasbenchError(
                f"dtda.daa aligns source domains, but this task has {ctx.num_domains} ({''.join(ctx.domains)}); "
                "use a protocol with at least two source domains (e.g. MICO) or a method without DAA"
            )
        student = ctx.student
        if student is None:
            raise FasbenchError("dtda.daa must be built after the student (ctx.build_student() first)")
        dim = _feature_dim(student, self.feature, ctx.crop_size)
        self.classifier = nn.Sequential(
            nn.Linear(dim, opts.hidden), nn.ReLU(inplace=True), nn.Dropout(opts.dropout),
            nn.Linear(opts.hidden, ctx.num_domains),
        )

    # -- pieces, public so tests and analyses can call them ---------------------------------
    def features(self, student: Student, x: torch.Tensor) -> torch.Tensor:
        f = student.features(x)[self.feature]
        return f.flatten(1) if f.ndim > 2 else f

    def attack(self, x: torch.Tensor, domain: torch.Tensor, student: Student,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The perturbed [0, 1] images (detached) and the student's features of the clean images
        (detached; None when the attack did not see them, i.e. ``init=uniform`` or ``steps=0``)."""
        eps = self.epsilon
        x = x.detach()
        if self.init == "uniform":
            u = torch.rand(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
            delta = ((u * 2 - 1) * eps).clamp(min=-x, max=1 - x)
        else:
            delta = torch.zeros_like(x)
        clean = None
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
                delta = (delta.detach() - self.step_size * grad.sign()).clamp(-eps, eps)
                delta = (x + delta).clamp(0, 1) - x
        return (x + delta).detach(), clean

    def forward(self, batch: dict[str, torch.Tensor], student: Student):
        if not self.training:
            return batch, {}
        x_adv, clean = self.attack(batch["image"], batch["domain"], student)
        if clean is None:
            with torch.no_grad(), frozen_bn_stats(student):
                clean = self.features(student, batch["image"])
        loss = F.cross_entropy(self.classifier(clean.detach()).float(), batch["domain"])
        return {**batch, "image": x_adv, "clean_image": batch["image"]}, {"domain_cls": self.weight * loss}


def _feature_dim(student: Student, feature: str, size: int) -> int:
    if feature == "pooled":
        return int(student.num_features)
    shapes = student.feature_shapes(size, intermediates=False)
    if feature not in shapes:
        raise FasbenchError(f"method.aligner.feature={feature!r}: the student has {sorted(shapes)}")
    return int(torch.Size(shapes[feature]).numel())
