"""fasbench export --onnx: the student as ONNX (RGB [0, 1] NCHW at the crop size -> live
probability, dynamic batch), checked with ONNX Runtime against PyTorch; the scores ONNX Runtime
gives the run's own target frames are the record's."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from trained import train_tiny_run

from fasbench import cli

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def run(module_tmp):
    return train_tiny_run(module_tmp("export"))


@pytest.fixture(scope="module")
def exported(run, module_tmp):
    """The export's file and what it printed (--json)."""
    import contextlib
    import io

    out = module_tmp("onnx") / "student.onnx"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(["export", str(run.run_dir), "--onnx", "--out", str(out), "--json"])
    assert rc == 0 and out.is_file()
    return out, json.loads(buf.getvalue())


@pytest.mark.slow
def test_onnx_runtime_scores_the_run_frames_as_the_record(run, exported):
    path, _ = exported
    """Every target frame of the run through ONNX Runtime (one batch of all of them, the crop
    the evaluation takes) gives the record's per-frame score within 1e-4."""
    from fasbench.inference import to_input

    world = run.frames()
    scores = run.scores()
    target = scores[scores["split"] == "target"]
    m = world.manifest
    key = {(f"{d}/{v}", int(f)): i for i, (d, v, f) in enumerate(zip(m["domain"], m["video_id"].astype(str), m["frame"]))}
    rows = [key[(v, int(f))] for v, f in zip(target["video"], target["frame"])]
    x = to_input(np.asarray(world.images[rows]), 40, "cpu").numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape[1:], outp.name) == ("image", [3, 40, 40], "live_probability")
    assert isinstance(inp.shape[0], str)  # the batch axis is dynamic
    got = session.run(["live_probability"], {"image": x})[0]
    assert got.shape == (len(rows),)
    assert np.abs(got.astype(np.float64) - target["score"].to_numpy()).max() <= 1e-4


@pytest.mark.slow
def test_export_reports_the_check_and_threshold(run, exported):
    path, info = exported
    assert info["ok"] is True and 0 <= info["max_abs_diff"] <= 1e-4 and info["tolerance"] == 1e-4
    assert info["threshold"] == run.record.val.threshold and info["threshold_policy"] == "source-val-threshold"
    assert info["input"]["shape"] == ["batch", 3, 40, 40] and info["bytes"] == path.stat().st_size


def test_a_check_above_the_tolerance_fails_and_writes_nothing(run, capsys, tmp_path):
    out = tmp_path / "m.onnx"
    rc = cli.main(["export", str(run.run_dir), "--onnx", "--out", str(out), "--tolerance", "-1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "ONNX Runtime differs from PyTorch by" in err and "was not written" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_missing_extra_is_one_line_with_the_pip_command(run, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    rc = cli.main(["export", str(run.run_dir), "--onnx"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == "fasbench: error: fasbench export --onnx needs onnxruntime: pip install 'fasbench[export]'"
