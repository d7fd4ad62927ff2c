"""Indexers: a user's local copy of a FAS dataset, in its official layout and naming, as a
video-level manifest (one row per video).

A real dataset is registered once, through the ``register_datasets`` hook, with a
:class:`DatasetSpec` (``real=``): its domain letter, title, where it is requested from, its
official layout, its official counts (``fasbench data check`` compares against them) and its
``index(root)`` function (or a lazy ``"module:attr"`` string naming it). :func:`spec` and
:func:`specs` look the registrations up; the built-in ones are in ``fasbench/builtins.py``,
their index functions here. Sources for every convention used here are cited in
``docs/datasets.md``.

This module imports pandas only inside the functions that build or read a manifest, so a
plugin can import :class:`DatasetSpec` at registration time (``fasbench --help``) for free.

Columns of the video manifest (:data:`VIDEO_COLUMNS`): ``dataset, domain, video_id,
subject, split`` (official split: train/dev/test), ``label`` (1 = live), ``attack``
(coarse kind shared by all datasets: ``none``/``print``/``replay``/``mask``/``mask3d``),
``attack_type`` (the dataset's own attack name, ``none`` for live), ``path`` (relative to
the root), ``n_frames`` (frames in the video, 1 for an image; 0 when it cannot be read) and
``error`` (why it cannot be read, else empty), plus dataset-specific metadata columns.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fasbench.errors import DuplicateComponentError, FasbenchError

if TYPE_CHECKING:
    import pandas as pd

VIDEO_COLUMNS = ("dataset", "domain", "video_id", "subject", "split", "label", "attack", "attack_type",
                 "path", "n_frames", "error")
VIDEO_SUFFIXES = (".avi", ".mov", ".mp4", ".mkv", ".webm")


@dataclass
class IndexResult:
    videos: pd.DataFrame
    unrecognised: list[str] = field(default_factory=list)  # video files whose name breaks the convention
    excluded: dict[str, int] = field(default_factory=dict)  # by design (e.g. Replay-Attack enroll videos)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetSpec:
    """What ``fasbench data`` and the ``real`` dataset need of one real dataset; registered as
    ``register(NAME, "fasbench.data.real_dataset:build", version=1, real=DatasetSpec(...))``.

    ``letter``: the domain letter protocols use (``"OCI->M"``), one upper-case ASCII letter
    no other registration uses. ``index``: ``index(root) -> IndexResult`` or ``"module:attr"``
    naming it (imported on first use). ``official``: the counts of a complete copy, any of
    ``videos, live, spoof, subjects`` (ints) and ``splits, attacks`` (name -> int). ``layout``:
    one line describing the official folder structure and file naming (error messages and
    ``fasbench data check`` show it). ``name`` and ``plugin`` are filled in from the
    registration.
    """

    letter: str
    title: str
    index: Callable[[Path], IndexResult] | str
    official: Mapping[str, Any] = field(default_factory=dict)
    layout: str = ""
    url: str = ""
    name: str = ""
    plugin: str = ""

    def indexer(self) -> Callable[[Path], IndexResult]:
        """The index function, imported first when it was registered as ``"module:attr"``."""
        if callable(self.index):
            return self.index
        from fasbench.registry import import_object

        fn = import_object(str(self.index), f"dataset {self.name!r} (plugin {self.plugin!r}) indexer")
        if not callable(fn):
            raise FasbenchError(f"dataset {self.name!r} (plugin {self.plugin!r}): indexer {self.index!r} is not callable")
        return fn

    @property
    def env_name(self) -> str:
        """``FASBENCH_ROOT_<NAME>``'s suffix: the name upper-cased, other characters as ``_``."""
        return re.sub(r"[^A-Z0-9]", "_", self.name.upper())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``fasbench ls datasets --json``)."""
        index = self.index if isinstance(self.index, str) else (
            f"{getattr(self.index, '__module__', '?')}:{getattr(self.index, '__qualname__', '?')}")
        return {"letter": self.letter, "title": self.title, "url": self.url, "layout": self.layout,
                "index": index, "official": _plain(self.official)}


def _plain(v: Any) -> Any:
    return {str(k): _plain(x) for k, x in v.items()} if isinstance(v, Mapping) else v


_COUNT_KEYS = ("videos", "live", "spoof", "subjects")
_GROUP_KEYS = ("splits", "attacks")


def _check_official(official: Any, what: str) -> dict[str, Any]:
    if not isinstance(official, Mapping):
        raise FasbenchError(f"{what}: official={official!r}; give a mapping such as "
                            "{'videos': 280, 'live': 70, 'splits': {'train': 120, 'test': 160}}")
    out: dict[str, Any] = {}
    for k, v in official.items():
        if k in _COUNT_KEYS and isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            out[k] = v
        elif k in _GROUP_KEYS and isinstance(v, Mapping) and all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in v.values()):
            out[k] = {str(a): int(n) for a, n in v.items()}
        else:
            raise FasbenchError(f"{what}: official count {k}={v!r}; the keys are {', '.join(_COUNT_KEYS)} "
                                f"(non-negative ints) and {', '.join(_GROUP_KEYS)} (name -> int)")
    return out


def check_registration(entry: Any, registry: Any) -> None:
    """Called by the registry for every dataset registration with extra keywords: a ``real=``
    spec is checked and completed (name, plugin) in place, and its domain letter must be free."""
    value = entry.meta.get("real")
    if value is None:
        return
    what = f"dataset {entry.name!r} (plugin {entry.plugin!r})"
    if isinstance(value, Mapping):
        try:
            value = DatasetSpec(**value)
        except TypeError as exc:
            raise FasbenchError(f"{what}: real={{...}} {exc}; the keys are those of "
                                "fasbench.data.indexers.DatasetSpec") from None
    if not isinstance(value, DatasetSpec):
        raise FasbenchError(f"{what} registers real={value!r}; it must be a fasbench.data.indexers.DatasetSpec")
    letter = value.letter
    if not (isinstance(letter, str) and len(letter) == 1 and "A" <= letter <= "Z"):
        raise FasbenchError(f"{what}: domain letter {letter!r}; it must be one upper-case letter A-Z "
                            "(protocols name domains by letter, e.g. 'OCI->M')")
    if not (callable(value.index) or (isinstance(value.index, str) and ":" in value.index)):
        raise FasbenchError(f"{what}: index={value.index!r}; give the index function or 'package.module:function'")
    if not value.title or not isinstance(value.title, str):
        raise FasbenchError(f"{what}: give the dataset's title (title='...')")
    official = _check_official(value.official, what)
    for other in registry:
        o = other.meta.get("real")
        if isinstance(o, DatasetSpec) and o.letter == letter:
            raise DuplicateComponentError(
                f"domain letter {letter!r} is registered by two datasets: {other.name!r} (plugin {other.plugin!r}) "
                f"and {entry.name!r} (plugin {entry.plugin!r}); uninstall one of them or limit loading with "
                "FASBENCH_LOAD_PLUGINS")
    entry.meta["real"] = replace(value, name=entry.name, plugin=entry.plugin, official=official)


def _registry():
    from fasbench import plugins

    return plugins.registry("datasets")


def specs() -> list[DatasetSpec]:
    """Every registered real dataset: fasbench's own first, then each plugin's (plugins by
    name), each in the order its ``register_datasets`` registered them."""
    from fasbench.plugins import BUILTIN

    found = [e.meta["real"] for e in _registry().in_order() if isinstance(e.meta.get("real"), DatasetSpec)]
    return sorted(found, key=lambda s: (s.plugin != BUILTIN, s.plugin if s.plugin != BUILTIN else ""))


def spec(name_or_letter: str) -> DatasetSpec:
    """A registered real dataset by name (``msu_mfsd``) or domain letter (``M``)."""
    key = str(name_or_letter)
    all_specs = specs()
    for s in all_specs:
        if s.name == key:
            return s
    if len(key) == 1:
        for s in all_specs:
            if s.letter == key.upper():
                return s
    import difflib

    close = difflib.get_close_matches(key.lower(), [s.name for s in all_specs], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    raise FasbenchError(
        f"unknown real dataset {key!r}{hint} Known: "
        + (", ".join(f"{s.name} ({s.letter})" for s in all_specs) or "none registered")
        + " (see `fasbench ls datasets`)"
    )


def letters() -> list[str]:
    """The registered domain letters, in the order of :func:`specs`."""
    return [s.letter for s in specs()]


def names() -> list[str]:
    """The registered real datasets' names, in the order of :func:`specs`."""
    return [s.name for s in specs()]


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def read_list(path: Path) -> list[str]:
    """Lines of an official list file as shipped: CRLF or LF, with or without a final
    newline, blank lines ignored."""
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as exc:
        raise FasbenchError(f"cannot read list file {path}: {exc.strerror or exc}") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def need_dir(root: Path, name: str, dataset: str, layout: str) -> Path:
    """``root / name``, which must be a folder; else an error that shows the official layout."""
    d = root / name
    if not d.is_dir():
        raise FasbenchError(
            f"{dataset}: {d} does not exist; the root must hold the official layout ({layout}). "
            f"Point the root at the folder that contains {name}/ (see docs/datasets.md)"
        )
    return d


def video_files(d: Path) -> list[Path]:
    """The video files directly in ``d`` (suffixes :data:`VIDEO_SUFFIXES`), sorted."""
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def video_manifest(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """An indexer's rows as a video manifest: the :data:`VIDEO_COLUMNS` (``n_frames`` and
    ``error`` filled in later by probing), then the dataset-specific ``extra`` columns, sorted
    by ``video_id``."""
    import pandas as pd

    cols = list(VIDEO_COLUMNS) + [c for c in extra if c not in VIDEO_COLUMNS]
    df = pd.DataFrame(rows, columns=cols)
    df["label"] = df["label"].astype("int64")
    df["n_frames"] = 0
    df["error"] = ""
    return df.sort_values("video_id", kind="stable").reset_index(drop=True)


def probe_all(df: pd.DataFrame, root: Path, progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """Fill ``n_frames`` (and ``error`` for files that cannot be opened) by probing each file."""
    from tqdm.auto import tqdm

    from fasbench.data.video import VideoError, probe_frames
    from fasbench.util import bar_disabled

    def one(rel: str) -> tuple[int, str]:
        try:
            return probe_frames(root / rel), ""
        except VideoError as exc:
            return 0, str(exc)

    paths = df["path"].tolist()
    if workers > 1 and len(paths) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as ex:
            res = list(tqdm(ex.map(one, paths), total=len(paths), desc=f"probe {df['dataset'].iat[0]}",
                            unit="video", disable=bar_disabled(progress)))
    else:
        res = [one(p) for p in tqdm(paths, desc=f"probe {df['dataset'].iat[0] if len(df) else ''}",
                                    unit="video", disable=bar_disabled(progress))]
    df = df.copy()
    df["n_frames"] = [r[0] for r in res]
    df["error"] = [r[1] for r in res]
    return df


# --------------------------------------------------------------------------------------
# MSU-MFSD (M)
# --------------------------------------------------------------------------------------

_MSU = re.compile(
    r"^(?P<kind>real|attack)_client(?P<client>\d+)_(?P<device>android|laptop)_SD_"
    r"(?:(?P<attack>ipad_video|iphone_video|printed_photo)_)?scene01$", re.IGNORECASE)
MSU_LAYOUT = ("scene01/real/real_client001_android_SD_scene01.mp4, scene01/attack/"
              "attack_client001_laptop_SD_printed_photo_scene01.mov, train_sub_list.txt, test_sub_list.txt")


def _find_list(root: Path, name: str) -> Path | None:
    for cand in (root / name, root / "scene01" / name):
        if cand.is_file():
            return cand
    found = sorted(root.glob(f"*/{name}"))
    return found[0] if found else None


def index_msu(root: Path) -> IndexResult:
    scene = need_dir(root, "scene01", "msu_mfsd", MSU_LAYOUT)
    split_of: dict[int, str] = {}
    for split, name in (("train", "train_sub_list.txt"), ("test", "test_sub_list.txt")):
        lst = _find_list(root, name)
        if lst is None:
            raise FasbenchError(f"msu_mfsd: {name} not found under {root}; it ships with MSU-MFSD and "
                                f"defines the official subject split (put it next to scene01/)")
        for ln in read_list(lst):
            try:
                split_of[int(ln)] = split
            except ValueError:
                raise FasbenchError(f"msu_mfsd: {lst} has the line {ln!r}; expected one client number per line") from None
    rows, unrec = [], []
    for kind in ("real", "attack"):
        for p in video_files(need_dir(scene, kind, "msu_mfsd", MSU_LAYOUT)):
            m = _MSU.match(p.stem)
            if not m or m["kind"].lower() != kind or (kind == "attack") != bool(m["attack"]):
                unrec.append(str(p.relative_to(root)))
                continue
            client = int(m["client"])
            if client not in split_of:
                raise FasbenchError(f"msu_mfsd: client {client} ({p.name}) is in neither train_sub_list.txt "
                                    f"nor test_sub_list.txt; the lists or the video do not belong to this copy")
            att = (m["attack"] or "none").lower()
            rows.append({
                "dataset": "msu_mfsd", "domain": "M", "video_id": p.stem, "subject": f"client{client:03d}",
                "split": split_of[client], "label": int(kind == "real"),
                "attack": {"none": "none", "printed_photo": "print"}.get(att, "replay"),
                "attack_type": att, "path": str(p.relative_to(root)), "device": m["device"].lower(),
            })
    return IndexResult(video_manifest(rows, ("device",)), unrec)


# --------------------------------------------------------------------------------------
# CASIA-FASD (C)
# --------------------------------------------------------------------------------------

#: video name -> (label, attack_type, quality); bob.db.casia_fasd's mapping (docs/datasets.md)
_CASIA = {
    "1": (1, "none", "normal"), "2": (1, "none", "low"), "HR_1": (1, "none", "high"),
    "3": (0, "warped_photo", "normal"), "4": (0, "warped_photo", "low"), "HR_2": (0, "warped_photo", "high"),
    "5": (0, "cut_photo", "normal"), "6": (0, "cut_photo", "low"), "HR_3": (0, "cut_photo", "high"),
    "7": (0, "video_replay", "normal"), "8": (0, "video_replay", "low"), "HR_4": (0, "video_replay", "high"),
}
CASIA_LAYOUT = "train_release/1/{1,2,...,8,HR_1,...,HR_4}.avi (subjects 1-20), test_release/1/... (subjects 1-30)"


def index_casia(root: Path) -> IndexResult:
    rows, unrec = [], []
    for split, folder, offset in (("train", "train_release", 0), ("test", "test_release", 20)):
        base = need_dir(root, folder, "casia_fasd", CASIA_LAYOUT)
        for sub in sorted((d for d in base.iterdir() if d.is_dir()), key=lambda d: (len(d.name), d.name)):
            if not sub.name.isdigit():
                unrec.extend(str(p.relative_to(root)) for p in video_files(sub))
                continue
            for p in video_files(sub):
                info = _CASIA.get(p.stem.upper() if p.stem.upper().startswith("HR_") else p.stem)
                if info is None:
                    unrec.append(str(p.relative_to(root)))
                    continue
                label, att, quality = info
                rows.append({
                    "dataset": "casia_fasd", "domain": "C", "video_id": f"{folder}/{sub.name}/{p.stem}",
                    "subject": f"s{int(sub.name) + offset:02d}", "split": split, "label": label,
                    "attack": {"none": "none", "video_replay": "replay"}.get(att, "print"),
                    "attack_type": att, "path": str(p.relative_to(root)), "quality": quality,
                })
    return IndexResult(video_manifest(rows, ("quality",)), unrec)


# --------------------------------------------------------------------------------------
# Idiap Replay-Attack (I)
# --------------------------------------------------------------------------------------

_REPLAY_REAL = re.compile(r"^client(?P<client>\d+)_session(?P<session>\d+)_webcam_authenticate_"
                          r"(?P<light>adverse|controlled)_(?P<take>\d+)$", re.IGNORECASE)
_REPLAY_ATTACK = re.compile(r"^attack_(?P<device>print|mobile|highdef)_client(?P<client>\d+)_session(?P<session>\d+)_"
                            r"(?P<sample_device>highdef|mobile)_(?P<sample>photo|video)_(?P<light>adverse|controlled)$",
                            re.IGNORECASE)
REPLAY_LAYOUT = ("{train,devel,test}/real/client001_session01_webcam_authenticate_adverse_1.mov, "
                 "{train,devel,test}/attack/{fixed,hand}/attack_highdef_client001_session01_highdef_photo_adverse.mov")


def index_replay(root: Path) -> IndexResult:
    rows, unrec, excluded = [], [], {}
    enroll = root / "enroll"
    if enroll.is_dir():
        excluded["enroll"] = sum(1 for p in enroll.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    for split, folder in (("train", "train"), ("dev", "devel"), ("test", "test")):
        base = need_dir(root, folder, "replay_attack", REPLAY_LAYOUT)
        for p in video_files(need_dir(base, "real", "replay_attack", REPLAY_LAYOUT)):
            m = _REPLAY_REAL.match(p.stem)
            if not m:
                unrec.append(str(p.relative_to(root)))
                continue
            rows.append({
                "dataset": "replay_attack", "domain": "I", "video_id": f"{folder}/real/{p.stem}",
                "subject": f"client{int(m['client']):03d}", "split": split, "label": 1, "attack": "none",
                "attack_type": "none", "path": str(p.relative_to(root)), "support": "", "quality": "",
                "light": m["light"].lower(),
            })
        att_dir = need_dir(base, "attack", "replay_attack", REPLAY_LAYOUT)
        for support in ("fixed", "hand"):
            for p in video_files(need_dir(att_dir, support, "replay_attack", REPLAY_LAYOUT)):
                m = _REPLAY_ATTACK.match(p.stem)
                if not m:
                    unrec.append(str(p.relative_to(root)))
                    continue
                device = m["device"].lower()
                att = "print" if device == "print" else m["sample"].lower()
                rows.append({
                    "dataset": "replay_attack", "domain": "I", "video_id": f"{folder}/attack/{support}/{p.stem}",
                    "subject": f"client{int(m['client']):03d}", "split": split, "label": 0,
                    "attack": "print" if att == "print" else "replay", "attack_type": att,
                    "path": str(p.relative_to(root)), "support": support, "quality": device,
                    "light": m["light"].lower(),
                })
    return IndexResult(video_manifest(rows, ("support", "quality", "light")), unrec, excluded)


# --------------------------------------------------------------------------------------
# OULU-NPU (O)
# --------------------------------------------------------------------------------------

_OULU = re.compile(r"^(?P<phone>[1-6])_(?P<session>[1-3])_(?P<user>\d{2})_(?P<file>[1-5])$")
_OULU_ATTACK = {1: ("none", "none"), 2: ("print", "print1"), 3: ("print", "print2"),
                4: ("replay", "replay1"), 5: ("replay", "replay2")}
OULU_LAYOUT = ("Train_files/1_1_01_1.avi (Phone_Session_User_File), Dev_files/, Test_files/; "
               "optional Protocols/Protocol_1/{Train,Dev,Test}.txt ... Protocol_4/Test_6.txt")
#: The official protocol lists: column name -> list-file stem suffix ("" or "_k").
OULU_PROTOCOL_LISTS = {"oulu_p1": ("Protocol_1", ""), "oulu_p2": ("Protocol_2", "")}
OULU_PROTOCOL_LISTS.update({f"oulu_p{p}_{k}": (f"Protocol_{p}", f"_{k}") for p in (3, 4) for k in range(1, 7)})


def _oulu_protocols(root: Path, by_name: dict[str, int], n: int) -> tuple[dict[str, list[str]], list[str]]:
    base = root / "Protocols"
    cols: dict[str, list[str]] = {}
    notes = []
    if not base.is_dir():
        return cols, [f"no Protocols/ folder under {root}: the OULU-NPU protocols 1-4 cannot run"]
    absent: dict[str, list[str]] = {}
    for col, (folder, suffix) in OULU_PROTOCOL_LISTS.items():
        files = {s: base / folder / f"{s.capitalize()}{suffix}.txt" for s in ("train", "dev", "test")}
        if not all(f.is_file() for f in files.values()):
            absent.setdefault(folder, []).extend(f.name for f in files.values() if not f.is_file())
            continue
        values = [""] * n
        for split, f in files.items():
            for ln in read_list(f):
                sign, _, vid = ln.partition(",")
                vid = vid.strip()
                if vid not in by_name or sign.strip()[:1] not in "+-":
                    raise FasbenchError(f"oulu_npu: {f} has the line {ln!r}; expected '+1,1_1_01_1' (live) or "
                                        f"'-1,1_1_01_2' (attack) naming a video of this copy")
                i = by_name[vid]
                if (sign.strip().startswith("+")) != vid.endswith("_1"):
                    raise FasbenchError(f"oulu_npu: {f} labels {vid} {sign.strip()!r}, but file 1 is the only live "
                                        f"one (Phone_Session_User_File); the list does not match the dataset")
                values[i] = split
        cols[col] = values
    for folder, names in absent.items():
        notes.append(f"Protocols/{folder}: list file(s) missing ({', '.join(names)}); its OULU-NPU protocol cannot run")
    return cols, notes


def index_oulu(root: Path) -> IndexResult:
    rows, unrec = [], []
    for split, folder in (("train", "Train_files"), ("dev", "Dev_files"), ("test", "Test_files")):
        for p in video_files(need_dir(root, folder, "oulu_npu", OULU_LAYOUT)):
            m = _OULU.match(p.stem)
            if not m:
                unrec.append(str(p.relative_to(root)))
                continue
            attack, att_type = _OULU_ATTACK[int(m["file"])]
            rows.append({
                "dataset": "oulu_npu", "domain": "O", "video_id": p.stem, "subject": f"user{m['user']}",
                "split": split, "label": int(m["file"] == "1"), "attack": attack, "attack_type": att_type,
                "path": str(p.relative_to(root)), "phone": int(m["phone"]), "session": int(m["session"]),
            })
    df = video_manifest(rows, ("phone", "session"))
    by_name = {v: i for i, v in enumerate(df["video_id"].tolist())}
    cols, notes = _oulu_protocols(root, by_name, len(df))
    for c, v in cols.items():
        df[c] = v
    return IndexResult(df, unrec, notes=notes)


# --------------------------------------------------------------------------------------
# CelebA-Spoof (A): images, labels in metas/intra_test/{train,test}_label.json
# --------------------------------------------------------------------------------------

#: index 40 of a label vector: spoof type (CelebA-Spoof README, "Annotation Detail")
CELEBA_SPOOF_TYPES = {0: "none", 1: "photo", 2: "poster", 3: "a4", 4: "face_mask", 5: "upper_body_mask",
                      6: "region_mask", 7: "pc", 8: "pad", 9: "phone", 10: "3d_mask"}
_CELEBA_KIND = {"none": "none", "photo": "print", "poster": "print", "a4": "print", "face_mask": "mask",
                "upper_body_mask": "mask", "region_mask": "mask", "pc": "replay", "pad": "replay",
                "phone": "replay", "3d_mask": "mask3d"}
CELEBA_LAYOUT = "Data/{train,test}/<subject>/{live,spoof}/<image>.jpg|png, metas/intra_test/{train,test}_label.json"


def index_celeba_spoof(root: Path) -> IndexResult:
    rows, unrec = [], []
    metas = root / "metas" / "intra_test"
    for split in ("train", "test"):
        f = metas / f"{split}_label.json"
        if not f.is_file():
            raise FasbenchError(f"celeba_spoof: {f} not found; the root must hold the official layout ({CELEBA_LAYOUT})")
        try:
            labels = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise FasbenchError(f"celeba_spoof: cannot read {f}: {exc}") from None
        for rel, vec in labels.items():
            parts = Path(rel).parts
            if len(vec) < 44 or len(parts) < 5 or parts[-2] not in ("live", "spoof"):
                unrec.append(rel)
                continue
            spoof_type = CELEBA_SPOOF_TYPES.get(int(vec[40]), f"type{int(vec[40])}")
            live = int(vec[43]) == 0
            if live != (parts[-2] == "live") or live != (spoof_type == "none"):
                raise FasbenchError(f"celeba_spoof: {f} labels {rel} inconsistently (folder {parts[-2]!r}, "
                                    f"spoof type {int(vec[40])}, live/spoof label {int(vec[43])})")
            rows.append({
                "dataset": "celeba_spoof", "domain": "A", "video_id": str(Path(rel).with_suffix("")),
                "subject": parts[-3], "split": split, "label": int(live),
                "attack": _CELEBA_KIND.get(spoof_type, "other"), "attack_type": spoof_type, "path": rel,
            })
    return IndexResult(video_manifest(rows), unrec)


def index(name_or_letter: str, root: str | Path, *, probe: bool = True, progress: bool = True,
          workers: int = 4) -> IndexResult:
    """Index the copy at ``root``; with ``probe`` also read every video's frame count."""
    s = spec(name_or_letter)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FasbenchError(f"{s.name}: root {root} is not a directory; set it to your copy of {s.title} "
                            f"(its official layout: {s.layout})")
    res = s.indexer()(root)
    if not isinstance(res, IndexResult):
        raise FasbenchError(f"{s.name}: the indexer of plugin {s.plugin!r} returned {type(res).__name__}, "
                            "not a fasbench.data.indexers.IndexResult")
    _check_manifest(s, res)
    if res.videos.empty:
        raise FasbenchError(f"{s.name}: no video found under {root} in the official layout ({s.layout})")
    if probe:
        res.videos = probe_all(res.videos, root, progress=progress, workers=workers)
    return res


def _check_manifest(s: DatasetSpec, res: IndexResult) -> None:
    """An indexer's manifest has every column, and its rows are of this dataset and domain."""
    df = res.videos
    missing = [c for c in VIDEO_COLUMNS if c not in df.columns and c not in ("n_frames", "error")]
    if missing:
        raise FasbenchError(f"{s.name}: the manifest of plugin {s.plugin!r}'s indexer lacks the column(s) "
                            f"{', '.join(missing)} (build it with fasbench.data.indexers.video_manifest)")
    for col, want in (("dataset", s.name), ("domain", s.letter)):
        bad = sorted({str(v) for v in df[col].unique()} - {want})
        if bad:
            raise FasbenchError(f"{s.name}: plugin {s.plugin!r}'s indexer sets {col}={bad[0]!r}; every row of "
                                f"this dataset must have {col}={want!r} (its registration)")
    if "n_frames" not in df.columns:
        df["n_frames"] = 0
    if "error" not in df.columns:
        df["error"] = ""


def counts(df: pd.DataFrame) -> dict[str, Any]:
    """``{"videos", "live", "spoof", "splits", "attacks", "subjects"}`` of a video manifest."""
    spoof = df[df["label"] == 0]
    return {
        "videos": int(len(df)),
        "live": int((df["label"] == 1).sum()),
        "spoof": int(len(spoof)),
        "splits": {str(k): int(v) for k, v in df["split"].value_counts().sort_index().items()},
        "attacks": {str(k): int(v) for k, v in spoof["attack_type"].value_counts().sort_index().items()},
        "subjects": int(df["subject"].nunique()),
    }


def compare(found: dict[str, Any], official: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows ``{"what", "found", "official", "ok"}`` for every count the official numbers give."""
    rows = []
    for key in ("videos", "live", "spoof", "subjects"):
        if key in official:
            rows.append({"what": key, "found": found.get(key, 0), "official": official[key],
                         "ok": found.get(key, 0) == official[key]})
    for group in ("splits", "attacks"):
        off = official.get(group)
        if off is None:
            continue
        for k in sorted(set(off) | set(found.get(group, {}))):
            f, o = found.get(group, {}).get(k, 0), off.get(k, 0)
            rows.append({"what": f"{group[:-1]} {k}", "found": f, "official": o, "ok": f == o})
    return rows
