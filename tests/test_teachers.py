"""The synthetic-world teachers know faces but not the benchmark: they are pretrained on the
teacher domain T only (its own camera, light and people; no protocol lists it), adding T left
the benchmark's frames as they were, and their quality is measured (identification top-1 on
new identities, reconstruction PSNR)."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest

from fasbench import plugins
from fasbench.data import synthetic
from fasbench.data.frames import images_digest
from fasbench.data.synthetic import BENCHMARK_DOMAINS, TEACHER_DOMAINS, SyntheticConfig, generate
from fasbench.errors import FasbenchError
from fasbench_dtda import pretrain as pt

#: sha256 of the frames of the default world's first 3 subjects per domain (all defaults of
#: SyntheticConfig but ``subjects=3``: seed 0, MCIO, 128 px), made by the generator before the
#: teacher domain existed (commit eedfdbf). A subject's frames do not depend on how many subjects
#: the world has, so these are frames of the world behind the committed records (fingerprint
#: b0e5664484440d44). Bit-identical on the same platform (CPU type, numpy, Pillow), as every
#: synthetic world.
FIRST_SUBJECTS_SHA256 = "f55a506bace17b410515999126d402735623ec8db99eacbd5429079500085314"

#: Small enough for a test: 40 identities at 32 px (10 held out), one frame per video, one thread.
SMALL = pt.PretrainConfig(subjects=40, heldout_subjects=10, live_videos=3, frames_per_video=1, image_size=32,
                          arc_steps=80, arc_batch=32, vq_steps=60, vq_batch=16, vq_width=8, threads=1)


# ----------------------------------------------------------------------- the teacher domain
def test_the_teacher_domain_is_in_no_registered_protocol():
    reg = plugins.registry("protocols")
    seen = set()
    for name in reg.names():
        proto = reg.get(name).load()()
        for task in proto.tasks:
            domains = {*task.sources, task.target}
            seen |= domains
            assert not domains & set(TEACHER_DOMAINS), (name, task.name)
    assert set(BENCHMARK_DOMAINS) <= seen  # the check looked at real protocols
    assert set(TEACHER_DOMAINS) <= set(synthetic.KNOWN_DOMAINS)  # ... while T is a domain of the world


def _identity_vector(seed: int, domain: str, subject: int) -> np.ndarray:
    idt = synthetic._identity(synthetic._rng(seed, domain, subject, synthetic._KIND_CODE["identity"]))
    return np.concatenate([np.atleast_1d(np.asarray(v, dtype=np.float64)).ravel() for _, v in sorted(idt.items())])


def test_the_teacher_domain_has_people_of_its_own():
    """Every face parameter of a T subject comes from its own stream: none of the 200 subjects per
    benchmark domain of the default world (seed 0) nor of the teachers' world seed is a T subject."""
    cfg = pt.PretrainConfig()
    teachers = np.stack([_identity_vector(cfg.world_seed, "T", s) for s in range(cfg.subjects)])
    for seed in (0, cfg.world_seed):
        bench = np.stack([_identity_vector(seed, d, s) for d in BENCHMARK_DOMAINS for s in range(200)])
        dist = np.abs(teachers[:, None, :] - bench[None, :, :]).sum(-1)
        assert dist.min() > 0.05, seed  # no benchmark subject re-rendered in T
    assert len(np.unique(teachers.round(6), axis=0)) == cfg.subjects  # and T's people are distinct


def test_adding_the_teacher_domain_left_the_benchmark_frames_unchanged():
    first = generate(SyntheticConfig(subjects=3))  # the default world's first 3 subjects per domain
    assert images_digest(first.images) == FIRST_SUBJECTS_SHA256
    # a world that also renders T gives the same benchmark frames (domains never share draws)
    small = dict(subjects=3, live_videos=1, print_videos=1, replay_videos=0, frames_per_video=1, image_size=48)
    plain = generate(SyntheticConfig(**small))
    with_t = generate(SyntheticConfig(**small, domains="TMCIO"))
    rows = with_t.manifest.index[with_t.manifest["domain"] != "T"].to_numpy()
    assert np.array_equal(with_t.images[rows], plain.images)
    assert set(with_t.manifest["domain"]) == {"T", *BENCHMARK_DOMAINS}


# ------------------------------------------------------------------ what pretraining receives
def test_no_benchmark_frame_reaches_teacher_pretraining(tmp_path, monkeypatch):
    seen = {}

    def spy(role):
        def fake(cfg, corpus, folder, progress):
            seen[role] = corpus
            return {}
        return fake

    monkeypatch.setattr(pt, "_pretrain_arcface", spy("perceptual"))
    monkeypatch.setattr(pt, "_pretrain_vq", spy("generative"))
    cfg = pt.PretrainConfig(subjects=6, live_videos=2, frames_per_video=2, image_size=32)
    pt.pretrain(cfg, cache_dir=tmp_path, progress=False)
    assert set(seen) == {"perceptual", "generative"}
    t_world = generate(pt.corpus_world(cfg))
    for role, corpus in seen.items():
        m = corpus.manifest
        assert set(m["domain"]) == {"T"}, role
        assert m["subject"].str.startswith("T-s").all() and set(m["attack"]) == {"none"} and set(m["label"]) == {1}
        assert len(m) == 6 * 2 * 2 and corpus.images.shape == (len(m), 37, 37, 3)  # frames of 37 px, crops of 32
        assert np.array_equal(np.asarray(corpus.images), t_world.images)  # exactly the T world's frames
        trained, held = set(m["subject"][corpus.train]), set(m["subject"][corpus.heldout])
        assert held == {"T-s006"} and not trained & held  # a fifth of the people, never trained on
        assert (corpus.labels[corpus.heldout] == -1).all() and corpus.n_ids == 5
        assert sorted(set(corpus.labels[corpus.train])) == list(range(5))


@pytest.mark.parametrize("domains", ["M", "TO", "MCIO"])
def test_pretraining_refuses_a_benchmark_domain(domains, tmp_path):
    with pytest.raises(FasbenchError, match=r"domains='.*'; the synthetic teachers are pretrained on the teacher "
                                            r"domain\(s\) T only"):
        pt.pretrain(pt.PretrainConfig(domains=domains, subjects=4), cache_dir=tmp_path, progress=False)
    assert not (tmp_path / "synthetic").exists()  # refused before any frame was made


def test_the_default_recipe_feeds_the_demo_crop():
    from fasbench import config

    cfg = pt.PretrainConfig()
    demo = config.compose(["method=dtda"])  # the demo's data config: 128-px frames, 112-px crops
    assert (cfg.frame_side, cfg.image_size) == (int(demo.data.image_size), int(demo.data.crop_size)) == (128, 112)
    assert cfg.domains == "T" and cfg.heldout == 32 and pt.PRETRAIN_VERSION == 3


# ------------------------------------------------------------------------------------ quality
def test_identification_is_nearest_gallery_identity():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    subjects = np.repeat(["a", "b", "c", "d"], 6)
    videos = np.array([f"{s}-v{i // 3}" for s, i in zip(subjects, list(range(6)) * 4)])
    exact = pt.identification(np.repeat(centres, 6, axis=0) + 0.01 * rng.normal(size=(24, 16)), subjects, videos)
    assert exact == {"top1": 1.0, "identities": 4, "probes": 12, "chance": 0.25}
    noise = pt.identification(rng.normal(size=(24, 16)), subjects, videos)
    assert noise["probes"] == 12 and noise["top1"] < 0.75


@pytest.fixture(scope="module")
def small_teachers(module_tmp):
    cache = module_tmp("teachers-quality")
    metrics = pt.pretrain(SMALL, cache_dir=cache, progress=False)
    return cache, metrics


def test_quality_is_measured_on_new_identities_and_on_the_benchmark(small_teachers):
    cache, metrics = small_teachers
    q = pt.teacher_quality(SMALL, cache_dir=cache, benchmark_subjects=6, progress=False)
    td = q["teacher_domain"]
    assert td["domains"] == "T" and td["trained_identities"] == 30
    ident = td["perceptual"]
    assert ident["identities"] == 10 and ident["probes"] == 10 * 2 and ident["chance"] == 0.1
    assert ident["top1"] >= ident["chance"] + 0.2, ident  # well above chance, on people it never saw
    assert ident["top1"] == metrics["perceptual"]["heldout_top1"]  # the saved weights give what pretraining measured
    psnr = td["generative"]["psnr_db"]
    assert math.isfinite(psnr) and psnr > 10.0  # the stated floor: 10 dB
    assert (psnr, td["generative"]["images"]) == (metrics["generative"]["heldout_psnr_db"],
                                                  metrics["generative"]["heldout_images"])
    assert metrics["generative"]["heldout_psnr_db"] > metrics["generative"]["untrained_psnr_db"] + 1  # it learnt
    bench = q["benchmark_domains"]
    for d in BENCHMARK_DOMAINS:
        assert bench[d]["perceptual"]["identities"] == 6 and bench[d]["perceptual"]["probes"] == 6
        assert 0 <= bench[d]["perceptual"]["top1"] <= 1 and math.isfinite(bench[d]["generative"]["psnr_db"])
    assert q["input_size"] == 32 and q["frame_size"] == 37


def test_quality_command_refuses_bad_input():
    from fasbench_dtda.commands import _quality

    args = argparse.Namespace(data="real", cache_dir=None, benchmark_subjects=32, no_progress=True)
    with pytest.raises(FasbenchError, match="only the synthetic world has stand-in teachers"):
        _quality(args)
    args.data, args.benchmark_subjects = "synthetic", 1
    with pytest.raises(FasbenchError, match="--benchmark-subjects 1: needs at least 2"):
        _quality(args)


# --------------------------------------------------------------------------- cost knobs
@pytest.fixture(scope="module")
def tiny_overrides(module_tmp) -> list[str]:
    cfg = pt.PretrainConfig(subjects=4, live_videos=2, frames_per_video=2, image_size=32, arc_steps=2, arc_batch=8,
                            vq_steps=2, vq_batch=4, vq_width=8, threads=1)
    cache = module_tmp("tiny-teachers")
    pt.pretrain(cfg, cache_dir=cache, progress=False)
    dirs = pt.teacher_dirs(cfg, cache)
    return [f"method.teachers.{r}.weights=local-dir:{d}" for r, d in dirs.items()]


def _dtda(overrides):
    import torch

    from fasbench import config
    from fasbench.api import Context
    from fasbench.contract import TINY_WORLD

    cfg = config.compose(["method=dtda-no-daa", "trainer=smoke", *TINY_WORLD, *overrides])
    torch.manual_seed(0)
    return Context(cfg=cfg, domains=["M", "C"]).build_method()


def test_teacher_every_runs_the_teachers_on_every_kth_step_and_resumes(tiny_overrides):
    import torch

    method = _dtda([*tiny_overrides, "method.teacher_every=3"])
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(4, 3, 40, 40, generator=g), "label": torch.tensor([0, 1, 0, 1]),
             "domain": torch.tensor([0, 0, 1, 1])}
    method.train()
    calls = []
    for role, teacher in method.teachers.items():
        teacher.register_forward_hook(lambda *a, r=role: calls.append(r))
    kd = [sorted(k for k in method.training_step(batch) if k.startswith("kd_")) for _ in range(4)]
    assert kd == [["kd_generative", "kd_perceptual"], [], [], ["kd_generative", "kd_perceptual"]]
    state = method.state_dict()
    assert int(state["teacher_step"]) == 4 and not any(k.startswith("teachers.") for k in state)
    again = _dtda([*tiny_overrides, "method.teacher_every=3"])
    again.load_state_dict(state)
    again.train()
    assert [sorted(k for k in again.training_step(batch) if k.startswith("kd_")) for _ in range(3)] == [[], [], kd[0]]
    every = _dtda(tiny_overrides)  # the default: every step, and no step counter in the checkpoint
    assert every.teacher_every == 1 and "teacher_step" not in every.state_dict()


def test_generative_tap_on_an_early_stage_costs_less_inside_dtda(tiny_overrides):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(2, 3, 40, 40)
    flops = {}
    for tap in ("down0", "mid"):
        teacher = _dtda([*tiny_overrides, f"method.teachers.generative.teacher_feature={tap}",
                         "method.teachers.perceptual.enabled=false"]).teachers["generative"]
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            out = teacher.features(x, names=(tap,))
        flops[tap] = fc.get_total_flops()
        assert list(out) == [tap]
    assert flops["down0"] < 0.5 * flops["mid"]


@pytest.mark.slow
def test_dtda_with_teacher_every_passes_validate(tiny_overrides, tmp_path):
    from fasbench.contract import validate_method

    checks = validate_method("dtda", [*tiny_overrides, "method.teacher_every=2"], out_dir=tmp_path)
    failed = [c for c in checks if not c.ok]
    assert not failed, failed
