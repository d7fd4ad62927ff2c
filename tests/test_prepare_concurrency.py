"""Two preparations of one frame cache entry at once never corrupt each other: the lock beside
the entry (fasbench.data.real_dataset.entry_lock, taken in prepare_one, which `fasbench data
prepare`, `data preview` and the auto-prepare of `fasbench run` all go through) lets one
prepare while the other waits, then reuses the finished entry."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("facenet_pytorch")
from test_real_datasets import write_video  # noqa: E402


def _tiny_casia(root: Path) -> Path:
    """Two videos of CASIA-FASD's layout (a live one in train, a cut photo in test): quick to prepare."""
    write_video(root / "train_release" / "1" / "1.avi")
    write_video(root / "test_release" / "1" / "5.avi")
    return root


def _entry(root: Path, cache: Path) -> Path:
    from fasbench.data import indexers
    from fasbench.data.prepare import PrepConfig, cache_key, entry_dir

    videos = indexers.index("C", root, progress=False).videos
    return entry_dir(cache, "casia_fasd", cache_key(videos, PrepConfig.from_mapping()))


def _wait_for(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_prepares_at_once_one_prepares_the_other_waits_and_reuses(cli_env, tmp_path):
    from filelock import FileLock

    from fasbench.data.prepare import PrepConfig, prepare
    from fasbench.data.real_dataset import lock_path

    root = _tiny_casia(tmp_path / "CASIA-FASD")
    cache = tmp_path / "cache"
    entry = _entry(root, cache)
    lock = lock_path(entry)
    assert lock == entry.parent / f".{entry.name}.lock"
    lock.parent.mkdir(parents=True)
    env = cli_env(FASBENCH_CACHE=str(cache), FASBENCH_CONFIG=str(tmp_path / "none.yaml"))
    cmd = [sys.executable, "-m", "fasbench", "data", "prepare", "casia_fasd", "--root", str(root), "--workers", "1",
           "--no-progress"]
    held = FileLock(str(lock))
    held.acquire()  # both start while the entry is locked, so both must wait, whatever the timing
    procs, logs = [], []
    try:
        for k in range(2):
            out, err = open(tmp_path / f"out{k}", "w"), open(tmp_path / f"err{k}", "w")
            logs.append((out, err))
            procs.append(subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=out, stderr=err, text=True))
        waiting = f"waiting for another process preparing {entry} (lock {lock})"
        _wait_for(lambda: all(waiting in (tmp_path / f"err{k}").read_text() for k in range(2)), 120,
                  "both processes to say they wait for the lock")
        assert not (entry / "plan.json").exists()  # nobody touched the entry while the lock was held
    finally:
        held.release()
        for p in procs:
            try:
                p.wait(timeout=120)
            finally:
                if p.poll() is None:
                    p.kill()
        for out, err in logs:
            out.close()
            err.close()
    outs = [(tmp_path / f"out{k}").read_text() for k in range(2)]
    assert [p.returncode for p in procs] == [0, 0], [(tmp_path / f"err{k}").read_text() for k in range(2)]
    did = [o for o in outs if o.startswith("casia_fasd: prepared 2/2 videos, 4 frames")]
    reused = [o for o in outs if o.startswith("casia_fasd: reused the prepared frame cache (after waiting for another "
                                              "process), 2/2 videos, 4 frames")]
    assert len(did) == 1 and len(reused) == 1, outs  # exactly one did the work

    # the entry is complete, nothing half-written or temporary is left, and the lock file sits beside it
    names = {p.name for p in entry.iterdir()}
    assert names == {"plan.json", "progress.jsonl", "images.npy", "videos.csv", "summary.json", "content.json"}, names
    assert sorted(p.name for p in entry.parent.iterdir()) == sorted([entry.name, lock.name])
    assert json.loads((entry / "summary.json").read_text())["prepared"] == 2

    # same content as one preparation alone in another cache
    from fasbench.data import indexers

    alone = prepare(indexers.index("C", root, progress=False).videos, root, PrepConfig.from_mapping(), tmp_path / "alone",
                    workers=1, progress=False)
    mine, theirs = (json.loads((e / "content.json").read_text()) for e in (entry, alone.entry))
    assert (mine["sha256"], mine["images_sha256"], mine["manifest_sha256"]) == \
        (theirs["sha256"], theirs["images_sha256"], theirs["manifest_sha256"])


def test_entry_lock_waits_and_says_so(tmp_path, capfd):
    """In one process: a second holder of an entry's lock blocks, with one line naming the entry
    and the lock file, until the first releases it."""
    import threading

    from fasbench.data.real_dataset import entry_lock, lock_path

    entry = tmp_path / "real" / "msu_mfsd" / "abc"
    order = []
    with entry_lock(entry) as waited:
        assert waited is False and lock_path(entry).exists() and not entry.exists()

        def second():
            with entry_lock(entry) as w:
                order.append(("second", w))

        t = threading.Thread(target=second)
        t.start()
        _wait_for(lambda: "waiting for another process" in capfd.readouterr().err or not t.is_alive(), 10, "the message")
        order.append(("first", False))
    t.join(10)
    assert order == [("first", False), ("second", True)]


@pytest.mark.skipif(os.name != "posix", reason="flock semantics")
def test_lock_of_a_killed_preparer_is_free(tmp_path):
    """A preparer killed while holding the lock does not block the next one (the system drops an
    flock with its process); the next one resumes the entry."""
    from fasbench.data.real_dataset import entry_lock, lock_path

    entry = tmp_path / "e"
    lock_path(entry).parent.mkdir(parents=True, exist_ok=True)
    code = ("import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
            "print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, str(lock_path(entry))], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        p.kill()
        p.wait(10)
        t0 = time.monotonic()
        with entry_lock(entry) as waited:
            assert waited is False and time.monotonic() - t0 < 5
    finally:
        if p.poll() is None:
            p.kill()
