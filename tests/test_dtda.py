"""DTDA plugin: teachers (frozen, on the core teacher contract, loaded through the Hub or the
``dtda-synthetic:`` scheme), teacher roles from config, DAA aligner, DAT baseline, recipes."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fakehub import fake_hub  # noqa: F401  (fixture)

from fasbench import config, plugins
from fasbench.api import Context
from fasbench.contract import TINY_WORLD, validate_method
from fasbench.errors import FasbenchError
from fasbench.options import OptionsError
from fasbench_dtda.daa import DomainAdversarialAttack, domain_uncertainty_loss  # noqa: E402
from fasbench_dtda.options import DAAOptions  # noqa: E402
from fasbench_dtda.pretrain import PretrainConfig, pretrain, teacher_dirs  # noqa: E402

#: A recipe small enough for seconds: 16 identities at 32 px, a handful of steps.
TINY_PRETRAIN = PretrainConfig(subjects=4, live_videos=2, frames_per_video=2, image_size=32,
                               arc_steps=3, arc_batch=8, vq_steps=3, vq_batch=4, vq_width=8)
REPO = Path(__file__).resolve().parents[1]
METHODS = ("erm", "dat", "daa", "dtda-no-daa", "dtda-perceptual", "dtda-generative", "dtda", "noise",
           "dtda-random-teachers")
#: the original attack of this plugin (one domain-only step towards uniform, no early stop)
DOMAIN_ONLY = {"objective": "domain-only", "domain_loss": "uniform", "stop_kl": 0.0}
#: The cache key of the default stand-in recipe (teacher domain T only, 112-px input): the folder of
#: the synthetic-world teachers (plugins/dtda/README.md, "Teachers for the synthetic world").
RECORDED_KEY = "synthetic-v3-547d0e5c1e06"


@pytest.fixture(scope="module")
def tiny_teachers(module_tmp) -> dict[str, Path]:
    cache = module_tmp("teachers-cache")
    pretrain(TINY_PRETRAIN, cache_dir=cache, progress=False)
    return teacher_dirs(TINY_PRETRAIN, cache)


@pytest.fixture(scope="module")
def teacher_overrides(tiny_teachers) -> list[str]:
    return [f"method.teachers.perceptual.weights=local-dir:{tiny_teachers['perceptual']}",
            f"method.teachers.generative.weights=local-dir:{tiny_teachers['generative']}"]


@pytest.fixture
def stand_in_cache(tmp_path, monkeypatch, tiny_teachers):
    """A fresh FASBENCH_CACHE where "pretraining" the default stand-ins copies the tiny ones
    (and counts the calls): the dtda-synthetic: scheme without minutes of CPU."""
    import fasbench_dtda.pretrain as pt

    calls = []

    def fake_pretrain(cfg=None, cache_dir=None, roles=pt.STAND_INS, progress=None):
        calls.append(tuple(roles))
        for role in roles:
            dest = pt.teacher_dirs(cfg, cache_dir)[role]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(tiny_teachers[role], dest)
        return {}

    monkeypatch.setenv("FASBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pt, "pretrain", fake_pretrain)
    return calls


def _build(name: str, overrides=(), domains=("M", "C")):
    cfg = config.compose([f"method={name}", "trainer=smoke", *TINY_WORLD, *overrides])
    torch.manual_seed(0)
    ctx = Context(cfg=cfg, domains=list(domains))
    return ctx.build_method(), ctx, cfg


def _batch(cfg, n=12, domains=("M", "C"), seed=0):
    from fasbench.data.loader import FrameDataset, Preprocess

    frames = plugins.registry("datasets").get("synthetic").build(cfg.data, progress=False)
    rows = frames.select(list(domains), ["train"])
    rows = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:n].numpy()]
    b = FrameDataset(frames, {d: i for i, d in enumerate(domains)}).__getitems__(sorted(rows.tolist()))
    pre = Preprocess(int(cfg.data.crop_size))  # RGB in [0, 1]
    return {"image": pre(b["image"], torch.device("cpu"), train=False), "label": b["label"], "domain": b["domain"]}


# --------------------------------------------------------------------------- teachers
def test_teachers_stay_frozen_and_out_of_checkpoints(teacher_overrides, tiny_teachers):
    method, ctx, cfg = _build("dtda", teacher_overrides)
    teachers = dict(method.teachers)
    assert set(teachers) == {"perceptual", "generative"}
    method.train()
    assert all(not m.training for t in teachers.values() for m in t.modules()), "a teacher left eval mode"
    before = {k: v.clone() for t in teachers.values() for k, v in t.state_dict().items()}
    losses = method.training_step(_batch(cfg))
    assert {"ce", "kd_perceptual", "kd_generative", "domain_cls"} <= set(losses)
    sum(losses.values()).backward()
    for t in teachers.values():
        for n, p in t.named_parameters():
            assert not p.requires_grad and p.grad is None, f"teacher parameter {n} got a gradient"
    after = {k: v for t in teachers.values() for k, v in t.state_dict().items()}
    assert all(torch.equal(before[k], after[k]) for k in before), "a teacher's weights or BN statistics changed"
    # projectors learn, the student learns
    assert all(p.grad is not None for p in method.projectors.parameters())
    # checkpoints hold the student, projectors and aligner, never the (pinned) teacher weights
    keys = method.state_dict().keys()
    assert not [k for k in keys if k.startswith("teachers.")]
    assert any(k.startswith("student.") for k in keys) and any(k.startswith("projectors.") for k in keys)
    # the record names each teacher's weights with their sha256
    recorded = {t["kind"]: t for t in ctx.components["teachers"]}
    for role in ("perceptual", "generative"):
        w = recorded[role]["weights"]
        f = tiny_teachers[role] / "model.safetensors"
        assert w["uri"] == f"local-dir:{tiny_teachers[role]}"
        assert w["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def test_kd_losses_are_cosine_distances_in_range(teacher_overrides):
    method, _, cfg = _build("dtda-no-daa", teacher_overrides)
    method.train()
    losses = method.training_step(_batch(cfg))
    assert "domain_cls" not in losses  # no aligner in this ablation
    for k in ("kd_perceptual", "kd_generative"):
        v = float(losses[k].detach())
        assert 0.0 <= v <= 2.0, (k, v)


def test_recipes_compose_the_documented_parts(teacher_overrides):
    expect = {"dtda": ({"perceptual", "generative"}, "dtda.daa"), "dtda-no-daa": ({"perceptual", "generative"}, "none"),
              "dtda-perceptual": ({"perceptual"}, "dtda.daa"), "dtda-generative": ({"generative"}, "dtda.daa"),
              "daa": (set(), "dtda.daa"), "noise": (set(), "dtda.noise"),
              "dtda-random-teachers": ({"perceptual", "generative"}, "dtda.daa")}
    for name, (roles, aligner) in expect.items():
        method, ctx, cfg = _build(name, teacher_overrides)
        assert set(method.teachers) == roles, name
        assert ctx.components["aligner"]["name"] == aligner, name
        # every recipe has both slots (an ablation only disables one), each asking for its kind
        assert {r: s["kind"] for r, s in cfg.method.teachers.items()} == {"perceptual": "perceptual",
                                                                         "generative": "generative"}, name


def test_a_third_teacher_role_is_config_alone(teacher_overrides, tiny_teachers):
    extra = (f"+method.teachers.extra={{name: dtda.arcface, weights: 'local-dir:{tiny_teachers['perceptual']}', "
             "student_feature: stage2, teacher_feature: stage2, loss: mse, weight: 0.5}")
    method, ctx, cfg = _build("dtda-no-daa", [*teacher_overrides, extra])
    assert list(method.teachers) == ["perceptual", "generative", "extra"]
    assert [t["name"] for t in ctx.components["teachers"]] == ["dtda.arcface", "dtda.ldm_vq", "dtda.arcface"]
    assert cfg.method.teachers.extra.bgr is False  # the teacher's own defaults are filled in and recorded
    method.train()
    losses = method.training_step(_batch(cfg))
    assert {"ce", "kd_perceptual", "kd_generative", "kd_extra"} == set(losses)
    assert 0.0 <= float(losses["kd_extra"].detach()) <= 0.5 * 4  # weight x MSE of unit vectors
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in method.projectors["extra"].parameters())
    # a disabled role is not built
    method, ctx, _ = _build("dtda-no-daa", [*teacher_overrides, extra.replace("weight: 0.5", "enabled: false")])
    assert list(method.teachers) == ["perceptual", "generative"]
    # a role may not shadow an attribute of the module that holds the teachers
    with pytest.raises(FasbenchError, match=r"^method.teachers.keys: 'keys' cannot name a teacher role"):
        _build("daa", [extra.replace("teachers.extra=", "teachers.keys=")])


def test_kind_mismatch_is_a_one_line_error(teacher_overrides, tiny_teachers):
    gen = f"'local-dir:{tiny_teachers['generative']}'"
    bad = [
        # a generative teacher in the perceptual slot of a recipe
        [*teacher_overrides, "method.teachers.perceptual.name=dtda.ldm_vq", "~method.teachers.perceptual.bgr",
         f"method.teachers.perceptual.weights={gen}"],
        # a third role asking for a kind its teacher is not (checked before any weights load)
        ["+method.teachers.extra={name: dtda.ldm_vq, kind: perceptual, teacher_feature: mid, weights: 'file:/nope'}"],
    ]
    for overrides in bad:
        with pytest.raises(FasbenchError) as err:
            _build("dtda-perceptual", overrides)
        msg = str(err.value)
        assert "\n" not in msg and "is a generative teacher; pick a perceptual teacher" in msg, msg
        assert msg.startswith("method.teachers.") and ".kind='perceptual'" in msg, msg
    # without a kind, any teacher fills any role
    method, _, _ = _build("dtda-no-daa", [*teacher_overrides, f"+method.teachers.extra={{name: dtda.ldm_vq, "
                                          f"teacher_feature: mid, student_feature: stage3, weights: {gen}}}"])
    assert set(method.teachers) == {"perceptual", "generative", "extra"}


def test_real_data_takes_the_documented_cost_setting_and_the_synthetic_world_keeps_its_identity():
    """The real-data defaults (plugin README, "Cost at real size") are config, registered once in the
    plugin: the generative teacher at 128 px tapped after down1, the teachers every 4th step, on every
    dataset but the synthetic one and for every recipe with a teacher; a command-line key still wins."""
    from omegaconf import OmegaConf

    from fasbench.engine.identity import config_hash
    from fasbench_dtda.plugin import REAL_DATA_DEFAULTS, TEACHER_RECIPES

    def cost(*overrides):
        m = config.compose(list(overrides)).method
        return m.get("teacher_every"), m.teachers.generative.input_size, m.teachers.generative.teacher_feature

    assert REAL_DATA_DEFAULTS == {"teacher_every": 4, "teachers": {"generative": {"input_size": 128,
                                                                                  "teacher_feature": "down1"}}}
    for name in TEACHER_RECIPES:
        for data in ("real", "msu_mfsd", "oulu_npu"):
            assert cost(f"method={name}", f"data={data}") == (4, 128, "down1"), (name, data)
        assert cost(f"method={name}", "data=synthetic") == (1, None, "mid"), name
    for name in ("daa", "noise"):  # no teacher to make cheaper: their defaults stay
        assert cost(f"method={name}", "data=real") == (1, None, "mid"), name
    assert cost("method=dtda", "data=real", "method.teacher_every=1",
                "method.teachers.generative.teacher_feature=mid") == (1, 128, "mid")
    # the synthetic world's runs keep their identity: a committed board record's config hash is reproduced
    record = REPO / "leaderboard/records/synthetic-64px-v3/MICO/dtda/ICM_to_O/seed0/record.json"
    rec = json.loads(record.read_text())
    cfg = config.compose(["method=dtda", "data=synthetic", "data.image_size=64", "data.crop_size=56"])
    assert config_hash(OmegaConf.to_container(cfg, resolve=True)) == rec["config_hash"] == "9caf68eb01f7"


@pytest.mark.parametrize("override, needle", [
    ("method.teachers.perceptual.weight=abc", "method.teachers.perceptual.weight='abc': expected float"),
    ("method.aligner.epsilon=2", "method.aligner.epsilon=2: expected float (input should be less than or equal to 1)"),
    ("method.aligner.init=gaussian", "method.aligner.init='gaussian': expected 'zero' | 'uniform'"),
    ("method.teachers.generative.loss=l1", "method.teachers.generative.loss='l1': expected 'cosine' | 'mse'"),
    ("method.teachers.perceptual.arch={depht: 50}", "unknown IResNet arch key(s) ['depht']"),
    ("method.teachers.generative.input_size=big", "method.teachers.generative.input_size='big': expected int"),
    ("+method.teachers.extra={name: dtda.arcface}", "method.teachers.extra.teacher_feature: required, but not set"),
    ("+method.teachers.extra={name: dtda.arcface, teacher_feature: embedding, colour: 1}",
     "method.teachers.extra.colour: unknown key"),
])
def test_bad_dtda_options_fail_at_compose_with_one_line(override, needle):
    with pytest.raises(OptionsError) as err:
        config.compose(["method=dtda", override])
    msg = str(err.value)
    assert "\n" not in msg and needle in msg, msg


def test_teachers_load_real_checkpoint_layouts_through_the_hub(fake_hub):  # noqa: F811
    """Checkpoints with the published parameter names (scaled-down widths) load with no conversion."""
    from diffusers import VQModel

    from fasbench_dtda.iresnet import CVLFACE_KEY_PREFIX, IResNet
    from fasbench_dtda.options import ArcFaceOptions, LdmVQOptions
    from fasbench_dtda.teachers import ARCFACE_URI, LDM_VQ_URI, ArcFaceTeacher, LdmVQTeacher
    from fasbench_dtda.vq import LDM_CELEBAHQ_VQ_CONFIG, small_vq_config

    torch.manual_seed(0)
    arc = IResNet(depth=100, width=0.0625, embed_dim=512, input_size=112)  # IR-101 names, 1/16 of the channels
    arc_sd = {CVLFACE_KEY_PREFIX + k: v.contiguous() for k, v in arc.state_dict().items()}
    pub_arc = fake_hub.publish_tensors("minchul/cvlface_arcface_ir101_webface4m", arc_sd)
    vq_cfg = {**small_vq_config(width=8, sample_size=64), "layers_per_block": LDM_CELEBAHQ_VQ_CONFIG["layers_per_block"]}
    vq = VQModel(**vq_cfg)
    pub_vq = fake_hub.publish_tensors("CompVis/ldm-celebahq-256", {k: v.contiguous() for k, v in vq.state_dict().items()},
                                      path="vqvae/diffusion_pytorch_model.safetensors", revision="refs/pr/7")
    assert "model.net.layer2.12.prelu.weight" in arc_sd  # IR-101 depth: 13 blocks in the second stage
    assert "encoder.down_blocks.0.resnets.1.conv2.weight" in vq.state_dict()  # 2 resnets per block, as published

    t = ArcFaceTeacher(ArcFaceOptions(weights=ARCFACE_URI, arch={"width": 0.0625}))
    assert t.weights_info["commit"] == pub_arc.commit and t.weights_info["sha256"] == pub_arc.sha256
    x = torch.rand(2, 3, 96, 96)
    ref = arc.eval()(F.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False) * 2 - 1)
    torch.testing.assert_close(t.features(x)["embedding"], ref)

    g = LdmVQTeacher(LdmVQOptions(weights=LDM_VQ_URI, arch=vq_cfg))
    assert g.weights_info["commit"] == pub_vq.commit and g.weights_info["revision"] == "refs/pr/7"
    y = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(g.features(y)["latent"], vq.eval().encode(y * 2 - 1).latents)


def test_teachers_read_the_architecture_beside_their_weights(tiny_teachers, tmp_path):
    """The stand-ins' config.json reaches the teacher whatever the scheme; ``arch`` still wins."""
    from fasbench_dtda.options import ArcFaceOptions, LdmVQOptions
    from fasbench_dtda.teachers import ArcFaceTeacher, LdmVQTeacher

    t = ArcFaceTeacher(ArcFaceOptions(weights=f"file:{tiny_teachers['perceptual'] / 'model.safetensors'}"))
    assert t.arch == {"depth": 18, "width": 0.25, "embed_dim": 128, "input_size": 32} and t.input_size == 32
    g = LdmVQTeacher(LdmVQOptions(weights=f"local-dir:{tiny_teachers['generative']}", input_size=48))
    assert list(g.config["block_out_channels"]) == [8, 16, 32] and g.input_size == 48
    # without the config.json the default (full-size) architecture does not fit: a clear error
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_teachers["perceptual"] / "model.safetensors", bare / "model.safetensors")
    with pytest.raises(FasbenchError, match=r"do not fit IResNet.*arch option"):
        ArcFaceTeacher(ArcFaceOptions(weights=f"local-dir:{bare}"))
    arch = {"depth": 18, "width": 0.25, "embed_dim": 128, "input_size": 32}
    t = ArcFaceTeacher(ArcFaceOptions(weights=f"local-dir:{bare}", arch=arch))
    assert t.feature_shapes()["embedding"] == torch.Size([128])


# ------------------------------------------------------------------- dtda-synthetic: URIs
def test_the_synthetic_scheme_resolves_through_the_plugin_hook(stand_in_cache):
    from fasbench import weights

    r = weights.resolve("dtda-synthetic:perceptual")
    root = Path(os.environ["FASBENCH_CACHE"]) / "teachers" / PretrainConfig().key()
    assert r.scheme == "dtda-synthetic" and r.uri == "dtda-synthetic:perceptual"
    assert Path(r.path) == root / "perceptual" / "model.safetensors"
    assert r.sha256 == hashlib.sha256(Path(r.path).read_bytes()).hexdigest()
    assert stand_in_cache == [("perceptual", "generative")]  # both pretrained on the first resolve ...
    weights.resolve("dtda-synthetic:generative")
    assert stand_in_cache == [("perceptual", "generative")]  # ... and only then
    with pytest.raises(FasbenchError, match=r"no synthetic-world teacher 'identity'.*dtda-synthetic:perceptual"):
        weights.resolve("dtda-synthetic:identity")


def test_the_default_stand_in_recipe_is_the_recorded_one():
    """Same recipe, same cache key, same folder: the stand-ins the committed records name."""
    assert PretrainConfig().key() == RECORDED_KEY


def test_a_dtda_run_on_synthetic_data_records_the_stand_in_uris(stand_in_cache):
    method, ctx, _ = _build("dtda-no-daa")  # data.name=synthetic, no weights set: the registered defaults
    recorded = {t["kind"]: t["weights"] for t in ctx.components["teachers"]}
    for role in ("perceptual", "generative"):
        w = recorded[role]
        assert w["uri"] == f"dtda-synthetic:{role}" and w["scheme"] == "dtda-synthetic"
        f = teacher_dirs()[role] / "model.safetensors"
        assert w["path"] == str(f) and w["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert method.teachers["perceptual"].arch["input_size"] == TINY_PRETRAIN.image_size  # config.json beside


_RACE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    import numpy as np
    from safetensors.numpy import save_file

    import fasbench_dtda.pretrain as pt

    log, me, other = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

    def stub(cfg=None, cache_dir=None, roles=pt.STAND_INS, progress=None):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(1.0)  # long enough for the other process to find the teachers missing
        for role in roles:
            d = pt.teacher_dirs(cfg, cache_dir)[role]
            d.mkdir(parents=True)
            save_file({"w": np.full(4, os.getpid(), np.float32)}, str(d / "model.safetensors"))
        return {}

    pt.pretrain = stub
    from fasbench import weights

    me.touch()
    deadline = time.time() + 60
    while not other.exists() and time.time() < deadline:  # start resolving together
        time.sleep(0.01)
    print(weights.resolve("dtda-synthetic:perceptual").sha256)
""")


def test_two_processes_resolving_first_pretrain_once(tmp_path, cli_env):
    env = cli_env(FASBENCH_CACHE=str(tmp_path / "cache"))
    log, a, b = tmp_path / "pretrained.log", tmp_path / "a", tmp_path / "b"
    procs = [subprocess.Popen([sys.executable, "-c", _RACE, str(log), str(me), str(other)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for me, other in ((a, b), (b, a))]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len(log.read_text().split()) == 1, "the stand-ins were pretrained twice"
    assert outs[0][0] == outs[1][0]  # both resolved the same bytes
    assert sum("waiting" in err for _, err in outs) == 1, outs  # the second one said it waits


def test_teachers_pretrain_command_prints_the_uris(stand_in_cache, capsys):
    import argparse

    from fasbench_dtda.commands import _pretrain

    args = argparse.Namespace(data="synthetic", force=False, cache_dir=None, no_progress=True, json=True)
    assert _pretrain(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r: v["uri"] for r, v in out.items()} == {"perceptual": "dtda-synthetic:perceptual",
                                                     "generative": "dtda-synthetic:generative"}
    args.cache_dir, args.json = str(Path(os.environ["FASBENCH_CACHE"]) / "elsewhere"), False
    assert _pretrain(args) == 0
    text = capsys.readouterr().out
    assert "local-dir:" in text and "dtda-synthetic:" not in text  # another root: its folders


def test_pretrained_teachers_learn_their_own_tasks(tmp_path):
    cfg = PretrainConfig(subjects=6, live_videos=3, frames_per_video=2, image_size=32, arc_steps=60, arc_batch=32,
                         vq_steps=60, vq_batch=16, vq_width=8)
    m = pretrain(cfg, cache_dir=tmp_path, progress=False)
    # the teacher domain T only: 5 trained identities, 1 held out (quality: tests/test_teachers.py)
    assert (m["perceptual"]["identities"], m["perceptual"]["heldout_identities"]) == (5, 1)
    g = m["generative"]
    assert g["heldout_psnr_db"] > g["untrained_psnr_db"] + 1, g  # reconstruction improved by training
    dirs = teacher_dirs(cfg, tmp_path)
    for d in dirs.values():
        assert {p.name for p in d.iterdir()} == {"model.safetensors", "config.json", "pretrain.json"}


def test_pretraining_gives_the_same_teachers_whatever_the_callers_thread_count(tmp_path):
    cfg = PretrainConfig(subjects=4, live_videos=2, frames_per_video=2, image_size=32, arc_steps=6, arc_batch=8,
                         vq_steps=6, vq_batch=8, vq_width=8)
    before = torch.get_num_threads()
    digests = []
    try:
        for n, cache in ((1, tmp_path / "one"), (3, tmp_path / "three")):
            torch.set_num_threads(n)
            pretrain(cfg, cache_dir=cache, progress=False)
            assert torch.get_num_threads() == n  # the caller's setting is restored
            digests.append({r: hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
                            for r, d in teacher_dirs(cfg, cache).items()})
    finally:
        torch.set_num_threads(before)
    assert digests[0] == digests[1]


# --------------------------------------------------------------------------------- DAA
def test_daa_perturbation_stays_within_epsilon_and_confuses_the_domain_classifier():
    cfg = config.compose(["method=daa", "trainer=smoke", *TINY_WORLD])
    ctx = Context(cfg=cfg, domains=["M", "C"])
    torch.manual_seed(0)
    student = ctx.build_student()
    eps = 8 / 255
    daa = DomainAdversarialAttack(DAAOptions(epsilon=eps, step_size=2 / 255, steps=5, **DOMAIN_ONLY), ctx)
    batch = _batch(cfg, n=24)
    # train the domain classifier on clean (detached) features until it is fairly confident
    opt = torch.optim.Adam(daa.classifier.parameters(), lr=3e-3)
    student.train()
    with torch.no_grad():
        feats = daa.features(student, batch["image"])
    for _ in range(15):
        loss = F.cross_entropy(daa.classifier(feats), batch["domain"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    bn = {k: v.clone() for k, v in student.state_dict().items() if "running" in k}
    student.zero_grad(set_to_none=True)
    x_adv, clean = daa.attack(batch["image"], batch["domain"], student)
    pix, pix_adv = batch["image"], x_adv  # pixel space: [0, 1] in, [0, 1] out
    assert float((pix_adv - pix).abs().max()) <= eps + 1e-5
    assert float((pix_adv - pix).abs().max()) > eps / 2  # it did move
    assert float(pix_adv.min()) >= -1e-5 and float(pix_adv.max()) <= 1 + 1e-5
    # BN running statistics untouched and no student gradient from the attack
    assert all(torch.equal(bn[k], v) for k, v in student.state_dict().items() if k in bn)
    assert all(p.grad is None for p in student.parameters())
    with torch.no_grad():
        p_clean = daa.classifier(daa.features(student, batch["image"])).softmax(1)
        p_adv = daa.classifier(daa.features(student, x_adv)).softmax(1)
    conf_clean, conf_adv = float(p_clean.max(1).values.mean()), float(p_adv.max(1).values.mean())
    assert conf_clean > 0.75, conf_clean
    assert conf_adv < conf_clean - 0.1, (conf_clean, conf_adv)
    ent = lambda p: float(-(p * p.clamp_min(1e-12).log()).sum(1).mean())  # noqa: E731
    assert ent(p_adv) > ent(p_clean)


def _old_attack(daa: DomainAdversarialAttack, x01, domain, student):
    """DAA as it was written for normalised batches (fasbench-dtda 0.1.0 before the pixel-space
    contract): the attack in the student's normalisation, epsilon and the step divided by the
    per-channel std, the pixel range mapped through it; the student saw normalised images."""
    from fasbench_dtda.daa import frozen_bn_stats

    mean = torch.tensor(student.mean).view(1, 3, 1, 1)
    std = torch.tensor(student.std).view(1, 3, 1, 1)
    x = (x01 - mean) / std
    eps, lo, hi = daa.epsilon / std, (0 - mean) / std, (1 - mean) / std
    step = (daa.step_size / daa.epsilon) * eps
    delta = torch.zeros_like(x)
    with frozen_bn_stats(student):
        for _ in range(daa.steps):
            delta.requires_grad_(True)
            feats = student.features((x + delta) * std + mean)["pooled"]  # = the old student on x + delta
            (grad,) = torch.autograd.grad(domain_uncertainty_loss(daa.classifier(feats)), delta)
            delta = torch.maximum(torch.minimum(delta.detach() - step * grad.sign(), eps), -eps)
            delta = (x + delta).clamp(lo, hi) - x
    return ((x + delta) * std + mean).detach()


@pytest.mark.parametrize("steps, step_size", [(1, 8 / 255), (3, 2 / 255)])
def test_daa_in_pixel_space_is_the_attack_it_was_in_normalised_space(steps, step_size):
    cfg = config.compose(["method=daa", "trainer=smoke", *TINY_WORLD])
    ctx = Context(cfg=cfg, domains=["M", "C"])
    torch.manual_seed(0)
    student = ctx.build_student()
    daa = DomainAdversarialAttack(DAAOptions(steps=steps, step_size=step_size, epsilon=8 / 255, **DOMAIN_ONLY), ctx)
    batch = _batch(cfg, n=12)
    student.train()
    new, _ = daa.attack(batch["image"], batch["domain"], student)
    old = _old_attack(daa, batch["image"], batch["domain"], student)
    diff = (new - old).abs()
    # the same perturbation up to float rounding (a sign of a gradient that is ~0 may flip)
    assert float(diff.max()) < 1e-5 or float((diff > 1e-5).float().mean()) < 1e-3, float(diff.max())
    assert float((new - batch["image"]).abs().max()) <= daa.epsilon + 1e-6


def test_daa_aligner_returns_perturbed_batch_and_classifier_loss_only_in_training():
    method, _, cfg = _build("daa", ["method.aligner.stop_kl=0"])  # an untrained classifier is near uniform already
    batch = _batch(cfg)
    method.train()
    out, losses = method.aligner(batch, method.student)
    assert set(losses) == {"domain_cls"} and not torch.equal(out["image"], batch["image"])
    losses["domain_cls"].backward()
    assert all(p.grad is None for p in method.student.parameters())  # the classifier sees detached features
    method.eval()
    out, losses = method.aligner(batch, method.student)
    assert losses == {} and out["image"] is batch["image"]


def test_uncertainty_loss_is_zero_at_uniform():
    assert abs(float(domain_uncertainty_loss(torch.zeros(4, 3)))) < 1e-6
    assert float(domain_uncertainty_loss(torch.tensor([[9.0, 0.0, 0.0]]))) > 1


def test_daa_needs_two_source_domains():
    with pytest.raises(FasbenchError, match="at least two source domains"):
        _build("daa", domains=("M",))


# --------------------------------------------------------------------------------- DAT
def test_dat_reverses_the_discriminator_gradient_and_follows_the_schedule():
    from fasbench_baselines.dat import grad_reverse

    x = torch.ones(3, requires_grad=True)
    grad_reverse(x, 0.5).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.5))
    method, _, cfg = _build("dat", ["trainer.max_steps=100"])
    assert method.reversal() == 0.0
    method.steps_done.fill_(100)
    assert method.reversal() == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    method.steps_done.zero_()
    method.train()
    losses = method.training_step(_batch(cfg))
    assert set(losses) == {"ce", "domain_adv"} and int(method.steps_done) == 1
    assert "steps_done" in method.state_dict()  # resume continues the schedule


# ------------------------------------------------------------------------- contract
@pytest.mark.parametrize("name", METHODS)
def test_every_method_passes_validate(name, teacher_overrides, tmp_path):
    overrides = teacher_overrides if name.startswith("dtda") else []
    checks = validate_method(name, overrides, out_dir=tmp_path)
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert not failed and len(checks) == 8, failed
