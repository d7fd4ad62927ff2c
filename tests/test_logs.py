"""Training logs: the CSV log (always) and TensorBoard (when installed)."""
from __future__ import annotations

import csv

import pytest

from fasbench.engine.logs import CSV_NAME, TB_DIR, RunLogger, parse_loggers
from fasbench.errors import FasbenchError


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_parse_loggers():
    assert parse_loggers("csv") == ("csv",)
    assert parse_loggers("tensorboard") == ("csv", "tensorboard")  # the CSV log is always written
    assert parse_loggers(["csv", "tensorboard", "csv"]) == ("csv", "tensorboard")
    assert parse_loggers("none") == ("csv",)
    with pytest.raises(FasbenchError, match=r"unknown logger .wandbx.*trainer.logger=\[csv,tensorboard\]"):
        parse_loggers("csv,wandbx")


def test_csv_log_widens_and_resumes(tmp_path):
    log = RunLogger(tmp_path, ["csv"])
    for step in (1, 2, 3, 4):
        log.train(step, {"ce": 1.0 / step}, lr=0.01 * step)
        if step % 2 == 0:
            log.eval({"step": step, "loss/ce": 1.0 / step, "val/EER": 10.0 + step, "target/HTER@source-val-threshold": 20.0})
    log.close()
    rows = _rows(tmp_path / CSV_NAME)
    assert [(r["step"], r["kind"]) for r in rows] == [("1", "train"), ("2", "train"), ("2", "eval"), ("3", "train"),
                                                      ("4", "train"), ("4", "eval")]
    assert list(rows[0]) == ["step", "kind", "elapsed_s", "lr", "loss/ce", "val/EER", "target/HTER@source-val-threshold"]
    assert float(rows[3]["loss/ce"]) == pytest.approx(1 / 3) and float(rows[3]["lr"]) == pytest.approx(0.03)
    assert rows[2]["loss/ce"] == "" and float(rows[2]["val/EER"]) == 12.0  # eval rows hold the metrics only
    assert rows[0]["val/EER"] == ""  # written before the column existed: empty, the file stays one valid CSV

    # a run killed after step 4 resumed from the checkpoint of step 2: rows after step 2 are dropped
    log = RunLogger(tmp_path, ["csv"], start_step=2)
    log.train(3, {"ce": 0.3}, lr=0.03)
    log.close()
    rows = _rows(tmp_path / CSV_NAME)
    assert [(r["step"], r["kind"]) for r in rows] == [("1", "train"), ("2", "train"), ("2", "eval"), ("3", "train")]
    assert float(rows[-1]["loss/ce"]) == 0.3 and float(rows[2]["val/EER"]) == 12.0

    # a fresh (not resumed) run starts the log again
    RunLogger(tmp_path, ["csv"]).close()
    assert _rows(tmp_path / CSV_NAME) == []


def test_tensorboard_events_hold_the_values(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = RunLogger(tmp_path, ["csv", "tensorboard"])
    for step in (1, 2):
        log.train(step, {"ce": 0.5 * step, "kd": 0.25}, lr=1e-3)
    log.eval({"step": 2, "val/EER": 7.5, "target/AUC": None})
    log.close()
    acc = EventAccumulator(str(tmp_path / TB_DIR))
    acc.Reload()
    got = {tag: [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert got == {"loss/ce": [(1, 0.5), (2, 1.0)], "loss/kd": [(1, 0.25), (2, 0.25)], "lr": [(1, 0.001), (2, 0.001)],
                   "val/EER": [(2, 7.5)]}


def test_missing_tensorboard_is_one_line(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_tb(name, *a, **k):
        if name == "tensorboard":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    with pytest.raises(FasbenchError, match=r"needs the tensorboard package: pip install 'fasbench\[logs\]'"):
        RunLogger(tmp_path, ["tensorboard"])


def test_progress_bars_only_in_a_terminal(monkeypatch):
    from fasbench.util import bar_disabled

    monkeypatch.delenv("FASBENCH_PROGRESS", raising=False)
    assert bar_disabled(False) is True
    assert bar_disabled(True) is None  # tqdm: shown on a TTY, hidden when stderr is a file or a pipe
    monkeypatch.setenv("FASBENCH_PROGRESS", "1")
    assert bar_disabled(True) is False and bar_disabled(False) is True  # --no-progress still wins
    monkeypatch.setenv("FASBENCH_PROGRESS", "0")
    assert bar_disabled(True) is True


@pytest.mark.slow
def test_a_run_logs_its_steps_and_keeps_only_what_is_asked(run_cli, tmp_path):
    """log.csv holds every logged step and the record's evaluation points; by default a complete
    run keeps record, scores, student weights and logs, not its checkpoints."""
    pytest.importorskip("tensorboard")
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fasbench.contract import TINY_WORLD

    base = ["run", "erm", "--protocol", "MC->I", "--no-progress", "trainer=smoke", "eval.bootstrap=0", "device=cpu",
            *TINY_WORLD]
    rel = ("MC_to_I", "erm", "MC_to_I", "seed0")
    done = run_cli(*base, "trainer.logger=[csv,tensorboard]", "--out", tmp_path / "a")
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = tmp_path.joinpath("a", *rel)
    rec = json.loads((run_dir / "record.json").read_text())
    rows = _rows(run_dir / CSV_NAME)
    train = [r for r in rows if r["kind"] == "train"]
    assert [int(r["step"]) for r in train] == [1, 2, 3, 4]  # trainer=smoke: log_every=1, 4 steps
    evals = {int(r["step"]): r for r in rows if r["kind"] == "eval"}
    assert sorted(evals) == [p["step"] for p in rec["curve"]] == [2, 4]
    for point in rec["curve"]:  # the same numbers as the record's curve, evaluation and losses
        row = evals[point["step"]]
        assert float(row["val/EER"]) == pytest.approx(point["val/EER"], abs=1e-12)
        assert float(row["target/HTER@source-val-threshold"]) == pytest.approx(point["target/HTER@source-val-threshold"])
        loss_row = next(r for r in train if int(r["step"]) == point["step"])
        assert float(loss_row["loss/ce"]) == pytest.approx(point["loss/ce"], abs=1e-12)
    assert all(0 < float(r["lr"]) for r in train)
    acc = EventAccumulator(str(run_dir / TB_DIR))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/ce")] == [1, 2, 3, 4]
    assert [round(e.value, 5) for e in acc.Scalars("val/EER")] == [round(p["val/EER"], 5) for p in rec["curve"]]
    # keep_checkpoints=0 (the default): the checkpoints are gone, what the run reports stays
    assert not (run_dir / "checkpoint").exists()
    assert {"record.json", "scores.csv.gz", "student.safetensors", CSV_NAME} <= {p.name for p in run_dir.iterdir()}

    done = run_cli(*base, "trainer.keep_checkpoints=1", "eval.checkpoint=source-val", "--out", tmp_path / "b")
    assert done.returncode == 0, done.stderr[-2000:]
    ckpt = tmp_path.joinpath("b", *rel, "checkpoint")
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-00000004"]  # the newest one; best-weights files removed
    assert "it/s" not in done.stderr  # --no-progress, and never a bar when stderr is not a terminal
