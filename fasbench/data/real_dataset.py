"""The ``real`` dataset plugin (and ``msu_mfsd``, ``casia_fasd``, ``replay_attack``,
``oulu_npu``, ``celeba_spoof``): index the user's copies, prepare (or load) their frame
caches, and hand the harness one FrameSet whose domains are the datasets' letters.

Split conventions (``data.split_convention``), applied per task by :func:`task_view`:

* ``whole`` (SSDG-CVPR2020): a dataset is used whole, as a source and as the target; like
  SSDG's ``all_label.json`` this is train + test, the Replay-Attack and OULU-NPU ``devel``
  splits are left out.
* ``official`` (SSAN): sources train on their official train split, the target is tested on
  its official test split.

In both, the source validation split (``source-val`` threshold and checkpoint choice) is a
``val_fraction`` of the *subjects* of each source's training pool, chosen by a hash of the
subject id (so the same in every run), never anything of the target. Intra-domain tasks
always use the official splits (train minus the carved subjects / carved subjects / test).
"""
from __future__ import annotations

import hashlib
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fasbench.data.frames import MANIFEST_COLUMNS, FrameSet, images_digest
from fasbench.errors import FasbenchError

CONVENTIONS = {
    "whole": "whole datasets (SSDG-CVPR2020): sources and target are train+test of each dataset "
             "(Replay-Attack/OULU-NPU devel left out); source-val = held-out subjects of the sources",
    "official": "official splits (SSAN): sources' official train split, target's official test split; "
                "source-val = held-out subjects of the sources' train split",
}


class StackedFrames:
    """Several uint8 ``(n_i, H, W, 3)`` arrays (memory-mapped caches) seen as one, without a copy.
    ``digests``: the parts' pixel hashes when known (their caches' ``content.json``), which
    :func:`fasbench.data.frames.images_digest` combines instead of reading the pixels."""

    def __init__(self, arrays: list[np.ndarray], digests: list[str] | None = None) -> None:
        shapes = {a.shape[1:] for a in arrays}
        if len(shapes) != 1:
            raise FasbenchError(f"frame caches of different crop sizes {sorted(shapes)} cannot be combined; "
                                "prepare every dataset with the same data.preprocess.size")
        self.arrays = arrays
        self.digests = list(digests) if digests is not None and len(digests) == len(arrays) else None
        self.offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
        self.shape = (int(self.offsets[-1]), *next(iter(shapes)))
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: Any) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):
            i = int(idx) % self.shape[0]
            a = int(np.searchsorted(self.offsets, i, side="right") - 1)
            return self.arrays[a][i - self.offsets[a]]
        if isinstance(idx, slice):
            idx = np.arange(self.shape[0])[idx]
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), *self.shape[1:]), dtype=np.uint8)
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for a in np.unique(which):
            sel = which == a
            out[sel] = self.arrays[int(a)][idx[sel] - self.offsets[a]]
        return out

    def __reduce__(self):  # DataLoader workers started by spawn reopen the files, never copy them
        return (_reopen, ([getattr(a, "filename", None) or a for a in self.arrays], self.digests))


def _reopen(items: list[Any], digests: list[str] | None = None) -> StackedFrames:
    return StackedFrames([np.load(x, mmap_mode="r") if isinstance(x, (str, os.PathLike)) else x for x in items], digests)


def _letters(cfg: Any, domains: list[str] | None) -> list[str]:
    """The domain letters to build: ``domains`` (the protocol's), else ``data.domains``, the
    dataset named by ``data.name``, or every registered real dataset with a configured root
    (all of them when none is, so that the error names every root to set)."""
    from fasbench.data import indexers
    from fasbench.data.roots import configured

    if domains:
        return [indexers.spec(d).letter for d in domains]
    doms = cfg.get("domains")
    if doms:
        # "MC" or [M, C] (a single name such as "msu_mfsd" is a dataset, not letters)
        names = [doms] if isinstance(doms, str) and not doms.isupper() else list(doms)
        return [indexers.spec(d).letter for d in names]
    name = str(cfg.get("name", "real"))
    if name in indexers.names():
        return [indexers.spec(name).letter]
    have = configured(cfg.get("roots"))
    return [L for L in indexers.letters() if L in have] or indexers.letters()


def frame_manifest(videos: pd.DataFrame, prepared_videos: pd.DataFrame) -> pd.DataFrame:
    """One row per cached frame (in cache order) from the index and the cache's video table."""
    v = videos.drop(columns=["n_frames", "error"]).rename(columns={"split": "official_split"})
    m = prepared_videos.merge(v, on="path", how="left", validate="one_to_one")
    if m["video_id"].isna().any():
        bad = m.loc[m["video_id"].isna(), "path"].tolist()[:3]
        raise FasbenchError(f"the frame cache lists video(s) {bad} that the index does not have; rerun "
                            "`fasbench data prepare`")
    reps = m["slots"].to_numpy()
    rows = m.loc[m.index.repeat(reps)].reset_index(drop=True)
    rows["frame"] = [int(k) for s in m["sampled"].astype(str) for k in s.split(";")]
    rows["split"] = rows["official_split"]
    rows["attack"] = rows["attack"].astype(str)
    extra = [c for c in rows.columns if c not in MANIFEST_COLUMNS and c not in
             ("slot_start", "slots", "sampled", "faces", "no_face", "fallback", "rotation", "flip")]
    return rows[list(MANIFEST_COLUMNS) + extra]


def _workers() -> int:
    env = os.environ.get("FASBENCH_PREPARE_WORKERS")
    return int(env) if env else max(1, min(4, os.cpu_count() or 1))


def lock_path(entry: Any) -> Path:
    """The lock file of a cache entry: ``.<key>.lock`` beside the entry directory (never inside
    it, so that nothing but the preparation writes there; hidden, like the synthetic worlds'
    lock files). It stays after use (empty); the lock is the ``flock`` on it, released by the
    system when its holder exits, even killed."""
    entry = Path(entry)
    return entry.with_name(f".{entry.name}.lock")


@contextmanager
def entry_lock(entry: Any):
    """Hold the lock of one cache entry (:func:`lock_path`) around its whole preparation, so
    that two processes preparing the same entry (two ``fasbench data prepare``, two runs that
    prepare on first use) never write it at once: the second says it waits and blocks until the
    first is done. Yields whether it had to wait."""
    import sys

    from filelock import FileLock, Timeout

    path = lock_path(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
        waited = False
    except Timeout:
        print(f"fasbench: waiting for another process preparing {entry} (lock {path})", file=sys.stderr, flush=True)
        lock.acquire()
        waited = True
    try:
        yield waited
    finally:
        lock.release()


def prepare_one(letter: str, cfg: Any, root: Any, *, progress: bool = True, workers: int | None = None,
                allow_prepare: bool = True, on_video=None):
    """Index + prepare (or load) one dataset: ``(index result, Prepared)``.

    Every caller goes through here (``fasbench data prepare``, ``data preview``, and ``fasbench
    run`` through :func:`build`), so this is where one entry's preparation is locked
    (:func:`entry_lock`). The summary gets ``reused`` (the entry was complete: nothing was
    prepared) and ``waited`` (another process held the lock first)."""
    from fasbench.data import indexers
    from fasbench.data.prepare import PrepConfig, cache_key, entry_dir, load, prepare

    pcfg = PrepConfig.from_mapping(cfg.get("preprocess"))
    res = indexers.index(letter, root, progress=progress)
    s = indexers.spec(letter)
    entry = entry_dir(cfg.get("cache_dir"), s.name, cache_key(res.videos, pcfg))
    got = load(entry, progress)  # the common case, complete: no lock needed
    if got is not None:
        got.summary.update(resumed=got.summary["videos"], reused=True, waited=False)
        return res, got
    if not allow_prepare:
        raise FasbenchError(f"{s.name} has no prepared frame cache for this preprocessing config; run "
                            f"`fasbench data prepare {s.name}` (or set data.auto_prepare=true)")
    with entry_lock(entry) as waited:
        # checked again under the lock: the process we waited for may have completed the entry
        got = load(entry, progress)
        reused = got is not None
        if got is None:
            got = prepare(res.videos, root, pcfg, cfg.get("cache_dir"), workers=workers or _workers(),
                          progress=progress, on_video=on_video)
        else:
            got.summary["resumed"] = got.summary["videos"]
    got.summary.update(reused=reused, waited=waited)
    return res, got


def prepared_entry(letter: str, cfg: Any, videos: pd.DataFrame):
    """``(entry directory, Prepared or None)``: the cache entry that ``prepare_one`` would use
    for ``videos`` (the index, frame counts probed) and ``data.preprocess``, loaded when it is
    complete; nothing is prepared."""
    from fasbench.data import indexers
    from fasbench.data.prepare import PrepConfig, cache_key, entry_dir, load

    s = indexers.spec(letter)
    entry = entry_dir(cfg.get("cache_dir"), s.name, cache_key(videos, PrepConfig.from_mapping(cfg.get("preprocess"))))
    return entry, load(entry)


def no_face_videos(summary: dict[str, Any], videos: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """The videos flagged by the preparation: no face found in most of their sampled frames,
    as ``{"path", "sampled", "no_face", "fallback"}``. Read from the summary's
    ``no_face_videos`` list; an entry of older code (which kept only a count there) has them
    worked out from its video table (``videos.csv``: ``no_face`` > half of ``slots``)."""
    got = summary.get("no_face_videos")
    if isinstance(got, list):
        return [dict(v) for v in got]
    if videos is None or videos.empty:
        return []
    no_face, slots = videos["no_face"].astype(int), videos["slots"].astype(int)
    return [{"path": str(r["path"]), "sampled": int(r["slots"]), "no_face": int(r["no_face"]), "fallback": str(r["fallback"])}
            for _, r in videos[2 * no_face > slots].iterrows()]


def describe_no_face(v: dict[str, Any]) -> str:
    """``PATH: no face in 2/2 sampled frames (fallback: center)``."""
    sampled = v.get("sampled")
    if isinstance(sampled, str):
        sampled = len([x for x in sampled.split(";") if x])
    elif isinstance(sampled, (list, tuple)):
        sampled = len(sampled)
    fb = v.get("fallback") or ""
    return f"{v.get('path')}: no face in {v.get('no_face')}/{sampled} sampled frames" + (f" (fallback: {fb})" if fb else "")


def build(cfg: Any, progress: bool = True, domains: list[str] | None = None, purpose: str | None = None) -> FrameSet:
    """The FrameSet of the real datasets ``domains`` (default: ``data.domains``, the dataset
    named by ``data.name``, or every dataset with a configured root)."""
    from fasbench.data import indexers
    from fasbench.data.prepare import PrepConfig
    from fasbench.data.real_options import RealDataOptions
    from fasbench.data.roots import missing_message, resolve
    from fasbench.options import validate

    opts = validate(RealDataOptions, cfg, "data")  # typed once; also for callers that skip compose
    conv, vf = opts.split_convention, opts.val_fraction
    letters = _letters(cfg, domains)
    roots = {L: resolve(L, cfg.get("roots"))[0] for L in letters}
    missing = [L for L, r in roots.items() if r is None]
    if missing:
        raise FasbenchError(missing_message(missing, purpose or f"--data {cfg.get('name', 'real')}"))
    manifests, arrays, digests, ident, prep = [], [], [], {}, {}
    for L in letters:
        res, got = prepare_one(L, cfg, roots[L], progress=progress, allow_prepare=opts.auto_prepare)
        s = indexers.spec(L)
        manifests.append(frame_manifest(res.videos, got.videos))
        arrays.append(got.images)
        digests.append(got.images_sha256)
        summ = got.summary
        ident[L] = {"dataset": s.name, "cache_key": summ["key"], "videos": summ["videos"],
                    "prepared": summ["prepared"], "frames": summ["frames"], "skipped": len(summ["skipped"])}
        prep[L] = {k: summ[k] for k in ("dataset", "videos", "prepared", "frames", "faces_found",
                                         "no_face_frames", "no_face_videos", "fallbacks", "skipped", "cache")}
        prep[L]["skipped_count"] = len(summ["skipped"])
    manifest = pd.concat(manifests, ignore_index=True)
    for c in manifest.columns:  # dataset-specific columns are empty strings elsewhere, never NaN
        if manifest[c].isna().any():
            manifest[c] = manifest[c].astype(object).where(manifest[c].notna(), "")
    known = all(digests)
    images = arrays[0] if len(arrays) == 1 else StackedFrames(arrays, digests if known else None)
    identity = {"dataset": "real", "datasets": ident, "split_convention": conv, "val_fraction": vf,
                "preprocess": PrepConfig.from_mapping(cfg.get("preprocess")).as_dict()}
    # the fingerprint: the caches' pixel hashes (content.json, not re-read) + this frame manifest
    pixels = (digests[0] if len(arrays) == 1 else images_digest(images)) if known else None
    fs = FrameSet(manifest=manifest, images=images, identity=identity, images_sha256=pixels)
    fs.preparation = prep  # type: ignore[attr-defined]  # what `run` writes into each record
    return fs


# --------------------------------------------------------------------------------------
# split conventions, per task
# --------------------------------------------------------------------------------------

def _subject_rank(dataset: str, subject: str) -> str:
    return hashlib.sha256(f"{dataset}/{subject}".encode()).hexdigest()


def convention_splits(manifest: pd.DataFrame, mode: str, val_fraction: float) -> pd.Series:
    """The ``split`` column under a convention: ``train`` / ``dev`` (carved source-val
    subjects) / ``test`` (official test, ``official`` mode only) / ``unused``."""
    off = manifest["official_split"].astype(str)
    out = pd.Series("unused", index=manifest.index, dtype=object)
    if mode == "whole":
        pool = off.isin(["train", "test"])
    elif mode == "official":
        pool = off == "train"
        out[off == "test"] = "test"
    else:
        raise FasbenchError(f"unknown split convention {mode!r}; choose one of {', '.join(CONVENTIONS)}")
    out[pool] = "train"
    for ds in pd.unique(manifest.loc[pool, "dataset"]):
        sel = pool & (manifest["dataset"] == ds)
        subjects = sorted(pd.unique(manifest.loc[sel, "subject"].astype(str)), key=lambda s: _subject_rank(str(ds), s))
        n_val = max(1, math.ceil(val_fraction * len(subjects))) if len(subjects) > 1 else 0
        val = set(subjects[:n_val])
        out[sel & manifest["subject"].astype(str).isin(val)] = "dev"
    return out


def task_view(frames: FrameSet, protocol: Any, task: Any) -> tuple[FrameSet, Any, dict[str, Any]]:
    """The FrameSet and Protocol one task runs on, with its split convention applied, and a
    description of that convention for the run record."""
    import dataclasses

    real = "official_split" in frames.manifest.columns
    assign = getattr(protocol, "assign", None)
    if not real and assign is None:
        splits = dict(protocol.splits)
        return frames, protocol, {"convention": "protocol", "description": "the dataset's own train/dev/test splits "
                                  "as the protocol selects them", "splits": {k: list(v) for k, v in splits.items()}}
    m = frames.manifest.copy()
    splits = dict(protocol.splits)
    if real:
        conv = str(frames.identity.get("split_convention", "whole"))
        mode = "official" if task.intra else conv
        m["split"] = convention_splits(m, mode, float(frames.identity.get("val_fraction", 0.2)))
        if not task.intra:
            splits = {"source_train": ("train",), "source_val": ("dev",),
                      "target": ("train", "dev") if mode == "whole" else ("test",)}
        info = {"convention": mode, "description": CONVENTIONS[mode],
                "val_fraction": frames.identity.get("val_fraction")}
    else:
        info = {"convention": "protocol", "description": "the dataset's own train/dev/test splits"}
    if assign is not None:
        m["split"] = assign(m, task)
        info["protocol_lists"] = f"{protocol.name}: {task.name}"
    info["splits"] = {k: list(v) for k, v in splits.items()}
    # same pixels and rows, splits re-assigned: the parent's content hash (FrameSet's docstring),
    # so that every task of one run setting has one data fingerprint
    view = FrameSet(manifest=m, images=frames.images, identity=dict(frames.identity), sha256=frames.content_hash(),
                    images_sha256=frames.images_sha256)
    if hasattr(frames, "preparation"):
        view.preparation = frames.preparation  # type: ignore[attr-defined]
    return view, dataclasses.replace(protocol, splits=splits), info
