"""DAA: domain adversarial attack (the domain alignment of DTDA, arXiv 2401.01102), and its null.

Instead of training the feature extractor against a domain discriminator (DANN-style
adversarial feature training), DAA perturbs the *input images* so that a domain classifier
on the student's features can no longer tell the source domains apart, and trains the
student (and feeds the teachers) with the perturbed images.

Three attacks (``objective``):

- ``label-preserving`` (default): the perturbation descends
  ``KL(p_domain || uniform) + label_weight * CE(live/spoof)``, the second term computed with the
  student's own live/spoof head on the perturbed features. The domains become indistinguishable
  while the spoof evidence stays: a domain-only attack moves the features along whatever
  direction the domain classifier uses, which on face anti-spoofing data includes the capture
  cues that separate live from spoof. The idea of perturbing inputs along one classifier's
  gradient while keeping another's label is CrossGrad's (Shankar et al., ICLR 2018); learning
  domain-shifting perturbations that keep the class is DDAIG's (Zhou et al., AAAI 2020), and a
  constrained adversarial augmentation with a label-keeping term is AdvST's (Zheng et al., 2024).
  Here they are ideas only: the code below is written for this harness.
- ``label-hinge``: ``KL(p_domain || uniform) + label_weight * max(0, CE(x + delta) - CE(x_start))``
  per sample, ``x_start`` the attack's starting point (the clean image with ``init=zero``). The
  label-preserving objective *descends* the live/spoof loss, so its perturbed images end up
  easier than the clean ones (their CE near zero) and teach the student little; the hinge only
  stops the loss from rising, and leaves the direction to the domain term otherwise.
- ``domain-only``: the domain term alone (the original attack of this plugin; with
  ``domain_loss=uniform steps=1 step_size=8/255 stop_kl=0`` it is exactly that attack).

Per batch:

1. ``delta`` starts at zero (or uniform noise in [-eps, eps]).
2. Up to ``steps`` PGD steps: the student's features of ``x + delta`` go through the domain
   classifier; ``delta`` moves by ``step_size`` along the sign of the gradient that lowers the
   attack's loss, is clipped to ``[-eps, eps]`` and ``x + delta`` to [0, 1]. A sample whose domain
   posterior is within ``stop_kl`` nats of uniform (``KL(p || u) <= stop_kl``) stops moving; the
   attack ends when every sample has stopped (early stop). Everything is in pixel units: batches
   are RGB in [0, 1] and the student normalises its own input. Only ``delta`` gets a gradient
   (``torch.autograd.grad``); BatchNorm running statistics are not updated by the attack.
3. The domain classifier learns the domains from the student's features of the clean images,
   detached (``domain_cls``), and, with ``train_on_perturbed``, of the perturbed images too
   (``domain_cls_adv``; the method hands them over through :meth:`perturbed_domain_loss`, from
   the forward pass it makes anyway), so one attack step cannot always fool it. The student is
   never trained to fool it: the images are.

:class:`RandomNoise` (``dtda.noise``) is DAA's null: random noise of the same L-inf budget, no
attack, no classifier.
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
from fasbench_dtda.options import DAAOptions, NoiseOptions


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


def kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """Per sample ``KL(p || uniform) = log K - H(p)`` in nats (0 when the classifier is maximally unsure)."""
    logp = logits.float().log_softmax(dim=1)
    return (logp.exp() * logp).sum(dim=1) + math.log(logits.shape[1])


class DomainAdversarialAttack(Aligner):
    """The DAA aligner: domain classifier + PGD-style input attack (see the module docstring)."""

    def __init__(self, opts: DAAOptions, ctx: Context) -> None:
        super().__init__()
        self.epsilon = opts.epsilon
        self.step_size = opts.step_size
        self.steps = opts.steps
        self.init = opts.init
        self.objective = opts.objective
        self.domain_loss = opts.domain_loss
        self.label_weight = opts.label_weight
        self.stop_kl = opts.stop_kl
        self.feature = opts.feature
        self.weight = opts.weight
        self.train_on_perturbed = opts.train_on_perturbed
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
        #: what the last attack did (steps taken, samples stopped early): logged, never a loss
        self.last_stats: dict[str, float] = {}

    # -- pieces, public so tests and analyses can call them ---------------------------------
    def features(self, student: Student, x: torch.Tensor) -> torch.Tensor:
        f = student.features(x)[self.feature]
        return f.flatten(1) if f.ndim > 2 else f

    def _domain_term(self, logits: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        """Per-sample domain term of the attack (descended)."""
        if self.domain_loss == "kl":
            return kl_to_uniform(logits)
        if self.domain_loss == "uniform":
            logp = logits.float().log_softmax(dim=1)
            return -logp.mean(dim=1) - math.log(logits.shape[1])
        return -F.cross_entropy(logits.float(), domain, reduction="none")  # away from the true domain

    def attack(self, x: torch.Tensor, domain: torch.Tensor, student: Student,
               generator: torch.Generator | None = None,
               label: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The perturbed [0, 1] images (detached) and the student's features of the clean images
        (detached; None when the attack did not see them, i.e. ``init=uniform`` or ``steps=0``).
        ``label`` (live/spoof) is needed by the label-preserving objective."""
        eps = self.epsilon
        x = x.detach()
        preserve = self.objective in ("label-preserving", "label-hinge") and self.label_weight > 0
        hinge = self.objective == "label-hinge"
        ce_start: torch.Tensor | None = None
        if preserve and label is None:
            raise FasbenchError(f"dtda.daa objective={self.objective} needs the batch's live/spoof labels")
        if self.init == "uniform":
            u = torch.rand(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
            delta = ((u * 2 - 1) * eps).clamp(min=-x, max=1 - x)
        else:
            delta = torch.zeros_like(x)
        clean = None
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        taken = 0
        with frozen_bn_stats(student):
            for k in range(self.steps):
                delta.requires_grad_(True)
                f = student.features(x + delta)
                feats = f[self.feature].flatten(1) if f[self.feature].ndim > 2 else f[self.feature]
                if k == 0 and self.init == "zero":
                    clean = feats.detach()
                logits = self.classifier(feats)
                if self.stop_kl > 0:  # early stop: near-uniform samples stay where they are
                    active = active & (kl_to_uniform(logits.detach()) > self.stop_kl)
                    if not bool(active.any()):
                        break
                per = self._domain_term(logits, domain)
                if preserve:
                    ce = F.cross_entropy(student.classify(f["pooled"]).float(), label, reduction="none")
                    if hinge:  # only a rise of the live/spoof loss above the starting point's is penalised
                        if ce_start is None:
                            ce_start = ce.detach()
                        ce = F.relu(ce - ce_start)
                    per = per + self.label_weight * ce
                # the mean over the batch; stopped samples take no step (their sign is zeroed below)
                (grad,) = torch.autograd.grad(per.mean(), delta)
                step = self.step_size * grad.sign() * active.view(-1, *([1] * (x.ndim - 1))).to(grad.dtype)
                delta = (delta.detach() - step).clamp(-eps, eps)
                delta = (x + delta).clamp(0, 1) - x
                taken += 1
        self.last_stats = {"steps": float(taken), "stopped": float((~active).float().mean())}
        return (x + delta).detach(), clean

    def forward(self, batch: dict[str, torch.Tensor], student: Student):
        if not self.training:
            return batch, {}
        x_adv, clean = self.attack(batch["image"], batch["domain"], student, label=batch.get("label"))
        if clean is None:
            with torch.no_grad(), frozen_bn_stats(student):
                clean = self.features(student, batch["image"])
        loss = F.cross_entropy(self.classifier(clean.detach()).float(), batch["domain"])
        return {**batch, "image": x_adv, "clean_image": batch["image"]}, {"domain_cls": self.weight * loss}

    def perturbed_domain_loss(self, feats: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                              student: Student) -> dict[str, torch.Tensor]:
        """``{"domain_cls_adv": ...}``: the classifier's loss on the perturbed images' features
        (``feats``, the student's features of ``batch["image"]`` from the method's own forward,
        detached here), or ``{}`` when ``train_on_perturbed`` is off or in eval mode."""
        if not (self.training and self.train_on_perturbed):
            return {}
        f = feats.get(self.feature)
        if f is None:  # a feature the method's forward did not compute
            with torch.no_grad(), frozen_bn_stats(student):
                f = student.features(batch["image"], intermediates=True)[self.feature]
        f = f.detach()
        f = f.flatten(1) if f.ndim > 2 else f
        loss = F.cross_entropy(self.classifier(f).float(), batch["domain"])
        return {"domain_cls_adv": self.weight * loss}


class RandomNoise(Aligner):
    """``dtda.noise``: DAA's null. In training, ``x + delta`` with ``delta`` random in the same
    L-inf ball as DAA's (``sign``: +-epsilon per pixel and channel, the largest perturbation of that
    budget; ``uniform``: uniform in [-epsilon, epsilon]), clipped to [0, 1]; no attack, no
    classifier, no loss. Draws from torch's global generator (saved in checkpoints by the harness)."""

    def __init__(self, opts: NoiseOptions, ctx: Context | None = None) -> None:
        super().__init__()
        self.epsilon = opts.epsilon
        self.distribution = opts.distribution

    def forward(self, batch: dict[str, torch.Tensor], student: Student):
        if not self.training:
            return batch, {}
        x = batch["image"].detach()
        u = torch.rand(x.shape, device="cpu").to(x.device, x.dtype) * 2 - 1
        delta = (u.sign() if self.distribution == "sign" else u) * self.epsilon
        x_noisy = (x + delta).clamp(0, 1)
        return {**batch, "image": x_noisy, "clean_image": batch["image"]}, {}


def _feature_dim(student: Student, feature: str, size: int) -> int:
    if feature == "pooled":
        return int(student.num_features)
    shapes = student.feature_shapes(size, intermediates=False)
    if feature not in shapes:
        raise FasbenchError(f"method.aligner.feature={feature!r}: the student has {sorted(shapes)}")
    return int(torch.Size(shapes[feature]).numel())
