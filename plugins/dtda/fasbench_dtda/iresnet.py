"""IResNet ("improved residual network", ArcFace backbone) for the DTDA perceptual teacher.

The module tree and parameter names follow the InsightFace ``arcface_torch`` IResNet,
which is the architecture behind the public checkpoint
``minchul/cvlface_arcface_ir101_webface4m`` on the Hugging Face Hub, so a state dict of
that checkpoint loads into ``IResNet(depth=100)`` strictly once the wrapper prefix is
removed (:func:`load_cvlface_state_dict`).

Facts about the real checkpoint and where they come from
---------------------------------------------------------
* Architecture family.  The Hub repository ships only ``models/base`` and
  ``models/iresnet_insightface`` as its model code (repository tree ``models/``), i.e. the
  InsightFace-style IResNet and *not* CVLFace's other IR implementation
  (``models/iresnet``, which uses ``input_layer``/``body``/``output_layer`` names).  The
  code is CVLFace ``cvlface/research/recognition/code/run_v1/models/iresnet_insightface/
  model.py`` (github.com/mk-minchul/CVLface, commit d3d09c93):
  ``conv1`` (3x3, 3->64, stride 1, no bias), ``bn1``, ``prelu`` (PReLU(64)), ``layer1``..
  ``layer4`` (Sequentials of ``IBasicBlock``, first block of each stage strided by 2 and
  carrying ``downsample = Sequential(conv1x1, BatchNorm2d)``), ``bn2`` (BatchNorm2d(512)),
  ``dropout``, ``fc`` (Linear(512*7*7 -> 512)), ``features`` (BatchNorm1d(512), affine,
  weight fixed at 1 and not trained).  ``IBasicBlock`` = ``bn1`` -> ``conv1`` (3x3,
  stride 1) -> ``bn2`` -> ``prelu`` (PReLU(planes), weight shape ``[planes]``) -> ``conv2``
  (3x3, carries the stride) -> ``bn3``, plus the identity / ``downsample`` shortcut.
  IR-101 ("iresnet100") uses blocks ``[3, 13, 30, 3]``; BatchNorm eps is 1e-5.
* Prefix.  The Hub ``wrapper.py`` (``CVLFaceRecognitionModel``, a transformers
  ``PreTrainedModel``) holds the CVLFace ``IResNetModel`` as ``self.model`` and that
  holds the network as ``self.net`` (``iresnet_insightface/__init__.py``), so the keys of
  ``model.safetensors`` are ``"model.net." + <name below>`` (e.g.
  ``model.net.conv1.weight``).  The CVLFace-native ``pretrained_model/model.pt`` holds
  the ``IResNetModel`` state dict, i.e. ``"net." + <name>``.  Both are accepted by
  :func:`load_cvlface_state_dict`.  (Inferred from the wrapper/model code, not from
  reading the 261 MB file itself; its size agrees with the fp32 parameter+buffer count
  of this module, see :data:`IR101_NUM_PARAMETERS`.)
* Input.  112x112 aligned faces (``input_size: [3, 112, 112]`` in the CVLFace model
  configs), normalised with ``ToTensor()`` + ``Normalize(mean=0.5, std=0.5)``, i.e.
  ``x = (rgb01 - 0.5) / 0.5`` in [-1, 1] (``make_train_transform`` /
  ``make_test_transform`` in ``iresnet_insightface/__init__.py``).  Channel order RGB:
  every CVLFace config seen declares ``color_space: 'RGB'`` (``run_v1/models/iresnet*/
  configs/*.yaml`` and ``models/base/configs/example.yaml`` of the Hub repository).  The
  CVLFace ``BaseModel`` (``run_v1/models/base/__init__.py``) would flip the channels
  inside the wrapper only if the checkpoint's ``pretrained_model/model.yaml`` declared
  ``'BGR'``; that 162-byte file itself was not read, so RGB is well supported but not
  verified byte for byte.
* Output.  A 512-d un-normalised embedding (L2-normalise it for cosine similarity).

Parameter count: the full-size IR-101 has 65,156,160 parameters (65.16 M, including
the 512 frozen ``features.weight``) plus 69,786 buffer elements (BatchNorm running
statistics and 154 ``num_batches_tracked`` counters); 925 state-dict entries.  As fp32
(int64 counters) that is 260.9 MB of tensor data, matching the 261 MB listed for the Hub
``model.safetensors``.  The published figure for InsightFace's original (MXNet)
LResNet100E-IR is 65.13 M (OpenVINO model card ``face-recognition-resnet100-arcface-onnx``,
"MParams 65.132"), within 0.04 % of this count (the MXNet graph is not identical layer
for layer; the difference was not analysed).  The file size cannot tell the two CVLFace
IR-101 variants apart (the ``models/iresnet`` one has 65,150,912 parameters); the model
code shipped with the checkpoint is the decisive evidence for the names used here.

The class is configurable (depth, channel width multiplier, embedding size, input size)
so scaled-down nets can be trained on a CPU; with ``depth=100, width=1.0,
embed_dim=512, input_size=112`` the state dict is the checkpoint's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = [
    "CVLFACE_ARCFACE_IR101_REPO",
    "CVLFACE_CHANNEL_ORDER",
    "CVLFACE_INPUT_SIZE",
    "CVLFACE_KEY_PREFIX",
    "CVLFACE_MEAN",
    "CVLFACE_STD",
    "IR101_NUM_PARAMETERS",
    "STAGE_BLOCKS",
    "IBasicBlock",
    "IResNet",
    "cvlface_normalize",
    "cvlface_state_dict_keys",
    "iresnet100",
    "load_cvlface_safetensors",
    "load_cvlface_state_dict",
    "strip_cvlface_prefix",
]

CVLFACE_ARCFACE_IR101_REPO = "minchul/cvlface_arcface_ir101_webface4m"
#: prefix of every key in the Hub ``model.safetensors`` (wrapper ``.model`` -> ``.net``)
CVLFACE_KEY_PREFIX = "model.net."
#: prefixes stripped when loading: Hub safetensors, CVLFace ``model.pt`` (bare keys pass)
_WRAPPER_PREFIXES = ("model.net.", "net.")
CVLFACE_INPUT_SIZE = 112
CVLFACE_CHANNEL_ORDER = "RGB"
CVLFACE_MEAN = (0.5, 0.5, 0.5)
CVLFACE_STD = (0.5, 0.5, 0.5)
#: parameters of ``IResNet(depth=100)`` (counted from this module, see the docstring)
IR101_NUM_PARAMETERS = 65_156_160

#: blocks per stage (InsightFace ``iresnet18/34/50/100/200``)
STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}
_BASE_CHANNELS = (64, 128, 256, 512)
_BN_EPS = 1e-5


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style IR block: BN-conv-BN-PReLU-conv(stride)-BN + shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=_BN_EPS)
        self.conv1 = _conv3x3(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, eps=_BN_EPS)
        self.prelu = nn.PReLU(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels, eps=_BN_EPS)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels, eps=_BN_EPS),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.bn1(x))
        out = self.prelu(self.bn2(out))
        out = self.bn3(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


def _as_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _after_stages(n: int, stages: int = 4) -> int:
    """Spatial size after ``stages`` stride-2 3x3 convs with padding 1 (ceil halving)."""
    for _ in range(stages):
        n = (n + 1) // 2
    return n


class IResNet(nn.Module):
    """InsightFace-style IResNet.

    Args:
        depth: one of :data:`STAGE_BLOCKS` (18, 34, 50, 100, 200).
        width: multiplier of the stage channels (64, 128, 256, 512); the stem has the
            first stage's width, as in the original.
        embed_dim: size of the embedding (``fc`` output, ``features`` BatchNorm1d).
        input_size: input height/width (int or pair); the ``fc`` input size is
            ``C4 * ceil(H/16) * ceil(W/16)`` (7x7 for 112).
        dropout: dropout before ``fc`` (0 in the CVLFace IR-101, kept for completeness).
    """

    def __init__(
        self,
        depth: int = 100,
        width: float = 1.0,
        embed_dim: int = 512,
        input_size: int | tuple[int, int] = 112,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.depth = depth
        self.width = float(width)
        self.embed_dim = int(embed_dim)
        self.input_size = _as_hw(input_size)
        self.channels = tuple(max(1, int(round(c * width))) for c in _BASE_CHANNELS)
        self.feature_size = tuple(_after_stages(n) for n in self.input_size)

        stem = self.channels[0]
        self.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=_BN_EPS)
        self.prelu = nn.PReLU(stem)
        in_ch = stem
        for i, (n_blocks, ch) in enumerate(zip(STAGE_BLOCKS[depth], self.channels), start=1):
            blocks = [IBasicBlock(in_ch, ch, stride=2)]
            blocks += [IBasicBlock(ch, ch, stride=1) for _ in range(n_blocks - 1)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            in_ch = ch
        self.bn2 = nn.BatchNorm2d(in_ch, eps=_BN_EPS)
        self.dropout = nn.Dropout(p=dropout)
        fh, fw = self.feature_size
        self.fc = nn.Linear(in_ch * fh * fw, self.embed_dim)
        self.features = nn.BatchNorm1d(self.embed_dim, eps=_BN_EPS)
        self.reset_parameters()

    @property
    def stages(self) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential, nn.Sequential]:
        return (self.layer1, self.layer2, self.layer3, self.layer4)

    def reset_parameters(self) -> None:
        """He init for convs/fc, BN to identity; ``features.weight`` fixed at 1 (frozen)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.PReLU):
                nn.init.constant_(m.weight, 0.25)
        self.features.weight.requires_grad_(False)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) input, got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f"this IResNet was built for input_size={self.input_size}, got "
                f"{tuple(x.shape[-2:])} (the fc layer depends on the input size)"
            )

    def _stem(self, x: Tensor) -> Tensor:
        return self.prelu(self.bn1(self.conv1(x)))

    def _head(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.bn2(x), 1)
        x = self.fc(self.dropout(x))
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) RGB in [-1, 1] -> (N, embed_dim) un-normalised embedding."""
        self._check_input(x)
        x = self._stem(x)
        for stage in self.stages:
            x = stage(x)
        return self._head(x)

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """Stage outputs ``stage1``..``stage4`` (strides 2, 4, 8, 16) and ``embedding``."""
        self._check_input(x)
        out: dict[str, Tensor] = {}
        x = self._stem(x)
        for i, stage in enumerate(self.stages, start=1):
            x = stage(x)
            out[f"stage{i}"] = x
        out["embedding"] = self._head(x)
        return out


def iresnet100(**kwargs) -> IResNet:
    """The full-size IR-101 of ``minchul/cvlface_arcface_ir101_webface4m``."""
    return IResNet(depth=100, **kwargs)


def cvlface_normalize(rgb01: Tensor) -> Tensor:
    """RGB in [0, 1] -> the network's input range [-1, 1] (``(x - 0.5) / 0.5``)."""
    return (rgb01 - 0.5) / 0.5


def cvlface_state_dict_keys(
    depth: int = 100, prefix: str = CVLFACE_KEY_PREFIX, **kwargs
) -> dict[str, tuple[int, ...]]:
    """Expected ``{key: shape}`` of a CVLFace IResNet checkpoint (Hub ``model.safetensors``).

    Built on the meta device (no memory, no init); includes BatchNorm buffers
    (``running_mean``, ``running_var``, ``num_batches_tracked`` with shape ``()``).
    """
    with torch.device("meta"):
        net = IResNet(depth=depth, **kwargs)
    return {prefix + k: tuple(v.shape) for k, v in net.state_dict().items()}


def strip_cvlface_prefix(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove the wrapper prefix (``model.net.`` or ``net.``) if all keys share it."""
    for prefix in _WRAPPER_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def load_cvlface_state_dict(model: IResNet, state_dict: Mapping[str, Tensor]) -> IResNet:
    """Load a CVLFace IResNet state dict (keys ``model.net.*``, ``net.*`` or bare) strictly.

    Raises ``RuntimeError`` on missing/unexpected keys or shape mismatches.
    """
    stripped = strip_cvlface_prefix(state_dict)
    model.load_state_dict(stripped, strict=True)
    return model


def load_cvlface_safetensors(model: IResNet, path: str | Path) -> IResNet:
    """Load ``model.safetensors`` of a CVLFace IResNet repository into ``model``."""
    from safetensors.torch import load_file

    return load_cvlface_state_dict(model, load_file(str(path)))

