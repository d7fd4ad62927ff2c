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
    # relaunched, the complete job is kept (sweeps resume by default), the failing one fails again
    again = run_cli(*args, timeout=300)
    assert again.returncode == 1 and "complete, kept" in again.stdout + again.stderr
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


def test_two_processes_warm_one_synthetic_cache(cli_env, tmp_path):
    """Two processes on an empty cache: one generates the world, the other waits and reads
    it; both see the same content hash and the cache holds one complete entry, no temp files."""
    import subprocess
    import sys

    code = ("from fasbench.data.synthetic import SyntheticConfig, load_or_generate\n"
            "cfg = SyntheticConfig(domains='MCI', subjects=6, dev_subjects=None, test_subjects=None, live_videos=1, "
            "print_videos=1, replay_videos=1, frames_per_video=2, image_size=48)\n"
            f"print(load_or_generate(cfg, cache_dir={str(tmp_path)!r}).fingerprint())\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    prints = {o[0].strip() for o in outs}
    assert len(prints) == 1 and len(prints.pop()) == 16
    entries = [p for p in (tmp_path / "synthetic").iterdir() if not p.name.endswith(".lock")]
    assert len(entries) == 1 and (entries[0] / "content.json").exists(), entries
