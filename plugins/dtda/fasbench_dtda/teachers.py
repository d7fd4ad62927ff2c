"""The two frozen DTDA teachers.

- ``dtda.arcface`` (perceptual): an ArcFace IResNet face-recognition network. Default
  weights: CVLFace's IR-101 trained on WebFace4M (``hf-hub:minchul/cvlface_arcface_ir101_webface4m``,
  MIT licence); its safetensors load as published, with no conversion.
- ``dtda.ldm_vq`` (generative): the encoder of the VQ-VAE (first stage) of the latent
  diffusion model trained on CelebA-HQ faces (``CompVis/ldm-celebahq-256``, Apache-2.0),
  diffusers ``VQModel`` layout, safetensors from the repo's ``refs/pr/7`` revision.

With ``weights: auto`` and ``--data synthetic`` both use scaled-down teachers pretrained on
synthetic faces of their own task (identity recognition / image reconstruction; see
``fasbench_dtda.pretrain``), created once and cached.

Every teacher takes images in [0, 1] RGB at any size and converts them itself: resize to its
input size, channel order, normalisation. Teachers are frozen: always in eval mode, no
parameter requires a gradient, and the method runs them under ``torch.inference_mode``. On
CUDA they run channels_last under autocast (bfloat16 where supported, else float16) and hand
back float32 features; on the CPU they run in float32 as they are.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from fasbench.errors import FasbenchError

ARCFACE_URI = "hf-hub:minchul/cvlface_arcface_ir101_webface4m"
LDM_VQ_URI = "hf-hub:CompVis/ldm-celebahq-256@refs/pr/7/vqvae/diffusion_pytorch_model.safetensors"


def cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    """``cfg[key]`` for a dict or DictConfig (or anything without ``get``), ``default`` when unset/None."""
    try:
        value = cfg.get(key, default)
    except AttributeError:
        return default
    return default if value is None else value


class Teacher(nn.Module):
    """Base class: frozen network with ``kind``, ``weights_info`` and ``features(x01)``."""

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

    def freeze(self) -> "Teacher":
        """Eval mode and no gradients, whoever builds the teacher (subclasses call it last)."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "Teacher":
        return super().train(False)  # a teacher never leaves eval mode

    def preprocess(self, x01: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB at any size -> this network's input."""
        s = self.input_size
        if x01.shape[-2:] != (s, s):
            x01 = F.interpolate(x01, size=(s, s), mode="bilinear", align_corners=False, antialias=x01.shape[-1] > s)
        if self.bgr:
            x01 = x01.flip(1)
        return (x01 - self._mean.to(x01.dtype)) / self._std.to(x01.dtype)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def features(self, x01: torch.Tensor, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        x = self.preprocess(x01)
        if x.is_cuda:  # channels_last + autocast on CUDA; float32 features out either way
            if self._cuda_dtype is None:  # once: weights to channels_last, pick the autocast dtype
                with torch.inference_mode(False), torch.no_grad():
                    self.to(memory_format=torch.channels_last)
                self._cuda_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            with torch.autocast("cuda", dtype=self._cuda_dtype):
                f = self.forward_features(x.contiguous(memory_format=torch.channels_last))
            f = {k: v.float() for k, v in f.items()}
        else:
            f = self.forward_features(x)
        return f if names is None else {n: f[n] for n in names}

    def feature_shapes(self) -> dict[str, torch.Size]:
        if self._shapes is None:
            p = next(self.parameters())
            with torch.no_grad():
                f = self.features(torch.full((1, 3, self.input_size, self.input_size), 0.5, device=p.device))
            self._shapes = {k: v.shape[1:] for k, v in f.items()}
        return self._shapes

    def forward(self, x01: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.features(x01)


def _resolve(cfg: Any, ctx: Any, role: str, default_uri: str) -> tuple[str, dict[str, Any] | None]:
    """The weight URI and (for local folders) the architecture config written beside them."""
    uri = str(cfg_get(cfg, "weights", "auto"))
    if uri == "auto":
        data = str(ctx.cfg.data.name) if ctx is not None else ""
        if data == "synthetic":
            from fasbench_dtda.pretrain import ensure_synthetic_teachers

            folder = ensure_synthetic_teachers(cache_dir=cfg_get(ctx.cfg.data, "cache_dir"))[role]
            uri = f"local-dir:{folder}"
        else:
            uri = default_uri
    arch = None
    if uri.startswith("local-dir:"):
        conf = Path(uri[len("local-dir:"):]).expanduser() / "config.json"
        if conf.is_file():
            arch = json.loads(conf.read_text())
    return uri, arch


class ArcFaceTeacher(Teacher):
    """Perceptual teacher: ArcFace IResNet; features ``stage1..4`` (maps) and ``embedding``."""

    kind = "perceptual"

    def __init__(self, cfg: Any = None, ctx: Any = None) -> None:
        from fasbench import weights
        from fasbench_dtda.iresnet import IResNet, load_cvlface_state_dict

        uri, local_arch = _resolve(cfg, ctx, "perceptual", ARCFACE_URI)
        arch = {"depth": 100, "width": 1.0, "embed_dim": 512, "input_size": 112}
        arch.update({k: v for k, v in (local_arch or {}).items() if k in arch})
        arch.update({k: v for k, v in dict(cfg_get(cfg, "arch", {}) or {}).items() if k in arch})
        # CVLFace's IResNet takes RGB in [-1, 1] at 112 x 112
        super().__init__(int(arch["input_size"]), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), bgr=bool(cfg_get(cfg, "bgr", False)))
        self.net = IResNet(**arch)
        sd, resolved = weights.load_state_dict(uri)
        try:
            load_cvlface_state_dict(self.net, sd)
        except Exception as exc:
            raise FasbenchError(
                f"teacher dtda.arcface: weights {uri} do not fit IResNet({arch}): {exc}. Set "
                "method.teachers.perceptual.arch.depth/width/embed_dim/input_size to the checkpoint's architecture"
            ) from exc
        self.arch = arch
        self.weights_info = resolved.as_dict()
        self.freeze()

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net.forward_features(x)


class LdmVQTeacher(Teacher):
    """Generative teacher: VQ-VAE encoder; features ``down0..``, ``mid`` (maps) and ``latent``."""

    kind = "generative"

    def __init__(self, cfg: Any = None, ctx: Any = None) -> None:
        from fasbench import weights
        from fasbench_dtda.vq import LDM_CELEBAHQ_VQ_CONFIG, VQEncoder

        uri, local_arch = _resolve(cfg, ctx, "generative", LDM_VQ_URI)
        config = dict(local_arch or LDM_CELEBAHQ_VQ_CONFIG)
        config.update(dict(cfg_get(cfg, "arch", {}) or {}))
        size = int(cfg_get(cfg, "input_size", config.get("sample_size", 256)))
        super().__init__(size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # diffusers VQModel: RGB in [-1, 1]
        self.net = VQEncoder(config)
        sd, resolved = weights.load_state_dict(uri)
        try:
            self.net.load_vqmodel_state_dict(sd)
        except Exception as exc:
            raise FasbenchError(
                f"teacher dtda.ldm_vq: weights {uri} do not fit the VQ encoder config: {exc}. Set "
                "method.teachers.generative.arch (a diffusers VQModel config) to the checkpoint's"
            ) from exc
        self.config = config
        self.weights_info = resolved.as_dict()
        self.freeze()

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net.forward_features(x)
