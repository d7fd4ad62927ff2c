"""Sweeps on Hydra's launcher plugins (the ``sweep`` extra): joblib runs jobs in loky worker
processes (DataLoader workers inside them), submitit_local runs each job as its own
subprocess, a job killed after a checkpoint resumes from it when the same sweep command runs
again (metrics equal to an uninterrupted run), and a relaunch skips complete jobs."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from fasbench.contract import TINY_WORLD
from fasbench.records import read_record


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # no hydra_plugins namespace at all
        return False


JOBLIB = _installed("hydra_plugins.hydra_joblib_launcher")
SUBMITIT = _installed("hydra_plugins.hydra_submitit_launcher") and _installed("submitit")
pytestmark = pytest.mark.slow

#: 6 steps, a checkpoint every 2, no bootstrap: seconds per run on the tiny world
BASE = ["run", "erm", "--protocol", "MC->I", "--no-progress", "trainer=smoke", "trainer.max_steps=6", "eval.bootstrap=0",
        "device=cpu", *TINY_WORLD]
RUN = ("MC_to_I", "erm", "MC_to_I")


def _status(run_cli, out: Path) -> list[dict]:
    proc = run_cli("sweep", "status", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _results(out: Path) -> list[dict]:
    """The result file each job of the newest launch wrote (OUT/multirun/sweeps/<plan>/<key>.json)."""
    plan = sorted((out / "multirun" / "sweeps").glob("*.json"))[-1]
    return [json.loads(p.read_text()) for p in sorted(plan.with_suffix("").glob("*.json"))]


@pytest.mark.skipif(not JOBLIB, reason="needs hydra-joblib-launcher: pip install -e '.[sweep]'")
def test_joblib_runs_two_jobs_in_two_processes_with_loader_workers(run_cli, tmp_path):
    out = tmp_path / "joblib"
    args = [*BASE, "-m", "--out", out, "trainer.num_workers=2", "optim.lr=0.001,0.0005",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    proc = run_cli(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in proc.stdout + proc.stderr
    rows = _status(run_cli, out)
    assert [r["state"] for r in rows] == ["complete", "complete"], rows
    # each job in its own folder, named by its overrides
    by_lr = {}
    for r in rows:
        run_dir = Path(r["run_dir"])
        rec = read_record(run_dir / "record.json")  # a valid record (strict types)
        assert rec.status == "complete" and rec.timings["steps_this_session"] == 6
        assert rec.config["trainer"]["num_workers"] == 2
        by_lr[rec.config["optim"]["lr"]] = run_dir.relative_to(out / "multirun").parts
    assert by_lr[0.001][0] != by_lr[0.0005][0] and {p[1:] for p in by_lr.values()} == {(*RUN, "seed0")}
    for lr, parts in by_lr.items():
        job_dir = out / "multirun" / parts[0]
        assert len(parts[0].encode()) <= 200  # the overrides are many: the name is cut and hashed ...
        (saved,) = job_dir.glob(".hydra/*/overrides.yaml")  # ... and the job's own .hydra folder lists them all
        assert f"optim.lr={lr}" in saved.read_text() and "trainer.num_workers=2" in saved.read_text()
    results = _results(out)
    assert [(r["status"], r["launcher"], r["device"]) for r in results] == [("complete", "joblib", "cpu")] * 2
    assert len({r["pid"] for r in results}) == 2  # two worker processes
    # the same command again: both jobs complete, dropped before anything is launched
    again = run_cli(*args, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "sweep of 2 job(s), 2 run(s); 2 job(s) complete, skipped" in again.stderr
    assert "every job of this sweep is complete" in again.stderr and "Joblib.Parallel" not in again.stdout + again.stderr


@pytest.mark.skipif(not JOBLIB, reason="needs hydra-joblib-launcher: pip install -e '.[sweep]'")
def test_joblib_jobs_that_fail_are_summed_up_by_the_parent(run_cli, tmp_path):
    """Failures happen in worker processes: the parent reads them from the jobs' result files."""
    out = tmp_path / "failing"
    proc = run_cli(*BASE, "-m", "--out", out, "data.cache_dir=/proc/no-such-cache", "seed=0,1",
                   "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "fasbench: 2 of 2 sweep job(s) failed (each wrote failed.json in its run directory):" in proc.stderr
    assert "Traceback" not in proc.stderr
    rows = _status(run_cli, out)
    assert [r["state"] for r in rows] == ["failed", "failed"]
    for r in rows:
        info = json.loads((Path(r["run_dir"]) / "failed.json").read_text())
        assert "/proc/no-such-cache" in info["message"]


@pytest.mark.skipif(not SUBMITIT, reason="needs hydra-submitit-launcher: pip install -e '.[sweep]'")
def test_submitit_local_runs_each_job_as_its_own_process(run_cli, tmp_path):
    out = tmp_path / "submitit"
    proc = run_cli(*BASE, "-m", "--out", out, "seed=0,1", "hydra/launcher=submitit_local",
                   "hydra.launcher.timeout_min=20", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _status(run_cli, out)
    assert [r["state"] for r in rows] == ["complete", "complete"], rows
    assert sorted(Path(r["run_dir"]).name for r in rows) == ["seed0", "seed1"]
    for r in rows:
        assert read_record(Path(r["run_dir"]) / "record.json").status == "complete"
    results = _results(out)
    assert [r["status"] for r in results] == ["complete", "complete"] and len({r["pid"] for r in results}) == 2
    # submitit keeps each job's pickled call and its logs (the records' lines are in them)
    logs = list((out / "multirun" / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2 and sum("record written to" in p.read_text() for p in logs) == 2


#: imported by every Python process started with this folder on PYTHONPATH (the sweep's parent,
#: its loky workers): SIGKILL at the first complete checkpoint (renamed into place)
SITECUSTOMIZE = """
import os
if os.environ.get("FASBENCH_TEST_KILL_AT_FIRST_CHECKPOINT"):
    import signal
    from fasbench.engine import checkpoint as _ckpt

    def _kill(point):
        if point == "renamed":
            os.kill(os.getpid(), signal.SIGKILL)

    _ckpt.FAULT_HOOK = _kill
"""


@pytest.mark.skipif(not JOBLIB, reason="needs hydra-joblib-launcher: pip install -e '.[sweep]'")
def test_a_killed_job_resumes_from_its_checkpoint_when_the_sweep_runs_again(run_cli, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    ref_out, out = tmp_path / "uninterrupted", tmp_path / "sweep"
    ref = run_cli(*BASE, "--out", ref_out, timeout=300)  # the same setting, one plain run
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = json.loads(ref_out.joinpath(*RUN, "seed0", "record.json").read_text())
    args = [*BASE, "-m", "--out", out, "seed=0", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]

    killed = run_cli(*args, pythonpath=hook, env={"FASBENCH_TEST_KILL_AT_FIRST_CHECKPOINT": "1"}, timeout=300)
    assert killed.returncode == 1, killed.stderr[-3000:]
    assert "fasbench: 1 of 1 sweep job(s) left no result" in killed.stderr
    (row,) = _status(run_cli, out)
    assert (row["state"], row["detail"]) == ("interrupted", "checkpoint of step 2 (the same sweep command continues it)")

    resumed = run_cli(*args, timeout=300)  # the same command
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rec = json.loads(Path(row["run_dir"], "record.json").read_text())
    assert rec["timings"]["resumed_from_step"] == 2
    assert rec["config_hash"] == reference["config_hash"]  # a sweep job is the plain run's setting
    assert rec["scores"]["sha256"] == reference["scores"]["sha256"]  # every frame's score, bit for bit
    assert (rec["val"], rec["target"], rec["curve"]) == (reference["val"], reference["target"], reference["curve"])
