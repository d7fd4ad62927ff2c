"""The contracts of every component kind a plugin can add, and the context they are built with.

Imports torch; plugins' ``plugin.py`` modules must not import this at module level (lazy
``"module:attr"`` factories keep ``fasbench --help`` cheap). docs/architecture.md describes
each kind, its registration and the data flow from the command line to the record.

Pixel space is explicit: every image a method, aligner, student or teacher receives is RGB
float in [0, 1], shape (B, 3, H, W). Each network converts it to its own input itself: a
:class:`Student` with its :meth:`Student.normalize`, a :class:`Teacher` with its resize and
normalisation. Nobody un-normalises.

A batch is a dict: ``image`` float (B, 3, H, W) in [0, 1] (augmented, cropped to
``data.crop_size``), ``label`` long (1 = live), ``domain`` long (index into ``ctx.domains``,
the source domains of the task). An aligner may add keys (``clean_image``).
"""
from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fasbench import plugins
from fasbench.errors import FasbenchError

# options of the built-in kinds: defined in the torch-free fasbench.options, re-exported here
from fasbench.options import AlignerRef, ComponentRef, Options, TeacherOptions, TeacherRef, check_entry_options, resolve_ref  # noqa: F401

# --------------------------------------------------------------------------------------
# students
# --------------------------------------------------------------------------------------

class Student(nn.Module, abc.ABC):
    """The network a method trains and the harness evaluates.

    Contract (what methods and aligners may use):

    - ``features(x01, intermediates=False) -> dict[str, Tensor]``: ``"pooled"`` (B,
      ``num_features``) always, ``"map"`` (the last feature map) and, with
      ``intermediates=True``, one map per stage (``"stage0"``, ``"stage1"``, ...);
    - ``classify(pooled) -> logits`` (B, 2), class 1 = live;
    - ``logits(x01) = classify(features(x01)["pooled"])``;
    - ``num_features``, ``mean`` and ``std`` (the input normalisation it expects) and
      ``normalize(x01)``, which ``features`` applies itself: callers pass [0, 1] images.
    """

    num_features: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB -> this network's input normalisation. mean and std are made once per
        device and dtype and kept there (no host-to-device copy per step)."""
        key = (x01.device, x01.dtype, tuple(self.mean), tuple(self.std))
        cache = self.__dict__.setdefault("_norm_cache", {})
        if type(x01) is not torch.Tensor or torch.compiler.is_compiling():  # traced (export, compile): no cache
            cache = {}
        if key not in cache:
            with torch.inference_mode(False):  # also usable by training after an evaluation made them
                cache[key] = (torch.tensor(self.mean, device=x01.device, dtype=x01.dtype).view(1, -1, 1, 1),
                              torch.tensor(self.std, device=x01.device, dtype=x01.dtype).view(1, -1, 1, 1))
        mean, std = cache[key]
        return (x01 - mean) / std

    @abc.abstractmethod
    def features(self, x01: torch.Tensor, intermediates: bool = False) -> dict[str, torch.Tensor]:
        """Named features of [0, 1] images (see the class docstring)."""

    @abc.abstractmethod
    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Live/spoof logits from the pooled features."""

    def logits(self, x01: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x01)["pooled"])

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.logits(x01)

    @torch.no_grad()
    def feature_shapes(self, size: int, intermediates: bool = True) -> dict[str, torch.Size]:
        """Per-sample shapes of every feature at input side ``size`` (eval mode, no side effects)."""
        was = self.training
        self.eval()
        try:
            p = next(self.parameters(), None)
            x = torch.full((1, 3, size, size), 0.5, device=p.device if p is not None else "cpu")
            f = self.features(x, intermediates=intermediates)
        finally:
            self.train(was)
        return {k: v.shape[1:] for k, v in f.items()}


# --------------------------------------------------------------------------------------
# teachers
# --------------------------------------------------------------------------------------

class Teacher(nn.Module, abc.ABC):
    """A frozen network a method distils from.

    Contract:

    - ``kind`` (class attribute): what it knows, e.g. ``"perceptual"`` or ``"generative"``;
      a method may ask for a kind per role;
    - ``features(x01, names=None) -> dict[str, Tensor]``: features of [0, 1] RGB images of
      any size; the teacher resizes and normalises itself (:meth:`preprocess`); on CUDA it
      runs channels_last under autocast and returns float32;
    - ``feature_shapes()``: per-sample shape of every feature;
    - frozen: ``frozen = True``, always in eval mode, no parameter requires a gradient;
    - ``weights_info``: what :meth:`load_weights` resolved (URI, revision, sha256), written
      into the run record. The harness chooses the weights URI (``options.weights``, else the
      registration's default for the dataset) before the teacher is built: a teacher never
      looks at the dataset and never trains in its constructor.
    """

    frozen = True
    kind = "?"

    def __init__(self, input_size: int, mean: Iterable[float], std: Iterable[float], bgr: bool = False) -> None:
        super().__init__()
        self.input_size = int(input_size)
        self.bgr = bool(bgr)
        self.register_buffer("_mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.weights_info: dict[str, Any] | None = None
        self._shapes: dict[str, torch.Size] | None = None
        self._cuda_dtype: torch.dtype | None = None  # set on the first CUDA call

    def load_weights(self, uri: str) -> dict[str, torch.Tensor]:
        """The state dict behind a weights URI (any scheme ``fasbench.weights`` or a plugin
        resolves); records what was resolved in ``weights_info``."""
        from fasbench import weights

        sd, resolved = weights.load_state_dict(uri)
        self.weights_info = resolved.as_dict()
        return sd

    def freeze(self) -> Teacher:
        """Eval mode and no gradients, whoever builds the teacher (subclasses call it last)."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)  # a teacher never leaves eval mode

    def preprocess(self, x01: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB at any size -> this network's input."""
        s = self.input_size
        if x01.shape[-2:] != (s, s):
            x01 = F.interpolate(x01, size=(s, s), mode="bilinear", align_corners=False, antialias=x01.shape[-1] > s)
        if self.bgr:
            x01 = x01.flip(1)
        return (x01 - self._mean.to(x01.dtype)) / self._std.to(x01.dtype)

    @abc.abstractmethod
    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named features of an input already converted by :meth:`preprocess`."""

    def features(self, x01: torch.Tensor, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        x = self.preprocess(x01)
        if x.is_cuda:  # channels_last + autocast on CUDA; float32 features out either way
            if self._cuda_dtype is None:  # once: weights to channels_last, pick the autocast dtype
                with torch.inference_mode(False), torch.no_grad():
                    self.to(memory_format=torch.channels_last)
                self._cuda_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
            with torch.autocast("cuda", dtype=self._cuda_dtype):
                f = self.forward_features(x.contiguous(memory_format=torch.channels_last))
            f = {k: v.float() for k, v in f.items()}
        else:
            f = self.forward_features(x)
        if names is None:
            return f
        missing = [n for n in names if n not in f]
        if missing:
            raise FasbenchError(f"teacher {type(self).__name__} has no feature(s) {missing}; it has {sorted(f)}")
        return {n: f[n] for n in names}

    def feature_shapes(self) -> dict[str, torch.Size]:
        if self._shapes is None:
            p = next(self.parameters(), None)
            with torch.no_grad():
                f = self.features(torch.full((1, 3, self.input_size, self.input_size), 0.5,
                                             device=p.device if p is not None else "cpu"))
            self._shapes = {k: v.shape[1:] for k, v in f.items()}
        return self._shapes

    def forward(self, x01: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.features(x01)


def default_teacher_weights(entry: Any, dataset: str) -> str | None:
    """The weights URI a teacher's registration declares for ``dataset``: ``weights="URI"``
    (every dataset) or ``weights={"synthetic": "URI", "*": "URI"}`` (per dataset, ``*`` = any other)."""
    from fasbench.registry import per_dataset

    w = per_dataset(entry.meta.get("weights"), dataset)
    return None if w is None else str(w)


# --------------------------------------------------------------------------------------
# aligners
# --------------------------------------------------------------------------------------

class Aligner(nn.Module, abc.ABC):
    """Domain alignment applied to a training batch: ``forward(batch, student) -> (batch, losses)``.

    It may perturb ``batch["image"]`` (keeping it in [0, 1]) and add named losses; in eval
    mode it must return the batch unchanged.
    """

    @abc.abstractmethod
    def forward(self, batch: dict[str, torch.Tensor], student: Student):
        """``(batch, losses)``: the (possibly perturbed) batch and the aligner's named losses."""


class IdentityAligner(Aligner):
    """No alignment: the batch goes through unchanged and adds no loss."""

    def __init__(self, cfg: Any = None, ctx: Any = None) -> None:
        super().__init__()

    def forward(self, batch: dict[str, torch.Tensor], student: nn.Module):
        return batch, {}


# --------------------------------------------------------------------------------------
# the build context
# --------------------------------------------------------------------------------------

@dataclass
class Context:
    """What the harness hands every factory: the config, the task's source domains, the device,
    and builders that validate options, record what was built and check each kind's contract."""

    cfg: Any  # the full resolved config (omegaconf DictConfig)
    domains: list[str]  # source domains of the task, in domain-index order
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    components: dict[str, Any] = field(default_factory=dict)  # name/version/plugin of what was built
    student: nn.Module | None = None  # the last student built (aligners size their heads from it)

    @property
    def num_domains(self) -> int:
        return len(self.domains)

    @property
    def crop_size(self) -> int:
        """Side of the images the student sees."""
        return int(self.cfg.data.crop_size)

    def _note(self, role: str, entry) -> dict[str, Any]:
        info = {"name": entry.name, "version": entry.version, "plugin": entry.plugin}
        if role == "teachers":
            self.components.setdefault("teachers", []).append(info)
        else:
            self.components[role] = info
        return info

    def build_method(self, method_cfg: Any = None) -> Method:
        """The configured method (``cfg.method``), its options validated against its registration."""
        mcfg = method_cfg if method_cfg is not None else self.cfg.method
        name = str(mcfg["name"])
        entry = plugins.registry("methods").get(name)
        opts = check_entry_options(entry, mcfg, "method")
        method = entry.build(opts if entry.options() is not None else mcfg, self)
        if not isinstance(method, Method):
            raise FasbenchError(f"method {name!r} (plugin {entry.plugin!r}) built a {type(method).__name__}; "
                                "a method factory must return a fasbench.api.Method")
        return method

    def build_student(self, student_cfg: Any = None) -> Student:
        scfg = student_cfg if student_cfg is not None else self.cfg.student
        name = str(scfg.get("name", "timm"))
        entry = plugins.registry("students").get(name)
        opts = check_entry_options(entry, scfg, "student")
        info = self._note("student", entry)
        arch = opts.get("arch") if hasattr(opts, "get") else None
        if arch:  # "timm/resnet18": the architecture is part of the student's identity
            info["name"] = f"{entry.name}/{arch}"
        student = entry.build(opts, self)
        if not isinstance(student, Student):
            raise FasbenchError(f"student {name!r} (plugin {entry.plugin!r}) built a {type(student).__name__}; "
                                "a student factory must return a fasbench.api.Student (docs/architecture.md)")
        self.student = student
        return student

    def build_aligner(self, aligner: AlignerRef | Any = None) -> Aligner:
        """The aligner named by ``aligner`` (an :class:`AlignerRef` or a ``{name: ...}`` mapping)."""
        ref = _ref(AlignerRef, aligner if aligner is not None else {"name": "none"}, "method.aligner")
        entry = plugins.registry("aligners").get(ref.name)
        self._note("aligner", entry)
        built = entry.build(ref.options, self)
        if not isinstance(built, nn.Module) or not callable(getattr(built, "forward", None)):
            raise FasbenchError(f"aligner {ref.name!r} (plugin {entry.plugin!r}) built a {type(built).__name__}; "
                                "an aligner factory must return a fasbench.api.Aligner")
        return built

    def build_teacher(self, teacher: TeacherRef | Any, where: str = "method.teachers") -> Teacher:
        """The teacher named by ``teacher``, with its weights URI chosen by the harness:
        ``weights`` in its options, else its registration's default for ``cfg.data.name``."""
        ref = _ref(TeacherRef, teacher, where)
        entry = plugins.registry("teachers").get(ref.name)
        opts = ref.options
        uri = opts.get("weights") if hasattr(opts, "get") else None
        if not uri:
            uri = default_teacher_weights(entry, str(self.cfg.data.name))
            if uri is None:
                raise FasbenchError(f"{where}: teacher {ref.name!r} (plugin {entry.plugin!r}) declares no default "
                                    f"weights; set {where}.weights=URI (hf-hub:ORG/REPO, file:PATH, local-dir:FOLDER)")
            opts = opts.model_copy(update={"weights": uri}) if isinstance(opts, Options) else {**opts, "weights": uri}
        info = self._note("teachers", entry)
        teacher_obj = entry.build(opts, self)
        if not isinstance(teacher_obj, Teacher):
            raise FasbenchError(f"teacher {ref.name!r} (plugin {entry.plugin!r}) built a {type(teacher_obj).__name__}; "
                                "a teacher factory must return a fasbench.api.Teacher")
        teacher_obj.freeze()
        info["kind"] = teacher_obj.kind
        if teacher_obj.weights_info is not None:  # the URI, resolved commit and sha256 go into the record
            info["weights"] = teacher_obj.weights_info
        return teacher_obj


def _ref(cls: type[ComponentRef], value: Any, where: str) -> ComponentRef:
    if isinstance(value, ComponentRef):
        return value if value._options is not None else resolve_ref(value, where)
    from fasbench.options import validate

    inst = validate(cls, value, where)
    return resolve_ref(inst, where)


class Method(nn.Module, abc.ABC):
    """A training recipe: composes a student (+ teachers + aligner) and returns named losses.

    Subclasses set ``self.student`` (built with ``ctx.build_student()``) and implement
    ``training_step(batch) -> dict[str, Tensor]``; the harness optimises the sum and owns the
    optimiser, schedule, AMP, evaluation, checkpoints and records. ``predict(x01)`` is the live
    probability in [0, 1].
    """

    @abc.abstractmethod
    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named losses for one batch; the harness back-propagates their sum."""

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Live probability per [0, 1] image (softmax of the student's logits, class 1 = live)."""
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

    # Random generators a method owns (a torch.Generator or numpy Generator attribute of any of
    # its modules) are saved in checkpoints and restored on resume, next to the global ones the
    # harness saves itself, so that a resumed run equals an uninterrupted one. A method keeping
    # randomness elsewhere overrides both methods.
    def _owned_generators(self) -> dict[str, Any]:
        import numpy as np

        found: dict[str, Any] = {}
        for mod_name, mod in self.named_modules():
            for attr, value in vars(mod).items():
                if isinstance(value, (torch.Generator, np.random.Generator)):
                    found[f"{mod_name}.{attr}" if mod_name else attr] = value
        return found

    def random_state(self) -> dict[str, Any]:
        """The states of the generators this method owns (tensors and strings only)."""
        import json

        out: dict[str, Any] = {}
        for name, g in self._owned_generators().items():
            out[name] = g.get_state() if isinstance(g, torch.Generator) else json.dumps(g.bit_generator.state)
        return out

    def set_random_state(self, state: dict[str, Any]) -> None:
        import json

        gens = self._owned_generators()
        if set(state) != set(gens):
            raise FasbenchError(f"{type(self).__name__}: the checkpoint holds generator states {sorted(state)}, the method "
                                f"owns {sorted(gens)}; it was written by another version of the method")
        for name, value in state.items():
            g = gens[name]
            if isinstance(g, torch.Generator):
                g.set_state(value)
            else:
                g.bit_generator.state = json.loads(value)

    def train(self, mode: bool = True) -> Method:
        super().train(mode)
        for m in self.modules():  # frozen teachers stay in eval mode
            if getattr(m, "frozen", False):
                m.eval()
        return self


def check_losses(losses: Any, method: str) -> dict[str, torch.Tensor]:
    """Validate a method's named-loss dict (a clear error instead of a cryptic crash)."""
    if not isinstance(losses, dict) or not losses:
        raise FasbenchError(f"method {method!r}: training_step must return a non-empty dict of named losses")
    for k, v in losses.items():
        if not isinstance(v, torch.Tensor) or v.ndim != 0:
            raise FasbenchError(f"method {method!r}: loss {k!r} must be a scalar tensor, got {type(v).__name__}")
    return losses
