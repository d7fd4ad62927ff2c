"""DTDA: dual-teacher knowledge distillation with domain alignment (arXiv 2401.01102).

One recipe class; the registered methods (``dtda``, ``dtda-no-daa``, ``dtda-perceptual``,
``dtda-generative``, ``daa``) are this class with different defaults.

Training step:

1. The aligner (DAA by default) perturbs the batch so the source domains become
   indistinguishable to its domain classifier (loss ``domain_cls`` trains the classifier).
2. The student sees the perturbed images: cross-entropy on live vs spoof (``ce``).
3. Each frozen teacher sees the same perturbed images (converted to its own input size and
   normalisation, run without gradient); a small learnable projector maps a student feature
   onto the teacher's feature and a cosine (or MSE) distance is the distillation loss
   (``kd_perceptual``, ``kd_generative``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fasbench.api import Context, IdentityAligner, Method
from fasbench.errors import FasbenchError
from fasbench_dtda.teachers import cfg_get as _get

ROLES = ("perceptual", "generative")


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
    """Student + frozen perceptual/generative teachers + DAA (configurable per recipe)."""

    def __init__(self, cfg: Any, ctx: Context) -> None:
        super().__init__()
        self.student = ctx.build_student()
        self.ce_weight = float(_get(cfg, "ce_weight", 1.0))
        self.clean_ce_weight = float(_get(cfg, "clean_ce_weight", 0.0))
        acfg = _get(cfg, "aligner", {"name": "none"})
        self.aligner = ctx.build_aligner(acfg) if str(_get(acfg, "name", "none")) != "none" else IdentityAligner()
        self.teachers = nn.ModuleDict()
        self.projectors = nn.ModuleDict()
        self.kd: dict[str, dict[str, Any]] = {}
        tcfgs = _get(cfg, "teachers", {})
        unknown = set(tcfgs) - set(ROLES)
        if unknown:
            raise FasbenchError(f"method.teachers has unknown role(s) {sorted(unknown)}; roles: {', '.join(ROLES)}")
        size = int(ctx.cfg.data.crop_size)
        s_shapes = None
        for role in ROLES:
            tcfg = _get(tcfgs, role)
            if tcfg is None or not bool(_get(tcfg, "enabled", True)) or float(_get(tcfg, "weight", 1.0)) == 0:
                continue
            teacher = ctx.build_teacher(tcfg)
            if getattr(teacher, "kind", role) != role:
                raise FasbenchError(
                    f"method.teachers.{role} is {tcfg['name']!r}, a {teacher.kind} teacher; pick a {role} teacher "
                    "(`fasbench ls teachers`)"
                )
            sf, tf = str(_get(tcfg, "student_feature", "pooled")), str(_get(tcfg, "teacher_feature", "embedding"))
            if s_shapes is None:
                s_shapes = _student_shapes(self.student, size)
            if sf not in s_shapes:
                raise FasbenchError(f"method.teachers.{role}.student_feature={sf!r}; the student has {sorted(s_shapes)}")
            t_shapes = teacher.feature_shapes()
            if tf not in t_shapes:
                raise FasbenchError(
                    f"method.teachers.{role}.teacher_feature={tf!r}; {tcfg['name']} has {sorted(t_shapes)}"
                )
            self.teachers[role] = teacher
            self.projectors[role] = Projector(s_shapes[sf], t_shapes[tf])
            self.kd[role] = {"student": sf, "teacher": tf, "weight": float(_get(tcfg, "weight", 1.0)),
                             "loss": str(_get(tcfg, "loss", "cosine"))}
        self.intermediates = any(k["student"].startswith("stage") for k in self.kd.values())
        mean = torch.tensor(getattr(self.student, "mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1)
        std = torch.tensor(getattr(self.student, "std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1)
        self.register_buffer("_mean", mean, persistent=False)
        self.register_buffer("_std", std, persistent=False)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch, losses = self.aligner(batch, self.student)
        x = batch["image"]
        feats = self.student.features(x, intermediates=self.intermediates) if self.kd else self.student.features(x)
        out = {"ce": self.ce_weight * F.cross_entropy(self.student.head(feats["pooled"]), batch["label"])}
        if self.clean_ce_weight > 0 and "clean_image" in batch:
            out["ce_clean"] = self.clean_ce_weight * F.cross_entropy(self.student.logits(batch["clean_image"]), batch["label"])
        if self.kd:
            x01 = (x.detach() * self._std + self._mean).clamp_(0, 1)  # the teachers see the same (perturbed) images
            for role, kd in self.kd.items():
                with torch.inference_mode():
                    t = self.teachers[role].features(x01, names=(kd["teacher"],))[kd["teacher"]]
                t = t.clone()  # an ordinary tensor again (a constant target for autograd)
                s = self.projectors[role](feats[kd["student"]])
                out[f"kd_{role}"] = kd["weight"] * distill_loss(s, t, kd["loss"])
        out.update(losses)
        return out


def _student_shapes(student: nn.Module, size: int) -> dict[str, torch.Size]:
    was = student.training
    student.eval()
    with torch.no_grad():
        f = student.features(torch.zeros(1, 3, size, size), intermediates=True)
    student.train(was)
    return {k: v.shape[1:] for k, v in f.items()}
