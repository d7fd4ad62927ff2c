"""Sweeps that survive failures: a failing job writes failed.json and the sweep goes on, the
plan lists every run, `fasbench sweep status` reads the state of each from its files, and
job folder names stay under the file-name limit."""
from __future__ import annotations

import json
from pathlib import Path

from fasbench.contract import TINY_WORLD
from fasbench.engine.sweep import MAX_NAME, job_dirname


def test_a_failing_job_does_not_stop_the_sweep(run_cli, tmp_path):
    out = tmp_path / "sweep"
    args = ["run", "erm", "-m", "--protocol", "MC->I", "--out", out, "--no-progress", "trainer=smoke", *TINY_WORLD,
            "eval.bootstrap=0", "data.cache_dir=/proc/no-such-cache,null"]  # the first job cannot write its world cache
    proc = run_cli(*args, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "fasbench: 1 of 2 sweep job(s) failed (each wrote failed.json in its run directory):" in proc.stderr
    assert "Traceback" not in proc.stderr
    status = run_cli("sweep", "status", "--out", out, "--json")
    rows = json.loads(status.stdout)
    assert sorted(r["state"] for r in rows) == ["complete", "failed"], rows
    failed = next(r for r in rows if r["state"] == "failed")
    assert "data.cache_dir=/proc/no-such-cache" in failed["overrides"]
    info = json.loads((Path(failed["run_dir"]) / "failed.json").read_text())
    assert set(info) >= {"host", "pid", "time", "error", "message"} and "/proc/no-such-cache" in info["message"]
    done = next(r for r in rows if r["state"] == "complete")
    created = json.loads((Path(done["run_dir"]) / "record.json").read_text())["created"]
    # relaunched, the complete job is dropped before it is queued, the failing one fails again
    again = run_cli(*args, timeout=300)
    assert again.returncode == 1, again.stderr[-3000:]
    assert "sweep of 2 job(s), 2 run(s); 1 job(s) complete, skipped; plan " in again.stderr
    assert "Launching 1 jobs locally" in again.stdout + again.stderr
    assert "fasbench: 1 of 2 sweep job(s) failed" in again.stderr
    assert json.loads((Path(done["run_dir"]) / "record.json").read_text())["created"] == created
    text = run_cli("sweep", "status", "--out", out).stdout
    assert "1 complete, 1 failed (of 2 runs)" in text and "data.cache_dir=/proc/no-such-cache" in text


def test_job_folder_names_stay_short():
    overrides = [f"method.option_number_{i}=value_{i}_{'x' * 12}" for i in range(17)]
    name = job_dirname(overrides)
    assert len(name.encode()) <= MAX_NAME < 255 and "/" not in name
    assert job_dirname(list(reversed(overrides))) == name  # order does not matter
    assert job_dirname(overrides[:-1]) != name
    assert job_dirname(["optim.lr=0.001", "seed=1", "method=erm"]) == "optim.lr=0.001"  # short names stay readable
    assert "/" not in job_dirname(["data.roots.M=/data/msu"])


# --------------------------------------------------------------------------- checked before launch


def test_cfg_prints_the_composed_config_and_runs_nothing(run_cli, tmp_path, one_line_error):
    import yaml

    out = tmp_path / "nothing"
    proc = run_cli("run", "dat", "--cfg", "--protocol", "MC->I", "--seed", "3", "--out", out, "--tasks", "MC->I",
                   "trainer.max_steps=7", "optim.lr=0.0005")
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    assert (cfg["method"]["name"], cfg["protocol"], cfg["seed"], cfg["out"], cfg["tasks"]) == ("dat", "MC->I", 3, str(out), ["MC->I"])
    assert (cfg["trainer"]["max_steps"], cfg["optim"]["lr"], cfg["trainer"]["jobs_per_gpu"]) == (7, 0.0005, 1)
    assert cfg["method"]["max_lambda"] == 1.0 and cfg["method"]["dropout"] == 0.5  # the method's defaults filled in
    assert not out.exists()  # nothing run, nothing written
    bad = run_cli("run", "dat", "--cfg", "trainer.max_steps=-1")
    assert "trainer.max_steps" in one_line_error(bad)


def test_a_full_board_is_one_command(run_cli, tmp_path):
    """METHOD lists several methods under -m; with tasks= and seed= sweeps, every (method, task,
    seed) is one job; --cfg shows each job's config without launching anything."""
    import yaml

    out = tmp_path / "board"
    proc = run_cli("run", "erm,dat", "-m", "--cfg", "--protocol", "MICO", "--out", out, "tasks=M,C", "seed=0,1")
    assert proc.returncode == 0, proc.stderr
    def jobs_of(text: str) -> list[dict]:
        return sorted((yaml.safe_load(d) for d in text.split("\n---") if d.strip()), key=repr)

    jobs = jobs_of(proc.stdout)
    assert sorted((j["method"]["name"], j["tasks"], j["seed"]) for j in jobs) == sorted(
        (m, t, s) for m in ("erm", "dat") for t in ("M", "C") for s in (0, 1))
    assert all(j["out"] == str(out / "multirun" / "default") for j in jobs)  # the run path names method/task/seed
    assert not (out / "multirun" / "sweeps").exists()  # --cfg: no plan, no launch
    # the method= override form gives the same jobs
    same = run_cli("run", "erm", "-m", "--cfg", "--protocol", "MICO", "--out", out, "method=erm,dat", "tasks=M,C", "seed=0,1")
    assert same.returncode == 0 and jobs_of(same.stdout) == jobs, same.stderr


def test_every_method_name_is_checked_before_anything_launches(run_cli, tmp_path, one_line_error):
    out = tmp_path / "bad"
    line = one_line_error(run_cli("run", "erm,dta", "-m", "--out", out, "seed=0,1"))
    assert "unknown method 'dta'; did you mean" in line and "'dat'" in line
    line = one_line_error(run_cli("run", "erm", "-m", "--out", out, "method=erm,nope", "seed=0,1"))
    assert "unknown method 'nope'" in line
    assert not out.exists()  # no plan written, no job started
    line = one_line_error(run_cli("run", "erm,dat", "--out", out))
    assert "METHOD 'erm,dat' names several methods: sweep them with -m" in line


def test_a_missing_launcher_plugin_is_one_line(monkeypatch):
    import importlib.util

    import pytest

    from fasbench.commands.run import _check_launcher
    from fasbench.errors import FasbenchError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if "hydra_plugins" in name else real(name, *a))
    for launcher, dist in (("joblib", "hydra-joblib-launcher"), ("submitit_slurm", "hydra-submitit-launcher")):
        with pytest.raises(FasbenchError, match=rf"^hydra/launcher={launcher} needs {dist}: pip install 'fasbench\[sweep\]'$"):
            _check_launcher(["seed=0,1", f"hydra/launcher={launcher}"])
    _check_launcher(["hydra/launcher=basic"])  # Hydra's own


# --------------------------------------------------------------------------- GPU slots

_HOLDER = """
import sys, time
from pathlib import Path
from fasbench.engine.gpu_slots import claim_slot
lock_dir, n, per, release = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
slot = claim_slot(n, per, lock_dir, timeout=60, poll_s=0.05)
print(slot.gpu, slot.slot, flush=True)
while not release.exists():
    time.sleep(0.05)
slot.release()
"""


def test_gpu_slots_are_distinct_reused_and_freed_by_a_killed_holder(cli_env, tmp_path):
    """Real processes on one lock folder, 2 GPUs x 1 slot: two holders get the two GPUs, a
    third waits until one exits and takes its slot, a killed holder's slot is free at once."""
    import select
    import signal
    import subprocess
    import sys

    locks = tmp_path / "slots"

    def holder(name: str, n: int = 2, per: int = 1) -> tuple[subprocess.Popen, Path]:
        release = tmp_path / f"release-{name}"
        proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(locks), str(n), str(per), str(release)],
                                env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return proc, release

    def slot_of(proc: subprocess.Popen) -> tuple[int, int]:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        return tuple(int(x) for x in line.split())

    a, rel_a = holder("a")
    assert slot_of(a) == (0, 0)  # the first free slot: GPU 0
    b, rel_b = holder("b")
    assert slot_of(b) == (1, 0)  # then the other GPU, never GPU 0 twice
    c, rel_c = holder("c")
    assert select.select([c.stdout], [], [], 1.5)[0] == [] and c.poll() is None  # all slots taken: c waits
    rel_a.touch()  # a finishes and releases GPU 0 ...
    assert slot_of(c) == (0, 0)  # ... which c takes
    assert a.wait(timeout=30) == 0
    b.send_signal(signal.SIGKILL)  # killed while holding GPU 1: the OS drops its lock
    b.wait(timeout=30)
    d, rel_d = holder("d")
    assert slot_of(d) == (1, 0)
    for proc, rel in ((c, rel_c), (d, rel_d)):
        rel.touch()
        assert proc.wait(timeout=30) == 0
    assert sorted(p.name for p in locks.iterdir()) == ["gpu0-slot0.lock", "gpu1-slot0.lock"]


def test_gpu_slot_order_and_when_a_job_takes_none(monkeypatch):
    from fasbench.engine.gpu_slots import claim_slot, job_slot, slot_order

    # jobs spread over the GPUs before two share one
    assert slot_order(2, 2) == [(0, 0), (1, 0), (0, 1), (1, 1)]
    for device, launcher in (("cpu", "joblib"), ("cuda:1", "joblib"), ("cuda", "submitit_slurm"), ("auto", None)):
        with job_slot(device, 1, launcher) as got:
            assert got is None, (device, launcher)  # an explicit device, or the scheduler isolates GPUs
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with job_slot("auto", 1, "joblib") as got:
        assert got is None  # no GPU: nothing to share
    import pytest

    with pytest.raises(ValueError):
        claim_slot(0, 1, "/nonexistent")


def test_a_job_takes_a_slot_and_says_so(monkeypatch, tmp_path, capsys):
    """With (pretended) visible GPUs, the job's device is cuda:<its slot's GPU>, the lock file is
    under the cache keyed by host, and the slot is free again when the job ends."""
    import socket

    import filelock
    import pytest
    import torch

    from fasbench.engine.gpu_slots import job_slot

    monkeypatch.setenv("FASBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    folder = tmp_path / "gpu-slots" / socket.gethostname()
    with job_slot("auto", 1, "joblib") as first, job_slot("cuda", 1, "submitit_local") as second:
        assert (first, second) == ("cuda:0", "cuda:1")
        # the locks name the GPUs CUDA_VISIBLE_DEVICES names, so sweeps seeing other subsets never collide
        assert sorted(p.name for p in folder.iterdir()) == ["gpu4-slot0.lock", "gpu6-slot0.lock"]
        with pytest.raises(filelock.Timeout):  # held for the job's life
            filelock.FileLock(str(folder / "gpu4-slot0.lock")).acquire(timeout=0)
    filelock.FileLock(str(folder / "gpu4-slot0.lock")).acquire(timeout=0)  # released with the job
    assert "this job runs on cuda:1" in capsys.readouterr().err
