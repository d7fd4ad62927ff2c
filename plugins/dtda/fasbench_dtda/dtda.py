"""DTDA: dual-teacher knowledge distillation with domain alignment (arXiv 2401.01102).

One recipe class; the registered methods (``dtda``, ``dtda-no-daa``, ``dtda-perceptual``,
``dtda-generative``, ``daa`` and the controls ``noise`` and ``dtda-random-teachers``) are this
class with different defaults (``fasbench_dtda.options``).

Its teachers come from the config: ``method.teachers`` maps a role (any name) to a slot
naming a registered teacher, how to distil from it and the teacher's own options. A third
role is a config entry, not code (plugin README).

Training step (the batch is RGB in [0, 1]; the student and each teacher normalise their own
input):

1. The aligner (DAA by default) perturbs the batch so the source domains become
   indistinguishable to its domain classifier (loss ``domain_cls`` trains the classifier on the
   clean features, ``domain_cls_adv`` on the perturbed ones).
2. The student sees the perturbed images: cross-entropy on live vs spoof (``ce``), and the
   clean ones (``ce_clean``, weight ``clean_ce_weight``).
3. Each frozen teacher sees the same perturbed images (resized and normalised its own way,
   run without gradient); a small learnable projector maps a student feature onto the
   teacher's feature and a cosine (or MSE) distance is the distillation loss ``kd_<role>``.

A slot with ``init: random`` keeps the teacher's architecture (as its weights define it) but
re-initialises every weight from ``init_seed`` (each module's own ``reset_parameters``): the
control of whether the face priors matter. The run record then names the weights
``random-init:seed=<init_seed>`` with the sha256 of the random weights, never the loaded file.
"""
from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fasbench import plugins
from fasbench.api import Context, Method
from fasbench.errors import FasbenchError
from fasbench_dtda.options import DTDAOptions


class Projector(nn.Module):
    """Student feature -> teacher feature space: a linear map (vectors) or a 1x1 conv (maps)."""

    def __init__(self, student_shape: torch.Size, teacher_shape: torch.Size) -> None:
        super().__init__()
        if len(student_shape) == 1 and len(teacher_shape) == 1:
            self.net = nn.Linear(student_shape[0], teacher_shape[0])
        elif len(student_shape) == 3 and len(teacher_shape) == 3:
            self.net = nn.Sequential(
                nn.Conv2d(student_shape[0], teacher_shape[0], 1, bias=False), nn.BatchNorm2d(teacher_shape[0])
            )
        else:
            raise FasbenchError(
                f"cannot distil between a student feature of shape {tuple(student_shape)} and a teacher feature of "
                f"shape {tuple(teacher_shape)}: pair a vector with a vector (e.g. pooled <-> embedding) or a map "
                "with a map (e.g. stage3 <-> mid)"
            )

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(s)


def distill_loss(s: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
    """Distance between the projected student feature ``s`` and the teacher feature ``t``."""
    s, t = s.float(), t.float()
    if s.ndim == 4 and s.shape[-2:] != t.shape[-2:]:
        t = F.adaptive_avg_pool2d(t, s.shape[-2:])  # teacher map onto the student's grid
    if kind == "cosine":
        return (1 - F.cosine_similarity(s, t, dim=1)).mean()
    if kind == "mse":  # on L2-normalised features, so teachers of any scale weigh alike
        return F.mse_loss(F.normalize(s, dim=1), F.normalize(t, dim=1))
    raise FasbenchError(f"distillation loss {kind!r} is unknown; choose cosine or mse")


class DTDA(Method):
    """Student + frozen teachers by role + an aligner (DAA by default), all from the options."""

    def __init__(self, opts: DTDAOptions, ctx: Context) -> None:
        super().__init__()
        self.student = ctx.build_student()
        self.ce_weight = opts.ce_weight
        self.clean_ce_weight = opts.clean_ce_weight
        self.aligner = ctx.build_aligner(opts.aligner)
        self.teachers = nn.ModuleDict()
        self.projectors = nn.ModuleDict()
        self.kd: dict[str, dict[str, Any]] = {}
        size = ctx.crop_size
        s_shapes = plain = None
        for role, slot in opts.teachers.items():
            if not slot.enabled or slot.weight == 0:
                continue
            where = f"method.teachers.{role}"
            if hasattr(self.teachers, role):  # "keys", "train", ...: an attribute of the ModuleDict
                raise FasbenchError(f"{where}: {role!r} cannot name a teacher role (a reserved name); rename the role")
            registered = plugins.registry("teachers").get(slot.name).meta.get("kind")
            if slot.kind is not None and registered is not None and registered != slot.kind:
                raise _kind_error(where, slot.name, slot.kind, registered)  # before loading any weights
            teacher = ctx.build_teacher(slot, where)
            if slot.kind is not None and teacher.kind != slot.kind:
                raise _kind_error(where, slot.name, slot.kind, teacher.kind)
            if slot.init == "random":
                info = randomize_teacher(teacher, slot.init_seed, where)
                ctx.components["teachers"][-1]["weights"] = info  # the record names what ran: random weights
            sf, tf = slot.student_feature, slot.teacher_feature
            if s_shapes is None:
                s_shapes = self.student.feature_shapes(size, intermediates=True)
                plain = set(self.student.feature_shapes(size, intermediates=False))
            if sf not in s_shapes:
                raise FasbenchError(f"{where}.student_feature={sf!r}; the student has {sorted(s_shapes)}")
            t_shapes = teacher.feature_shapes()
            if tf not in t_shapes:
                raise FasbenchError(f"{where}.teacher_feature={tf!r}; {slot.name} has {sorted(t_shapes)}")
            self.teachers[role] = teacher
            self.projectors[role] = Projector(s_shapes[sf], t_shapes[tf])
            self.kd[role] = {"student": sf, "teacher": tf, "weight": slot.weight, "loss": slot.loss}
        # per-stage maps only when a role distils from one (they cost a little)
        self.intermediates = any(k["student"] not in plain for k in self.kd.values())
        # cost knob: teachers on every k-th training step only; the step count is checkpointed (exact resume)
        self.teacher_every = int(opts.teacher_every)
        if self.teacher_every > 1:
            self.register_buffer("teacher_step", torch.zeros((), dtype=torch.long))

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch, losses = self.aligner(batch, self.student)
        x = batch["image"]
        feats = self.student.features(x, intermediates=self.intermediates)
        out = {"ce": self.ce_weight * F.cross_entropy(self.student.classify(feats["pooled"]), batch["label"])}
        if self.clean_ce_weight > 0 and "clean_image" in batch:
            out["ce_clean"] = self.clean_ce_weight * F.cross_entropy(self.student.logits(batch["clean_image"]), batch["label"])
        perturbed_loss = getattr(self.aligner, "perturbed_domain_loss", None)
        if perturbed_loss is not None:  # the domain classifier also learns from the perturbed features
            losses = {**losses, **perturbed_loss(feats, batch, self.student)}
        x01 = x.detach()  # the teachers see the same (perturbed) [0, 1] images
        run_teachers = True
        if self.teacher_every > 1 and self.training:  # teacher_every: kd_* on steps 0, k, 2k, ... only
            run_teachers = int(self.teacher_step) % self.teacher_every == 0
            self.teacher_step += 1
        for role, kd in self.kd.items() if run_teachers else ():
            with torch.inference_mode():
                t = self.teachers[role].features(x01, names=(kd["teacher"],))[kd["teacher"]]
            t = t.clone()  # an ordinary tensor again (a constant target for autograd)
            s = self.projectors[role](feats[kd["student"]])
            out[f"kd_{role}"] = kd["weight"] * distill_loss(s, t, kd["loss"])
        out.update(losses)
        return out


def randomize_teacher(teacher: nn.Module, seed: int, where: str = "teacher") -> dict[str, Any]:
    """Re-initialise every weight of ``teacher`` from ``seed`` (each module's ``reset_parameters``,
    BatchNorm statistics included) and return the record's weights entry for it."""
    loaded = teacher.weights_info or {}
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(seed))
        with torch.no_grad():
            for m in teacher.modules():
                reset = getattr(m, "reset_parameters", None)
                if callable(reset):
                    reset()
    finally:
        torch.random.set_rng_state(gen_state)  # the run's own random stream is untouched
    teacher.freeze()
    owned = {id(p) for m in teacher.modules() if callable(getattr(m, "reset_parameters", None))
             for p in m.parameters(recurse=False)}
    missed = [n for n, p in teacher.named_parameters() if id(p) not in owned]
    if missed:
        raise FasbenchError(f"{where}.init=random: cannot re-initialise {missed[:3]} (no reset_parameters in their "
                            "module); use init=pretrained for this teacher")
    h = hashlib.sha256()
    for name, t in sorted(teacher.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return {"uri": f"random-init:seed={int(seed)}", "sha256": h.hexdigest(), "random": True, "init_seed": int(seed),
            "architecture_from": {k: loaded.get(k) for k in ("uri", "sha256") if loaded.get(k)}}


def _kind_error(where: str, name: str, wanted: str, kind: str) -> FasbenchError:
    return FasbenchError(
        f"{where}.kind={wanted!r}, but {name!r} is a {kind} teacher; pick a {wanted} teacher "
        f"(`fasbench ls teachers`) or set {where}.kind={kind} (or null)"
    )
