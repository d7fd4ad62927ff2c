"""The two frozen DTDA teachers, on the core teacher contract (:class:`fasbench.api.Teacher`).

- ``dtda.arcface`` (perceptual): an ArcFace IResNet face-recognition network. Published
  weights: CVLFace's IR-101 trained on WebFace4M (``hf-hub:minchul/cvlface_arcface_ir101_webface4m``,
  MIT licence); its safetensors load as published, with no conversion.
- ``dtda.ldm_vq`` (generative): the encoder of the VQ-VAE (first stage) of the latent
  diffusion model trained on CelebA-HQ faces (``CompVis/ldm-celebahq-256``, Apache-2.0),
  diffusers ``VQModel`` layout, safetensors from the repo's ``refs/pr/7`` revision.

A teacher takes its options (``weights`` already chosen by the harness: the slot's
``weights``, else the registration's default for the dataset) and loads them; it never
looks at the dataset and never trains. The synthetic-world stand-ins are just other weights
(``dtda-synthetic:perceptual`` / ``dtda-synthetic:generative``, resolved by this plugin,
``fasbench_dtda.pretrain``). The architecture comes from, in order: the built-in default, a
``config.json`` beside the resolved weights file (the stand-ins write one), the ``arch``
option.

Images come in as [0, 1] RGB at any size; the base class resizes and normalises them, runs
channels_last under autocast on CUDA and hands back float32 features.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from fasbench.api import Context, Teacher
from fasbench.errors import FasbenchError
from fasbench_dtda.options import IRESNET_ARCH_KEYS, ArcFaceOptions, LdmVQOptions
from fasbench_dtda.plugin import ARCFACE_URI, LDM_VQ_URI

__all__ = ["ARCFACE_URI", "LDM_VQ_URI", "ArcFaceTeacher", "LdmVQTeacher", "config_beside"]


def _short(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line (torch's state-dict errors list every key)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit] + " ..."


def config_beside(weights_info: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON object in ``config.json`` beside a resolved weights file, or None."""
    path = (weights_info or {}).get("path")
    if not path:
        return None
    conf = Path(path).with_name("config.json")
    if not conf.is_file():
        return None
    try:
        data = json.loads(conf.read_text())
    except (OSError, ValueError) as exc:
        raise FasbenchError(f"{weights_info.get('uri')}: cannot read the architecture in {conf}: {exc}") from exc
    return data if isinstance(data, dict) else None


class ArcFaceTeacher(Teacher):
    """Perceptual teacher: ArcFace IResNet; features ``stage1..4`` (maps) and ``embedding``."""

    kind = "perceptual"

    def __init__(self, opts: ArcFaceOptions, ctx: Context | None = None) -> None:
        from fasbench_dtda.iresnet import IResNet, load_cvlface_state_dict

        # CVLFace's IResNet takes RGB in [-1, 1] (at 112 x 112 for IR-101; the input size is set below)
        super().__init__(112, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), bgr=opts.bgr)
        sd = self.load_weights(opts.weights)
        arch: dict[str, Any] = {"depth": 100, "width": 1.0, "embed_dim": 512, "input_size": 112}
        beside = config_beside(self.weights_info) or {}
        if beside.get("architecture", "iresnet") == "iresnet":
            arch.update({k: v for k, v in beside.items() if k in IRESNET_ARCH_KEYS})
        arch.update(opts.arch or {})
        self.input_size = int(arch["input_size"])
        self.net = IResNet(**arch)
        try:
            load_cvlface_state_dict(self.net, sd)
        except Exception as exc:
            raise FasbenchError(
                f"teacher dtda.arcface: weights {opts.weights} do not fit IResNet({arch}): {_short(exc)}. Set the teacher's "
                "arch option (method.teachers.ROLE.arch.depth/width/embed_dim/input_size) to the checkpoint's"
            ) from exc
        self.arch = arch
        self.freeze()

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net.forward_features(x)


class LdmVQTeacher(Teacher):
    """Generative teacher: VQ-VAE encoder; features ``down0..``, ``mid`` (maps) and ``latent``."""

    kind = "generative"

    def __init__(self, opts: LdmVQOptions, ctx: Context | None = None) -> None:
        from fasbench_dtda.vq import LDM_CELEBAHQ_VQ_CONFIG, VQEncoder

        super().__init__(256, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # diffusers VQModel: RGB in [-1, 1]
        sd = self.load_weights(opts.weights)
        beside = config_beside(self.weights_info)
        if beside is not None and beside.get("_class_name", "VQModel") != "VQModel":
            beside = None
        config = dict(beside or LDM_CELEBAHQ_VQ_CONFIG)
        config.update(opts.arch or {})
        self.input_size = int(opts.input_size or config.get("sample_size", 256))
        try:
            self.net = VQEncoder(config)
            self.net.load_vqmodel_state_dict(sd)
        except Exception as exc:
            raise FasbenchError(
                f"teacher dtda.ldm_vq: weights {opts.weights} do not fit the VQ encoder config: {_short(exc)}. Set the "
                "teacher's arch option (method.teachers.ROLE.arch, a diffusers VQModel config) to the checkpoint's"
            ) from exc
        self.config = config
        self._wanted: tuple[str, ...] | None = None
        self.freeze()

    def features(self, x01: torch.Tensor, names=None) -> dict[str, torch.Tensor]:
        # the encoder stops after the last feature asked for: a tap on an early stage is cheaper
        self._wanted = None if names is None else tuple(names)
        try:
            return super().features(x01, names)
        finally:
            self._wanted = None

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net.forward_features(x, names=self._wanted)
