"""The data fingerprint is a content hash: frame caches are hashed when written, checked on
open, rehashed by `fasbench data verify`, and a run's ``data.fingerprint`` follows the pixels.

The problem this guards against: zeroing half the frames of a cached synthetic world changed
a run's target HTER under the same fingerprint (it was a hash of the config), so the record
could not tell. Every test here first does that (or the like) and checks it is now seen.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_real_datasets import _toy_manifest, fake_roots  # noqa: F401  (session fixture: the fake copies)

from fasbench.data import synthetic
from fasbench.data.frames import CONTENT_FILE, FrameCacheModified, FrameSet, images_digest
from fasbench.data.synthetic import SyntheticConfig, cache_key, generate, load_or_generate
from fasbench.errors import FasbenchError

TINY = dict(domains="MC", subjects=3, live_videos=1, print_videos=1, replay_videos=0, frames_per_video=2, image_size=32)
#: The same world as `fasbench run` options (TINY spelt as data.* overrides).
TINY_ARGS = ["data.domains=MC", "data.subjects=3", "data.dev_subjects=null", "data.test_subjects=null",
             "data.live_videos=1", "data.print_videos=1", "data.replay_videos=0", "data.frames_per_video=2",
             "data.image_size=32", "data.crop_size=28"]


def _entry(cache: Path, cfg: SyntheticConfig) -> Path:
    return cache / "synthetic" / cache_key(cfg)


def _zero_half(images_npy: Path) -> None:
    """What broke the fingerprint: half the frames zeroed in place, file size unchanged."""
    time.sleep(0.02)  # file times tick with the kernel clock: a later write has a later mtime
    m = np.load(images_npy, mmap_mode="r+")
    m[: len(m) // 2] = 0
    m.flush()
    del m


def _verify(capsys, *args: str) -> tuple[int, list[str]]:
    from fasbench.cli import main

    rc = main(["data", "verify", "--no-progress", *args])
    return rc, capsys.readouterr().out.splitlines()


@pytest.fixture()
def cached(tmp_path) -> tuple[Path, SyntheticConfig, FrameSet]:
    cfg = SyntheticConfig(**TINY)
    return tmp_path, cfg, load_or_generate(cfg, cache_dir=tmp_path)


def test_the_fingerprint_is_the_content_not_the_config(cached):
    cache, cfg, world = cached
    info = json.loads((_entry(cache, cfg) / CONTENT_FILE).read_text())
    assert world.fingerprint() == info["sha256"][:16] and len(world.fingerprint()) == 16
    # the same world generated in memory (no cache) hashes alike; the identity (config) is kept as is
    fresh = generate(cfg)
    assert fresh.sha256 is None and fresh.fingerprint() == world.fingerprint() and fresh.identity == world.identity
    # the problem: the same config with half the frames zeroed must not share the fingerprint
    zeroed = np.array(world.images)
    zeroed[: len(zeroed) // 2] = 0
    changed = FrameSet(world.manifest, zeroed, identity=world.identity)
    assert changed.identity == world.identity and changed.fingerprint() != world.fingerprint()
    one_pixel = np.array(world.images)
    one_pixel[0, 0, 0, 0] ^= 1
    assert FrameSet(world.manifest, one_pixel).fingerprint() != world.fingerprint()
    relabelled = world.manifest.copy()
    relabelled.loc[0, "label"] = 1 - relabelled.loc[0, "label"]
    assert FrameSet(relabelled, np.array(world.images)).fingerprint() != world.fingerprint()
    # another seed: other pixels, another fingerprint; another identity with the same content: the same one
    assert generate(SyntheticConfig(**{**TINY, "seed": 1})).fingerprint() != world.fingerprint()
    assert FrameSet(world.manifest, np.array(world.images), identity={"x": 1}).fingerprint() == world.fingerprint()


def test_same_content_same_fingerprint_across_processes(cached):
    cache, cfg, world = cached
    code = ("import sys; from fasbench.data.synthetic import SyntheticConfig, generate, load_or_generate; "
            f"cfg = SyntheticConfig(**{TINY!r}); "
            "print(load_or_generate(cfg, cache_dir=sys.argv[1]).fingerprint(), generate(cfg).fingerprint())")
    out = subprocess.run([sys.executable, "-c", code, str(cache)], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == [world.fingerprint(), world.fingerprint()]


def test_modified_world_is_a_one_line_error_on_open(cached, monkeypatch):
    cache, cfg, world = cached
    entry = _entry(cache, cfg)
    _zero_half(entry / "images.npy")
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: pytest.fail("a modified entry must not be regenerated"))
    with pytest.raises(FrameCacheModified) as err:
        load_or_generate(cfg, cache_dir=cache)
    msg = str(err.value)
    assert isinstance(err.value, FasbenchError) and "\n" not in msg
    assert msg.startswith(f"frame cache {entry / 'images.npy'} was modified after it was written (content sha256 "
                          f"{world.fingerprint()} expected, ")
    assert msg.endswith(f"found); delete {entry} to rebuild it, or run `fasbench data verify`")
    assert (entry / "images.npy").exists()  # left for the user to look at, not silently replaced
    # deleting the entry, as the message says, rebuilds it with the original content
    import shutil

    shutil.rmtree(entry)
    monkeypatch.undo()
    assert load_or_generate(cfg, cache_dir=cache).fingerprint() == world.fingerprint()


def test_modified_manifest_is_seen_too(cached):
    cache, cfg, _ = cached
    path = _entry(cache, cfg) / "manifest.csv"
    time.sleep(0.02)
    text = path.read_text()
    path.write_text(text.replace(",test,", ",train,", 1))  # one frame moved from test to train
    with pytest.raises(FrameCacheModified, match=r"frame cache \S+/manifest.csv was modified after it was written"):
        load_or_generate(cfg, cache_dir=cache)


def test_a_modified_world_fails_fasbench_run_in_one_line(cached, run_cli, one_line_error, tmp_path):
    cache, cfg, _ = cached
    _zero_half(_entry(cache, cfg) / "images.npy")
    proc = run_cli("run", "erm", "--protocol", "M->C", "--data", "synthetic", "--no-progress", "--out", tmp_path / "runs",
                   *TINY_ARGS, "trainer=smoke", env={"FASBENCH_CACHE": str(cache)})
    line = one_line_error(proc)
    assert "was modified after it was written" in line and "fasbench data verify" in line
    assert not list((tmp_path / "runs").rglob("record.json"))


def test_touch_without_a_change_opens_and_refreshes_the_sidecar(cached):
    cache, cfg, world = cached
    entry = _entry(cache, cfg)
    before = json.loads((entry / CONTENT_FILE).read_text())
    st = os.stat(entry / "images.npy")
    os.utime(entry / "images.npy", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    again = load_or_generate(cfg, cache_dir=cache)
    assert again.fingerprint() == world.fingerprint()
    after = json.loads((entry / CONTENT_FILE).read_text())
    assert after["images_mtime_ns"] == st.st_mtime_ns + 5_000_000_000 != before["images_mtime_ns"]
    assert after["sha256"] == before["sha256"]


def test_an_entry_of_older_code_gets_its_hash_once(cached, capsys):
    cache, cfg, world = cached
    entry = _entry(cache, cfg)
    (entry / CONTENT_FILE).unlink()
    assert load_or_generate(cfg, cache_dir=cache).fingerprint() == world.fingerprint()  # hashed on open
    assert json.loads((entry / CONTENT_FILE).read_text())["sha256"][:16] == world.fingerprint()
    (entry / CONTENT_FILE).unlink()
    rc, out = _verify(capsys, "--cache-dir", str(cache))
    assert rc == 0 and out[0].startswith(f"no content hash  {entry}  ") and "recorded now" in out[0]
    assert (entry / CONTENT_FILE).exists()
    rc, out = _verify(capsys, "--cache-dir", str(cache))
    assert rc == 0 and out[0].startswith(f"ok               {entry}  sha256 {world.fingerprint()}")


def test_verify_reports_modified_entries_and_exits_1(cached, capsys):
    cache, cfg, world = cached
    other_cfg = SyntheticConfig(**{**TINY, "seed": 1})
    load_or_generate(other_cfg, cache_dir=cache)
    rc, out = _verify(capsys, "--cache-dir", str(cache))
    assert rc == 0 and [ln.split()[0] for ln in out[:2]] == ["ok", "ok"] and out[-1].endswith("2 ok")
    modified = _entry(cache, cfg)
    _zero_half(modified / "images.npy")
    rc, out = _verify(capsys, "--cache-dir", str(cache))
    assert rc == 1
    line = next(ln for ln in out if str(modified) in ln)
    assert line.startswith(f"MODIFIED         {modified}  images.npy changed after the entry was written (content sha256 "
                           f"{world.fingerprint()} expected, ")
    assert next(ln for ln in out if str(_entry(cache, other_cfg)) in ln).startswith("ok ")
    assert out[-1].endswith("1 ok, 1 MODIFIED")
    rc, out = _verify(capsys, "synthetic", "--json", "--cache-dir", str(cache))
    res = {Path(r["entry"]).name: r for r in json.loads("\n".join(out))}
    assert rc == 1 and res[modified.name]["status"] == "modified" and res[modified.name]["changed"] == ["images.npy"]
    assert res[modified.name]["expected"][:16] == world.fingerprint() != res[modified.name]["sha256"][:16]
    # verify only reports: the stored hash stays the one written with the entry
    assert json.loads((modified / CONTENT_FILE).read_text())["sha256"][:16] == world.fingerprint()
    # an empty cache, or a name with nothing cached, is fine; an unknown name is one line
    rc, out = _verify(capsys, "--cache-dir", str(cache / "empty"))
    assert rc == 0 and out == [f"no frame cache under {cache / 'empty'}"]
    with pytest.raises(FasbenchError, match="no dataset 'nope'"):
        from fasbench.commands.data import _cache_entries

        _cache_entries(cache, ["nope"])


def test_views_keep_the_parent_fingerprint_and_stacks_combine_part_hashes():
    from fasbench.data.real_dataset import StackedFrames, task_view
    from fasbench.protocols import mico

    m = _toy_manifest()
    rng = np.random.default_rng(0)
    fs = FrameSet(m, rng.integers(0, 256, (len(m), 4, 4, 3), dtype=np.uint8),
                  identity={"split_convention": "official", "val_fraction": 0.2})
    p = mico()
    view, _, _ = task_view(fs, p, p.tasks[0])
    # splits re-assigned by the convention (recorded beside it), same pixels and rows: one fingerprint per setting
    assert not view.manifest["split"].equals(fs.manifest["split"]) and view.fingerprint() == fs.fingerprint()
    # a plugin's bare FrameSet is hashed from its own content
    assert FrameSet(m.copy(), np.array(fs.images)).fingerprint() == fs.fingerprint()
    a, b = np.array(fs.images[:10]), np.array(fs.images[10:])
    known = StackedFrames([a, b], [images_digest(a), images_digest(b)])
    assert images_digest(known) == images_digest(StackedFrames([a, b]))
    assert images_digest(StackedFrames([b, a])) != images_digest(known)


def test_prepared_real_data_is_hashed_and_checked(fake_roots, tmp_path, capsys):  # noqa: F811
    pytest.importorskip("facenet_pytorch")
    from fasbench.commands.data import data_config
    from fasbench.data import indexers, real_dataset
    from fasbench.data.prepare import PrepConfig, load, prepare

    root = fake_roots["C"]
    videos = indexers.index("C", root, progress=False).videos
    p = prepare(videos, root, PrepConfig.from_mapping(), tmp_path, workers=1, progress=False)
    info = json.loads((p.entry / CONTENT_FILE).read_text())
    assert (info["images_file"], info["manifest_file"]) == ("images.npy", "videos.csv")
    assert p.sha256 == info["sha256"] and p.images_sha256 == info["images_sha256"] == images_digest(p.images)
    # the FrameSet `fasbench run` gets: the cache's pixel hash (not re-read) + its frame manifest
    cfg = data_config([f"data.roots.C={root}", f"data.cache_dir={tmp_path}"])
    fs = real_dataset.build(cfg, progress=False, domains=["C"])
    assert fs.images_sha256 == info["images_sha256"]
    assert fs.fingerprint() == FrameSet(fs.manifest.copy(), np.array(fs.images)).fingerprint()
    _zero_half(p.entry / "images.npy")
    with pytest.raises(FrameCacheModified, match=rf"frame cache {p.entry / 'images.npy'} was modified after it was "
                                                 rf"written \(content sha256 {info['sha256'][:16]} expected, "):
        load(p.entry)
    with pytest.raises(FrameCacheModified):  # not silently prepared again either
        prepare(videos, root, PrepConfig.from_mapping(), tmp_path, workers=1, progress=False)
    rc, out = _verify(capsys, "casia_fasd", "--cache-dir", str(tmp_path))
    assert rc == 1 and len(out) == 2 and out[0].startswith(f"MODIFIED         {p.entry}  images.npy changed")
    rc, out = _verify(capsys, "M", "--cache-dir", str(tmp_path))  # another dataset: nothing cached, nothing wrong
    assert rc == 0 and out == [f"no frame cache under {tmp_path} for M"]
