"""Options of the DTDA components: the one declaration of every ``method.*`` key of the DTDA
recipes, of the ``dtda.daa`` aligner and of the two teachers, with types, defaults and ranges.

Torch-free (pydantic only): ``fasbench run`` validates them before anything heavy loads.

The five recipes are one method class registered five times; each registration names the
options class below that holds its defaults. :class:`DTDAOptions` declares the keys and the
``dtda`` defaults; each ablation subclass only changes the defaults that differ (which teacher
roles are enabled, which aligner).
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from fasbench.options import AlignerRef, Options, TeacherOptions, TeacherRef

IRESNET_ARCH_KEYS = ("depth", "width", "embed_dim", "input_size")
_ROLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


# ----------------------------------------------------------------------------------- teachers

class ArcFaceOptions(TeacherOptions):
    """``dtda.arcface``: ArcFace IResNet. ``arch`` overrides the architecture (keys ``depth``,
    ``width``, ``embed_dim``, ``input_size``; default IR-101 at 112 px, or the ``config.json``
    beside the weights); ``bgr`` feeds BGR instead of RGB (InsightFace-converted checkpoints)."""

    arch: dict[str, Any] | None = None
    bgr: bool = False

    @field_validator("arch")
    @classmethod
    def _known_arch_keys(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        unknown = sorted(set(v or {}) - set(IRESNET_ARCH_KEYS))
        if unknown:
            raise ValueError(f"unknown IResNet arch key(s) {unknown}; known: {', '.join(IRESNET_ARCH_KEYS)}")
        return v


class LdmVQOptions(TeacherOptions):
    """``dtda.ldm_vq``: VQ-VAE encoder. ``arch`` is a diffusers ``VQModel`` config (default: the
    LDM CelebA-HQ one, or the ``config.json`` beside the weights); ``input_size`` the side the
    images are resized to (default: the config's ``sample_size``)."""

    arch: dict[str, Any] | None = None
    input_size: int | None = Field(None, ge=8)


# ------------------------------------------------------------------------------------ aligner

#: The L-inf budget of the input perturbation (pixel units, [0, 1]); shared by DAA and the
#: ``noise`` control so the control always has DAA's budget.
DEFAULT_EPSILON = 0.031372549  # 8/255
DEFAULT_STEP_SIZE = 0.0078431373  # 2/255
DEFAULT_STEPS = 3


class DAAOptions(Options):
    """``dtda.daa``: the domain adversarial attack (plugin README, "DAA")."""

    # label-preserving: the attack descends KL(domain posterior || uniform) + label_weight * CE(live/spoof)
    # (which also makes the perturbed images easier to classify than the clean ones);
    # label-hinge: KL + label_weight * max(0, CE(perturbed) - CE(start)), per sample: the live/spoof loss
    # may not rise, and is not pushed down either;
    # domain-only: the domain term alone (the original attack, which also erases the spoof evidence)
    objective: Literal["label-preserving", "label-hinge", "domain-only"] = "label-preserving"
    domain_loss: Literal["kl", "uniform", "untargeted"] = "kl"  # KL(p || u) | CE(u, p) | away from the true domain
    label_weight: float = Field(1.0, ge=0.0)  # lambda of the live/spoof cross-entropy in the attack
    epsilon: float = Field(DEFAULT_EPSILON, ge=0.0, le=1.0)  # L-inf budget in [0, 1] pixel units
    step_size: float = Field(DEFAULT_STEP_SIZE, ge=0.0)  # per PGD step, pixel units
    steps: int = Field(DEFAULT_STEPS, ge=0)
    # early stop: a sample whose domain posterior is within stop_kl nats of uniform (KL(p || u)) is not
    # moved any more; the attack ends when every sample is (0 = never stop early)
    stop_kl: float = Field(0.05, ge=0.0)
    init: Literal["zero", "uniform"] = "zero"
    feature: str = "pooled"  # the student feature the domain classifier sees
    hidden: int = Field(256, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    weight: float = Field(1.0, ge=0.0)  # weight of the domain classifier's own losses (detached features)
    # the classifier also learns the domains from the perturbed images' features (domain_cls_adv), so
    # the attack has to keep fooling an adversary that has seen its perturbations
    train_on_perturbed: bool = True


class NoiseOptions(Options):
    """``dtda.noise``: the null of DAA: random noise of DAA's budget, no attack, no classifier."""

    epsilon: float = Field(DEFAULT_EPSILON, ge=0.0, le=1.0)  # L-inf budget in [0, 1] pixel units
    distribution: Literal["sign", "uniform"] = "sign"  # +-epsilon per pixel and channel | uniform in [-eps, eps]


# ------------------------------------------------------------------------------------ methods

class TeacherSlot(TeacherRef):
    """One teacher role of DTDA: ``{name: TEACHER, <slot keys>, <the teacher's own options>}``.

    The slot keys are declared here; every other key is the named teacher's own option
    (``weights``, ``arch``, ...), checked against that teacher's options class.
    """

    enabled: bool = True
    weight: float = Field(1.0, ge=0.0)  # weight of the loss kd_<role>
    loss: Literal["cosine", "mse"] = "cosine"
    student_feature: str = "pooled"  # a feature of the student (features(intermediates=True))
    teacher_feature: str  # a feature of the teacher (its feature_shapes())
    kind: str | None = None  # when set, the teacher's kind must be this (perceptual, generative, ...)
    # random: the teacher's architecture (as its weights define it) with freshly initialised weights
    # (seed init_seed), the weights not used: the control "do the face priors matter?"
    init: Literal["pretrained", "random"] = "pretrained"
    init_seed: int = Field(0, ge=0)


def _perceptual(enabled: bool = True, init: str = "pretrained") -> TeacherSlot:
    return TeacherSlot(name="dtda.arcface", kind="perceptual", enabled=enabled, init=init,
                       student_feature="pooled", teacher_feature="embedding")


def _generative(enabled: bool = True, init: str = "pretrained") -> TeacherSlot:
    return TeacherSlot(name="dtda.ldm_vq", kind="generative", enabled=enabled, init=init,
                       student_feature="stage3", teacher_feature="mid")


class DTDAOptions(Options):
    """``method.*`` of the DTDA recipes; the defaults are those of ``dtda`` (both teachers + DAA).

    ``teachers`` maps a role (any name; its loss is ``kd_<role>``) to a :class:`TeacherSlot`.
    """

    ce_weight: float = Field(1.0, ge=0.0)
    clean_ce_weight: float = Field(1.0, ge=0.0)  # cross-entropy on the clean images too (when an aligner perturbs)
    teachers: dict[str, TeacherSlot] = Field(
        default_factory=lambda: {"perceptual": _perceptual(), "generative": _generative()})
    aligner: AlignerRef = Field(default_factory=lambda: AlignerRef(name="dtda.daa"))
    # cost knob (plugin README, "Cost"): the teachers run, and kd_* count, on every k-th training step
    # only (steps 0, k, 2k, ...; the losses are not rescaled); 1 = every step
    teacher_every: int = Field(1, ge=1)

    @field_validator("teachers")
    @classmethod
    def _role_names(cls, v: dict[str, TeacherSlot]) -> dict[str, TeacherSlot]:
        bad = [r for r in v if not _ROLE_RE.match(r)]
        if bad:
            raise ValueError(f"teacher role {bad[0]!r}: a role is a name of letters, digits and _ (its loss is kd_<role>)")
        return v


class DTDANoDAAOptions(DTDAOptions):
    """``dtda-no-daa``: both teachers, no domain alignment."""

    aligner: AlignerRef = Field(default_factory=lambda: AlignerRef(name="none"))


class DTDAPerceptualOptions(DTDAOptions):
    """``dtda-perceptual``: the perceptual teacher only, + DAA."""

    teachers: dict[str, TeacherSlot] = Field(
        default_factory=lambda: {"perceptual": _perceptual(), "generative": _generative(enabled=False)})


class DTDAGenerativeOptions(DTDAOptions):
    """``dtda-generative``: the generative teacher only, + DAA."""

    teachers: dict[str, TeacherSlot] = Field(
        default_factory=lambda: {"perceptual": _perceptual(enabled=False), "generative": _generative()})


class DAAMethodOptions(DTDAOptions):
    """``daa``: no teacher, DAA only (ERM on DAA-perturbed images)."""

    teachers: dict[str, TeacherSlot] = Field(
        default_factory=lambda: {"perceptual": _perceptual(enabled=False), "generative": _generative(enabled=False)})


class NoiseMethodOptions(DAAMethodOptions):
    """``noise``: no teacher, random sign noise of DAA's budget instead of the attack (DAA's null)."""

    aligner: AlignerRef = Field(default_factory=lambda: AlignerRef(name="dtda.noise"))


class DTDARandomTeachersOptions(DTDAOptions):
    """``dtda-random-teachers``: ``dtda`` with both teachers randomly initialised (no face prior)."""

    teachers: dict[str, TeacherSlot] = Field(
        default_factory=lambda: {"perceptual": _perceptual(init="random"), "generative": _generative(init="random")})
