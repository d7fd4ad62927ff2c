"""Benchmark integrity: nothing named "source" or "val" reads the target.

* Two tasks with the same sources and seed that differ only in the target produce identical
  source-val curves and select the same checkpoint.
* Shuffling (or inverting) the target's labels changes no source-val number, while the
  target numbers do change (so the test would notice a leak).
"""
from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

from fasbench import config, plugins
from fasbench.contract import TINY_WORLD
from fasbench.engine.run import run_protocol

WORLD = [w for w in TINY_WORLD if not w.startswith("data.domains=")] + ["data.domains=MCIO"]


def _cfg(cache, out, protocol, *extra):
    cfg = config.compose(["method=erm", "trainer=smoke", *WORLD, f"data.cache_dir={cache}",
                          "eval.checkpoint=source-val", "eval.bootstrap=50", *extra])
    cfg.protocol = protocol
    cfg.device = "cpu"
    cfg.out = str(out)
    return cfg


def _val_curve(rec):
    return [{k: v for k, v in p.items() if k == "step" or k.startswith(("val/", "loss/"))} for p in rec.curve]


def _target_curve(rec):
    return [{k: v for k, v in p.items() if k.startswith("target/")} for p in rec.curve]


@pytest.fixture(scope="module")
def cache(module_tmp):
    return str(module_tmp("fbcache"))


def test_val_curve_and_selection_do_not_depend_on_the_target(cache, tmp_path):
    to_i = run_protocol(_cfg(cache, tmp_path / "a", "MC->I"), progress=False, echo=lambda *_: None)[0]
    to_o = run_protocol(_cfg(cache, tmp_path / "b", "MC->O"), progress=False, echo=lambda *_: None)[0]
    assert len(to_i.curve) == 2
    assert _val_curve(to_i) == _val_curve(to_o)
    assert to_i.val == to_o.val  # the selected checkpoint's source-val block, CI included
    assert to_i.selection.selected_step == to_o.selection.selected_step
    assert to_i.selection.data == "source-val" and not to_i.selection.uses_target_labels
    assert to_i.selection.metric == "val/EER"
    # ... while the target numbers are of two different domains
    assert _target_curve(to_i) != _target_curve(to_o)


def test_target_labels_change_no_source_val_number(cache, tmp_path, monkeypatch):
    base = run_protocol(_cfg(cache, tmp_path / "a", "MC->I"), progress=False, echo=lambda *_: None)[0]

    registry = plugins.registry("datasets")
    entry = registry.get("synthetic")
    real_build = entry.load()

    def build_with_inverted_target_labels(cfg, progress=True):
        fs = real_build(cfg, progress=progress)
        m = fs.manifest.copy()
        target = (m["domain"] == "I").to_numpy()
        m.loc[target, "label"] = 1 - m.loc[target, "label"]  # every target label wrong
        fs.manifest = m
        return fs

    monkeypatch.setattr(entry, "factory", build_with_inverted_target_labels)
    flipped = run_protocol(_cfg(cache, tmp_path / "b", "MC->I"), progress=False, echo=lambda *_: None)[0]

    assert _val_curve(flipped) == _val_curve(base)
    assert flipped.val == base.val
    assert flipped.selection == base.selection
    # the source-val threshold reaches the target unchanged
    assert (flipped.target["source-val-threshold"].threshold == base.target["source-val-threshold"].threshold
            == base.val.threshold)
    # and the target side did see the inverted labels (so a leak would have shown)
    assert flipped.target["target-eer-threshold"].metrics["AUC"] == pytest.approx(
        100.0 - base.target["target-eer-threshold"].metrics["AUC"])


def test_oracle_selection_is_labelled(cache, tmp_path):
    rec = run_protocol(_cfg(cache, tmp_path, "MC->I", "eval.checkpoint=target-oracle"),
                       progress=False, echo=lambda *_: None)[0]
    assert rec.selection.rule == "target-oracle" and rec.selection.uses_target_labels
    assert rec.selection.data == "target"
    best = min(rec.curve, key=lambda p: p["target/HTER@target-eer-threshold"])
    assert rec.selection.selected_step == best["step"]


# --------------------------------------------------------------------------- scores kept, rescored


@pytest.fixture(scope="module")
def one_run(cache, module_tmp):
    out = module_tmp("one-run")
    rec = run_protocol(_cfg(cache, out, "MC->I", "eval.checkpoint=last", "eval.bootstrap=200"),
                       progress=False, echo=lambda *_: None)[0]
    return rec, out / "MC_to_I" / "erm" / "MC_to_I" / "seed0"


def test_score_run_dir_reproduces_the_record_exactly(one_run, run_cli):
    rec, rdir = one_run
    proc = run_cli("score", rdir, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["reproduced"] is True and out["differences"] == []
    assert out["target"]["source-val-threshold"]["metrics"] == rec.target["source-val-threshold"].metrics
    assert out["val"]["ci"] == rec.val.ci  # the bootstrap too: same seed, same resamples
    table = run_cli("score", rdir / "record.json")
    assert table.returncode == 0 and "reproduces every number of" in table.stdout
    assert "target, source-val-threshold" in table.stdout and "val (source data)" in table.stdout


def test_score_run_dir_refuses_changed_scores_and_reports_changed_records(one_run, run_cli, one_line_error, tmp_path):
    _, rdir = one_run
    copy = tmp_path / "run"
    shutil.copytree(rdir, copy, ignore=shutil.ignore_patterns("checkpoint"))
    blob = gzip.decompress((copy / "scores.csv.gz").read_bytes()).decode()
    (copy / "scores.csv.gz").write_bytes(gzip.compress(blob.replace(",0.", ",0.1", 1).encode()))
    line = one_line_error(run_cli("score", copy))
    assert "scores.csv.gz: sha256" in line and "does not match the record" in line

    shutil.copyfile(rdir / "scores.csv.gz", copy / "scores.csv.gz")
    rec = json.loads((copy / "record.json").read_text())
    rec["target"]["source-val-threshold"]["metrics"]["HTER"] -= 1.0  # a hand-edited number
    (copy / "record.json").write_text(json.dumps(rec))
    proc = run_cli("score", copy)
    assert proc.returncode == 1 and "does NOT reproduce" in proc.stdout
    assert "target.source-val-threshold.metrics.HTER" in proc.stdout


def test_resume_refuses_a_checkpoint_of_another_component_version(cache, tmp_path, monkeypatch):
    from fasbench.errors import FasbenchError

    cfg = _cfg(cache, tmp_path, "MC->I", "eval.checkpoint=last")
    run_protocol(cfg, progress=False, echo=lambda *_: None)
    entry = plugins.registry("methods").get("erm")
    monkeypatch.setattr(entry, "version", entry.version + 1)
    with pytest.raises(FasbenchError, match=r"record\.json belongs to another run \(method: erm@1 -> erm@2"):
        run_protocol(_cfg(cache, tmp_path, "MC->I", "eval.checkpoint=last"), resume=True, progress=False,
                     echo=lambda *_: None)


def test_published_record_schema_is_current():
    """docs/record.schema.json is the JSON Schema of RunRecord (regenerate it with the command in
    docs/evaluation.md after changing the record type)."""
    from pathlib import Path

    from fasbench.records import json_schema

    published = json.loads((Path(__file__).resolve().parents[1] / "docs" / "record.schema.json").read_text())
    assert published == json.loads(json.dumps(json_schema()))


def test_run_cli_json_and_table_name_their_data(run_cli, tmp_path, one_line_error):
    args = ["run", "erm", "--protocol", "MC->I", "--no-progress", "--out", tmp_path, *TINY_WORLD, "trainer=smoke",
            "eval.bootstrap=50"]
    proc = run_cli(*args, "--json", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (out,) = json.loads(proc.stdout)
    assert out["task"] == "MC->I" and out["val"]["data"] == "source-val"
    assert set(out["target"]) == {"source-val-threshold", "target-eer-threshold"}
    assert out["target"]["source-val-threshold"]["threshold"] == out["val"]["threshold"]
    table = run_cli(*args, "--resume", timeout=300)
    assert table.returncode == 0 and "complete, kept" in table.stdout
    assert "val EER% (source data)" in table.stdout and "target HTER% @source-val thr [95% CI]" in table.stdout
    line = one_line_error(run_cli(*args, "eval.metrics=[HTRE,AUC]"))
    assert "unknown metric 'HTRE'; did you mean 'HTER'" in line


def test_evaluation_runs_in_float32_even_inside_autocast(cache):
    """Training may run under autocast (bfloat16 on CUDA); scoring never does, so scores do not
    tie through bfloat16 rounding. Checked on the CPU with a bfloat16 autocast around scoring."""
    import torch

    from fasbench.api import Context
    from fasbench.data.loader import FrameDataset, Preprocess
    from fasbench.engine.scoring import score_rows

    cfg = _cfg(cache, "unused", "MC->I")
    frames = plugins.registry("datasets").get("synthetic").build(cfg.data, progress=False)
    torch.manual_seed(0)
    method = Context(cfg=cfg, domains=["M", "C"]).build_method()
    rows = frames.select(["I"], ["train", "dev", "test"])
    ds, pre, cpu = FrameDataset(frames, {"M": 0, "C": 1}), Preprocess(40), torch.device("cpu")
    plain = score_rows(method, ds, frames, rows, pre, cpu, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = score_rows(method, ds, frames, rows, pre, cpu, 16)
        with torch.no_grad():
            rounded = method.predict(pre(ds.__getitems__(rows[:16].tolist())["image"], cpu, train=False))
    assert np.array_equal(plain.scores, inside.scores)
    assert len(np.unique(plain.scores)) == len(plain.scores)  # no ties among float32 scores
    assert not np.array_equal(rounded.float().numpy(), plain.scores[:16])  # bfloat16 would have differed
