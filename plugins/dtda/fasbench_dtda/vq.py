"""Generative teacher architecture: the encoder of a face VQ-VAE (diffusers ``VQModel``).

The reference generative teacher is the VQ-VAE (VQ-f4, 8192 codes) of the latent
diffusion model ``CompVis/ldm-celebahq-256`` (subfolder ``vqvae``).  Only the encoder
side is needed for distillation, so :class:`VQEncoder` holds exactly the ``encoder`` and
``quant_conv`` modules of a ``VQModel`` under the same attribute names; its
``latent`` is what ``VQModel.encode(x).latents`` returns (the pre-quantisation latent:
``quant_conv(encoder(x))``, no codebook lookup).

Config source (:data:`LDM_CELEBAHQ_VQ_CONFIG`)
----------------------------------------------
``huggingface.co/CompVis/ldm-celebahq-256/blob/main/vqvae/config.json`` (commit
03978f2 "upload new weights", ``_diffusers_version`` 0.1.2) lists: ``act_fn`` "silu",
``block_out_channels`` [128, 256, 512], ``down_block_types`` 3 x "DownEncoderBlock2D",
``in_channels`` 3, ``latent_channels`` 3, ``layers_per_block`` 2, ``num_vq_embeddings``
8192, ``out_channels`` 3, ``sample_size`` 256, ``up_block_types`` 3 x
"UpDecoderBlock2D".  The remaining ``VQModel`` arguments are not in the file and take
the diffusers defaults when the model is loaded: ``norm_num_groups`` 32,
``vq_embed_dim`` None (= ``latent_channels`` = 3), ``scaling_factor`` 0.18215,
``norm_type`` "group", ``mid_block_add_attention`` True, ``lookup_from_codebook``
False, ``force_upcast`` False.  A re-saved copy of this model by a later diffusers
version (``merkol/ddim-ema-ffhq-256`` ``vqvae/config.json``, ``_name_or_path``
CompVis/ldm-celebahq-256) shows exactly these resolved values.  The original LDM config
of the same weights (first upload, commit c9c864b: ``ch`` 128, ``ch_mult`` [1, 2, 4],
``num_res_blocks`` 2, ``z_channels`` 3, ``embed_dim`` 3, ``n_embed`` 8192,
``attn_resolutions`` [], ``resolution`` 256) agrees.  Note: ``scaling_factor`` is only
used by diffusion pipelines, not by the encoder; an open Hub pull request (refs/pr/5)
proposes 1.0 for this model.  The weights file is ``diffusion_pytorch_model.bin``
(221 MB); being a 2022 diffusers export its mid-block attention keys most likely use
the legacy names (``query``/``key``/``value``/``proj_attn``), which
:meth:`VQEncoder.load_vqmodel_state_dict` renames like diffusers does on load.

Size check: ``VQModel(**LDM_CELEBAHQ_VQ_CONFIG)`` has 55,322,782 parameters (no buffers),
221.3 MB as fp32, matching the 221 MB of the Hub weights file; the encoder side
(``encoder`` + ``quant_conv``) has 22,337,423.

Input: RGB scaled to [-1, 1] (``x * 2 - 1``; diffusers' ``LDMPipeline`` maps decoder
output back with ``image / 2 + 0.5``).  A 256x256 input gives a 3x64x64 latent.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
from diffusers import VQModel
from diffusers.models.autoencoders.vae import Encoder
from torch import Tensor, nn

__all__ = [
    "LDM_CELEBAHQ_VQ_CONFIG",
    "LDM_CELEBAHQ_VQ_ENCODER_NUM_PARAMETERS",
    "LDM_CELEBAHQ_VQ_NUM_PARAMETERS",
    "LDM_CELEBAHQ_VQ_REPO",
    "LDM_CELEBAHQ_VQ_SUBFOLDER",
    "VQ_INPUT_RANGE",
    "VQEncoder",
    "resolve_vq_config",
    "small_vq_config",
    "vq_normalize",
    "vq_state_dict_keys",
]

LDM_CELEBAHQ_VQ_REPO = "CompVis/ldm-celebahq-256"
LDM_CELEBAHQ_VQ_SUBFOLDER = "vqvae"
VQ_INPUT_RANGE = (-1.0, 1.0)
#: parameters of the full ``VQModel(**LDM_CELEBAHQ_VQ_CONFIG)`` and of its encoder side
LDM_CELEBAHQ_VQ_NUM_PARAMETERS = 55_322_782
LDM_CELEBAHQ_VQ_ENCODER_NUM_PARAMETERS = 22_337_423

#: ``VQModel`` config of ``CompVis/ldm-celebahq-256/vqvae`` (see the module docstring)
LDM_CELEBAHQ_VQ_CONFIG: Mapping[str, Any] = MappingProxyType(
    {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"),
        "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
        "block_out_channels": (128, 256, 512),
        "layers_per_block": 2,
        "act_fn": "silu",
        "latent_channels": 3,
        "sample_size": 256,
        "num_vq_embeddings": 8192,
        # not in the file: diffusers defaults at load time
        "norm_num_groups": 32,
        "vq_embed_dim": None,
        "scaling_factor": 0.18215,
        "norm_type": "group",
        "mid_block_add_attention": True,
        "lookup_from_codebook": False,
        "force_upcast": False,
    }
)

# keys of the ``VQModel`` that are not part of the encoder side
_NON_ENCODER_PREFIXES = ("decoder.", "quantize.", "post_quant_conv.")
_ENCODER_PREFIXES = ("encoder.", "quant_conv.")
# legacy (diffusers < 0.14) attention parameter names -> current names
_LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def vq_normalize(rgb01: Tensor) -> Tensor:
    """RGB in [0, 1] -> the VQ-VAE input range [-1, 1]."""
    return rgb01 * 2.0 - 1.0


def _vqmodel_defaults() -> dict[str, Any]:
    params = inspect.signature(VQModel.__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self"}


def resolve_vq_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Complete ``config`` with ``VQModel`` defaults; drops ``_``-keys of a config.json.

    Raises ``ValueError`` on keys ``VQModel`` does not know.
    """
    defaults = _vqmodel_defaults()
    given = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown VQModel config keys: {unknown}")
    out = {**defaults, **given}
    for k in ("down_block_types", "up_block_types", "block_out_channels"):
        out[k] = tuple(out[k])
    return out


def _groups_for(width: int) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if width % g == 0:
            return g
    return 1  # pragma: no cover


def small_vq_config(
    width: int = 32,
    ch_mult: tuple[int, ...] = (1, 2, 4),
    layers_per_block: int = 1,
    latent_channels: int = 3,
    num_vq_embeddings: int = 512,
    sample_size: int = 64,
    norm_num_groups: int | None = None,
    mid_block_add_attention: bool = True,
) -> dict[str, Any]:
    """A scaled-down VQ-f4-style ``VQModel`` config for CPU pretraining at 64 px.

    Same topology as :data:`LDM_CELEBAHQ_VQ_CONFIG` (``len(ch_mult)`` down blocks, the
    last without downsampling, so the latent stride is ``2 ** (len(ch_mult) - 1)``),
    with stage widths ``width * ch_mult``.  ``norm_num_groups`` defaults to the largest
    of 32, 16, ..., 1 dividing ``width`` (it must divide every stage width).
    """
    if width < 1 or not ch_mult:
        raise ValueError("width must be >= 1 and ch_mult non-empty")
    channels = tuple(int(width * m) for m in ch_mult)
    groups = _groups_for(width) if norm_num_groups is None else int(norm_num_groups)
    bad = [c for c in channels if c % groups]
    if bad:
        raise ValueError(f"norm_num_groups={groups} does not divide stage widths {bad}")
    n = len(channels)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * n,
        "up_block_types": ("UpDecoderBlock2D",) * n,
        "block_out_channels": channels,
        "layers_per_block": int(layers_per_block),
        "act_fn": "silu",
        "latent_channels": int(latent_channels),
        "sample_size": int(sample_size),
        "num_vq_embeddings": int(num_vq_embeddings),
        "norm_num_groups": groups,
        "vq_embed_dim": None,
        "scaling_factor": 1.0,
        "norm_type": "group",
        "mid_block_add_attention": bool(mid_block_add_attention),
        "lookup_from_codebook": False,
        "force_upcast": False,
    }


def vq_state_dict_keys(config: Mapping[str, Any] = LDM_CELEBAHQ_VQ_CONFIG) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of the full ``VQModel(**config)`` state dict (built on meta)."""
    cfg = resolve_vq_config(config)
    with torch.device("meta"):
        model = VQModel(**cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _rename_legacy_attention(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        # ... .attentions.<i>.<legacy>.(weight|bias)
        if (
            len(parts) >= 4
            and parts[-4] == "attentions"
            and parts[-2] in _LEGACY_ATTENTION
            and parts[-1] in ("weight", "bias")
        ):
            key = ".".join(parts[:-2] + [_LEGACY_ATTENTION[parts[-2]], parts[-1]])
            # legacy 1x1-conv style attention weights ([C, C, 1, 1]) -> linear ([C, C])
            if parts[-1] == "weight" and value.dim() == 4:
                value = value[:, :, 0, 0]
        out[key] = value
    return out


class VQEncoder(nn.Module):
    """Encoder side of a diffusers ``VQModel``: ``encoder`` + ``quant_conv``.

    Built from a ``VQModel`` config (a mapping, e.g. :data:`LDM_CELEBAHQ_VQ_CONFIG`,
    :func:`small_vq_config` or the dict of a ``config.json``); the submodules are built
    with the arguments ``VQModel.__init__`` passes, so ``VQModel`` state-dict keys
    ``encoder.*`` and ``quant_conv.*`` load unchanged.
    """

    def __init__(self, config: Mapping[str, Any] = LDM_CELEBAHQ_VQ_CONFIG) -> None:
        super().__init__()
        cfg = resolve_vq_config(config)
        self.config = cfg
        self.encoder = Encoder(
            in_channels=cfg["in_channels"],
            out_channels=cfg["latent_channels"],
            down_block_types=cfg["down_block_types"],
            block_out_channels=cfg["block_out_channels"],
            layers_per_block=cfg["layers_per_block"],
            act_fn=cfg["act_fn"],
            norm_num_groups=cfg["norm_num_groups"],
            double_z=False,
            mid_block_add_attention=cfg["mid_block_add_attention"],
        )
        embed_dim = cfg["vq_embed_dim"] if cfg["vq_embed_dim"] is not None else cfg["latent_channels"]
        self.quant_conv = nn.Conv2d(cfg["latent_channels"], embed_dim, 1)

    @property
    def latent_channels(self) -> int:
        return self.quant_conv.out_channels

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.config["block_out_channels"]) - 1)

    def feature_channels(self) -> dict[str, int]:
        """Channels of each entry of :meth:`forward_features`."""
        chans = self.config["block_out_channels"]
        out = {f"down{i}": c for i, c in enumerate(chans)}
        out["mid"] = chans[-1]
        out["latent"] = self.latent_channels
        return out

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) in [-1, 1] -> pre-quantisation latent (= ``VQModel.encode(x).latents``)."""
        return self.quant_conv(self.encoder(x))

    def forward_features(self, x: Tensor, names: Any = None) -> dict[str, Tensor]:
        """Outputs of every down block (``down0``..), of the mid block (``mid``) and ``latent``.

        The steps of diffusers' ``Encoder.forward`` (``conv_in``, the down blocks, the mid block,
        ``conv_norm_out``, ``conv_act``, ``conv_out``), then ``quant_conv``, one after the other.
        With ``names`` (features this network has), it stops after the last of them: a tap on an
        early stage (``down0``, ``down1``) costs only the layers up to it. Other names compute
        everything (the caller reports what is missing).
        """
        wanted = set(names) if names is not None else None
        if wanted is not None and not wanted <= set(self.feature_channels()):
            wanted = None
        feats: dict[str, Tensor] = {}

        def done() -> bool:
            return wanted is not None and wanted <= feats.keys()

        enc = self.encoder
        h = enc.conv_in(x)
        for i, block in enumerate(enc.down_blocks):
            h = block(h)
            feats[f"down{i}"] = h
            if done():
                return feats
        h = enc.mid_block(h)
        feats["mid"] = h
        if done():
            return feats
        feats["latent"] = self.quant_conv(enc.conv_out(enc.conv_act(enc.conv_norm_out(h))))
        return feats

    def load_vqmodel_state_dict(self, state_dict: Mapping[str, Tensor]) -> VQEncoder:
        """Load the encoder part of a full ``VQModel`` state dict, strictly.

        ``decoder.*``, ``quantize.*`` and ``post_quant_conv.*`` keys are ignored; any
        other key outside ``encoder.*``/``quant_conv.*``, and any missing key or shape
        mismatch, raises.  Legacy attention names are renamed first.
        """
        sd = _rename_legacy_attention(state_dict)
        foreign = [k for k in sd if not k.startswith(_ENCODER_PREFIXES + _NON_ENCODER_PREFIXES)]
        if foreign:
            raise RuntimeError(f"unexpected keys (not a VQModel state dict?): {foreign[:5]}")
        enc = {k: v for k, v in sd.items() if k.startswith(_ENCODER_PREFIXES)}
        self.load_state_dict(enc, strict=True)
        return self

    @classmethod
    def from_vqmodel_state_dict(
        cls, state_dict: Mapping[str, Tensor], config: Mapping[str, Any] = LDM_CELEBAHQ_VQ_CONFIG
    ) -> VQEncoder:
        """Build a :class:`VQEncoder` for ``config`` and load ``state_dict`` into it."""
        return cls(config).load_vqmodel_state_dict(state_dict)

