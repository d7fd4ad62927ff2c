"""Base classes and the context a method is built with (imports torch).

Contract (DESIGN.md section 3): a method composes a student (+ teachers + aligner) and
implements ``training_step(batch) -> dict[str, Tensor]`` (named losses; the harness
optimises their sum) and ``predict(x) -> live probability in [0, 1]``. The harness owns
the optimiser, schedule, AMP, evaluation, checkpoints and records.

A batch is a dict: ``image`` float (B, 3, H, W) normalised for the student, ``label`` long
(1 = live), ``domain`` long (index into ``ctx.domains``, the source domains of the task).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fasbench import plugins
from fasbench.errors import FasbenchError


@dataclass
class Context:
    """What the harness hands a method factory."""

    cfg: Any  # the full resolved config (omegaconf DictConfig)
    domains: list[str]  # source domains of the task, in domain-index order
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    components: dict[str, Any] = field(default_factory=dict)  # name/version/plugin of what was built
    student: nn.Module | None = None  # the last student built (aligners size their heads from it)

    @property
    def num_domains(self) -> int:
        return len(self.domains)

    def _note(self, role: str, entry) -> None:
        info = {"name": entry.name, "version": entry.version, "plugin": entry.plugin}
        if role == "teachers":
            self.components.setdefault("teachers", []).append(info)
        else:
            self.components[role] = info

    def build_student(self, student_cfg: Any = None) -> nn.Module:
        scfg = dict(student_cfg if student_cfg is not None else self.cfg.student)
        name = scfg.pop("name", "timm")
        entry = plugins.registry("students").get(name)
        self._note("student", entry)
        if "arch" in scfg:  # "timm/resnet18": the architecture is part of the student's identity
            self.components["student"]["name"] = f"{entry.name}/{scfg['arch']}"
        self.student = entry.build(**scfg)
        return self.student

    def build_aligner(self, aligner_cfg: Any = None) -> nn.Module:
        acfg = aligner_cfg if aligner_cfg is not None else self.cfg.get("aligner", {"name": "none"})
        entry = plugins.registry("aligners").get(str(acfg.get("name", "none")))
        self._note("aligner", entry)
        return entry.build(acfg, self)

    def build_teacher(self, teacher_cfg: Any) -> nn.Module:
        entry = plugins.registry("teachers").get(str(teacher_cfg["name"]))
        self._note("teachers", entry)
        teacher = entry.build(teacher_cfg, self)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        info = self.components["teachers"][-1]
        for key in ("kind", "weights"):  # the weight URI, resolved commit and sha256 go into the record
            value = getattr(teacher, "weights_info" if key == "weights" else key, None)
            if value is not None:
                info[key] = value
        return teacher


class Method(nn.Module, abc.ABC):
    """Base class of methods; subclasses set ``self.student`` and implement ``training_step``."""

    @abc.abstractmethod
    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named losses for one batch; the harness back-propagates their sum."""

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Live probability per image (softmax of the student's logits, class 1 = live)."""
        return self.student.logits(x).float().softmax(dim=1)[:, 1]

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the optimiser; default: every trainable parameter."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    # Frozen modules (teachers) are not part of the method's weights: they are pinned by
    # their weight URI and sha256 in the run record, so checkpoints stay student-sized.
    def _frozen_prefixes(self) -> tuple[str, ...]:
        return tuple(f"{n}." for n, m in self.named_modules() if n and getattr(m, "frozen", False))

    def state_dict(self, *args: Any, **kwargs: Any):
        sd = super().state_dict(*args, **kwargs)
        frozen = self._frozen_prefixes()
        if frozen:
            prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
            for k in [k for k in sd if k[len(prefix):].startswith(frozen)]:
                del sd[k]
        return sd

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        frozen = self._frozen_prefixes()
        result.missing_keys[:] = [k for k in result.missing_keys if not k.startswith(frozen)]
        if strict and (result.missing_keys or result.unexpected_keys):
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}: missing keys {result.missing_keys[:5]}, "
                f"unexpected keys {result.unexpected_keys[:5]}"
            )
        return result

    def train(self, mode: bool = True) -> "Method":
        super().train(mode)
        for m in self.modules():  # frozen teachers stay in eval mode
            if getattr(m, "frozen", False):
                m.eval()
        return self


class IdentityAligner(nn.Module):
    """No alignment: the batch goes through unchanged and adds no loss."""

    def __init__(self, cfg: Any = None, ctx: Context | None = None) -> None:
        super().__init__()

    def forward(self, batch: dict[str, torch.Tensor], student: nn.Module):
        return batch, {}


def check_losses(losses: Any, method: str) -> dict[str, torch.Tensor]:
    """Validate a method's named-loss dict (a clear error instead of a cryptic crash)."""
    if not isinstance(losses, dict) or not losses:
        raise FasbenchError(f"method {method!r}: training_step must return a non-empty dict of named losses")
    for k, v in losses.items():
        if not isinstance(v, torch.Tensor) or v.ndim != 0:
            raise FasbenchError(f"method {method!r}: loss {k!r} must be a scalar tensor, got {type(v).__name__}")
    return losses
