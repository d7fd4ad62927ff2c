"""DTDA teacher architectures: IResNet (CVLFace ArcFace IR-101 layout) and the VQ encoder."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from diffusers import VQModel

try:
    import fasbench_dtda  # noqa: F401
except ImportError:  # plugin not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "dtda"))

from fasbench_dtda.iresnet import (  # noqa: E402
    CVLFACE_KEY_PREFIX,
    IR101_NUM_PARAMETERS,
    IResNet,
    cvlface_normalize,
    cvlface_state_dict_keys,
    load_cvlface_state_dict,
)
from fasbench_dtda.vq import (  # noqa: E402
    LDM_CELEBAHQ_VQ_CONFIG,
    LDM_CELEBAHQ_VQ_ENCODER_NUM_PARAMETERS,
    LDM_CELEBAHQ_VQ_NUM_PARAMETERS,
    VQEncoder,
    resolve_vq_config,
    small_vq_config,
    vq_normalize,
    vq_state_dict_keys,
)

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small CPU models run fastest (and steadily on a busy machine) single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ir101() -> IResNet:
    return IResNet(depth=100)


@pytest.fixture(scope="module")
def ir101_keys() -> dict[str, tuple[int, ...]]:
    return cvlface_state_dict_keys(100)


@pytest.fixture(scope="module")
def ldm_vq() -> VQModel:
    return VQModel(**LDM_CELEBAHQ_VQ_CONFIG)


@pytest.fixture(scope="module")
def small_cfg() -> dict:
    return small_vq_config(width=16, layers_per_block=1, num_vq_embeddings=64)


@pytest.fixture(scope="module")
def small_vq(small_cfg) -> VQModel:
    torch.manual_seed(0)
    return VQModel(**small_cfg).eval()


def _shapes(state_dict, prefix: str = "") -> dict[str, tuple[int, ...]]:
    return {prefix + k: tuple(v.shape) for k, v in state_dict.items()}


# ----------------------------------------------------------------------- (a) IR-101 names


def test_ir101_state_dict_matches_expected_checkpoint_keys(ir101, ir101_keys):
    assert _shapes(ir101.state_dict(), CVLFACE_KEY_PREFIX) == ir101_keys
    assert len(ir101_keys) == 925


# Names/shapes of the InsightFace-style IResNet used by CVLFace's ``iresnet_insightface``
# (the model code shipped with minchul/cvlface_arcface_ir101_webface4m), with the
# ``model.net.`` prefix of the Hub wrapper's ``model.safetensors``.
KNOWN_IR101_KEYS = {
    "model.net.conv1.weight": (64, 3, 3, 3),
    "model.net.bn1.weight": (64,),
    "model.net.bn1.running_var": (64,),
    "model.net.bn1.num_batches_tracked": (),
    "model.net.prelu.weight": (64,),
    "model.net.layer1.0.bn1.weight": (64,),
    "model.net.layer1.0.conv1.weight": (64, 64, 3, 3),
    "model.net.layer1.0.bn2.running_mean": (64,),
    "model.net.layer1.0.prelu.weight": (64,),
    "model.net.layer1.0.conv2.weight": (64, 64, 3, 3),
    "model.net.layer1.0.bn3.bias": (64,),
    "model.net.layer1.0.downsample.0.weight": (64, 64, 1, 1),
    "model.net.layer1.0.downsample.1.running_var": (64,),
    "model.net.layer2.0.conv1.weight": (128, 64, 3, 3),
    "model.net.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "model.net.layer2.12.prelu.weight": (128,),
    "model.net.layer3.0.downsample.0.weight": (256, 128, 1, 1),
    "model.net.layer3.29.conv2.weight": (256, 256, 3, 3),
    "model.net.layer4.0.conv1.weight": (512, 256, 3, 3),
    "model.net.layer4.2.bn3.weight": (512,),
    "model.net.bn2.weight": (512,),
    "model.net.bn2.running_mean": (512,),
    "model.net.fc.weight": (512, 25088),
    "model.net.fc.bias": (512,),
    "model.net.features.weight": (512,),
    "model.net.features.bias": (512,),
    "model.net.features.running_var": (512,),
}

ABSENT_IR101_KEYS = [
    "model.net.layer1.1.downsample.0.weight",  # only the first block of a stage has one
    "model.net.layer2.13.conv1.weight",  # 13 blocks in stage 2 (0..12)
    "model.net.layer3.30.conv1.weight",  # 30 blocks in stage 3
    "model.net.layer4.3.conv1.weight",  # 3 blocks in stage 4
    "model.net.input_layer.0.weight",  # CVLFace's other IR implementation
    "model.net.output_layer.3.weight",
]


def test_ir101_known_real_names_and_shapes(ir101_keys):
    for name, shape in KNOWN_IR101_KEYS.items():
        assert ir101_keys.get(name) == shape, name
    for name in ABSENT_IR101_KEYS:
        assert name not in ir101_keys, name
    blocks = {tuple(k.split(".")[2:4]) for k in ir101_keys if k.startswith("model.net.layer")}
    per_stage = [sum(1 for s, _ in blocks if s == f"layer{i}") for i in range(1, 5)]
    assert per_stage == [3, 13, 30, 3]


def test_ir101_parameter_count(ir101):
    n_params = sum(p.numel() for p in ir101.parameters())
    assert n_params == IR101_NUM_PARAMETERS == 65_156_160
    assert abs(n_params - 65.13e6) / 65.13e6 < 1e-3  # published LResNet100E-IR: 65.13 M
    assert not ir101.features.weight.requires_grad
    # fp32 tensors + int64 counters ~ the 261 MB Hub model.safetensors
    nbytes = sum(t.numel() * t.element_size() for t in ir101.state_dict().values())
    assert 260.5e6 < nbytes < 261.5e6


def test_ir101_full_size_forward_shape_on_meta():
    with torch.device("meta"):
        net = IResNet(depth=100).eval()
        feats = net.forward_features(torch.empty(2, 3, 112, 112))
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "stage1": (2, 64, 56, 56),
        "stage2": (2, 128, 28, 28),
        "stage3": (2, 256, 14, 14),
        "stage4": (2, 512, 7, 7),
        "embedding": (2, 512),
    }


def test_cvlface_state_dict_loads_strictly_with_any_wrapper_prefix():
    torch.manual_seed(0)
    src = IResNet(depth=18, width=0.125, embed_dim=32, input_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = src(x)
    for prefix in ("model.net.", "net.", ""):
        sd = {prefix + k: v.clone() for k, v in src.state_dict().items()}
        dst = load_cvlface_state_dict(IResNet(depth=18, width=0.125, embed_dim=32, input_size=32), sd)
        with torch.no_grad():
            torch.testing.assert_close(dst.eval()(x), ref, rtol=0, atol=0)
    sd = {"model.net." + k: v for k, v in src.state_dict().items()}
    sd.pop("model.net.fc.weight")
    with pytest.raises(RuntimeError):
        load_cvlface_state_dict(IResNet(depth=18, width=0.125, embed_dim=32, input_size=32), sd)
    wrong_depth = {"model.net." + k: v for k, v in src.state_dict().items()}
    with pytest.raises(RuntimeError):
        load_cvlface_state_dict(IResNet(depth=34, width=0.125, embed_dim=32, input_size=32), wrong_depth)


# ---------------------------------------------------------------- (b) scaled-down IResNet


@pytest.mark.parametrize("size", [56, 64, 112])
def test_small_iresnet_forward_shapes(size):
    torch.manual_seed(0)
    net = IResNet(depth=18, width=0.25, embed_dim=512, input_size=size)
    x = cvlface_normalize(torch.rand(2, 3, size, size))
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    emb = net(x)
    assert emb.shape == (2, 512)
    side = math.ceil(size / 16)
    assert net.fc.in_features == 128 * side * side
    emb.sum().backward()  # trainable on CPU
    assert net.conv1.weight.grad is not None


def test_small_iresnet_feature_dict_and_embed_dim():
    net = IResNet(depth=18, width=0.25, embed_dim=128, input_size=64).eval()
    with torch.no_grad():
        feats = net.forward_features(torch.randn(3, 3, 64, 64))
        emb = net(torch.randn(3, 3, 64, 64))
    assert list(feats) == ["stage1", "stage2", "stage3", "stage4", "embedding"]
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "stage1": (3, 16, 32, 32),
        "stage2": (3, 32, 16, 16),
        "stage3": (3, 64, 8, 8),
        "stage4": (3, 128, 4, 4),
        "embedding": (3, 128),
    }
    assert emb.shape == (3, 128)


def test_arcface_arch_option_names_the_iresnet_arguments():
    """``method.teachers.ROLE.arch`` of dtda.arcface takes exactly the architecture arguments."""
    import inspect

    from pydantic import ValidationError

    from fasbench_dtda.options import IRESNET_ARCH_KEYS, ArcFaceOptions

    assert set(IRESNET_ARCH_KEYS) == set(inspect.signature(IResNet).parameters) - {"dropout"}  # training only
    assert ArcFaceOptions(arch={"depth": 50, "width": 0.5}).arch == {"depth": 50, "width": 0.5}
    with pytest.raises(ValidationError, match="unknown IResNet arch key"):
        ArcFaceOptions(arch={"layers": 50})


def test_iresnet_rejects_wrong_input_size_and_depth():
    net = IResNet(depth=18, width=0.25, input_size=64)
    with pytest.raises(ValueError, match="input_size"):
        net(torch.randn(1, 3, 56, 56))
    with pytest.raises(ValueError):
        IResNet(depth=101)


# ------------------------------------------------------------------ (c) full-size VQModel


KNOWN_VQ_KEYS = {
    "encoder.conv_in.weight": (128, 3, 3, 3),
    "encoder.conv_in.bias": (128,),
    "encoder.down_blocks.0.resnets.0.norm1.weight": (128,),
    "encoder.down_blocks.0.resnets.1.conv2.weight": (128, 128, 3, 3),
    "encoder.down_blocks.0.downsamplers.0.conv.weight": (128, 128, 3, 3),
    "encoder.down_blocks.1.resnets.0.conv_shortcut.weight": (256, 128, 1, 1),
    "encoder.down_blocks.2.resnets.0.conv1.weight": (512, 256, 3, 3),
    "encoder.mid_block.attentions.0.group_norm.weight": (512,),
    "encoder.mid_block.attentions.0.to_q.weight": (512, 512),
    "encoder.mid_block.attentions.0.to_out.0.weight": (512, 512),
    "encoder.mid_block.resnets.1.conv2.weight": (512, 512, 3, 3),
    "encoder.conv_norm_out.weight": (512,),
    "encoder.conv_out.weight": (3, 512, 3, 3),
    "quant_conv.weight": (3, 3, 1, 1),
    "quant_conv.bias": (3,),
    "quantize.embedding.weight": (8192, 3),
    "post_quant_conv.weight": (3, 3, 1, 1),
    "decoder.conv_in.weight": (512, 3, 3, 3),
    "decoder.conv_out.weight": (3, 128, 3, 3),
}


def test_ldm_celebahq_config_values():
    cfg = LDM_CELEBAHQ_VQ_CONFIG
    assert tuple(cfg["block_out_channels"]) == (128, 256, 512)
    assert cfg["layers_per_block"] == 2
    assert cfg["latent_channels"] == 3 and cfg["vq_embed_dim"] is None
    assert cfg["num_vq_embeddings"] == 8192 and cfg["norm_num_groups"] == 32
    assert cfg["sample_size"] == 256 and cfg["act_fn"] == "silu"
    assert list(cfg["down_block_types"]) == ["DownEncoderBlock2D"] * 3
    assert list(cfg["up_block_types"]) == ["UpDecoderBlock2D"] * 3
    # the raw Hub config.json (diffusers 0.1.2 export) resolves to the same config
    raw = {
        "_class_name": "VQModel", "_diffusers_version": "0.1.2", "act_fn": "silu",
        "block_out_channels": [128, 256, 512], "down_block_types": ["DownEncoderBlock2D"] * 3,
        "in_channels": 3, "latent_channels": 3, "layers_per_block": 2,
        "num_vq_embeddings": 8192, "out_channels": 3, "sample_size": 256,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
    }  # fmt: skip
    assert resolve_vq_config(raw) == resolve_vq_config(cfg)
    with pytest.raises(ValueError, match="unknown"):
        resolve_vq_config({**raw, "ch_mult": [1, 2, 4]})


def test_ldm_vqmodel_state_dict_names(ldm_vq):
    keys = _shapes(ldm_vq.state_dict())
    assert keys == vq_state_dict_keys(LDM_CELEBAHQ_VQ_CONFIG)
    for name, shape in KNOWN_VQ_KEYS.items():
        assert keys.get(name) == shape, name
    assert "encoder.down_blocks.2.downsamplers.0.conv.weight" not in keys  # last block keeps size
    assert sum(p.numel() for p in ldm_vq.parameters()) == LDM_CELEBAHQ_VQ_NUM_PARAMETERS == 55_322_782


def test_ldm_vq_encoder_has_exactly_the_encoder_keys(ldm_vq):
    enc = VQEncoder(LDM_CELEBAHQ_VQ_CONFIG)
    want = {k: v for k, v in _shapes(ldm_vq.state_dict()).items() if k.startswith(("encoder.", "quant_conv."))}
    assert _shapes(enc.state_dict()) == want
    assert sum(p.numel() for p in enc.parameters()) == LDM_CELEBAHQ_VQ_ENCODER_NUM_PARAMETERS
    enc.load_vqmodel_state_dict(ldm_vq.state_dict())
    with torch.device("meta"):
        feats = VQEncoder(LDM_CELEBAHQ_VQ_CONFIG).forward_features(torch.empty(1, 3, 256, 256))
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "down0": (1, 128, 128, 128),
        "down1": (1, 256, 64, 64),
        "down2": (1, 512, 64, 64),
        "mid": (1, 512, 64, 64),
        "latent": (1, 3, 64, 64),
    }


# -------------------------------------------------- (d) VQEncoder == VQModel.encode latents


def test_vq_encoder_reproduces_vqmodel_encode(small_cfg, small_vq):
    enc = VQEncoder.from_vqmodel_state_dict(small_vq.state_dict(), small_cfg).eval()
    x = vq_normalize(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        ref = small_vq.encode(x).latents  # pre-quantisation: quant_conv(encoder(x))
        out = enc(x)
        feats = enc.forward_features(x)
    assert ref.shape == (2, 3, 16, 16)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(feats["latent"], ref, rtol=0, atol=0)
    assert not enc.encoder.down_blocks[0]._forward_hooks  # hooks removed again


def test_vq_encoder_accepts_legacy_attention_names(small_cfg, small_vq):
    legacy = {}
    for k, v in small_vq.state_dict().items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
            k = k.replace(f"attentions.0.{new}.", f"attentions.0.{old}.")
        legacy[k] = v
    assert "encoder.mid_block.attentions.0.proj_attn.weight" in legacy
    enc = VQEncoder.from_vqmodel_state_dict(legacy, small_cfg).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), small_vq.encode(x).latents, rtol=0, atol=0)


def test_vq_encoder_load_is_strict(small_cfg, small_vq):
    sd = dict(small_vq.state_dict())
    missing = {k: v for k, v in sd.items() if k != "encoder.conv_out.bias"}
    with pytest.raises(RuntimeError):
        VQEncoder.from_vqmodel_state_dict(missing, small_cfg)
    with pytest.raises(RuntimeError, match="unexpected"):
        VQEncoder.from_vqmodel_state_dict({**sd, "vae.something": sd["quant_conv.bias"]}, small_cfg)
    with pytest.raises(RuntimeError):  # shape mismatch: other widths
        VQEncoder.from_vqmodel_state_dict(sd, small_vq_config(width=8, num_vq_embeddings=64))


# ------------------------------------------------------------------ (e) VQ feature shapes


def test_small_vq_encoder_feature_dict(small_cfg):
    enc = VQEncoder(small_cfg)
    x = torch.randn(2, 3, 64, 64)
    feats = enc.forward_features(x)
    assert list(feats) == ["down0", "down1", "down2", "mid", "latent"]
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "down0": (2, 16, 32, 32),
        "down1": (2, 32, 16, 16),
        "down2": (2, 64, 16, 16),
        "mid": (2, 64, 16, 16),
        "latent": (2, 3, 16, 16),
    }
    assert enc.feature_channels() == {"down0": 16, "down1": 32, "down2": 64, "mid": 64, "latent": 3}
    assert enc.downsample_factor == 4
    feats["latent"].mean().backward()
    assert enc.encoder.conv_in.weight.grad is not None


def test_small_vq_config_rules():
    cfg = small_vq_config(width=24)
    assert cfg["block_out_channels"] == (24, 48, 96) and cfg["norm_num_groups"] == 8
    assert cfg["sample_size"] == 64
    with pytest.raises(ValueError):
        small_vq_config(width=24, norm_num_groups=32)


def test_vq_encoder_features_are_those_of_diffusers_encoder_forward(small_cfg):
    """The explicit pass gives exactly the outputs of the unmodified ``Encoder.forward`` (read
    with forward hooks), and a tap on an early stage stops there: same values, fewer FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    enc = VQEncoder(small_cfg).eval()
    x = torch.randn(2, 3, 64, 64)
    seen = {}
    hooks = [b.register_forward_hook(lambda m, i, o, n=f"down{j}": seen.__setitem__(n, o))
             for j, b in enumerate(enc.encoder.down_blocks)]
    hooks.append(enc.encoder.mid_block.register_forward_hook(lambda m, i, o: seen.__setitem__("mid", o)))
    with torch.no_grad():
        seen["latent"] = enc.quant_conv(enc.encoder(x))
        for h in hooks:
            h.remove()
        full = enc.forward_features(x)
    assert list(full) == list(seen)
    for k in seen:
        torch.testing.assert_close(full[k], seen[k], rtol=0, atol=0)

    def flops(names):
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            out = enc.forward_features(x, names=names)
        return out, fc.get_total_flops()

    down0, f0 = flops(["down0"])
    down1, f1 = flops(["down1"])
    mid, fm = flops(["mid"])
    _, fall = flops(None)
    assert list(down0) == ["down0"] and list(down1) == ["down0", "down1"] and "latent" not in mid
    torch.testing.assert_close(down1["down1"], full["down1"], rtol=0, atol=0)
    assert f0 < f1 < fm < fall
    assert list(enc.forward_features(x, names=["nope"])) == list(full)  # unknown: everything (the caller says what is missing)
