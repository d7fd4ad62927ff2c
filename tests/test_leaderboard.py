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
import shutil
from pathlib import Path

import pytest

from fasbench.errors import FasbenchError
from fasbench.leaderboard import build_tables, write_leaderboard
from fasbench.records import (
    REQUIRED_KEYS,
    SCHEMA,
    RecordWarning,
    atomic_write_json,
    component_key,
    git_info,
    load_records,
    validate_record,
    write_record,
)

DATA = Path(__file__).parent / "data"
RECORDS = DATA / "records"
GOLDEN = DATA / "golden"
REPORTED = RECORDS / "reported.csv"
RUNNING = "erm-v1-MICO-ICM_O-s3"  # the committed record with status "running"


def _load_committed() -> list[dict]:
    with pytest.warns(RecordWarning, match=f"{RUNNING}.*running"):
        return load_records(RECORDS)


def _row(df, policy, components):
    rows = df[(df["policy"] == policy) & (df["components"] == components)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def _one_record(**changes) -> dict:
    rec = json.loads((RECORDS / "erm-v1-MICO-OCI_M-s0" / "record.json").read_text())
    for dotted, value in changes.items():
        target = rec
        *parents, last = dotted.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    return rec


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
    assert "OCI$\\rightarrow$M" in tex


def test_markdown_blocks_and_reported(tmp_path):
    write_leaderboard(_load_committed(), tmp_path, reported=REPORTED)
    md = (tmp_path / "MICO.md").read_text()
    assert md.index("## Threshold policy: source-val") < md.index(
        "## Threshold policy: target-eer (idealized)"
    ) < md.index("## Reported (not reproduced)")
    computed, reported = md.split("## Reported (not reproduced)")
    assert "example-paper" not in computed and "example-paper" in reported
    assert "12.00 ± 2.00" in computed


# --------------------------------------------------------------------------- numbers


def test_mean_std_by_hand():
    tables = build_tables(_load_committed())
    assert sorted(tables) == ["LimitedSource", "MICO"]
    df = tables["MICO"]
    # MICO task order follows the targets M, C, I, O, not the (sorted) file order.
    assert df.attrs["tasks"] == ["OCI->M", "ICM->O"]

    erm = _row(df, "source-val", "erm@1 resnet18@1")
    # OCI->M HTER over seeds 0,1,2 = 10, 12, 14: mean 12, sample std 2.
    assert erm["OCI->M HTER mean"] == pytest.approx(12.0)
    assert erm["OCI->M HTER std"] == pytest.approx(2.0)
    assert erm["ICM->O AUC mean"] == pytest.approx(81.0)  # 80, 81, 82
    assert erm["ICM->O AUC std"] == pytest.approx(1.0)
    # Average: per-seed averages (10+20)/2, (12+22)/2, (14+24)/2 = 15, 17, 19.
    assert erm["Average HTER mean"] == pytest.approx(17.0)
    assert erm["Average HTER std"] == pytest.approx(2.0)
    # AUC per-seed averages 85, 86.5, 88.
    assert erm["Average AUC mean"] == pytest.approx(86.5)
    assert erm["Average AUC std"] == pytest.approx(1.5)
    assert erm["seeds"] == "3 (0,1,2)"
    assert erm["fasbench"] == "0.1.0,0.1.1"

    ssdg = _row(df, "source-val", "ssdg@1 resnet18@1")
    assert ssdg["OCI->M HTER mean"] == pytest.approx(10.0)  # 9, 11
    assert ssdg["OCI->M HTER std"] == pytest.approx(math.sqrt(2))

    # rows: policy first, then Average HTER ascending, rows without an average last
    assert list(df["policy"]) == ["source-val"] * 3 + ["target-eer"] * 3
    assert list(df["components"])[:3] == ["ssdg@1 resnet18@1", "erm@1 resnet18@1", "erm@2 resnet18@1"]


def test_single_seed_has_no_std():
    df = build_tables(_load_committed())["LimitedSource"]
    row = _row(df, "source-val", "erm@1 resnet18@1")
    assert row["MI->C HTER mean"] == pytest.approx(30.0)
    assert math.isnan(row["MI->C HTER std"])


def test_different_versions_are_never_merged():
    df = build_tables(_load_committed())["MICO"]
    v2 = _row(df, "source-val", "erm@2 resnet18@1")
    assert v2["OCI->M HTER mean"] == pytest.approx(5.0)
    assert v2["n_seeds"] == 1
    assert math.isnan(v2["Average HTER mean"])  # it covers one task of two
    v1 = _row(df, "source-val", "erm@1 resnet18@1")
    assert v1["OCI->M HTER mean"] == pytest.approx(12.0)  # unaffected by the v2 run

    # a different data fingerprint or student version also makes a separate row
    base = _one_record()
    other_data = _one_record(**{"data.fingerprint": "ffffffffffffffff", "seed": 1})
    other_student = _one_record(**{"components.student.version": 2, "seed": 2})
    df = build_tables([base, other_data, other_student])["MICO"]
    assert len(df[df["policy"] == "source-val"]) == 3
    assert component_key(base) != component_key(other_student)
    assert component_key(base) == (
        "method=erm@1;student=resnet18@1;aligner=none@1;teachers=[];"
        "dataset=synthetic@1;protocol=MICO@1"
    )


@pytest.mark.parametrize("newest_first", [False, True])
def test_duplicate_run_keeps_newest(newest_first):
    old = _one_record()
    new = _one_record(created="2026-11-26T09:00:00Z", **{"metrics.source-val.HTER": 40.0})
    new["_source"] = "runs/rerun/record.json"
    records = [new, old] if newest_first else [old, new]
    with pytest.warns(RecordWarning, match="duplicate run.*keeping the newest, runs/rerun"):
        df = build_tables(records)["MICO"]
    row = _row(df, "source-val", "erm@1 resnet18@1")
    assert row["OCI->M HTER mean"] == pytest.approx(40.0)
    assert row["n_records"] == 1


# --------------------------------------------------------------------------- records


def test_validate_record_names_file_and_key():
    rec = _one_record()
    assert validate_record(rec) is rec
    broken = copy.deepcopy(rec)
    del broken["metrics"]
    with pytest.raises(FasbenchError, match=r"runs/x/record.json: missing required key 'metrics'"):
        validate_record(broken, source="runs/x/record.json")
    with pytest.raises(FasbenchError, match=r"r\.json: key 'seed' must be an int"):
        validate_record(_one_record(seed="0"), source="r.json")
    with pytest.raises(FasbenchError, match=r"r\.json: key 'task\.target'"):
        validate_record(_one_record(**{"task.target": None}), source="r.json")
    with pytest.raises(FasbenchError, match=r"r\.json: key 'metrics\.source-val\.HTER'"):
        validate_record(_one_record(**{"metrics.source-val.HTER": "12"}), source="r.json")
    with pytest.raises(FasbenchError, match=r"r\.json: missing key 'components\.aligner'"):
        bad = _one_record()
        del bad["components"]["aligner"]
        validate_record(bad, source="r.json")
    with pytest.raises(FasbenchError, match="schema"):
        validate_record(_one_record(schema="fasbench.record/2"), source="r.json")
    assert "schema" in REQUIRED_KEYS and SCHEMA == "fasbench.record/1"


def test_load_records_malformed_strict_and_lenient(tmp_path):
    good = _one_record()
    write_record(tmp_path / "a", good)
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
    assert len(recs) == 1 and recs[0]["_source"].endswith("a/record.json")
    assert load_records(tmp_path / "does-not-exist") == []


def test_write_record_validates_and_strips_annotations(tmp_path):
    rec = _one_record()
    rec["_source"] = "somewhere"
    path = write_record(tmp_path / "run", rec)
    assert path == tmp_path / "run" / "record.json"
    assert "_source" not in json.loads(path.read_text())
    with pytest.raises(FasbenchError, match="record.json: missing required key 'timings'"):
        bad = _one_record()
        del bad["timings"]
        write_record(tmp_path / "bad", bad)
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
    assert f"wrote {tmp_path / 'MICO.md'}" in out and "## Threshold policy: source-val" in out
    assert "warning: skipping" in err and RUNNING in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MICO.csv", "MICO.md", "MICO.tex"]

    args = _parse(["--runs", str(RECORDS), "--out", str(tmp_path), "--protocol", "NOPE"])
    with pytest.raises(FasbenchError, match="protocols found: LimitedSource, MICO"):
        args.func(args)
