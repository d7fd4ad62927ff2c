"""DTDA plugin: teachers (frozen, loaded through the Hub), DAA aligner, DAT baseline, recipes."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fakehub import fake_hub  # noqa: F401  (fixture)
from fasbench import config, plugins
from fasbench.api import Context
from fasbench.contract import TINY_WORLD, validate_method

from fasbench_dtda.daa import DomainAdversarialAttack, domain_uncertainty_loss  # noqa: E402
from fasbench_dtda.pretrain import PretrainConfig, pretrain, teacher_dirs  # noqa: E402

#: A recipe small enough for seconds: 16 identities at 32 px, a handful of steps.
TINY_PRETRAIN = PretrainConfig(subjects=4, live_videos=2, frames_per_video=2, image_size=32,
                               arc_steps=3, arc_batch=8, vq_steps=3, vq_batch=4, vq_width=8)
METHODS = ("erm", "dat", "daa", "dtda-no-daa", "dtda-perceptual", "dtda-generative", "dtda")


@pytest.fixture(scope="module")
def tiny_teachers(tmp_path_factory) -> dict[str, Path]:
    cache = tmp_path_factory.mktemp("teachers-cache")
    pretrain(TINY_PRETRAIN, cache_dir=cache, progress=False)
    return teacher_dirs(TINY_PRETRAIN, cache)


@pytest.fixture(scope="module")
def teacher_overrides(tiny_teachers) -> list[str]:
    return [f"method.teachers.perceptual.weights=local-dir:{tiny_teachers['perceptual']}",
            f"method.teachers.generative.weights=local-dir:{tiny_teachers['generative']}"]


def _build(name: str, overrides=(), domains=("M", "C")):
    cfg = config.compose([f"method={name}", "trainer=smoke", *TINY_WORLD, *overrides])
    torch.manual_seed(0)
    ctx = Context(cfg=cfg, domains=list(domains))
    return plugins.registry("methods").get(name).build(cfg.method, ctx), ctx, cfg


def _batch(cfg, n=12, domains=("M", "C"), seed=0):
    from fasbench.data.loader import FrameDataset, Preprocess

    frames = plugins.registry("datasets").get("synthetic").build(cfg.data, progress=False)
    rows = frames.select(list(domains), ["train"])
    rows = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:n].numpy()]
    b = FrameDataset(frames, {d: i for i, d in enumerate(domains)}).__getitems__(sorted(rows.tolist()))
    pre = Preprocess(int(cfg.data.crop_size), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
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
    expect = {"dtda": ({"perceptual", "generative"}, "dtda.daa"), "dtda-no-daa": ({"perceptual", "generative"}, None),
              "dtda-perceptual": ({"perceptual"}, "dtda.daa"), "dtda-generative": ({"generative"}, "dtda.daa"),
              "daa": (set(), "dtda.daa")}
    for name, (roles, aligner) in expect.items():
        method, ctx, _ = _build(name, teacher_overrides)
        assert set(method.teachers) == roles, name
        assert ctx.components.get("aligner", {}).get("name") == aligner, name


def test_wrong_kind_of_teacher_is_a_clear_error(teacher_overrides):
    from fasbench.errors import FasbenchError

    with pytest.raises(FasbenchError, match="perceptual teacher"):
        _build("dtda-perceptual", [*teacher_overrides, "method.teachers.perceptual.name=dtda.ldm_vq",
                                   f"method.teachers.perceptual.weights={teacher_overrides[1].split('=', 1)[1]}"])


def test_teachers_load_real_checkpoint_layouts_through_the_hub(fake_hub):  # noqa: F811
    """Checkpoints with the published parameter names (scaled-down widths) load with no conversion."""
    from diffusers import VQModel
    from fasbench_dtda.iresnet import CVLFACE_KEY_PREFIX, IResNet
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

    t = ArcFaceTeacher({"weights": ARCFACE_URI, "arch": {"width": 0.0625}}, None)
    assert t.weights_info["commit"] == pub_arc.commit and t.weights_info["sha256"] == pub_arc.sha256
    x = torch.rand(2, 3, 96, 96)
    ref = arc.eval()(F.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False) * 2 - 1)
    torch.testing.assert_close(t.features(x)["embedding"], ref)

    g = LdmVQTeacher({"weights": LDM_VQ_URI, "arch": vq_cfg}, None)
    assert g.weights_info["commit"] == pub_vq.commit and g.weights_info["revision"] == "refs/pr/7"
    y = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(g.features(y)["latent"], vq.eval().encode(y * 2 - 1).latents)


def test_pretrained_teachers_learn_their_own_tasks(tmp_path):
    cfg = PretrainConfig(subjects=6, live_videos=3, frames_per_video=2, image_size=32, arc_steps=60, arc_batch=32,
                         vq_steps=60, vq_batch=16, vq_width=8)
    m = pretrain(cfg, cache_dir=tmp_path, progress=False)
    ids = m["perceptual"]["identities"]
    assert ids == 24
    assert m["perceptual"]["heldout_top1"] > 5 / ids, m["perceptual"]  # well above chance on unseen videos
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
    daa = DomainAdversarialAttack({"epsilon": eps, "step_size": 2 / 255, "steps": 5}, ctx)
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
    std = torch.tensor(daa.std).view(1, 3, 1, 1)
    mean = torch.tensor(daa.mean).view(1, 3, 1, 1)
    pix, pix_adv = batch["image"] * std + mean, x_adv * std + mean
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


def test_daa_aligner_returns_perturbed_batch_and_classifier_loss_only_in_training():
    method, _, cfg = _build("daa")
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
    from fasbench.errors import FasbenchError

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
    assert not failed and len(checks) == 7, failed
