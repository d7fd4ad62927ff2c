"""Run records and leaderboard tables.

Golden files: ``tests/data/golden/*`` are the exact output of ``write_leaderboard`` on the
committed records in ``tests/data/records`` (with ``reported.csv``).  After a deliberate
change of the output format, regenerate them with::

    FASBENCH_REGEN_GOLDEN=1 python -m pytest tests/test_leaderboard.py -k golden

and review the diff before committing.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from fasbench.errors import FasbenchError
from fasbench.leaderboard import (
    REPORTED_LABEL,
    build_tables,
    render_latex,
    render_markdown,
    write_leaderboard,
)
from fasbench.records import (
    SCHEMA,
    RecordWarning,
    RunRecord,
    atomic_write_json,
    git_info,
    load_records,
    parse_record,
    run_key,
    run_key_id,
    write_record,
)

DATA = Path(__file__).parent / "data"
RECORDS = DATA / "records"
GOLDEN = DATA / "golden"
REPORTED = RECORDS / "reported.csv"
RUNNING = "erm-v1-MICO-ICM_O-s3"  # the committed record with status "running"
SV, TE = "source-val-threshold", "target-eer-threshold"


def _load_committed() -> list[RunRecord]:
    with pytest.warns(RecordWarning, match=f"{RUNNING}.*running"):
        return load_records(RECORDS)


def _row(df, policy, setting):
    """The one measured row of ``policy`` whose setting label starts with ``setting``."""
    rows = df[(df["policy"] == policy) & df["setting"].str.startswith(setting + " ")]
    assert len(rows) == 1, rows[["policy", "setting"]]
    return rows.iloc[0]


def _squeeze(text: str) -> str:
    """Markdown with runs of spaces collapsed (tables pad their cells)."""
    return re.sub(r" +", " ", text)


def _one_record(name: str = "erm-v1-MICO-OCI_M-s0", **changes) -> dict:
    """A committed record as a dict, with ``dotted.key=value`` changes (``__`` for ``.``)."""
    rec = json.loads((RECORDS / name / "record.json").read_text())
    for dotted, value in changes.items():
        target = rec
        *parents, last = dotted.split(".")
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        target[last] = value
    return rec


def _rec(source: str = "mem/record.json", **changes) -> RunRecord:
    return parse_record(_one_record(**changes), source)


TEACHERS = [
    {"name": "arcface", "version": 1, "plugin": "dtda",
     "weights": {"uri": "hf://x/arcface.safetensors", "sha256": "a" * 64}},
    {"name": "ldm-vq", "version": 1, "plugin": "dtda",
     "weights": {"uri": "hf://x/ldm.safetensors", "sha256": "c" * 64}},
]


# --------------------------------------------------------------------------- golden


def test_golden_outputs(tmp_path):
    records = _load_committed()
    assert len(records) == 12  # 13 files, one of them unfinished
    paths = write_leaderboard(records, tmp_path, reported=REPORTED)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        f"{proto}.{ext}" for proto in ("MICO", "LimitedSource") for ext in ("md", "csv", "tex")
    )
    if os.environ.get("FASBENCH_REGEN_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copyfile(path, GOLDEN / path.name)
    golden = sorted(p.name for p in GOLDEN.iterdir())
    assert golden == names
    for name in names:
        got = (tmp_path / name).read_bytes()
        want = (GOLDEN / name).read_bytes()
        assert got == want, f"{name} differs from {GOLDEN / name} (FASBENCH_REGEN_GOLDEN=1 to update)"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_latex_is_a_tabular(tmp_path):
    write_leaderboard(_load_committed(), tmp_path)
    tex = (tmp_path / "MICO.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex
    assert "$\\pm$" in tex and "±" not in tex
    assert "OCI$\\rightarrow$M" in tex and "TPR@FPR=1\\%" in tex
    assert "12.00 $\\pm$ 2.00 ($\\pm$3.0)" in tex
    assert REPORTED_LABEL not in tex  # no --reported: no reported block


def test_markdown_blocks_header_and_cells(tmp_path):
    write_leaderboard(_load_committed(), tmp_path, reported=REPORTED)
    md = (tmp_path / "MICO.md").read_text()
    sv = md.index("## target, threshold from source-val (deployable)")
    te = md.index("## target, threshold at target EER (idealized: reads target labels)")
    rep = md.index("## Reported (not reproduced)")
    assert sv < te < rep
    computed, reported = md[:rep], md[rep:]
    assert "example-paper" not in computed and "example-paper" in reported
    # mean ± std over seeds, then the mean 95% CI half-width over target videos
    assert "12.00 ± 2.00 (±3.0)" in computed
    assert "| 5.00 (±2.5) |" in _squeeze(computed)  # one seed: no std
    assert "A cell reads `mean ± std (±ci)`" in md and "bootstrap CI half-width over target videos" in md
    # each block says its threshold policy and checkpoint selection
    for start, end in ((sv, te), (te, rep)):
        block = md[start:end]
        assert "Checkpoint selection: last (no target data)." in block
    assert "Threshold policy `source-val-threshold`" in md[sv:te]
    assert "reads target labels" in md[te:rep]
    # the default columns and the run id
    header = next(line for line in md[sv:te].splitlines() if line.startswith("| method"))
    assert [c.strip() for c in header.strip("|").split("|")][:5] == [
        "method", "run", "OCI->M HTER", "OCI->M AUC", "OCI->M TPR@FPR=1%"]
    erm = _row(build_tables(_load_committed())["MICO"], SV, "erm@1 resnet18@1")
    assert f"| {erm['run']} |" in md


# --------------------------------------------------------------------------- numbers


def test_mean_std_ci_by_hand():
    tables = build_tables(_load_committed())
    assert sorted(tables) == ["LimitedSource", "MICO"]
    df = tables["MICO"]
    # MICO task order follows the targets M, C, I, O, not the (sorted) file order.
    assert df.attrs["tasks"] == ["OCI->M", "ICM->O"]

    erm = _row(df, SV, "erm@1 resnet18@1")
    # OCI->M HTER over seeds 0,1,2 = 10, 12, 14: mean 12, sample std 2.
    assert erm["OCI->M HTER mean"] == pytest.approx(12.0)
    assert erm["OCI->M HTER std"] == pytest.approx(2.0)
    assert erm["OCI->M HTER n"] == 3
    # CI half-widths of the three records: 2.5, 3.0, 3.5 -> mean 3.0
    assert erm["OCI->M HTER ci95"] == pytest.approx(3.0)
    assert erm["ICM->O AUC mean"] == pytest.approx(81.0)  # 80, 81, 82
    assert erm["ICM->O AUC std"] == pytest.approx(1.0)
    assert erm["OCI->M TPR@FPR=1% mean"] == pytest.approx(64.0)  # 68, 64, 60
    # Average: per-seed averages (10+20)/2, (12+22)/2, (14+24)/2 = 15, 17, 19.
    assert erm["Average HTER mean"] == pytest.approx(17.0)
    assert erm["Average HTER std"] == pytest.approx(2.0)
    # AUC per-seed averages 85, 86.5, 88.
    assert erm["Average AUC mean"] == pytest.approx(86.5)
    assert erm["Average AUC std"] == pytest.approx(1.5)
    assert erm["seeds"] == "3 (0,1,2)" and erm["n_seeds"] == 3 and erm["n_records"] == 6
    assert erm["fasbench"] == "0.1.0,0.1.1"
    assert erm["selection"] == "last" and erm["precision"] == "cpu-fp32"

    ssdg = _row(df, SV, "ssdg@1 resnet18@1")
    assert ssdg["OCI->M HTER mean"] == pytest.approx(10.0)  # 9, 11
    assert ssdg["OCI->M HTER std"] == pytest.approx(math.sqrt(2))
    assert ssdg["OCI->M HTER ci95"] == pytest.approx(2.75)  # 2.5, 3.0

    # the idealized policy reads its own block: 8, 9, 10
    assert _row(df, TE, "erm@1 resnet18@1")["OCI->M HTER mean"] == pytest.approx(9.0)

    # rows: policy first, then Average HTER ascending, rows without an average last
    measured = df[df["reported"] == ""]
    assert list(measured["policy"]) == [SV] * 3 + [TE] * 3
    assert [s.split(" cpu")[0] for s in measured["setting"][:3]] == [
        "ssdg@1 resnet18@1", "erm@1 resnet18@1", "erm@2 resnet18@1"]


def test_csv_has_every_metric_of_the_records(tmp_path):
    df = build_tables(_load_committed())["MICO"]
    # the union of the records' metric_names, in order of first appearance (ACER: erm v2 only)
    assert df.attrs["metrics"] == ["HTER", "EER", "AUC", "TPR@FPR=1%", "ACER"]
    for metric in df.attrs["metrics"]:
        for stat in ("mean", "std", "n", "ci95"):
            assert f"OCI->M {metric} {stat}" in df.columns
        assert f"Average {metric} mean" in df.columns and f"Average {metric} std" in df.columns
    v2 = _row(df, SV, "erm@2 resnet18@1")
    assert v2["OCI->M ACER mean"] == pytest.approx(6.0)
    v1 = _row(df, SV, "erm@1 resnet18@1")
    assert math.isnan(v1["OCI->M ACER mean"]) and v1["OCI->M ACER n"] == 0
    write_leaderboard(_load_committed(), tmp_path)
    csv = pd.read_csv(tmp_path / "MICO.csv")
    assert list(csv.columns) == list(df.columns)
    assert csv["OCI->M EER mean"].notna().all()


def test_metrics_parameter_chooses_the_shown_columns(tmp_path):
    records = _load_committed()
    df = build_tables(records, metrics=["EER", "ACER"])["MICO"]
    assert df.attrs["shown"] == ["EER", "ACER"]
    md = render_markdown("MICO", df)
    assert "OCI->M EER" in md and "OCI->M ACER" in md and "OCI->M AUC" not in md
    assert "| 6.00 (±3.0) |" in _squeeze(md)  # ACER of the erm v2 run
    assert "OCI$\\rightarrow$M EER" in render_latex("MICO", df)
    with pytest.raises(FasbenchError, match=r"unknown metric\(s\) FOO for --metrics; the records report: "
                                            r"HTER, EER, AUC, TPR@FPR=1%, ACER"):
        build_tables(records, metrics=["HTER", "FOO"])


def test_plugin_metric_becomes_columns():
    """A metric name the registry does not know (a plugin's) is tabulated like any other."""
    rec = _one_record(**{"metric_names": ["HTER", "AUC", "spoof-mean"]})
    for block in rec["target"].values():
        block["metrics"]["spoof-mean"] = 31.5
        block["ci"]["spoof-mean"] = [29.5, 33.5]
    df = build_tables([parse_record(rec, "r.json")], metrics=["HTER", "spoof-mean"])["MICO"]
    assert df.attrs["metrics"] == ["HTER", "AUC", "spoof-mean"]
    row = _row(df, SV, "erm@1 resnet18@1")
    assert row["OCI->M spoof-mean mean"] == 31.5 and row["OCI->M spoof-mean ci95"] == 2.0
    assert "| 31.50 (±2.0) |" in _squeeze(render_markdown("MICO", df))


def test_single_seed_has_no_std():
    df = build_tables(_load_committed())["LimitedSource"]
    row = _row(df, SV, "erm@1 resnet18@1")
    assert row["MI->C HTER mean"] == pytest.approx(30.0)
    assert math.isnan(row["MI->C HTER std"])
    assert "| 30.00 (±2.5) |" in _squeeze(render_markdown("LimitedSource", df))


def test_different_versions_are_never_merged():
    df = build_tables(_load_committed())["MICO"]
    v2 = _row(df, SV, "erm@2 resnet18@1")
    assert v2["OCI->M HTER mean"] == pytest.approx(5.0)
    assert v2["n_seeds"] == 1
    assert math.isnan(v2["Average HTER mean"])  # it covers one task of two
    v1 = _row(df, SV, "erm@1 resnet18@1")
    assert v1["OCI->M HTER mean"] == pytest.approx(12.0)  # unaffected by the v2 run
    assert v1["run"] != v2["run"]


# --------------------------------------------------------------------------- run identity


@pytest.mark.parametrize("what, changes", [
    # required by the issue: one teacher's weights, and the effective precision
    ("teacher weights", {"components.teachers.1.weights.sha256": "d" * 64}),
    ("precision", {"precision": "cuda-bf16"}),
    ("data fingerprint", {"data.fingerprint": "ffffffffffffffff"}),
    ("student version", {"components.student.version": 2}),
    ("config", {"config_hash": "0123456789ab"}),
    ("checkpoint selection", {"selection": {"rule": "source-val", "metric": "val/EER", "data": "source-val",
                                            "uses_target_labels": False, "selected_step": 5,
                                            "candidates": [5, 10]}}),
])
def test_one_identity_difference_makes_a_separate_row(what, changes):
    base = _rec("runs/a/record.json", **{"components.teachers": copy.deepcopy(TEACHERS)})
    other_dict = _one_record(**{"components.teachers": copy.deepcopy(TEACHERS)})
    for dotted, value in changes.items():
        target = other_dict
        *parents, last = dotted.split(".")
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        target[last] = value
    other = parse_record(other_dict, "runs/b/record.json")
    assert (other.task, other.seed) == (base.task, base.seed)  # same task and seed: not a duplicate
    assert run_key(base) != run_key(other) and run_key_id(base) != run_key_id(other)
    df = build_tables([base, other])["MICO"]
    rows = df[df["policy"] == SV]
    assert len(rows) == 2, what
    assert set(rows["run"]) == {run_key_id(base), run_key_id(other)}
    assert (rows["setting"] + " " + rows["data"]).nunique() == 2  # the labels tell the rows apart
    assert list(rows["n_seeds"]) == [1, 1]
    if what == "teacher weights":
        assert {"teachers:arcface@1#aaaaaaaa+ldm-vq@1#cccccccc", "teachers:arcface@1#aaaaaaaa+ldm-vq@1#dddddddd"} == {
            part for s in rows["setting"] for part in s.split() if part.startswith("teachers:")}
    if what == "precision":
        assert sorted(p for s in rows["setting"] for p in s.split() if p.startswith(("cpu-", "cuda-"))) == [
            "cpu-fp32", "cuda-bf16"]


def test_seeds_of_one_setting_merge_into_one_row():
    s0 = _rec("runs/s0/record.json", **{"components.teachers": copy.deepcopy(TEACHERS)})
    s1 = _rec("runs/s1/record.json", seed=1, **{"components.teachers": copy.deepcopy(TEACHERS),
                                               "target.source-val-threshold.metrics.HTER": 14.0})
    assert run_key(s0) == run_key(s1)
    df = build_tables([s0, s1])["MICO"]
    row = df[df["policy"] == SV].iloc[0]
    assert len(df[df["policy"] == SV]) == 1
    assert row["n_seeds"] == 2 and row["seeds"] == "2 (0,1)"
    assert row["OCI->M HTER mean"] == pytest.approx(12.0)  # 10 and 14
    assert row["run"] == run_key_id(s0)


@pytest.mark.parametrize("newest_first", [False, True])
def test_duplicate_run_keeps_newest(newest_first):
    old = _rec("runs/first/record.json")
    new = _rec("runs/rerun/record.json", created="2026-11-26T09:00:00Z",
               **{"target.source-val-threshold.metrics.HTER": 40.0})
    records = [new, old] if newest_first else [old, new]
    with pytest.warns(RecordWarning, match="duplicate run.*keeping the newest, runs/rerun/record.json "
                                           r".*ignoring runs/first/record.json"):
        df = build_tables(records)["MICO"]
    row = _row(df, SV, "erm@1 resnet18@1")
    assert row["OCI->M HTER mean"] == pytest.approx(40.0)
    assert row["n_records"] == 1


# --------------------------------------------------------------------------- reported rows


def test_reported_rows_in_csv_and_latex(tmp_path):
    write_leaderboard(_load_committed(), tmp_path, reported=REPORTED)
    csv = pd.read_csv(tmp_path / "MICO.csv", keep_default_na=False, na_values=[""])
    rep = csv[csv["reported"] == REPORTED_LABEL]
    assert len(rep) == 1
    row = rep.iloc[0]
    assert row["method"] == "example-paper"
    assert row["source"] == "illustrative test value (not a real paper)"
    assert row["caveat"] == "made-up numbers, test fixture only"
    assert row["OCI->M HTER mean"] == pytest.approx(7.5)  # O&C&I->M is OCI->M
    assert row["OCI->M AUC mean"] == pytest.approx(97.0)
    assert row["ICM->O HTER mean"] == pytest.approx(15.25)
    assert row["Average HTER mean"] == pytest.approx(11.4)
    for col in ("policy", "run", "seeds", "n_seeds", "OCI->M HTER std", "OCI->M HTER n", "ICM->O AUC mean"):
        assert pd.isna(row[col]), col  # blank elsewhere
    measured = csv[csv["reported"].isna()]
    assert len(measured) == 6 and measured["source"].isna().all()
    assert list(csv.index[csv["reported"] == REPORTED_LABEL]) == [len(csv) - 1]  # after the measured rows

    tex = (tmp_path / "MICO.tex").read_text()
    block = tex.index("\\textit{reported (not reproduced)")
    assert block > tex.rindex("erm@2 resnet18@1")  # under the measured rows
    assert "example-paper" not in tex[:block]
    line = next(ln for ln in tex[block:].splitlines() if ln.startswith("example-paper"))
    assert "& 7.50 &" in line and "illustrative test value" in line


def test_reported_tpr_column_and_unmeasured_task(tmp_path):
    reported = tmp_path / "reported.csv"
    reported.write_text(
        "protocol,method,task,HTER,AUC,TPR@FPR=1%,source,caveat\n"
        "MICO,paper-x,OCI->M,6.5,98.0,71.0,Paper X (2024) Table 2,video-level threshold unknown\n"
        "MICO,paper-x,OMI->C,8.0,,,Paper X (2024) Table 2,video-level threshold unknown\n"
    )
    out = tmp_path / "lb"
    write_leaderboard(_load_committed(), out, reported=reported)
    csv = pd.read_csv(out / "MICO.csv")
    row = csv[csv["reported"] == REPORTED_LABEL].iloc[0]
    assert row["OCI->M TPR@FPR=1% mean"] == pytest.approx(71.0)
    assert row["OMI->C HTER mean"] == pytest.approx(8.0)  # a task no run measured: its own columns
    assert csv.loc[csv["reported"] != REPORTED_LABEL, "OMI->C HTER mean"].isna().all()
    md = (out / "MICO.md").read_text()
    assert "71.00" in md.split("## Reported (not reproduced)")[1]
    assert "OMI->C HTER" not in md.split("## Reported (not reproduced)")[0]

    bad = tmp_path / "bad.csv"
    bad.write_text("protocol,method,task,HTER,AUC,source,caveat\nMICO,p,OCI->M,low,,s,c\n")
    with pytest.raises(FasbenchError, match=r"bad\.csv:2: column HTER must be a number or empty, got 'low'"):
        write_leaderboard(_load_committed(), out, reported=bad)
    bad.write_text("protocol,method,task,HTER,source\n")
    with pytest.raises(FasbenchError, match=r"missing column\(s\) \['AUC', 'caveat'\]"):
        write_leaderboard(_load_committed(), out, reported=bad)


# --------------------------------------------------------------------------- records


def test_parse_record_names_file_and_key():
    rec = _one_record()
    assert isinstance(parse_record(rec, "r.json"), RunRecord)
    broken = copy.deepcopy(rec)
    del broken["target"]
    with pytest.raises(FasbenchError, match=r"runs/x/record.json: key 'target': Field required"):
        parse_record(broken, "runs/x/record.json")
    with pytest.raises(FasbenchError, match=r"r\.json: key 'seed'"):
        parse_record(_one_record(seed="zero"), "r.json")
    with pytest.raises(FasbenchError, match=r"r\.json: key 'task\.target'"):
        parse_record(_one_record(**{"task.target": None}), "r.json")
    with pytest.raises(FasbenchError, match=r"r\.json: key 'target\.source-val-threshold\.metrics\.HTER'"):
        parse_record(_one_record(**{"target.source-val-threshold.metrics.HTER": "twelve"}), "r.json")
    with pytest.raises(FasbenchError, match="schema"):
        parse_record(_one_record(schema="fasbench.record/1"), "r.json")
    assert SCHEMA == "fasbench.record/2"


def test_load_records_malformed_strict_and_lenient(tmp_path):
    write_record(tmp_path / "a", _rec())
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "record.json").write_text("{not json")
    bad = _one_record(seed=1)
    del bad["git"]
    atomic_write_json(tmp_path / "c" / "record.json", bad)

    with pytest.raises(FasbenchError, match=r"b/record\.json"):
        load_records(tmp_path, strict=True)
    with pytest.warns(RecordWarning) as caught:
        recs = load_records(tmp_path)
    messages = " ".join(str(w.message) for w in caught)
    assert "b/record.json" in messages and "c/record.json" in messages and "'git'" in messages
    assert len(recs) == 1 and recs[0].source.endswith("a/record.json")
    assert recs[0].run_dir == tmp_path / "a"
    assert load_records(tmp_path / "does-not-exist") == []


#: Records that look right but have a wrong type where the record schema says otherwise; each
#: must be refused when loaded (skipped with a warning, an error with --strict), never reach
#: the tables or crash them.
MALFORMED = {
    "config-hash-int": {"config_hash": 123},
    "teacher-weights-string": {"components.teachers": [{"name": "arcface", "version": 1, "plugin": "dtda", "weights": "abc"}]},
    "teacher-sha256-int": {"components.teachers": [{"name": "arcface", "version": 1, "weights": {"sha256": 123}}]},
    "component-string": {"components.aligner": "none"},
    "version-bool": {"components.student.version": True},
    "version-float": {"components.student.version": 1.0},
    "seed-bool": {"seed": True},
    "seed-string": {"seed": "0"},
    "seed-float": {"seed": 0.0},
    "task-name-int": {"task.name": 7},
    "sources-int": {"task.sources": ["O", 1, "I"]},
    "intra-string": {"task.intra": "false"},
    "dirty-int": {"git.dirty": 0},
    "fingerprint-int": {"data.fingerprint": 12345},
    "step-string": {"selection.selected_step": "40"},
    "uses-labels-string": {"selection.uses_target_labels": "no"},
    "metric-names-int": {"metric_names": ["HTER", 1]},
    "metric-string": {"target.source-val-threshold.metrics.HTER": "12.5"},
    "metric-bool": {"target.source-val-threshold.metrics.AUC": True},
    "threshold-string": {"target.source-val-threshold.threshold": "0.5"},
    "n-videos-float": {"target.target-eer-threshold.n_videos": 40.0},
    "ci-strings": {"target.source-val-threshold.ci.HTER": ["1.0", "2.0"]},
    "precision-int": {"precision": 32},
}
#: two valid committed records of different tasks (one row of MICO with two task columns)
VALID = ("erm-v1-MICO-OCI_M-s0", "erm-v1-MICO-ICM_O-s0")


def _runs_with_malformed(root: Path, labels=tuple(MALFORMED)) -> Path:
    runs = root / "runs"
    for name in VALID:
        shutil.copytree(RECORDS / name, runs / name)
    for label in labels:
        atomic_write_json(runs / f"bad-{label}" / "record.json", _one_record(**MALFORMED[label]))
    return runs


@pytest.mark.parametrize("label", MALFORMED)
def test_malformed_types_are_refused_at_parse_time(label):
    with pytest.raises(FasbenchError) as info:
        parse_record(_one_record(**MALFORMED[label]), "runs/bad/record.json")
    msg = str(info.value)
    assert msg.startswith("runs/bad/record.json: key '") and "\n" not in msg, msg


@pytest.mark.parametrize("label", MALFORMED)
def test_published_schema_refuses_what_the_model_refuses(label):
    """docs/record.schema.json and the pydantic model agree: the committed records are valid
    under both, each malformed variant invalid under both."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "record.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    if label in ("seed-float", "version-float", "n-videos-float"):  # the model is stricter here
        pytest.skip("JSON Schema counts an integral number such as 0.0 as an integer")
    assert list(validator.iter_errors(_one_record(**MALFORMED[label]))), label


def test_committed_records_fit_the_model_and_the_published_schema():
    jsonschema = pytest.importorskip("jsonschema")
    root = Path(__file__).resolve().parents[1]
    validator = jsonschema.Draft202012Validator(json.loads((root / "docs" / "record.schema.json").read_text()))
    files = sorted((root / "leaderboard" / "records").rglob("record.json")) + sorted(RECORDS.rglob("record.json"))
    assert len(files) > 100
    for path in files:
        obj = json.loads(path.read_text())
        parse_record(obj, str(path))
        assert not list(validator.iter_errors(obj)), path


def test_cli_skips_each_malformed_record_with_one_warning(tmp_path, run_cli):
    runs = _runs_with_malformed(tmp_path)
    out = tmp_path / "lb"
    proc = run_cli("leaderboard", "--runs", runs, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == len(MALFORMED), proc.stderr
    for label in MALFORMED:
        (line,) = [ln for ln in lines if f"bad-{label}{os.sep}record.json" in ln]
        assert line.startswith("warning: skipping malformed run record: ") and "key '" in line, line
    assert f"2 run records from {runs}" in proc.stdout
    df = pd.read_csv(out / "MICO.csv")
    (frame,) = [r for _, r in df[df["policy"] == SV].iterrows()]
    assert frame["method"] == "erm" and frame["n_records"] == 2
    assert not math.isnan(frame["OCI->M HTER mean"]) and not math.isnan(frame["ICM->O HTER mean"])
    assert "OCI->M" in (out / "MICO.md").read_text() and r"ICM$\rightarrow$O" in (out / "MICO.tex").read_text()


def test_cli_strict_fails_in_one_line_on_a_malformed_record(tmp_path, run_cli, one_line_error):
    runs = _runs_with_malformed(tmp_path, ("config-hash-int", "teacher-weights-string"))
    out = tmp_path / "lb"
    line = one_line_error(run_cli("leaderboard", "--runs", runs, "--out", out, "--strict"))
    assert f"bad-config-hash-int{os.sep}record.json: key 'config_hash'" in line
    assert not out.exists()


@pytest.mark.parametrize("label", MALFORMED)
def test_strict_names_each_malformed_file(tmp_path, label, capsys):
    from fasbench.cli import main

    runs = _runs_with_malformed(tmp_path, (label,))
    assert main(["leaderboard", "--runs", str(runs), "--out", str(tmp_path / "lb"), "--strict"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("fasbench: error: ") and f"bad-{label}{os.sep}record.json" in err[0]
    assert main(["leaderboard", "--runs", str(runs), "--out", str(tmp_path / "lb")]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("warning: skipping malformed run record: ") and f"bad-{label}" in err[0]


def test_unreadable_record_files_are_skipped_not_crashed_on(tmp_path):
    """JSON nested deeper than Python's recursion limit, a folder named record.json, bytes that
    are not UTF-8: each skipped with a warning (an error with strict), never a traceback."""
    write_record(tmp_path / "a", _rec())
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "record.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "nested").mkdir()
    text = json.dumps(_one_record()).replace('"seed": 0,', '"seed": ' + "[" * 900 + "]" * 900 + ",", 1)
    (tmp_path / "nested" / "record.json").write_text(text)
    (tmp_path / "folder" / "record.json").mkdir(parents=True)
    (tmp_path / "latin1").mkdir()
    (tmp_path / "latin1" / "record.json").write_bytes(b'{"schema": "\xe9\xff"}')
    with pytest.warns(RecordWarning) as caught:
        recs = load_records(tmp_path)
    assert len(recs) == 1
    messages = [str(w.message) for w in caught]
    for name in ("deep", "nested", "folder", "latin1"):
        assert any(f"{name}{os.sep}record.json" in m for m in messages), (name, messages)
    assert all("\n" not in m for m in messages)
    for name in ("deep", "nested"):
        with pytest.raises(FasbenchError, match=f"{name}/record.json"):
            load_records(tmp_path / name, strict=True)


def test_write_record_round_trips(tmp_path):
    rec = _rec()
    path = write_record(tmp_path / "run", rec)
    assert path == tmp_path / "run" / "record.json"
    (back,) = load_records(tmp_path)
    assert back == rec and run_key(back) == run_key(rec)
    with pytest.raises(TypeError):
        write_record(tmp_path / "bad", _one_record())
    assert not (tmp_path / "bad" / "record.json").exists()


def test_atomic_write_json(tmp_path):
    np = pytest.importorskip("numpy")
    path = tmp_path / "out.json"
    atomic_write_json(path, {"a": np.float32(1.5), "b": np.int64(3), "c": np.arange(2),
                             "d": np.bool_(True), "p": tmp_path / "x"})
    data = json.loads(path.read_text())
    assert data == {"a": 1.5, "b": 3, "c": [0, 1], "d": True, "p": str(tmp_path / "x")}
    assert type(data["b"]) is int
    old = path.read_bytes()

    with pytest.raises(TypeError):
        atomic_write_json(path, {"x": object()})
    assert path.read_bytes() == old  # old content intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temp files


def test_git_info(tmp_path):
    assert git_info(tmp_path) == {"commit": None, "dirty": None}
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    import subprocess

    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "commit.gpgsign=false", "commit", "-q",
                    "-m", "m"], check=True, env=env)
    info = git_info(tmp_path)
    assert info["dirty"] is False and len(info["commit"]) == 40
    (tmp_path / "f").write_text("y")
    assert git_info(tmp_path)["dirty"] is True


# --------------------------------------------------------------------------- command


def _parse(argv):
    from fasbench.commands import leaderboard as cmd

    parser = argparse.ArgumentParser(prog="fasbench")
    sub = parser.add_subparsers(dest="command")
    cmd.add_parser(sub)
    args = parser.parse_args(["leaderboard", *argv])
    assert args.func is cmd.main
    return args


def test_command_without_records(tmp_path):
    args = _parse(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "lb")])
    with pytest.raises(FasbenchError, match="no run records under .*fasbench run METHOD --protocol P"):
        args.func(args)
    assert not (tmp_path / "lb").exists()


def test_command_writes_and_prints(tmp_path, capsys):
    args = _parse(["--runs", str(RECORDS), "--out", str(tmp_path), "--protocol", "MICO",
                   "--print"])
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    assert f"wrote {tmp_path / 'MICO.md'}" in out
    assert "## target, threshold from source-val (deployable)" in out
    assert "warning: skipping" in err and RUNNING in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MICO.csv", "MICO.md", "MICO.tex"]

    args = _parse(["--runs", str(RECORDS), "--out", str(tmp_path), "--protocol", "NOPE"])
    with pytest.raises(FasbenchError, match="protocols found: LimitedSource, MICO"):
        args.func(args)


def test_command_metrics_option(tmp_path, capsys):
    args = _parse(["--runs", str(RECORDS), "--out", str(tmp_path / "a"), "--metrics", "EER, HTER"])
    assert args.func(args) == 0
    md = (tmp_path / "a" / "MICO.md").read_text()
    assert "OCI->M EER" in md and "OCI->M AUC" not in md
    assert md.index("OCI->M EER") < md.index("OCI->M HTER")

    args = _parse(["--runs", str(RECORDS), "--out", str(tmp_path / "b"), "--metrics", "HTER,APCER"])
    with pytest.raises(FasbenchError) as info:
        args.func(args)
    message = str(info.value)
    assert "\n" not in message and "APCER" in message and "HTER, EER, AUC, TPR@FPR=1%, ACER" in message
    assert not (tmp_path / "b").exists()  # nothing written


def test_cli_metrics_error_is_one_line(tmp_path, capsys):
    from fasbench.cli import main

    rc = main(["leaderboard", "--runs", str(RECORDS), "--out", str(tmp_path), "--metrics", "NOPE"])
    assert rc == 2
    err = capsys.readouterr().err
    assert [ln for ln in err.splitlines() if ln.startswith("fasbench: error:")] == [
        "fasbench: error: unknown metric(s) NOPE for --metrics; the records report: "
        "HTER, EER, AUC, TPR@FPR=1%, ACER"]
    assert "Traceback" not in err


def test_records_of_several_machines_merge(tmp_path, capsys):
    """`--runs A --runs B` builds the same tables as one folder holding both; a record copied
    into both folders counts once."""
    import shutil as _shutil
    from pathlib import Path as _Path

    from fasbench import cli

    src = _Path(__file__).resolve().parents[1] / "leaderboard" / "records" / "MICO"
    _shutil.copytree(src / "erm", tmp_path / "a" / "erm")
    _shutil.copytree(src / "dtda", tmp_path / "b" / "dtda")
    _shutil.copytree(src / "erm" / "OCI_to_M", tmp_path / "b" / "erm" / "OCI_to_M")  # the same run, twice
    _shutil.copytree(src, tmp_path / "all")
    assert cli.main(["leaderboard", "--runs", str(tmp_path / "a"), "--runs", str(tmp_path / "b"),
                     "--out", str(tmp_path / "merged")]) == 0
    out = capsys.readouterr().out
    assert f"run records from {tmp_path / 'a'}, {tmp_path / 'b'}" in out
    assert cli.main(["leaderboard", "--runs", str(tmp_path / "all"), "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    for name in ("MICO.csv", "MICO.md"):
        merged = (tmp_path / "merged" / name).read_text().replace(str(tmp_path / "a"), "X").replace(str(tmp_path / "b"), "X")
        one = (tmp_path / "one" / name).read_text().replace(str(tmp_path / "all"), "X")
        assert merged == one, name
