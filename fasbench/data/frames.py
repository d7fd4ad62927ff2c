"""Sample manifests and uint8 frame stores, and the content hash that fingerprints them.

A :class:`FrameSet` is what every dataset plugin hands to the harness: a pandas manifest
with one row per frame and a uint8 image array (in memory or memory-mapped) whose row ``i``
is the pixels of manifest row ``i``.

Content hash
------------
A FrameSet's fingerprint (``data.fingerprint`` of a run record, part of the run identity) is
a prefix of its *content hash* (:func:`content_digest`): sha256 over the pixels' hash
(:func:`images_digest`, the raw uint8 bytes), their shape, and the manifest's hash
(:func:`manifest_digest`, a canonical CSV of the table). Two FrameSets with the same pixels
and manifest have the same fingerprint in any process; changing one pixel changes it.

The on-disk frame caches (synthetic worlds, prepared real data) store these hashes in a
sidecar, ``content.json``, written as the last step of making an entry
(:func:`write_content`). On open (:func:`check_content`) the size, mtime and ctime of the
cache files are compared with the sidecar's: equal, the stored hash is trusted (no reading);
different, the files are hashed again and a different content is a
:class:`FrameCacheModified` error (the same content: the sidecar is refreshed quietly).
``fasbench data verify`` rehashes every entry (:func:`verify_content`).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fasbench.errors import FasbenchError
from fasbench.util import atomic_write_text, bar_disabled

#: Columns every manifest carries (docs/architecture.md, section 2). ``label``: 1 = live, 0 = spoof.
MANIFEST_COLUMNS = (
    "dataset",
    "domain",
    "video_id",
    "subject",
    "split",
    "label",
    "attack",
    "path",
    "frame",
)


def check_manifest(df: pd.DataFrame, where: str = "manifest") -> pd.DataFrame:
    """Raise a clear error if ``df`` lacks a required column or has bad labels."""
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise FasbenchError(
            f"{where} lacks the column(s) {missing}; a manifest needs {list(MANIFEST_COLUMNS)}"
        )
    bad = set(pd.unique(df["label"])) - {0, 1}
    if bad:
        raise FasbenchError(f"{where} has labels {sorted(bad)}; labels must be 1 (live) or 0 (spoof)")
    return df


@dataclass
class FrameSet:
    """A manifest (one row per frame) plus the matching uint8 ``(N, H, W, 3)`` pixels.

    ``identity`` says what the data is (the dataset's config); :meth:`fingerprint` is a hash of
    what it contains (:meth:`content_hash`). Both go into the run record.

    ``sha256`` is the content hash when it is known up front: a hashed frame cache passes its
    sidecar's (no pixel is read), and :func:`fasbench.data.real_dataset.task_view` passes the
    parent's to the per-task view it makes (same pixels and rows; only the ``split`` column is
    re-assigned, by the split convention and the protocol, which the record stores beside the
    fingerprint), so every task of one run setting shares one fingerprint. ``images_sha256``
    is the pixels' hash when known (then only the manifest is hashed). Anything else (a
    FrameSet built in memory, by ``generate`` or a plugin, or a subset of another one) is
    hashed from its own images and manifest on the first call, and the hash is kept on the
    instance.
    """

    manifest: pd.DataFrame
    images: np.ndarray
    identity: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = field(default=None, compare=False, repr=False)
    images_sha256: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_manifest(self.manifest)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise FasbenchError(
                f"frame store must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}"
            )
        if len(self.manifest) != len(self.images):
            raise FasbenchError(
                f"manifest has {len(self.manifest)} rows but the frame store has {len(self.images)} frames"
            )
        self.manifest = self.manifest.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def domains(self) -> list[str]:
        return sorted(pd.unique(self.manifest["domain"]).tolist())

    def select(self, domains: list[str] | tuple[str, ...], splits: list[str] | tuple[str, ...]) -> np.ndarray:
        """Row indices of the frames in ``domains`` and ``splits``."""
        m = self.manifest
        mask = m["domain"].isin(list(domains)) & m["split"].isin(list(splits))
        return np.flatnonzero(mask.to_numpy())

    def content_hash(self) -> str:
        """The sha256 (64 hex) of the pixels and the manifest (:func:`content_digest`)."""
        if self.sha256 is None:
            if self.images_sha256 is None:
                self.images_sha256 = images_digest(self.images)
            self.sha256 = content_digest(self.images_sha256, self.images.shape, manifest_digest(self.manifest))
        return self.sha256

    def fingerprint(self) -> str:
        """The first 16 hex digits of :meth:`content_hash`: what the data contains, not where
        it lives nor how it was configured (that is ``identity``)."""
        return self.content_hash()[:16]


# --------------------------------------------------------------------------------------
# content hashes
# --------------------------------------------------------------------------------------

#: The hash function of content hashes (and the sidecar's ``algorithm``).
HASH_ALGORITHM = "sha256"
#: Version of what the content hash covers; bump it whenever :func:`content_digest`,
#: :func:`images_digest` or :func:`manifest_digest` change (sidecars of another version are redone).
CONTENT_VERSION = 1
#: The sidecar of a frame cache entry.
CONTENT_FILE = "content.json"
#: Bytes hashed per step (a block of whole frames): memory-mapped stores are streamed.
CHUNK_BYTES = 64 << 20
_MANIFEST_ROWS = 100_000


def images_digest(images: Any, progress: Callable[[int], Any] | None = None) -> str:
    """sha256 of a frame store's pixels: its uint8 bytes in C order, frame after frame, read
    ``CHUNK_BYTES`` at a time (a memory-mapped store is streamed, never loaded whole).

    A store made of several arrays (``arrays``, e.g. :class:`fasbench.data.real_dataset.StackedFrames`)
    is the sha256 of the list of its parts' digests (``digests`` when it carries them, else each
    part hashed), so combining hashed caches costs nothing. ``progress(n)`` is called with the
    number of bytes hashed after each block."""
    parts = getattr(images, "arrays", None)
    if parts is not None:
        digests = getattr(images, "digests", None) or [images_digest(a, progress) for a in parts]
        return hashlib.sha256(("stack:" + ",".join(digests)).encode()).hexdigest()
    h = hashlib.sha256()
    n = int(images.shape[0])
    frame = int(np.prod(images.shape[1:], dtype=np.int64)) * np.dtype(images.dtype).itemsize
    step = max(1, CHUNK_BYTES // max(1, frame))
    for i in range(0, n, step):
        block = np.ascontiguousarray(images[i:i + step])
        h.update(memoryview(block).cast("B"))
        if progress is not None:
            progress(block.nbytes)
    return h.hexdigest()


def hash_bar(total: int, desc: str) -> Callable[[int], None]:
    """A ``progress`` callback for hashing ``total`` bytes: a tqdm bar (stderr) that appears with
    the first block hashed (never when the stored hash is trusted) and closes at the end."""
    state: dict[str, Any] = {}

    def update(n: int) -> None:
        bar = state.get("bar")
        if bar is None:
            from tqdm.auto import tqdm

            bar = state["bar"] = tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False,
                                        disable=bar_disabled())
        bar.update(n)
        if bar.n >= total:
            bar.close()

    return update


def manifest_digest(table: pd.DataFrame) -> str:
    """sha256 of a canonical serialisation of a manifest (or any) table: CSV with the columns
    sorted by name, a header line, the rows in order, no index, ``\\n`` line ends, values as
    pandas writes them. A table and the same table read back from its CSV (strings as strings,
    integers as integers) hash alike, whatever their dtypes (``object`` or ``str``)."""
    cols = sorted(table.columns, key=str)
    t = table[cols]
    h = hashlib.sha256(t.iloc[:0].to_csv(index=False, lineterminator="\n").encode())
    for i in range(0, len(t), _MANIFEST_ROWS):
        h.update(t.iloc[i:i + _MANIFEST_ROWS].to_csv(index=False, header=False, lineterminator="\n").encode())
    return h.hexdigest()


def content_digest(images_sha256: str, shape: tuple[int, ...], manifest_sha256: str) -> str:
    """The content hash: sha256 of ``{"algorithm", "version", "dtype", "shape", "images",
    "manifest"}`` as sorted JSON."""
    blob = json.dumps({"algorithm": HASH_ALGORITHM, "version": CONTENT_VERSION, "dtype": "uint8",
                       "shape": [int(x) for x in shape], "images": images_sha256, "manifest": manifest_sha256},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------------------
# the sidecar of a frame cache entry
# --------------------------------------------------------------------------------------

class FrameCacheModified(FasbenchError):
    """A frame cache's files no longer hold what was hashed when the entry was written."""


def _stat(path: Path) -> dict[str, int]:
    st = os.stat(path)
    return {"bytes": int(st.st_size), "mtime_ns": int(st.st_mtime_ns), "ctime_ns": int(st.st_ctime_ns)}


def _describe(entry: Path, images: Any, table: pd.DataFrame, images_file: str, manifest_file: str,
              images_sha256: str, manifest_sha256: str) -> dict[str, Any]:
    """The sidecar's content: the hashes, and the files' sizes and times as they are now."""
    info: dict[str, Any] = {"algorithm": HASH_ALGORITHM, "version": CONTENT_VERSION,
                            "sha256": content_digest(images_sha256, images.shape, manifest_sha256),
                            "images_file": images_file, "images_sha256": images_sha256,
                            "images_shape": [int(x) for x in images.shape]}
    info.update({f"images_{k}": v for k, v in _stat(entry / images_file).items()})
    info.update({"manifest_file": manifest_file, "manifest_sha256": manifest_sha256, "manifest_rows": int(len(table))})
    info.update({f"manifest_{k}": v for k, v in _stat(entry / manifest_file).items()})
    return info


def read_content(entry: str | os.PathLike) -> dict[str, Any] | None:
    """The entry's sidecar, or None when it has none (an entry of older code, or cut short
    before its last step) or one of another version."""
    try:
        info = json.loads((Path(entry) / CONTENT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("algorithm") != HASH_ALGORITHM or info.get("version") != CONTENT_VERSION:
        return None
    keys = ("sha256", "images_file", "images_sha256", "manifest_file", "manifest_sha256")
    return info if all(isinstance(info.get(k), str) for k in keys) else None


def _write(entry: Path, info: dict[str, Any], quiet: bool) -> None:
    try:
        atomic_write_text(entry / CONTENT_FILE, json.dumps(info, indent=1) + "\n")
    except OSError:
        if not quiet:  # a read-only cache: the hash is still used, just not kept
            raise


def write_content(entry: str | os.PathLike, images: Any, table: pd.DataFrame, *, manifest_file: str,
                  images_file: str = "images.npy", images_sha256: str | None = None,
                  progress: Callable[[int], Any] | None = None, quiet: bool = False) -> dict[str, Any]:
    """Hash a cache entry and write its sidecar atomically; return the sidecar.

    ``images`` and ``table`` are the entry's frame store and manifest table *as its loader
    reads them* (``images_file``, ``manifest_file`` inside ``entry``); ``images_sha256`` skips
    hashing pixels already hashed. The last step of making an entry. ``quiet``: a cache that
    cannot be written to keeps no sidecar, without an error."""
    entry = Path(entry)
    img = images_sha256 or images_digest(images, progress)
    info = _describe(entry, images, table, images_file, manifest_file, img, manifest_digest(table))
    _write(entry, info, quiet)
    return info


def _modified(entry: Path, changed: list[str], expected: str, found: str) -> FrameCacheModified:
    what = ", ".join(str(entry / f) for f in changed) or str(entry)
    return FrameCacheModified(
        f"frame cache {what} was modified after it was written (content sha256 {expected[:16]} expected, "
        f"{found[:16]} found); delete {entry} to rebuild it, or run `fasbench data verify`")


def _rehash(entry: Path, stored: dict[str, Any], images: Any, table: pd.DataFrame, *, full: bool,
            progress: Callable[[int], Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The entry described as it is now, and the files whose content differs from ``stored``;
    ``full=False`` trusts the stored hash of a file whose size and times did not change."""
    images_file, manifest_file = stored["images_file"], stored["manifest_file"]
    img_now, man_now = _stat(entry / images_file), _stat(entry / manifest_file)
    img_same = not full and all(stored.get(f"images_{k}") == v for k, v in img_now.items()) \
        and stored.get("images_shape") == [int(x) for x in images.shape]
    man_same = not full and all(stored.get(f"manifest_{k}") == v for k, v in man_now.items())
    img = stored["images_sha256"] if img_same else images_digest(images, progress)
    man = stored["manifest_sha256"] if man_same else manifest_digest(table)
    now = _describe(entry, images, table, images_file, manifest_file, img, man)
    changed = [f for f, a, b in ((images_file, img, stored["images_sha256"]), (manifest_file, man, stored["manifest_sha256"]))
               if a != b]
    if now["sha256"] != stored["sha256"] and not changed:
        changed = [images_file]  # same bytes, another shape
    return now, changed


def check_content(entry: str | os.PathLike, images: Any, table: pd.DataFrame, *, manifest_file: str,
                  images_file: str = "images.npy", progress: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """The entry's sidecar, checked cheaply (on every open of a frame cache).

    The size, mtime and ctime of ``images_file`` and ``manifest_file`` are compared with the
    sidecar's; where they are equal the stored hash is trusted, where not the file is hashed
    again. A content that differs raises :class:`FrameCacheModified` (one line naming the files,
    both hashes, the entry to delete and ``fasbench data verify``); the same content (a
    ``touch``, a copy) refreshes the sidecar quietly. An entry without a sidecar (written by
    older code) is hashed once and gets one."""
    entry = Path(entry)
    stored = read_content(entry)
    if stored is None or stored["images_file"] != images_file or stored["manifest_file"] != manifest_file:
        return write_content(entry, images, table, manifest_file=manifest_file, images_file=images_file,
                             progress=progress, quiet=True)
    now, changed = _rehash(entry, stored, images, table, full=False, progress=progress)
    if now["sha256"] != stored["sha256"]:
        raise _modified(entry, changed, stored["sha256"], now["sha256"])
    if now != stored:
        _write(entry, now, quiet=True)
    return now


def verify_content(entry: str | os.PathLike, images: Any, table: pd.DataFrame, *, manifest_file: str,
                   images_file: str = "images.npy", progress: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Hash a cache entry in full and compare with its sidecar (``fasbench data verify``).

    Returns ``{"status", "sha256", "expected", "changed", "bytes", "message"}``; ``status`` is
    ``ok``, ``modified`` (``changed`` lists the files) or ``no-hash`` (no sidecar: it is written
    now, so later checks compare with today's content). An unchanged entry whose file times
    moved gets its sidecar refreshed."""
    entry = Path(entry)
    nbytes = int(os.stat(entry / images_file).st_size)
    stored = read_content(entry)
    if stored is None or stored["images_file"] != images_file or stored["manifest_file"] != manifest_file:
        info = write_content(entry, images, table, manifest_file=manifest_file, images_file=images_file,
                             progress=progress, quiet=True)
        return {"status": "no-hash", "sha256": info["sha256"], "expected": None, "changed": [], "bytes": nbytes,
                "message": f"no content hash (written by an older fasbench); recorded now: sha256 {info['sha256'][:16]}"}
    now, changed = _rehash(entry, stored, images, table, full=True, progress=progress)
    if now["sha256"] != stored["sha256"]:
        return {"status": "modified", "sha256": now["sha256"], "expected": stored["sha256"], "changed": changed,
                "bytes": nbytes, "message": f"{', '.join(changed)} changed after the entry was written (content sha256 "
                f"{stored['sha256'][:16]} expected, {now['sha256'][:16]} found); delete the entry to rebuild it"}
    if now != stored:
        _write(entry, now, quiet=True)
    return {"status": "ok", "sha256": now["sha256"], "expected": stored["sha256"], "changed": [], "bytes": nbytes,
            "message": f"sha256 {now['sha256'][:16]}"}
