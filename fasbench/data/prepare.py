"""``fasbench data prepare``: decode, sample frames, detect/align/crop faces, write the frame cache.

A cache entry lives in ``<cache_dir>/real/<dataset>/<key>/`` where ``key`` is a hash of the
pixel-relevant part of the video manifest (relative path, frame count, read error of every
video) and of the preprocessing config. Layout:

* ``plan.json``: the config, the videos in order and their number of slots (frames kept);
* ``images.partial.npy`` while running, ``images.npy`` when complete: uint8
  ``(frames, size, size, 3)``, memory-mapped (``numpy.lib.format.open_memmap``);
* ``progress.jsonl``: one line per finished video (written after its pixels are flushed),
  which is what an interrupted run resumes from;
* ``videos.csv`` (one row per prepared video, :data:`VIDEO_COLUMNS`: its slots, sampled frames,
  face counts, fallback, and the orientation applied to its frames) and ``summary.json`` (the
  counts, ``no_face_videos``: the videos with no face in more than half of their sampled
  frames; written atomically: the entry is complete exactly when ``summary.json`` exists);
* ``content.json`` (written last, atomically): the content hash of ``images.npy`` and
  ``videos.csv`` with their sizes and times, checked on every open
  (:func:`fasbench.data.frames.check_content`); an entry without it (older code, or cut short
  just before it) is hashed once when next opened.

A video that cannot be read is reported by path and reason and left out (its frames are
compacted away at the end); it never stops the preparation.

Per video (:func:`run_video`, in a pool worker that loaded MTCNN once in its initialiser): the
sampled frames are decoded upright, seeking to each (:func:`fasbench.data.video.decode`), the
faces found in one MTCNN batch (:func:`fasbench.data.faces.detect`, on the GPU when torch sees
one), then cropped.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fasbench.data.faces import FaceConfig
from fasbench.data.frames import check_content, hash_bar, verify_content, write_content
from fasbench.errors import FasbenchError
from fasbench.util import atomic_write_text, bar_disabled, cache_root

#: Columns of a cache entry's videos.csv: one row per prepared video. ``rotation`` (counter-clockwise
#: degrees) and ``flip`` (mirrored left-right after it) are the orientation applied to its frames
#: (fasbench.data.video: the display matrix of a video, the EXIF orientation of a photo).
VIDEO_COLUMNS = ["path", "slot_start", "slots", "sampled", "faces", "no_face", "fallback", "rotation", "flip"]

#: Bumped whenever the crops for a given config change (part of the cache key).
PREP_VERSION = 2  # 2: frames upright (display matrix / EXIF), videos.csv rotation + flip


@dataclass(frozen=True)
class PrepConfig:
    """How frames are chosen and cropped. ``sampling="ssdg"`` keeps, from a video of ``n``
    frames, the frames ``offset + j * (n // k)`` for ``j < k`` (SSDG-CVPR2020's
    ``sample_frames``; it tests on k = 2 and trains on the first of them); ``"evenly"`` keeps
    ``k`` evenly spaced frames from first to last. Frames without a detected face get the face
    box of the nearest frame of the same video that has one (``fallback="nearest"``), or the
    centred square of the frame (``"center"``, also the last resort of ``nearest``)."""

    sampling: str
    frames_per_video: int
    ssdg_offset: int
    fallback: str
    face: FaceConfig

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | None = None) -> PrepConfig:
        """``data.preprocess`` (keys, types, defaults and ranges declared once, in
        :class:`fasbench.data.real_options.PreprocessOptions`) as a PrepConfig; a wrong key or
        value is one line naming it. ``from_mapping()`` is the default preparation."""
        from fasbench.data.real_options import PreprocessOptions
        from fasbench.options import validate

        o = validate(PreprocessOptions, d or {}, "data.preprocess")
        face = FaceConfig(size=o.size, margin=o.margin, align=o.align, min_face=o.min_face,
                          detect_max_side=o.detect_max_side, threshold=o.threshold)
        return cls(sampling=o.sampling, frames_per_video=o.frames_per_video, ssdg_offset=o.ssdg_offset,
                   fallback=o.fallback, face=face)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(d.pop("face"))
        return d


def sample_indices(n: int, cfg: PrepConfig) -> list[int]:
    """The frame indices kept from a video of ``n`` frames (always ``frames_per_video`` of
    them; a video shorter than that repeats frames)."""
    k = cfg.frames_per_video
    if n <= 0:
        return []
    if cfg.sampling == "ssdg":
        step = n // k
        return [min(cfg.ssdg_offset + j * step, n - 1) for j in range(k)]
    return [int(i) for i in np.linspace(0, n - 1, k).round().astype(int)]


def cache_key(videos: pd.DataFrame, cfg: PrepConfig) -> str:
    blob = json.dumps({
        "version": PREP_VERSION,
        "dataset": sorted(set(videos["dataset"].astype(str))),
        "videos": videos[["path", "n_frames", "error"]].astype(str).values.tolist(),
        "config": cfg.as_dict(),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _slots(path: str, cfg: PrepConfig) -> int:
    from fasbench.data.video import is_image

    return 1 if is_image(path) else cfg.frames_per_video


# --------------------------------------------------------------------------------------
# one video (runs in a worker process)
# --------------------------------------------------------------------------------------

def process_video(job: tuple[int, str, int, int, dict]) -> dict[str, Any]:
    """Decode, detect, crop one video; never raises for a bad video (status "skipped")."""
    i, path, n_frames, slots, cfg_d = job
    rec = run_video(path, n_frames, slots, _config(cfg_d), threads=_DECODE_THREADS)
    rec["i"] = i
    return rec


#: Decoder threads of this process: FFmpeg's choice in the main process, 1 in a pool worker
#: (one worker per core).
_DECODE_THREADS = 0
_CONFIGS: dict[str, PrepConfig] = {}


def _config(cfg_d: dict) -> PrepConfig:
    key = json.dumps(cfg_d, sort_keys=True)
    if key not in _CONFIGS:
        _CONFIGS[key] = PrepConfig.from_mapping(cfg_d)
    return _CONFIGS[key]


def run_video(path: str, n_frames: int, slots: int, cfg: PrepConfig, *, seek: bool | None = None, threads: int = 0,
              batch: bool = True, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """What :func:`process_video` does for one file: decode the sampled frames upright
    (:func:`fasbench.data.video.decode`), detect the faces (one MTCNN batch), crop. ``timings``
    (benchmarks/prepare_speed.py) gets the seconds spent in ``decode``, ``detect`` and ``crop``
    added to it; ``seek``/``batch`` pick the decoding and detection paths (same results)."""
    from fasbench.data import faces
    from fasbench.data.video import VideoError, decode, is_image

    rec: dict[str, Any] = {"status": "ok", "reason": "", "no_face": 0, "faces": 0, "fallback": "", "sampled": [],
                           "rotation": 0, "flip": False}
    clock = time.perf_counter
    try:
        t0 = clock()
        want = [0] if is_image(path) else sample_indices(n_frames, cfg)
        dec = decode(path, want, seek=seek, threads=threads)
        got = dec.frames
        if not got:
            raise VideoError("no frame could be decoded")
        rec["rotation"], rec["flip"] = int(dec.rotation), bool(dec.flip)
        have = sorted(got)
        # frames past the real end of a video (its header over-counts): use the nearest decoded one
        sampled = [k if k in got else min(have, key=lambda h: abs(h - k)) for k in want][:slots]
        uniq = sorted(set(sampled))
        t1 = clock()
        found = dict(zip(uniq, faces.detect([got[k] for k in uniq], cfg.face, batch=batch)))
        t2 = clock()
        with_face = [k for k in uniq if found[k] is not None]
        crops, used = [], set()
        for k in sampled:
            face = found[k]
            if face is None:
                rec["no_face"] += 1
                if cfg.fallback == "nearest" and with_face:
                    face = found[min(with_face, key=lambda h: abs(h - k))]
                    used.add("nearest")
                else:
                    used.add("center")
            else:
                rec["faces"] += 1
            crops.append(faces.crop(got[k], face, cfg.face))
        rec["fallback"] = "+".join(sorted(used))
        rec["sampled"] = sampled
        rec["crops"] = np.stack(crops).astype(np.uint8, copy=False)
        if timings is not None:
            for name, dt in (("decode", t1 - t0), ("detect", t2 - t1), ("crop", clock() - t2)):
                timings[name] = timings.get(name, 0.0) + dt
    except VideoError as exc:
        rec.update(status="skipped", reason=str(exc))
    except Exception as exc:  # a damaged file can upset any library: report it, carry on
        rec.update(status="skipped", reason=f"{type(exc).__name__}: {exc}")
    return rec


def _init_worker(min_face: int | None = None) -> None:
    """A pool worker's start: one torch thread and one decoder thread (a worker per core), and
    the face detector loaded here, once for all the videos this worker gets."""
    global _DECODE_THREADS
    import torch

    torch.set_num_threads(1)
    _DECODE_THREADS = 1
    if min_face is not None:
        from fasbench.data import faces

        faces.detector(min_face)


# --------------------------------------------------------------------------------------
# the cache entry
# --------------------------------------------------------------------------------------

def entry_dir(cache_dir: str | Path | None, dataset: str, key: str) -> Path:
    return cache_root(cache_dir) / "real" / dataset / key


@dataclass
class Prepared:
    entry: Path
    summary: dict[str, Any]
    videos: pd.DataFrame          # prepared videos: VIDEO_COLUMNS (path, slot_start, slots, ..., rotation, flip)
    images: np.ndarray            # memory-mapped uint8 (frames, S, S, 3)
    images_sha256: str | None = None  # the pixels' hash (content.json)
    sha256: str | None = None         # the entry's content hash: pixels + videos.csv (content.json)


def _open(entry: Path) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray] | None:
    """A complete entry's summary, video table and memory-mapped frames, or None."""
    try:
        summary = json.loads((entry / "summary.json").read_text())
        videos = pd.read_csv(entry / "videos.csv", dtype={"path": str, "sampled": str, "fallback": str},
                             keep_default_na=False)
        images = np.load(entry / "images.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if images.shape[0] != summary.get("frames") or int(videos["slots"].sum()) != images.shape[0]:
        return None
    return summary, videos, images


def load(entry: Path, progress: bool = False) -> Prepared | None:
    """A complete cache entry, or None when there is none (or it is unreadable). Its content
    hash is checked (:func:`fasbench.data.frames.check_content`): an entry whose crops or
    ``videos.csv`` changed after it was written raises
    :class:`fasbench.data.frames.FrameCacheModified`; one without ``content.json`` (older
    code) is hashed once and gets it."""
    got = _open(entry)
    if got is None:
        return None
    summary, videos, images = got
    update = hash_bar(int(images.nbytes), f"hash {entry.parent.name}") if progress else None
    content = check_content(entry, images, videos, manifest_file="videos.csv", progress=update)
    return Prepared(entry, summary, videos, images, content["images_sha256"], content["sha256"])


def verify_entry(entry: Path, progress=None) -> dict[str, Any]:
    """``fasbench data verify`` of one prepared entry: :func:`fasbench.data.frames.verify_content`,
    or status ``incomplete`` (preparation not finished: no ``summary.json``) / ``unreadable``."""
    got = _open(entry)
    if got is None:
        done = (entry / "summary.json").exists()
        return {"status": "unreadable" if done else "incomplete", "sha256": None, "expected": None, "changed": [],
                "bytes": 0, "message": "unreadable: its files do not match its summary.json; delete it and rerun "
                "`fasbench data prepare`" if done else "incomplete: preparation not finished (rerun `fasbench data "
                "prepare` to resume it)"}
    _, videos, images = got
    return verify_content(entry, images, videos, manifest_file="videos.csv", progress=progress)


def _read_progress(path: Path) -> dict[int, dict[str, Any]]:
    done: dict[int, dict[str, Any]] = {}
    if path.exists():
        for ln in path.read_text().splitlines():
            try:
                rec = json.loads(ln)
                done[int(rec["i"])] = rec
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interruption: that video is simply redone
    return done


def prepare(videos: pd.DataFrame, root: str | Path, cfg: PrepConfig, cache_dir: str | Path | None = None, *,
            workers: int = 1, progress: bool = True,
            on_video: Callable[[dict[str, Any]], None] | None = None) -> Prepared:
    """Prepare (or resume, or just load) the frame cache of one indexed dataset.

    ``videos``: the indexer's video manifest with ``n_frames`` probed. ``on_video`` is called
    in this process after each video is stored (progress hooks, tests).
    """
    from numpy.lib.format import open_memmap
    from tqdm.auto import tqdm

    root = Path(root)
    videos = videos.reset_index(drop=True)
    dataset = str(videos["dataset"].iat[0])
    key = cache_key(videos, cfg)
    entry = entry_dir(cache_dir, dataset, key)
    done_entry = load(entry, progress)
    if done_entry is not None:
        done_entry.summary["resumed"] = done_entry.summary["videos"]
        return done_entry
    entry.mkdir(parents=True, exist_ok=True)
    paths = videos["path"].astype(str).tolist()
    slots = np.array([_slots(p, cfg) for p in paths], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(slots)[:-1]]).astype(np.int64)
    total, size = int(slots.sum()), cfg.face.size
    plan = {"key": key, "dataset": dataset, "config": cfg.as_dict(), "version": PREP_VERSION,
            "videos": len(paths), "frames": total}
    if not (entry / "plan.json").exists():
        atomic_write_text(entry / "plan.json", json.dumps(plan, indent=1))
    part = entry / "images.partial.npy"
    log_path = entry / "progress.jsonl"
    done = _read_progress(log_path) if part.exists() else {}
    if part.exists():
        try:
            images = open_memmap(part, mode="r+")
            if images.shape != (total, size, size, 3):
                raise ValueError("shape")
        except (OSError, ValueError):
            part.unlink(missing_ok=True)
            done = {}
    if not part.exists():
        log_path.unlink(missing_ok=True)
        images = open_memmap(part, mode="w+", dtype=np.uint8, shape=(total, size, size, 3))
    resumed = len(done)
    errors = videos["error"].astype(str).tolist()
    n_frames = videos["n_frames"].astype(int).tolist()
    todo = [i for i in range(len(paths)) if i not in done]
    cfg_d = cfg.as_dict()
    jobs = [(i, str(root / paths[i]), n_frames[i], int(slots[i]), cfg_d) for i in todo if not errors[i]]
    pending_lines: list[str] = []
    bar = tqdm(total=len(paths), initial=resumed, desc=f"prepare {dataset}", unit="video", disable=bar_disabled(progress),
               dynamic_ncols=True)
    last_flush = time.monotonic()

    def store(rec: dict[str, Any]) -> None:
        nonlocal last_flush
        i = rec["i"]
        crops = rec.pop("crops", None)
        if rec["status"] == "ok":
            images[starts[i]:starts[i] + slots[i]] = crops  # noqa: F821 (bound above; ruff sees the later del)
        rec["path"] = paths[i]
        done[i] = rec
        pending_lines.append(json.dumps(rec))
        bar.update(1)
        if rec["status"] != "ok":
            bar.write(f"skipped {root / paths[i]}: {rec['reason']}", file=sys.stderr)
        if time.monotonic() - last_flush > 2.0 or len(pending_lines) >= 64:
            flush()
        if on_video is not None:
            on_video(rec)

    def flush() -> None:
        nonlocal last_flush
        if pending_lines:
            images.flush()  # noqa: F821 (bound above) -- pixels first, then the lines that declare them done
            with open(log_path, "a") as fh:
                fh.write("\n".join(pending_lines) + "\n")
                fh.flush()
            pending_lines.clear()
        last_flush = time.monotonic()

    try:
        for i in todo:  # unreadable at indexing time: reported without decoding
            if errors[i]:
                store({"i": i, "status": "skipped", "reason": errors[i], "no_face": 0, "faces": 0,
                       "fallback": "", "sampled": [], "rotation": 0, "flip": False})
        if workers > 1 and len(jobs) > 1:
            import multiprocessing as mp
            from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                     initargs=(cfg.face.min_face,)) as ex:
                it = iter(jobs)
                running = set()
                try:
                    for job in it:
                        running.add(ex.submit(process_video, job))
                        if len(running) >= 2 * workers:
                            finished, running = wait(running, return_when=FIRST_COMPLETED)
                            for f in finished:
                                store(f.result())
                    for f in list(running):
                        store(f.result())
                except BaseException:
                    ex.shutdown(wait=False, cancel_futures=True)
                    raise
        else:
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # MTCNN's small nets gain nothing from a thread pool here
            try:
                for job in jobs:
                    store(process_video(job))
            finally:
                torch.set_num_threads(threads)
    finally:
        flush()
        bar.close()
        del images
    return _finalize(entry, videos, slots, starts, done, plan, resumed)


def _finalize(entry: Path, videos: pd.DataFrame, slots: np.ndarray, starts: np.ndarray,
              done: dict[int, dict[str, Any]], plan: dict[str, Any], resumed: int) -> Prepared:
    from numpy.lib.format import open_memmap

    part = entry / "images.partial.npy"
    ok = [i for i in range(len(videos)) if done[i]["status"] == "ok"]
    skipped = [{"path": done[i]["path"], "reason": done[i]["reason"]} for i in range(len(videos)) if done[i]["status"] != "ok"]
    n_ok = int(sum(int(slots[i]) for i in ok))
    final = entry / "images.npy"
    if skipped:  # compact the holes away into a new file, then swap it in
        src = np.load(part, mmap_mode="r")
        tmp = entry / ".images.compact.npy"
        dst = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n_ok, *src.shape[1:]))
        pos = 0
        for i in ok:
            dst[pos:pos + slots[i]] = src[starts[i]:starts[i] + slots[i]]
            pos += int(slots[i])
        dst.flush()
        del dst, src
        os.replace(tmp, final)
        part.unlink(missing_ok=True)
    else:
        os.replace(part, final)
    rows, pos = [], 0
    for i in ok:
        r = done[i]
        rows.append({"path": r["path"], "slot_start": pos, "slots": int(slots[i]),
                     "sampled": ";".join(str(k) for k in r["sampled"]), "faces": int(r["faces"]),
                     "no_face": int(r["no_face"]), "fallback": r["fallback"], "rotation": int(r.get("rotation", 0)),
                     "flip": int(bool(r.get("flip", False)))})
        pos += int(slots[i])
    vdf = pd.DataFrame(rows, columns=VIDEO_COLUMNS)
    atomic_write_text(entry / "videos.csv", vdf.to_csv(index=False))
    # most sampled frames without a face: a video to look at (turned, too dark, no face at all)
    no_face_videos = [{"path": r.path, "sampled": int(r.slots), "no_face": int(r.no_face), "fallback": r.fallback}
                      for r in vdf.itertuples() if 2 * int(r.no_face) > int(r.slots)]
    summary = {
        "dataset": plan["dataset"], "key": plan["key"], "version": PREP_VERSION, "config": plan["config"],
        "videos": len(videos), "prepared": len(ok), "frames": n_ok,
        "faces_found": int(vdf["faces"].sum()), "no_face_frames": int(vdf["no_face"].sum()),
        "no_face_videos": no_face_videos,
        "rotated_videos": int(((vdf["rotation"] != 0) | (vdf["flip"] != 0)).sum()),
        "fallbacks": {str(k): int(v) for k, v in vdf.loc[vdf["fallback"] != "", "fallback"].value_counts().items()},
        "skipped": skipped, "resumed": resumed, "cache": str(entry),
    }
    atomic_write_text(entry / "summary.json", json.dumps(summary, indent=1))
    got = _open(entry)
    if got is not None:  # last: the content hash of the crops and videos.csv, as readers see them
        write_content(entry, got[2], got[1], manifest_file="videos.csv")
    prepared = load(entry)
    if prepared is None:
        raise FasbenchError(f"the frame cache {entry} could not be read back after preparation; delete it and rerun")
    prepared.summary["resumed"] = resumed
    return prepared
