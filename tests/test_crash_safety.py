"""Nothing lost: kills at every checkpoint write point and at random moments, Ctrl-C, exact
resume, checkpoints of other code or component versions, full or unwritable outputs, and
bad input that must fail in one line before any data loads."""
from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fasbench import cli, config, plugins
from fasbench.contract import TINY_WORLD
from fasbench.engine import checkpoint as ckpt
from fasbench.engine.run import run_protocol
from fasbench.errors import FasbenchError
from fasbench.records import read_record

#: DAT: dropout (global random state) and a domain head; 6 steps, a checkpoint and an
#: evaluation every 2, source-val selection (best-weights files are written too).
RUN = ["run", "dat", "--protocol", "MC->I", "--no-progress", "trainer=smoke", "trainer.max_steps=6",
       "eval.checkpoint=source-val", "eval.bootstrap=0", "device=cpu", "trainer.keep_checkpoints=1", *TINY_WORLD]
RUN_DIR = ("MC_to_I", "dat", "MC_to_I", "seed0")

#: kill the process (SIGKILL: no clean-up of any kind) at the N-th time a write point is reached
DRIVER = """
import os, signal, sys
from fasbench.engine import checkpoint as ckpt
point, nth = sys.argv[1], int(sys.argv[2])
seen = {"n": 0}
def hook(p):
    if p == point:
        seen["n"] += 1
        if seen["n"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
ckpt.FAULT_HOOK = hook
from fasbench.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def driver(module_tmp) -> Path:
    path = module_tmp("driver") / "kill_at.py"
    path.write_text(DRIVER)
    return path


@pytest.fixture(scope="module")
def reference(run_cli, module_tmp) -> dict:
    """The uninterrupted run's record."""
    out = module_tmp("uninterrupted")
    proc = run_cli(*RUN, "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.joinpath(*RUN_DIR, "record.json").read_text())


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name)


def _same_result(rec: dict, ref: dict) -> None:
    assert rec["scores"]["sha256"] == ref["scores"]["sha256"]  # every frame's score, bit for bit
    assert rec["curve"] == ref["curve"]
    assert (rec["val"], rec["target"], rec["selection"]) == (ref["val"], ref["target"], ref["selection"])


# kill points: (write point, which occurrence); the checkpoints of a run are at steps 2, 4, 6
# (best-weights files: the first evaluation is the tiny world's best)
KILLS = [("begin", 2), ("model", 1), ("state", 2), ("manifest", 2), ("renamed", 2), ("pruned", 2), ("best", 1)]


def test_kill_at_every_checkpoint_write_point_then_resume_equals_uninterrupted(driver, reference, cli_env, tmp_path):
    def one(case):
        point, nth = case
        out = tmp_path / f"{point}-{nth}"
        killed = subprocess.run([sys.executable, str(driver), point, str(nth), *RUN, "--out", str(out)],
                                env=cli_env(), capture_output=True, text=True, timeout=300)
        resumed = subprocess.run([sys.executable, "-m", "fasbench", *RUN, "--out", str(out), "--resume"],
                                 env=cli_env(), capture_output=True, text=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, (point, nth, killed.stderr[-2000:])
        assert resumed.returncode == 0, (point, nth, resumed.stderr[-2000:])
        run_dir = out.joinpath(*RUN_DIR)
        rec = json.loads((run_dir / "record.json").read_text())
        _same_result(rec, reference)
        assert rec["timings"]["resumed_from_step"] in (0, 2, 4), (point, nth)
        assert not _leftovers(out), (point, nth, _leftovers(out))
        assert [p.name for p in (run_dir / "checkpoint").iterdir() if p.name.startswith("step-")] == ["step-00000006"]
        shutil.rmtree(out)  # each case keeps ~130 MB of checkpoints: checked, then gone

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, KILLS))


def test_kills_at_random_moments_then_resume_equals_uninterrupted(reference, cli_env, tmp_path):
    rng = random.Random(7)
    out = tmp_path / "random"
    cmd = [sys.executable, "-m", "fasbench", *RUN, "--out", str(out), "--resume"]
    for _ in range(4):
        proc = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(4.0, 9.0))  # start-up is ~3-4 s: most kills land in training, evaluation or writes
        proc.kill()
        proc.wait(timeout=60)
    done = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _same_result(json.loads(out.joinpath(*RUN_DIR, "record.json").read_text()), reference)
    assert not _leftovers(out)


def _long_run_past_its_first_checkpoint(cli_env, out) -> subprocess.Popen:
    """A 400-step run in a subprocess, returned once its first checkpoint is on disk."""
    ckpt_dir = out.joinpath(*RUN_DIR, "checkpoint")
    proc = subprocess.Popen([sys.executable, "-m", "fasbench", *RUN, "trainer.max_steps=400", "trainer.eval_every=0",
                             "--out", str(out)], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a suite started in the background inherits SIGINT ignored: Ctrl-C's handler needs it back
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (ckpt_dir.is_dir() and any(p.name.startswith("step-") for p in ckpt_dir.iterdir())):
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else "timeout"
        time.sleep(0.2)
    return proc


def test_ctrl_c_says_what_resume_continues_from(cli_env, tmp_path):
    out = tmp_path / "sigint"
    ckpt_dir = out.joinpath(*RUN_DIR, "checkpoint")
    proc = _long_run_past_its_first_checkpoint(cli_env, out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    m = re.search(r"fasbench: dat MC->I seed 0 interrupted at step (\d+); rerun with --resume to continue from the "
                  r"checkpoint of step (\d+)", err)
    assert m, err
    assert "Traceback" not in err
    assert int(m.group(2)) <= int(m.group(1)) and int(m.group(2)) % 2 == 0
    assert [p.name for p in ckpt_dir.iterdir() if p.name.startswith("step-")] == [f"step-{int(m.group(2)):08d}"]


def test_sigterm_stops_a_run_like_ctrl_c_and_releases_its_lease(cli_env, tmp_path):
    """kill, docker stop and SLURM (at a time limit or a preemption) send SIGTERM: the run unwinds
    like Ctrl-C, says what --resume continues from, exits 143 and leaves no lease behind (a hard
    kill's lease makes a requeued job on another node wait for it to expire)."""
    out = tmp_path / "sigterm"
    run_dir = out.joinpath(*RUN_DIR)
    proc = _long_run_past_its_first_checkpoint(cli_env, out)
    assert (run_dir / ".lease").exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    m = re.search(r"fasbench: dat MC->I seed 0 stopped by SIGTERM at step (\d+); rerun with --resume to continue from "
                  r"the checkpoint of step (\d+)", err)
    assert m, err
    assert "Traceback" not in err
    assert int(m.group(2)) <= int(m.group(1)) and int(m.group(2)) % 2 == 0
    assert not (run_dir / ".lease").exists()
    # the CSV log was closed, not cut: every line whole, the last logged step not past the stop
    rows = (run_dir / "log.csv").read_text().splitlines()
    assert len(rows) >= 2 and all(r.count(",") == rows[0].count(",") for r in rows)
    assert int(rows[-1].split(",")[0]) <= int(m.group(1))


# ------------------------------------------------------------------- in-process cases


def make_cfg(cache, out, *extra):
    cfg = config.compose(["method=erm", "trainer=smoke", *TINY_WORLD, f"data.cache_dir={cache}", "eval.bootstrap=0", *extra])
    cfg.protocol, cfg.device, cfg.out = "MC->I", "cpu", str(out)
    return cfg


def interrupt_after_first_checkpoint(cfg) -> Path:
    def hook(point):
        if point == "pruned":
            raise KeyboardInterrupt

    ckpt.FAULT_HOOK = hook
    try:
        with pytest.raises(KeyboardInterrupt, match="continue from the checkpoint of step 2"):
            run_protocol(cfg, progress=False, echo=lambda *_: None)
    finally:
        ckpt.FAULT_HOOK = None
    return Path(cfg.out) / "MC_to_I" / "erm" / "MC_to_I" / "seed0"


@pytest.fixture(scope="module")
def interrupted(fasbench_cache, module_tmp) -> Path:
    """The output folder of an erm run stopped after its first checkpoint (copy it before use)."""
    out = module_tmp("interrupted")
    interrupt_after_first_checkpoint(make_cfg(fasbench_cache, out))
    return out


def test_resume_refuses_another_component_version(interrupted, fasbench_cache, tmp_path, monkeypatch):
    shutil.copytree(interrupted, tmp_path, dirs_exist_ok=True)
    entry = plugins.registry("methods").get("erm")
    monkeypatch.setattr(entry, "version", 2)
    with pytest.raises(FasbenchError, match=r"checkpoint .*step-00000002 belongs to another run \(method: erm@1 -> erm@2"):
        run_protocol(make_cfg(fasbench_cache, tmp_path), resume=True, progress=False, echo=lambda *_: None)


def test_resume_refuses_other_code(interrupted, fasbench_cache, tmp_path, monkeypatch):
    shutil.copytree(interrupted, tmp_path, dirs_exist_ok=True)
    from fasbench.engine import identity, trainer

    real = identity.code_identity()
    monkeypatch.setattr(trainer, "code_identity", lambda: {**real, "commit": "0" * 40})
    with pytest.raises(FasbenchError, match=r"was written by other code \(commit .* -> 0000000000.*run without --resume"):
        run_protocol(make_cfg(fasbench_cache, tmp_path), resume=True, progress=False, echo=lambda *_: None)
    monkeypatch.setattr(trainer, "code_identity", lambda: {**real, "plugins": {**real["plugins"], "fasbench-baselines": "9.9"}})
    with pytest.raises(FasbenchError, match=r"fasbench-baselines .* -> 9\.9"):
        run_protocol(make_cfg(fasbench_cache, tmp_path), resume=True, progress=False, echo=lambda *_: None)
    monkeypatch.setattr(trainer, "code_identity", lambda: real)  # the same code continues
    (rec,) = run_protocol(make_cfg(fasbench_cache, tmp_path), resume=True, progress=False, echo=lambda *_: None)
    assert rec.timings["resumed_from_step"] == 2


def test_full_disk_is_found_before_the_first_step(fasbench_cache, tmp_path, monkeypatch):
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 5 << 20))
    with pytest.raises(FasbenchError, match=r"5 MiB free, this run's checkpoints need about \d+ MiB; free some space, pick "
                                            r"another --out, or set trainer.checkpoint_every=0"):
        run_protocol(make_cfg(fasbench_cache, tmp_path), progress=False, echo=lambda *_: None)
    assert not list(tmp_path.rglob("checkpoint"))  # no step was trained


def test_a_checkpoint_the_disk_refuses_keeps_the_previous_one(fasbench_cache, tmp_path, monkeypatch):
    from safetensors import torch as st

    real, calls = st.save_model, {"n": 0}

    def full_on_second(model, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(model, filename, metadata=metadata)

    monkeypatch.setattr(ckpt, "save_model", full_on_second)
    with pytest.raises(FasbenchError, match=r"could not write the checkpoint of step 4 .*No space left on device\); the "
                                            r"checkpoint of step 2 is intact"):
        run_protocol(make_cfg(fasbench_cache, tmp_path), progress=False, echo=lambda *_: None)
    ckpt_dir = tmp_path / "MC_to_I" / "erm" / "MC_to_I" / "seed0" / "checkpoint"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["step-00000002"]  # and no temp folder
    monkeypatch.setattr(ckpt, "save_model", real)
    (rec,) = run_protocol(make_cfg(fasbench_cache, tmp_path), resume=True, progress=False, echo=lambda *_: None)
    assert rec.timings["resumed_from_step"] == 2


def test_record_goes_to_a_fallback_folder_when_the_run_dir_fails(fasbench_cache, tmp_path, monkeypatch, capsys):
    import fasbench.util as util

    run_dir = tmp_path / "out" / "MC_to_I" / "erm" / "MC_to_I" / "seed0"
    real = util.atomic_write_bytes

    def refuse_run_dir(path, data):
        if Path(path).parent == run_dir and Path(path).name in ("record.json", "scores.csv.gz"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(util, "atomic_write_bytes", refuse_run_dir)
    monkeypatch.setenv("FASBENCH_CACHE", str(tmp_path / "cache"))
    (rec,) = run_protocol(make_cfg(fasbench_cache, tmp_path / "out"), progress=False, echo=lambda *_: None)
    err = capsys.readouterr().err
    m = re.search(r"could not write the record to (\S+) \(No space left on device\); it was written to (\S+) instead: "
                  r"move that folder's files into (\S+)", err)
    assert m and Path(m.group(1)) == run_dir, err
    fallback = Path(m.group(2))
    assert fallback.parent == tmp_path / "cache" / "unsaved-runs"
    saved = read_record(fallback / "record.json")
    assert saved.scores.sha256 == rec.scores.sha256
    import hashlib

    assert hashlib.sha256((fallback / "scores.csv.gz").read_bytes()).hexdigest() == rec.scores.sha256
    assert not (run_dir / "record.json").exists()


def _damage_state(out: Path) -> None:
    state = out / "MC_to_I" / "erm" / "MC_to_I" / "seed0" / "checkpoint" / "step-00000002" / "trainer.pt"
    blob = bytearray(state.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    state.write_bytes(bytes(blob))


def _damage_record(out: Path) -> None:
    (out / "MC_to_I" / "erm" / "MC_to_I" / "seed0" / "record.json").write_text('{"schema": "fasbench-run/')


# (arguments, what the one line must contain); every case is refused before any data loads
BAD = [
    (["trainer.max_steps=abc"], "trainer.max_steps='abc': expected int"),
    (["trainer.max_steps=2.7"], "trainer.max_steps=2.7: expected int"),
    (["trainer.batch_size=abc"], "trainer.batch_size='abc': expected int"),
    (["optim.lr=abc"], "optim.lr='abc': expected float"),
    (["optim.lr=nan"], "optim.lr=nan: expected float"),
    (["optim.lr=-1"], "optim.lr=-1: expected float (input should be greater than 0)"),
    (["optim.lr=inf"], "optim.lr=inf: expected float (input should be a finite number)"),
    (["optim.weight_decay=nan"], "optim.weight_decay=nan"),
    (["seed=abc"], "seed='abc': expected int"),
    (["--seed", "-1"], "seed=-1: expected int (input should be greater than or equal to 0)"),
    (["--seeds", "0,-3"], "seed=-3"),
    (["eval.batch_size=0"], "eval.batch_size=0: expected int (input should be greater than 0)"),
    (["device=tpu"], "device='tpu': use auto, cpu, cuda, cuda:N or mps"),
    (["optim.name=foo"], "optim.name='foo' is not a timm optimizer"),
    (["optim.schedule=foo"], "optim.schedule='foo': expected 'cosine' | 'constant'"),
    (["trainer.eval_every=-1"], "trainer.eval_every=-1: expected int (input should be greater than or equal to 0)"),
    (["trainer.checkpoint_every=-1"], "trainer.checkpoint_every=-1"),
    (["trainer.num_workers=-1"], "trainer.num_workers=-1"),
    (["data.crop_size=64"], "crop_size=64 is larger than the frames (image_size=48); use data.crop_size<=48"),
    (["--out", "{file}/sub"], "is a file, not a directory; pick another --out"),
    (["--resume", "--out", "{damaged_state}"], "trainer.pt does not match its manifest (size or sha256 differ: the file is "
                                               "damaged); delete"),
    (["--resume", "--out", "{damaged_record}"], "not a readable JSON file"),
    (["-m", "trainer.max_steps=4,abc"], "sweep job [method=erm"),
    (["-m", "optim.lr=1e-3,-1", "--out", "{tmp}/sweep"], "optim.lr=-1: expected float"),
]


def test_bad_input_is_one_line_before_any_data_loads(interrupted, fasbench_cache, tmp_path, monkeypatch, capsys):
    from fasbench.engine import run as engine_run

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the bad input was reported")

    monkeypatch.setattr(engine_run, "_build_frames", no_data)
    (tmp_path / "file").write_text("not a folder")
    places = {"file": tmp_path / "file", "tmp": tmp_path}
    for name, damage in (("damaged_state", _damage_state), ("damaged_record", _damage_record)):
        shutil.copytree(interrupted, tmp_path / name)
        damage(tmp_path / name)
        places[name] = tmp_path / name
    base = ["run", "erm", "--protocol", "MC->I", "--no-progress", "trainer=smoke", *TINY_WORLD,
            f"data.cache_dir={fasbench_cache}", "eval.bootstrap=0", "device=cpu"]
    failures = []
    for args, expected in BAD:
        args = [a.format(**places) for a in args]
        if "--out" not in args:
            args += ["--out", str(tmp_path / "out")]
        rc = cli.main([*base, *args])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        if rc != 2 or len(lines) != 1 or not lines[0].startswith("fasbench: error: ") or expected not in lines[0]:
            failures.append(f"{args}: rc={rc} {err!r}")
    assert not failures, "\n".join(failures)


def test_leftovers_of_dead_writers_are_cleaned(tmp_path):
    """Temp files and folders of a dead writer (pid no longer running) are removed by the next
    start; those of a live process are left alone."""
    from fasbench.util import clean_leftovers, temp_name

    folder = tmp_path / "ckpt"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    mine = temp_name("step-00000004")
    theirs = mine.replace(f".{os.getpid()}.", f".{pid}.")
    (folder / mine).mkdir()
    (folder / theirs).mkdir()
    (folder / theirs / "model.safetensors").write_bytes(b"partial")
    (folder / theirs.replace("step-00000004", "record.json")).write_text("{")
    removed = clean_leftovers(folder)
    assert sorted(p.name for p in removed) == sorted([theirs, theirs.replace("step-00000004", "record.json")])
    assert [p.name for p in folder.iterdir()] == [mine]


def test_two_live_processes_never_train_one_run(fasbench_cache, cli_env, tmp_path):
    """A lease on the run directory: a second process is refused while the first lives, and
    takes over at once after the first is killed (same host: its pid is gone)."""
    out = tmp_path / "leased"
    holder = subprocess.Popen(
        [sys.executable, "-m", "fasbench", "run", "erm", "--protocol", "MC->I", "--no-progress", "trainer=smoke",
         "trainer.max_steps=400", "trainer.eval_every=0", "eval.bootstrap=0", "device=cpu", *TINY_WORLD,
         f"data.cache_dir={fasbench_cache}", "--out", str(out)],
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lease = out / "MC_to_I" / "erm" / "MC_to_I" / "seed0" / ".lease"
    deadline = time.time() + 120
    while not lease.exists():
        assert time.time() < deadline and holder.poll() is None, holder.stderr.read() if holder.poll() is not None else "timeout"
        time.sleep(0.2)
    try:
        with pytest.raises(FasbenchError, match=rf"seed0 is being trained by another process \(pid {holder.pid} on this "
                                                r"machine\); wait for it to finish, or give MC->I seed 0 another --out"):
            run_protocol(make_cfg(fasbench_cache, out, "trainer.max_steps=400", "trainer.eval_every=0"), resume=True,
                         progress=False, echo=lambda *_: None)
    finally:
        holder.kill()
        holder.wait(timeout=60)
    from fasbench.engine.lease import run_lease

    assert lease.exists()  # left by the killed holder
    t = time.time()
    with run_lease(lease.parent):
        assert f"pid={os.getpid()}" in lease.read_text()
    assert time.time() - t < 5 and not lease.exists()  # taken over at once, then released
