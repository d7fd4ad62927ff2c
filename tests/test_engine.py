"""The harness loop on a tiny synthetic world: records, determinism, resume, selection."""
from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pytest
import torch

from fasbench import config, plugins
from fasbench.contract import TINY_WORLD
from fasbench.data.loader import FrameDataset, Preprocess
from fasbench.data.sampler import BalancedBatchSampler
from fasbench.engine.run import run_protocol
from fasbench.errors import FasbenchError
from fasbench.records import SCHEMA, json_schema, read_record, run_key


@pytest.fixture(scope="module")
def cache(module_tmp):
    return str(module_tmp("fbcache"))


def make_cfg(cache, out, *extra):
    cfg = config.compose(["method=erm", "trainer=smoke", *TINY_WORLD, f"data.cache_dir={cache}", *extra])
    cfg.protocol = "MC->I"
    cfg.device = "cpu"
    cfg.out = str(out)
    return cfg


def test_run_writes_complete_record(cache, tmp_path):
    cfg = make_cfg(cache, tmp_path)
    (rec,) = run_protocol(cfg, progress=False, echo=lambda *_: None)
    path = tmp_path / "MC_to_I" / "erm" / "MC_to_I" / "seed0" / "record.json"
    on_disk = json.loads(path.read_text())
    assert read_record(path) == rec
    assert on_disk["schema"] == SCHEMA
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(on_disk, json_schema())
    assert on_disk["method"] == "erm" and on_disk["protocol"] == "MC->I"
    assert on_disk["task"]["name"] == "MC->I" and on_disk["task"]["sources"] == ["M", "C"]
    assert on_disk["task"]["target"] == "I"
    names = ["HTER", "EER", "AUC", "TPR@FPR=1%", "TPR@FPR=0.1%", "APCER", "BPCER", "ACER"]
    assert on_disk["metric_names"] == names
    blocks = {"val": on_disk["val"], **on_disk["target"]}
    assert list(on_disk["target"]) == ["source-val-threshold", "target-eer-threshold"]
    for where, block in blocks.items():
        for key in names:
            assert 0.0 <= block["metrics"][key] <= 100.0, (where, key)
            lo, hi = block["ci"][key]
            assert lo <= hi
    # each number says what data it was computed on and where its threshold came from
    assert (on_disk["val"]["data"], on_disk["val"]["threshold_from"]) == ("source-val", "source-val")
    sv, te = on_disk["target"]["source-val-threshold"], on_disk["target"]["target-eer-threshold"]
    assert (sv["data"], sv["threshold_from"]) == ("target", "source-val")
    assert (te["data"], te["threshold_from"]) == ("target", "target")
    assert sv["threshold"] == on_disk["val"]["threshold"]
    assert sv["ci_method"]["threshold"] == "fixed" and te["ci_method"]["threshold"] == "re-chosen in every resample"
    # counts: the source-val split (M, C dev subjects) and the whole of I, video level
    assert on_disk["val"]["n_videos"] == 2 * 2 * 3  # 2 sources x 2 dev subjects x 3 videos
    assert sv["n_videos"] == on_disk["data"]["frames"]["target"] // 2  # 2 frames per video
    assert on_disk["precision"] == "cpu-fp32"
    assert on_disk["selection"] == {"rule": "last", "metric": None, "data": "none", "uses_target_labels": False,
                                    "selected_step": 4, "candidates": [2, 4]}
    assert on_disk["versions"]["plugins"]["fasbench-baselines"]
    assert on_disk["versions"]["torch"] == torch.__version__
    assert on_disk["components"]["method"] == {"name": "erm", "version": 1, "plugin": "baselines"}
    assert on_disk["components"]["student"]["name"] == "timm/resnet18"
    assert on_disk["data"]["dataset"] == "synthetic" and len(on_disk["data"]["fingerprint"]) == 16
    # target = every split of I (SSDG convention); sources train on M, C train splits only
    assert on_disk["data"]["splits"]["target"] == ["train", "dev", "test"]
    assert on_disk["timings"]["steps"] == 4 and on_disk["timings"]["train_s"] > 0
    assert [p["step"] for p in on_disk["curve"]] == [2, 4]
    assert set(on_disk["curve"][0]) == {"step", "loss/ce", "val/EER", "val/AUC", "val/HTER",
                                        "target/HTER@source-val-threshold", "target/HTER@target-eer-threshold",
                                        "target/AUC"}
    assert on_disk["config"]["trainer"]["max_steps"] == 4 and on_disk["seed"] == 0
    # the scores beside the record: one row per evaluated frame, named by its file and sha256
    blob = (path.parent / "scores.csv.gz").read_bytes()
    assert on_disk["scores"]["sha256"] == hashlib.sha256(blob).hexdigest()
    lines = gzip.decompress(blob).decode().splitlines()
    assert lines[0] == "split,video,frame,label,attack,score"
    frames = on_disk["data"]["frames"]
    assert len(lines) - 1 == on_disk["scores"]["rows"] == frames["source_val"] + frames["target"]
    assert {ln.split(",")[0] for ln in lines[1:]} == {"val", "target"}


def test_same_seed_is_deterministic_other_seed_differs(cache, tmp_path):
    a = run_protocol(make_cfg(cache, tmp_path / "a"), progress=False, echo=lambda *_: None)[0]
    b = run_protocol(make_cfg(cache, tmp_path / "b"), progress=False, echo=lambda *_: None)[0]
    c = run_protocol(make_cfg(cache, tmp_path / "c"), seeds=[1], progress=False, echo=lambda *_: None)[0]
    assert (a.val, a.target) == (b.val, b.target)
    assert a.curve == b.curve
    assert c.seed == 1 and c.curve != a.curve
    assert run_key(a) == run_key(c)  # seeds of one setting share a leaderboard row


def test_resume_after_interruption_matches_uninterrupted_run(cache, tmp_path, monkeypatch):
    full = run_protocol(make_cfg(cache, tmp_path / "full"), progress=False, echo=lambda *_: None)[0]

    from fasbench_baselines.erm import ERM

    original = ERM.training_step
    calls = {"n": 0}

    def crash_on_third(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(ERM, "training_step", crash_on_third)
    cfg = make_cfg(cache, tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt, match="interrupted at step 2; rerun with --resume to continue from the checkpoint of step 2"):
        run_protocol(cfg, progress=False, echo=lambda *_: None)
    ckpt = tmp_path / "resumed" / "MC_to_I" / "erm" / "MC_to_I" / "seed0" / "checkpoint"
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-00000002"]
    assert sorted(p.name for p in (ckpt / "step-00000002").iterdir()) == ["manifest.json", "model.safetensors", "trainer.pt"]
    assert not (ckpt.parent / "record.json").exists()
    monkeypatch.setattr(ERM, "training_step", original)

    # the interrupted run is of another configuration than this one: never continued from,
    # never silently discarded
    for resume in (True, False):
        with pytest.raises(FasbenchError, match=r"checkpoint .* another configuration .*optim\.lr: 0\.001 -> 0\.0003"):
            run_protocol(make_cfg(cache, tmp_path / "resumed", "optim.lr=3e-4"), resume=resume, progress=False,
                         echo=lambda *_: None)

    resumed = run_protocol(make_cfg(cache, tmp_path / "resumed"), resume=True, progress=False, echo=lambda *_: None)[0]
    assert resumed.timings["resumed_from_step"] == 2
    assert resumed.timings["steps_this_session"] == 2
    assert (resumed.val, resumed.target) == (full.val, full.target)  # bit-identical continuation

    # a complete record is kept as is on --resume
    again = run_protocol(make_cfg(cache, tmp_path / "resumed"), resume=True, progress=False, echo=lambda *_: None)[0]
    assert again.created == resumed.created
    # ... but only for the same result-relevant config (the cache location is not one)
    again = run_protocol(make_cfg(cache, tmp_path / "resumed", f"data.cache_dir={cache}/."), resume=True,
                         progress=False, echo=lambda *_: None)[0]
    assert again.created == resumed.created
    for resume in (True, False):
        with pytest.raises(FasbenchError, match=r"record\.json belongs to a run of another configuration.*trainer\.max_steps: 4 -> 5"):
            run_protocol(make_cfg(cache, tmp_path / "resumed", "trainer.max_steps=5"), resume=resume,
                         progress=False, echo=lambda *_: None)


def test_source_val_checkpoint_selection_is_recorded(cache, tmp_path):
    cfg = make_cfg(cache, tmp_path, "eval.checkpoint=source-val", "trainer.max_steps=6")
    rec = run_protocol(cfg, progress=False, echo=lambda *_: None)[0]
    assert rec.selection.rule == "source-val" and rec.selection.metric == "val/EER"
    assert rec.selection.data == "source-val" and not rec.selection.uses_target_labels
    evs = {p["step"]: p["val/EER"] for p in rec.curve}
    best = min(evs, key=lambda s: (evs[s], s))  # lowest source-val EER, earliest on ties
    assert rec.selection.selected_step == best
    assert rec.selection.candidates == [2, 4, 6]
    # the reported val block is the selected checkpoint's
    assert rec.val.metrics["EER"] == evs[best]


def test_selection_on_a_higher_is_better_metric(cache, tmp_path):
    cfg = make_cfg(cache, tmp_path, "eval.checkpoint=source-val", "eval.selection_metric=AUC", "trainer.max_steps=6")
    rec = run_protocol(cfg, progress=False, echo=lambda *_: None)[0]
    aucs = {p["step"]: p["val/AUC"] for p in rec.curve}
    best = min(aucs, key=lambda s: (-aucs[s], s))
    assert rec.selection.metric == "val/AUC" and rec.selection.selected_step == best


def test_bad_inputs_are_clear_errors(cache, tmp_path):
    cfg = make_cfg(cache, tmp_path)
    cfg.protocol = "MC->O"  # the tiny world has no domain O
    with pytest.raises(FasbenchError, match=r"domain\(s\) \['O'\] are not in the dataset"):
        run_protocol(cfg, progress=False, echo=lambda *_: None)
    with pytest.raises(FasbenchError, match="eval.checkpoint='best': expected 'last' | 'source-val'"):
        make_cfg(cache, tmp_path, "eval.checkpoint=best")
    cfg = make_cfg(cache, tmp_path)
    cfg.eval.checkpoint = "best"  # changed after composing: the runner checks again
    with pytest.raises(FasbenchError, match="eval.checkpoint='best'"):
        run_protocol(cfg, progress=False, echo=lambda *_: None)
    cfg = make_cfg(cache, tmp_path, "trainer.batch_size=3")
    with pytest.raises(FasbenchError, match="batch_size=3 is smaller than the 4"):
        run_protocol(cfg, progress=False, echo=lambda *_: None)
    with pytest.raises(FasbenchError, match=r"unknown metric 'HTRE'; did you mean 'HTER'"):
        run_protocol(make_cfg(cache, tmp_path, "eval.metrics=[HTRE,AUC]"), progress=False, echo=lambda *_: None)
    with pytest.raises(FasbenchError, match=r"unknown metric 'EERR'"):
        run_protocol(make_cfg(cache, tmp_path, "eval.selection_metric=EERR"), progress=False, echo=lambda *_: None)
    with pytest.raises(FasbenchError, match=r"^trainer\.max_steps='abc': expected int"):
        make_cfg(cache, tmp_path, "trainer.max_steps=abc")


def test_balanced_sampler_and_stateless_resume():
    rng = np.random.default_rng(0)
    domains = rng.choice(["M", "C", "I"], size=300)
    labels = rng.integers(0, 2, size=300)
    rows = np.arange(300)
    s = BalancedBatchSampler(rows, domains, labels, batch_size=30, seed=7, max_steps=5)
    batches = list(s)
    assert len(batches) == 5
    for b in batches:
        keys = [(domains[i], labels[i]) for i in b]
        counts = {k: keys.count(k) for k in set(keys)}
        assert len(counts) == 6 and set(counts.values()) == {5}
        assert len(set(b)) == 30  # without replacement within a batch
    resumed = list(BalancedBatchSampler(rows, domains, labels, 30, seed=7, start_step=3, max_steps=5))
    assert resumed == batches[3:]


def test_preprocess_shapes_and_pixel_space():
    """Batches are RGB in [0, 1]: the student normalises its own input (docs/architecture.md)."""
    imgs = torch.full((4, 48, 48, 3), 255, dtype=torch.uint8)
    pre = Preprocess(crop_size=40)
    x = pre(imgs, torch.device("cpu"), train=True, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 40, 40) and torch.equal(x, torch.ones_like(x))
    ramp = torch.arange(48, dtype=torch.uint8).view(1, 1, 48, 1).expand(2, 48, 48, 3).contiguous()
    e1 = pre(ramp, torch.device("cpu"), train=False)
    e2 = pre(ramp, torch.device("cpu"), train=False)
    assert torch.equal(e1, e2)
    assert float(e1[0, 0, 0, 0]) == pytest.approx(4 / 255)  # centre crop starts at 4


def test_frame_dataset_gathers_batches(cache):
    cfg = make_cfg(cache, "unused")
    frames = plugins.registry("datasets").get("synthetic").build(cfg.data, progress=False)
    ds = FrameDataset(frames, {"M": 0, "C": 1})
    b = ds.__getitems__([5, 1, 3])
    assert b["image"].dtype == torch.uint8 and b["image"].shape == (3, 48, 48, 3)
    assert torch.equal(b["image"][1], torch.from_numpy(np.array(frames.images[1])))
    assert b["label"].tolist() == frames.manifest["label"].iloc[[5, 1, 3]].tolist()


def test_dataloader_workers_give_the_same_run(cache, tmp_path):
    a = run_protocol(make_cfg(cache, tmp_path / "w0"), progress=False, echo=lambda *_: None)[0]
    b = run_protocol(make_cfg(cache, tmp_path / "w1", "trainer.num_workers=1"), progress=False, echo=lambda *_: None)[0]
    assert (a.val, a.target) == (b.val, b.target)


def test_a_record_names_the_commit_its_process_started_with(cache, tmp_path, monkeypatch):
    """A sweep is one long process: a commit made while it runs must not be credited to the
    runs that follow, whose code (imported at the start) predates it."""
    from fasbench import records
    from fasbench.engine import identity

    seen = iter([{"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": True}])
    monkeypatch.setattr(identity, "_PROCESS_GIT", None)
    monkeypatch.setattr(records, "git_info", lambda path=".": next(seen))
    assert identity.process_git() == {"commit": "a" * 40, "dirty": False}  # the start (fasbench run asks first)
    # ... a commit lands here; the run that follows still names the start
    (rec,) = run_protocol(make_cfg(cache, tmp_path / "out", "trainer.max_steps=2", "trainer.eval_every=0"),
                          progress=False, echo=lambda *_: None)
    assert rec.git.commit == "a" * 40 and rec.git.dirty is False
    assert identity.code_identity()["commit"] == "a" * 40
