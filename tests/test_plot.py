"""``fasbench plot``: the files are valid PNG/SVG, and what each figure draws is what the records,
their scores files and the leaderboard CSV say (read back from the JSON beside each figure and
from the artists of the matplotlib Figure)."""
from __future__ import annotations

import gzip
import io
import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fasbench import cli
from fasbench.errors import FasbenchError
from fasbench.leaderboard import write_leaderboard
from fasbench.plots import draw, plot_records
from fasbench.records import POLICIES, load_records, read_record, run_key_id

ROOT = Path(__file__).resolve().parents[1]
MICO = ROOT / "leaderboard" / "records" / "MICO"
BOARD64 = ROOT / "leaderboard" / "records" / "synthetic-64px" / "MICO"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(module_tmp) -> Path:
    """The committed main-job records (erm and dtda, four MICO tasks, seed 0) in a scratch folder."""
    dst = module_tmp("runs") / "MICO"
    shutil.copytree(MICO, dst)
    return dst


@pytest.fixture(scope="module")
def plotted(runs, module_tmp):
    out = module_tmp("figs")
    index = plot_records(load_records(runs), out, formats=["png"], figures=["roc", "det", "hist", "curves"])
    return out, index


def _valid_png(path: Path) -> tuple[int, int]:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.width > 300 and im.height > 200
        return im.size


def _valid_svg(path: Path) -> None:
    root = ET.fromstring(path.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
    assert len(list(root.iter())) > 50  # drawn content, not an empty canvas


def _video_table(run_dir: Path) -> pd.DataFrame:
    """One row per (split, video) from the scores file, read here independently of fasbench."""
    df = pd.read_csv(io.BytesIO(gzip.decompress((run_dir / "scores.csv.gz").read_bytes())), keep_default_na=False)
    return df.groupby(["split", "video"], sort=False).agg(label=("label", "first"), attack=("attack", "first"),
                                                          score=("score", "mean")).reset_index()


def _by_gid(ax, kind: str) -> dict:
    return {a.get_gid(): a for a in [*ax.lines, *ax.patches] if a.get_gid() and a.get_gid().startswith(kind)}


# --------------------------------------------------------------------------- files


def test_files_are_valid_png_and_json(plotted):
    out, index = plotted
    stems = [*index.protocols["MICO"].values()] + [s for r in index.runs.values() for s in r.values()]
    assert len(stems) == 2 + 8 * 2  # roc, det; hist and curves of 8 runs
    for stem in stems:
        _valid_png(stem.with_name(stem.name + ".png"))
        assert json.loads(stem.with_name(stem.name + ".json").read_text())
    assert sorted(p.name for p in (out / "MICO").iterdir()) == ["det.json", "det.png", "dtda-719a6d74",
                                                                "erm-ff3057a0", "roc.json", "roc.png"]


def test_svg_and_png_of_every_kind_and_equal_inputs_give_equal_files(runs, tmp_path):
    recs = load_records(runs / "erm" / "OCI_to_M")
    a = plot_records(recs, tmp_path / "a")
    b = plot_records(recs, tmp_path / "b", figures=["roc", "hist"])
    assert len(b.files) == 6
    for p in b.files:
        assert p.read_bytes() == (tmp_path / "a" / p.relative_to(tmp_path / "b")).read_bytes(), p
    names = sorted(str(p.relative_to(tmp_path / "a")) for p in a.files)
    stems = ["MICO/det", "MICO/erm-ff3057a0/OCI_to_M-seed0/curves", "MICO/erm-ff3057a0/OCI_to_M-seed0/hist",
             "MICO/leaderboard-source-val-threshold", "MICO/leaderboard-target-eer-threshold", "MICO/roc"]
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("json", "png", "svg"))
    for p in a.files:
        if p.suffix == ".svg":
            _valid_svg(p)
        elif p.suffix == ".png":
            _valid_png(p)


# --------------------------------------------------------------------------- ROC / DET


def _record_point(rec, policy):
    """(FPR, FRR) of a policy from the record's own numbers: BPCER = FRR, HTER = (FAR + FRR) / 2."""
    m = rec.target[policy].metrics
    return (2 * m["HTER"] - m["BPCER"]) / 100.0, m["BPCER"] / 100.0


@pytest.mark.parametrize("name", ["roc", "det"])
def test_operating_points_drawn_are_the_records(plotted, name):
    out, _ = plotted
    data = json.loads((out / "MICO" / f"{name}.json").read_text())
    assert [p["task"] for p in data["panels"]] == ["OCI->M", "OMI->C", "OCM->I", "ICM->O"]  # the leaderboard's order
    fig = draw.draw_operating(data["panels"], det=name == "det")
    seen = 0
    for ax, panel in zip(fig.axes, data["panels"]):
        points = _by_gid(ax, "point:")
        curves = _by_gid(ax, "curve:")
        assert len(curves) == len(panel["curves"]) == 2  # erm and dtda
        for c in panel["curves"]:
            rec = read_record(c["record"])
            assert rec.task.name == panel["task"]
            line = curves[f"curve:{c['record']}"]
            np.testing.assert_array_equal(line.get_xdata(), c["fpr"])
            np.testing.assert_array_equal(line.get_ydata(), c["frr"] if name == "det" else c["tpr"])
            assert set(c["points"]) == set(POLICIES)
            for policy in POLICIES:
                fpr, frr = _record_point(rec, policy)
                pt = points[f"point:{policy}:{c['record']}"]
                x, y = float(pt.get_xdata()[0]), float(pt.get_ydata()[0])
                assert x == pytest.approx(fpr, abs=1e-12)
                assert y == pytest.approx(frr if name == "det" else 1.0 - frr, abs=1e-12)
                assert c["points"][policy]["threshold"] == rec.target[policy].threshold
                seen += 1
    assert seen == 16
    if name == "det":  # normal-deviate axes: 50% at 0, Phi(1) at 1
        ax = fig.axes[0]
        assert ax.get_xscale() == ax.get_yscale() == "function"
        t = ax.xaxis.get_transform()
        assert t.transform(np.array([0.5, 0.8413447460685429])) == pytest.approx([0.0, 1.0], abs=1e-9)


def test_roc_curve_is_the_scores_files_curve(plotted, runs):
    """The drawn curve is the ROC of the per-video target scores (sklearn as the reference)."""
    from sklearn.metrics import roc_curve

    out, _ = plotted
    data = json.loads((out / "MICO" / "roc.json").read_text())
    curve = data["panels"][0]["curves"][0]
    videos = _video_table(Path(curve["record"]).parent)
    tgt = videos[videos["split"] == "target"]
    fpr, tpr, _ = roc_curve(tgt["label"], tgt["score"], drop_intermediate=False)
    assert set(zip(np.round(fpr, 12), np.round(tpr, 12))) == set(zip(np.round(curve["fpr"], 12), np.round(curve["tpr"], 12)))
    assert (curve["n_live"], curve["n_spoof"]) == (int(tgt["label"].sum()), int((tgt["label"] == 0).sum()))


# --------------------------------------------------------------------------- histograms


def test_histogram_counts_are_the_scores_files_videos(plotted):
    _, index = plotted
    checked = 0
    for source, stems in index.runs.items():
        rec = read_record(source)
        data = json.loads(stems["hist"].with_name("hist.json").read_text())
        videos = _video_table(Path(source).parent)
        fig = draw.draw_histograms(data)
        edges = np.asarray(data["edges"])
        for ax, panel in zip(fig.axes, data["panels"]):
            split = panel["split"]
            v = videos[videos["split"] == split]
            cls = np.where(v["label"] == 1, "live", v["attack"])
            expected = {k: int(n) for k, n in zip(*np.unique(cls, return_counts=True))}
            assert panel["n"] == expected
            block = rec.val if split == "val" else rec.target["source-val-threshold"]
            assert panel["n"]["live"] == block.n_live and sum(panel["n"].values()) - block.n_live == block.n_spoof
            assert sum(panel["n"].values()) == block.n_videos
            stairs = _by_gid(ax, "hist:")
            assert set(stairs) == {f"hist:{split}:{k}" for k in expected}
            for k in expected:
                values, drawn_edges, _ = stairs[f"hist:{split}:{k}"].get_data()
                assert values.tolist() == panel["counts"][k]
                np.testing.assert_array_equal(drawn_edges, edges)
                assert values.tolist() == np.histogram(v["score"][cls == k], bins=edges)[0].tolist()
            lines = _by_gid(ax, "thr:")
            want = {"source-val-threshold": rec.val.threshold} if split == "val" else \
                {p: b.threshold for p, b in rec.target.items()}
            assert {g.split(":")[2]: ln.get_xdata()[0] for g, ln in lines.items()} == want
            checked += 1
    assert checked == 16


# --------------------------------------------------------------------------- training curves


def test_training_curves_are_the_record_curve(plotted):
    _, index = plotted
    for source, stems in index.runs.items():
        rec = read_record(source)
        data = json.loads(stems["curves"].with_name("curves.json").read_text())
        fig = draw.draw_curves(data)
        drawn = {}
        for ax in fig.axes:
            drawn.update(_by_gid(ax, "series:"))
            sel = _by_gid(ax, "selected")["selected"]
            assert sel.get_xdata()[0] == rec.selection.selected_step
        keys = {k for p in rec.curve for k in p if k != "step"}
        assert set(drawn) == {f"series:{k}" for k in keys}
        assert any(k.startswith("loss/") for k in keys) and any(k.startswith("val/") for k in keys)
        for key in keys:
            line = drawn[f"series:{key}"]
            assert line.get_xdata().tolist() == [p["step"] for p in rec.curve]
            assert line.get_ydata().tolist() == [p[key] for p in rec.curve]


def test_losses_come_from_the_training_log_when_the_run_keeps_one(runs, tmp_path):
    """A run with a ``log.csv`` (fasbench.engine.logs) gets its losses at every logged step; the
    source-val and target series stay the record's curve."""
    from fasbench.engine.logs import CSVLog

    run = tmp_path / "seed0"
    shutil.copytree(runs / "erm" / "OCI_to_M" / "seed0", run)
    log = CSVLog(run / "log.csv")
    rec = read_record(run / "record.json")
    losses = {step: 1.0 / step for step in range(10, 201, 10)}
    for step, loss in losses.items():
        log.write(step, "train", 0.1 * step, {"loss/ce": loss}, lr=3e-4)
        if step in (100, 200):
            point = next(p for p in rec.curve if p["step"] == step)
            log.write(step, "eval", 0.1 * step, {k: v for k, v in point.items() if k not in ("step", "loss/ce")})
    index = plot_records([rec], tmp_path / "figs", formats=["png"], figures=["curves"])
    data = json.loads(index.runs[rec.source]["curves"].with_name("curves.json").read_text())
    assert data["loss_source"] == "log.csv" and data["loss_steps"] == list(losses)
    fig = draw.draw_curves(data)
    drawn = {}
    for ax in fig.axes:
        drawn.update(_by_gid(ax, "series:"))
    assert drawn["series:loss/ce"].get_xdata().tolist() == list(losses)
    assert drawn["series:loss/ce"].get_ydata().tolist() == list(losses.values())
    assert drawn["series:val/EER"].get_xdata().tolist() == [100, 200]
    assert drawn["series:val/EER"].get_ydata().tolist() == [p["val/EER"] for p in rec.curve]
    assert "every logged step (log.csv)" in fig.axes[0].get_title()


# --------------------------------------------------------------------------- leaderboard chart


def test_leaderboard_chart_bars_are_the_csv_means(tmp_path):
    recs = [r for r in load_records(BOARD64) if r.method in ("erm", "dat", "dtda-generative")]
    write_leaderboard(recs, tmp_path / "lb")
    csv = pd.read_csv(tmp_path / "lb" / "MICO.csv", keep_default_na=False, na_values=[""])
    index = plot_records(recs, tmp_path / "figs", formats=["png"], figures=["leaderboard"])
    charts = {k: v for k, v in index.protocols["MICO"].items() if k.startswith("leaderboard-")}
    assert sorted(charts) == [f"leaderboard-{p}" for p in sorted(POLICIES)]
    bars_checked = 0
    for name, stem in charts.items():
        _valid_png(stem.with_name(stem.name + ".png"))
        data = json.loads(stem.with_name(stem.name + ".json").read_text())
        assert data["policy"] == name.removeprefix("leaderboard-") and data["metric"] == "HTER"
        assert data["tasks"] == ["OCI->M", "OMI->C", "OCM->I", "ICM->O", "Average"]
        rows = csv[csv["policy"] == data["policy"]]
        assert [g["run"] for g in data["groups"]] == rows["run"].tolist()  # the CSV's row order
        fig = draw.draw_chart(data)
        bars = _by_gid(fig.axes[0], "bar:")
        errs = {c.get_gid(): c for c in fig.axes[0].collections if (c.get_gid() or "").startswith("err:")}
        for group in data["groups"]:
            row = rows[rows["run"] == group["run"]].iloc[0]
            assert row["n_seeds"] >= 2
            for bar in group["bars"]:
                mean, std = row[f"{bar['task']} HTER mean"], row[f"{bar['task']} HTER std"]
                drawn = bars[f"bar:{group['run']}:{bar['task']}"].get_height()
                assert drawn == bar["mean"]
                assert drawn == pytest.approx(mean, abs=5.1e-5)  # the CSV has 4 decimals
                assert bar["std"] == pytest.approx(std, abs=5.1e-5)
                err = errs[f"err:{group['run']}:{bar['task']}"]
                (segment,) = err.get_segments()
                assert segment[:, 1].tolist() == pytest.approx([bar["mean"] - bar["std"], bar["mean"] + bar["std"]])
                bars_checked += 1
    assert bars_checked == 2 * 3 * 5


# --------------------------------------------------------------------------- command


def test_cli_default_out_and_listing(runs, tmp_path, capsys):
    dst = tmp_path / "runs"
    shutil.copytree(runs / "erm" / "OCI_to_M", dst / "MICO" / "erm" / "OCI_to_M")
    assert cli.main(["plot", str(dst), "--format", "svg", "--figures", "roc,curves"]) == 0
    out = capsys.readouterr().out
    assert f"1 run record: 2 image file(s) (svg) and their data (.json) under {dst / 'figures'}" in out
    assert f"MICO roc: {dst / 'figures' / 'MICO' / 'roc.svg'}" in out
    rec = read_record(dst / "MICO" / "erm" / "OCI_to_M" / "seed0" / "record.json")
    run_dir = dst / "figures" / "MICO" / f"erm-{run_key_id(rec)}" / "OCI_to_M-seed0"
    assert sorted(p.name for p in run_dir.iterdir()) == ["curves.json", "curves.svg"]
    assert not list((dst / "figures").rglob("*.png"))


@pytest.mark.parametrize("argv, message", [
    (["--format", "gif"], "--format gif is not known; choose from png,svg"),
    (["--figures", "roc,pie"], "--figures pie is not known; choose from roc,det,hist,curves,leaderboard"),
    (["--metric", "NOPE", "--figures", "leaderboard"], "metric 'NOPE' is not in the MICO records; they report: HTER, EER"),
])
def test_cli_bad_options_are_one_line(runs, tmp_path, capsys, argv, message):
    assert cli.main(["plot", str(runs / "erm" / "OCI_to_M"), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cli_no_records_and_missing_scores(runs, tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path / "nothing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["plot", str(tmp_path / "empty")]) == 2
    assert "no run records under" in capsys.readouterr().err
    run = tmp_path / "noscores" / "seed0"
    shutil.copytree(runs / "erm" / "OCI_to_M" / "seed0", run)
    (run / "scores.csv.gz").unlink()
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "scores.csv.gz: cannot be read" in err and "--figures curves,leaderboard" in err and err.count("\n") == 1
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "o"), "--figures", "curves,leaderboard"]) == 0
    capsys.readouterr()
    with pytest.raises(FasbenchError, match="sha256"):
        (run / "scores.csv.gz").write_bytes(gzip.compress(b"split,video,frame,label,attack,score\n"))
        plot_records(load_records(run), tmp_path / "o2", figures=["hist"])


@pytest.mark.slow
def test_plot_a_run_made_here(tmp_path, capsys):
    """A tiny run trained in this test: its figures show its record's numbers."""
    from fasbench import config
    from fasbench.contract import TINY_WORLD
    from fasbench.engine.run import run_protocol

    cfg = config.compose(["method=erm", "trainer=smoke", *TINY_WORLD, f"data.cache_dir={tmp_path / 'cache'}"])
    cfg.protocol, cfg.device, cfg.out = "MC->I", "cpu", str(tmp_path / "runs")
    (rec,) = run_protocol(cfg, progress=False, echo=lambda *_: None)
    assert cli.main(["plot", str(tmp_path / "runs"), "--format", "png"]) == 0
    capsys.readouterr()
    figs = tmp_path / "runs" / "figures" / "MC_to_I"
    roc = json.loads((figs / "roc.json").read_text())
    (curve,) = roc["panels"][0]["curves"]
    rec = read_record(curve["record"])
    for policy in POLICIES:
        fpr, frr = _record_point(rec, policy)
        assert curve["points"][policy]["fpr"] == pytest.approx(fpr, abs=1e-12)
        assert curve["points"][policy]["frr"] == pytest.approx(frr, abs=1e-12)
    hist = json.loads(next(figs.rglob("hist.json")).read_text())
    assert sum(hist["panels"][1]["n"].values()) == rec.target["source-val-threshold"].n_videos
    curves = json.loads(next(figs.rglob("curves.json")).read_text())
    assert curves["steps"] == [p["step"] for p in rec.curve] == [2, 4]
    # every run keeps log.csv: the losses are drawn at every logged step, and at the evaluated
    # steps they are the record's curve values
    assert curves["loss_source"] == "log.csv" and curves["loss_steps"] == [1, 2, 3, 4]
    drawn = dict(zip(curves["loss_steps"], curves["series"]["loss"]["loss/ce"]))
    assert [drawn[p["step"]] for p in rec.curve] == pytest.approx([p["loss/ce"] for p in rec.curve], abs=1e-12)
    chart = json.loads((figs / "leaderboard-source-val-threshold.json").read_text())
    assert chart["groups"][0]["bars"][0]["mean"] == rec.target["source-val-threshold"].metrics["HTER"]
    assert math.isfinite(chart["groups"][0]["bars"][-1]["mean"])  # one task covers the protocol: an average
    _valid_png(figs / "det.png")
