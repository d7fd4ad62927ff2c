"""DAA's label-preserving attack against the domain-only one, the domain classifier trained on
perturbed features, and the two controls registered as methods (``noise``,
``dtda-random-teachers``)."""
from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F
from test_dtda import TINY_PRETRAIN

from fasbench import config, plugins
from fasbench.api import Context
from fasbench.contract import TINY_WORLD
from fasbench.records import identity_of
from fasbench_dtda.daa import DomainAdversarialAttack, RandomNoise, kl_to_uniform
from fasbench_dtda.options import DEFAULT_EPSILON, DAAOptions, NoiseOptions
from fasbench_dtda.pretrain import pretrain, teacher_dirs

DOMAINS = ["M", "C", "I"]
#: the bound the label-preserving attack is held to: the live/spoof cross-entropy of the attacked
#: batch may exceed the clean one by at most this (nats), and by at most 10%
CE_BOUND_ABS, CE_BOUND_REL = 0.05, 0.10


def _batch(cfg, domains=DOMAINS):
    """Every training frame of the tiny world (36 frames: 3 domains x 6 subjects x live/print/replay x 2)."""
    from fasbench.data.loader import FrameDataset, Preprocess

    frames = plugins.registry("datasets").get("synthetic").build(cfg.data, progress=False)
    rows = frames.select(list(domains), ["train"])
    b = FrameDataset(frames, {d: i for i, d in enumerate(domains)}).__getitems__(sorted(rows.tolist()))
    pre = Preprocess(int(cfg.data.crop_size))  # RGB in [0, 1]
    return {"image": pre(b["image"], torch.device("cpu"), train=False), "label": b["label"], "domain": b["domain"]}


@pytest.fixture(scope="module")
def trained():
    """A student trained by ERM for 6 steps on the batch (live/spoof CE ~0.04, not saturated) and
    a fixed copy of its state; deterministic on one CPU."""
    torch.manual_seed(0)
    cfg = config.compose(["method=daa", "trainer=smoke", *TINY_WORLD])
    ctx = Context(cfg=cfg, domains=list(DOMAINS))
    student = ctx.build_student()
    batch = _batch(cfg)
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    student.train()
    for _ in range(6):
        loss = F.cross_entropy(student.logits(batch["image"]), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.zero_grad(set_to_none=True)
    return ctx, student, batch


def _attacker(ctx, student, batch, **opts) -> DomainAdversarialAttack:
    """A DAA whose domain classifier was trained on the clean features until confident."""
    torch.manual_seed(1)
    daa = DomainAdversarialAttack(DAAOptions(**opts), ctx)
    opt = torch.optim.Adam(daa.classifier.parameters(), lr=3e-3)
    with torch.no_grad():
        feats = daa.features(student, batch["image"])
    for _ in range(15):
        loss = F.cross_entropy(daa.classifier(feats), batch["domain"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return daa


def _measure(daa, student, x, batch):
    with torch.no_grad():
        f = student.features(x)
        ce = float(F.cross_entropy(student.classify(f["pooled"]), batch["label"]))
        logits = daa.classifier(f["pooled"])
        return ce, float(kl_to_uniform(logits).mean()), float(logits.softmax(1).max(1).values.mean())


def _attack_each(trained, *objectives):
    """{objective: (clean (CE, KL, conf), perturbed (CE, KL, conf))}: each attack on the fixed
    batch (epsilon 16/255, 5 steps, no early stop), its L-inf budget checked."""
    ctx, student, batch = trained
    eps = 16 / 255
    common = {"epsilon": eps, "step_size": 1.5 * eps / 5, "steps": 5, "stop_kl": 0.0, "domain_loss": "kl"}
    out = {}
    for objective in objectives:
        daa = _attacker(ctx, student, batch, objective=objective, **common)
        clean = _measure(daa, student, batch["image"], batch)
        x_adv, _ = daa.attack(batch["image"], batch["domain"], student, label=batch["label"])
        assert float((x_adv - batch["image"]).abs().max()) <= eps + 1e-6
        out[objective] = (clean, _measure(daa, student, x_adv, batch))
    return out


def test_label_preserving_attack_keeps_the_live_spoof_loss_while_domain_only_raises_it(trained):
    out = _attack_each(trained, "label-preserving", "domain-only")
    for objective, ((_, kl0, conf0), (_, kl1, conf1)) in out.items():
        assert conf0 > 0.95, (objective, conf0)  # a confident domain classifier on clean features
        # both attacks make the domains less distinguishable: KL to uniform and top probability fall
        assert kl1 < kl0 - 0.1 and conf1 < conf0 - 0.05, (objective, kl0, kl1, conf0, conf1)
    (ce0, _, _), (ce_lp, _, _) = out["label-preserving"]
    assert ce_lp <= ce0 + CE_BOUND_ABS and ce_lp <= ce0 * (1 + CE_BOUND_REL), (ce0, ce_lp)
    # the domain-only attack erases spoof evidence: the live/spoof loss rises by half or more
    (ce0_do, _, _), (ce_do, _, _) = out["domain-only"]
    print(f"live/spoof CE: clean {ce0:.3f}, label-preserving {ce_lp:.3f}, domain-only {ce_do:.3f}")
    assert ce0_do == ce0 and ce_do > 1.5 * ce0, (ce0, ce_do)


def test_label_hinge_attack_neither_raises_nor_drives_down_the_live_spoof_loss(trained):
    """The label-preserving attack descends the live/spoof CE, so its perturbed images come out
    easier than the clean ones; the hinge only forbids a rise: the domains still blur, the CE
    stays within the bound above, and within 20% below (the label-preserving attack's falls by a third)."""
    out = _attack_each(trained, "label-preserving", "label-hinge")
    (ce0, kl0, conf0), (ce_h, kl1, conf1) = out["label-hinge"]
    assert kl1 < kl0 - 0.1 and conf1 < conf0 - 0.05, (kl0, kl1, conf0, conf1)
    assert ce_h <= ce0 + CE_BOUND_ABS and ce_h <= ce0 * (1 + CE_BOUND_REL), (ce0, ce_h)
    ce_lp = out["label-preserving"][1][0]
    print(f"live/spoof CE: clean {ce0:.4f}, label-preserving {ce_lp:.4f}, label-hinge {ce_h:.4f}")
    # measured: clean 0.038, label-preserving 0.023 (-39%), label-hinge 0.034 (-11%)
    assert ce_lp < 0.7 * ce0 and ce_h > 0.8 * ce0, (ce0, ce_lp, ce_h)


def test_the_attack_stops_early_once_the_domain_posterior_is_near_uniform(trained):
    ctx, student, batch = trained
    daa = _attacker(ctx, student, batch, steps=4, stop_kl=10.0)  # every sample is "near uniform" at once
    x_adv, clean = daa.attack(batch["image"], batch["domain"], student, label=batch["label"])
    assert torch.equal(x_adv, batch["image"]) and clean is not None
    assert daa.last_stats == {"steps": 0.0, "stopped": 1.0}
    daa.stop_kl = 0.0  # never: every step is taken
    daa.attack(batch["image"], batch["domain"], student, label=batch["label"])
    assert daa.last_stats == {"steps": 4.0, "stopped": 0.0}
    # a tolerance between: the samples whose posterior reached it stop moving, the others go on
    with torch.no_grad():
        kl = kl_to_uniform(daa.classifier(daa.features(student, batch["image"])))
    daa.stop_kl = float(kl.median())
    x_adv, _ = daa.attack(batch["image"], batch["domain"], student, label=batch["label"])
    moved = (x_adv - batch["image"]).flatten(1).abs().amax(1) > 0
    assert not bool(moved[kl <= daa.stop_kl].any()) and bool(moved[kl > daa.stop_kl].all())


def test_the_domain_classifier_also_learns_from_the_perturbed_features():
    torch.manual_seed(0)
    # stop_kl=0: an untrained classifier is already near uniform, and the attack would stop at once
    cfg = config.compose(["method=daa", "trainer=smoke", *TINY_WORLD, "method.aligner.stop_kl=0"])
    ctx = Context(cfg=cfg, domains=list(DOMAINS))
    method = ctx.build_method()
    batch = _batch(cfg)
    method.train()
    seen_in, seen_out = [], []
    method.aligner.classifier.register_forward_hook(lambda m, i, o: seen_in.append(i[0].detach().clone()))
    real = method.student.features

    def spy(x, intermediates=False):
        f = real(x, intermediates=intermediates)
        seen_out.append((x.detach().clone(), f["pooled"].detach().clone()))
        return f

    method.student.features = spy
    losses = method.training_step(batch)
    assert {"ce", "ce_clean", "domain_cls", "domain_cls_adv"} == set(losses)
    # the classifier's last input is the pooled feature of the method's own forward of the perturbed images
    x_last, pooled_last = next((x, p) for x, p in reversed(seen_out) if x.shape == batch["image"].shape
                               and not torch.equal(x, batch["image"]))
    assert torch.equal(seen_in[-1], pooled_last)
    delta = (x_last - batch["image"]).abs()
    assert 0 < float(delta.max()) <= DEFAULT_EPSILON + 1e-6
    # gradient check: domain_cls_adv trains the classifier, never the student
    method.zero_grad(set_to_none=True)
    losses["domain_cls_adv"].backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in method.aligner.classifier.parameters())
    assert all(p.grad is None for p in method.student.parameters())
    # off by a key
    method.student.features = real
    cfg_off = config.compose(["method=daa", "trainer=smoke", *TINY_WORLD, "method.aligner.train_on_perturbed=false"])
    m2 = Context(cfg=cfg_off, domains=list(DOMAINS)).build_method()
    m2.train()
    assert "domain_cls_adv" not in m2.training_step(batch)


def test_noise_is_sign_noise_of_the_daa_budget_and_no_attack():
    assert NoiseOptions().epsilon == DAAOptions().epsilon == DEFAULT_EPSILON
    cfg = config.compose(["method=noise", "trainer=smoke", *TINY_WORLD])
    assert cfg.method.aligner.name == "dtda.noise" and cfg.method.clean_ce_weight == config.compose(
        ["method=daa"]).method.clean_ce_weight  # the same clean/perturbed CE weighting as DAA
    torch.manual_seed(0)
    ctx = Context(cfg=cfg, domains=list(DOMAINS))
    method = ctx.build_method()
    assert len(method.teachers) == 0 and isinstance(method.aligner, RandomNoise)
    batch = _batch(cfg)
    method.train()
    out, losses = method.aligner(batch, method.student)
    assert losses == {}
    x, xn = batch["image"], out["image"]
    free = (x > DEFAULT_EPSILON) & (x < 1 - DEFAULT_EPSILON)  # not clipped at 0 or 1
    d = (xn - x)[free].abs()
    assert float((d - DEFAULT_EPSILON).abs().max()) < 1e-6  # every free pixel moved by exactly +-epsilon
    signs = (xn - x)[free].sign()
    assert 0.45 < float((signs > 0).float().mean()) < 0.55  # random signs, no direction
    assert {"ce", "ce_clean"} == set(method.training_step(batch))
    method.eval()
    out, losses = method.aligner(batch, method.student)
    assert out is batch and losses == {}


@pytest.fixture(scope="module")
def tiny_teachers(module_tmp):
    cache = module_tmp("teachers-cache")
    pretrain(TINY_PRETRAIN, cache_dir=cache, progress=False)
    dirs = teacher_dirs(TINY_PRETRAIN, cache)
    return [f"method.teachers.{r}.weights=local-dir:{dirs[r]}" for r in ("perceptual", "generative")], dirs


def _build(name, overrides, seed=0):
    cfg = config.compose([f"method={name}", "trainer=smoke", *TINY_WORLD, *overrides])
    torch.manual_seed(seed)
    ctx = Context(cfg=cfg, domains=["M", "C"])
    return ctx.build_method(), ctx


def _identity(ctx):
    comps = {**ctx.components, "method": {"name": "m", "version": 1}, "dataset": {"name": "synthetic", "version": 1},
             "protocol": {"name": "MICO", "version": 1}}
    return identity_of(comps, "f" * 16, "cpu-fp32", ("last", None), "0" * 12)


def test_random_teachers_are_the_same_architecture_with_seeded_random_weights(tiny_teachers):
    overrides, dirs = tiny_teachers
    loaded, ctx_l = _build("dtda", overrides)
    rand, ctx_r = _build("dtda-random-teachers", overrides)
    rand_again, ctx_again = _build("dtda-random-teachers", overrides, seed=7)  # another training seed
    other, ctx_o = _build("dtda-random-teachers", [*overrides, "method.teachers.perceptual.init_seed=1",
                                                   "method.teachers.generative.init_seed=1"])
    for role in ("perceptual", "generative"):
        a, b = loaded.teachers[role].state_dict(), rand.teachers[role].state_dict()
        assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)  # same architecture
        weights = [k for k in a if k.endswith("weight") and a[k].ndim > 1]
        assert weights and all(not torch.equal(a[k], b[k]) for k in weights)  # none of the loaded weights kept
        assert not any(p.requires_grad for p in rand.teachers[role].parameters())  # still frozen
        c = rand_again.teachers[role].state_dict()
        assert all(torch.equal(b[k], c[k]) for k in b)  # the init seed, not the training seed, decides
    recorded = {t["kind"]: t["weights"] for t in ctx_r.components["teachers"]}
    for role in ("perceptual", "generative"):
        w = recorded[role]
        assert w["uri"] == "random-init:seed=0" and w["random"] is True and w["init_seed"] == 0
        f = dirs[role] / "model.safetensors"
        assert w["architecture_from"] == {"uri": f"local-dir:{dirs[role]}",
                                          "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
        assert w["sha256"] != hashlib.sha256(f.read_bytes()).hexdigest()
    again = {t["kind"]: t["weights"]["sha256"] for t in ctx_again.components["teachers"]}
    assert again == {k: v["sha256"] for k, v in recorded.items()}
    assert all(t["weights"]["uri"] == "random-init:seed=1" for t in ctx_o.components["teachers"])
    assert {t["weights"]["sha256"] for t in ctx_o.components["teachers"]}.isdisjoint(again.values())
    # the run key differs from dtda's in the teachers too (not only the method name)
    assert _identity(ctx_r)["teachers"] != _identity(ctx_l)["teachers"]
    assert _identity(ctx_r)["teachers"] == _identity(ctx_again)["teachers"]


def test_the_controls_are_listed_as_methods(run_cli):
    proc = run_cli("ls", "methods")
    assert proc.returncode == 0, proc.stderr
    names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert {"noise", "dtda-random-teachers", "daa", "dtda", "erm"} <= names
