"""Indexers: a user's local copy of a FAS dataset, in its official layout and naming, as a
video-level manifest (one row per video).

Each dataset is described by a :class:`DatasetSpec`: its domain letter, where it is
requested from, its official counts (``fasbench data check`` compares against them) and an
``index(root)`` function. Sources for every convention used here are cited in
``docs/datasets.md``.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from fasbench.errors import FasbenchError

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
    name: str
    letter: str
    title: str
    url: str
    index: Callable[[Path], IndexResult]
    official: dict[str, Any]
    layout: str


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


def _need_dir(root: Path, name: str, dataset: str, layout: str) -> Path:
    d = root / name
    if not d.is_dir():
        raise FasbenchError(
            f"{dataset}: {d} does not exist; the root must hold the official layout ({layout}). "
            f"Point the root at the folder that contains {name}/ (see docs/datasets.md)"
        )
    return d


def _videos(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def _frame(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> pd.DataFrame:
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
                            unit="video", disable=not progress))
    else:
        res = [one(p) for p in tqdm(paths, desc=f"probe {df['dataset'].iat[0] if len(df) else ''}",
                                    unit="video", disable=not progress)]
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
    scene = _need_dir(root, "scene01", "msu_mfsd", MSU_LAYOUT)
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
        for p in _videos(_need_dir(scene, kind, "msu_mfsd", MSU_LAYOUT)):
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
    return IndexResult(_frame(rows, ("device",)), unrec)


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
        base = _need_dir(root, folder, "casia_fasd", CASIA_LAYOUT)
        for sub in sorted((d for d in base.iterdir() if d.is_dir()), key=lambda d: (len(d.name), d.name)):
            if not sub.name.isdigit():
                unrec.extend(str(p.relative_to(root)) for p in _videos(sub))
                continue
            for p in _videos(sub):
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
    return IndexResult(_frame(rows, ("quality",)), unrec)


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
        base = _need_dir(root, folder, "replay_attack", REPLAY_LAYOUT)
        for p in _videos(_need_dir(base, "real", "replay_attack", REPLAY_LAYOUT)):
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
        att_dir = _need_dir(base, "attack", "replay_attack", REPLAY_LAYOUT)
        for support in ("fixed", "hand"):
            for p in _videos(_need_dir(att_dir, support, "replay_attack", REPLAY_LAYOUT)):
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
    return IndexResult(_frame(rows, ("support", "quality", "light")), unrec, excluded)


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
        for p in _videos(_need_dir(root, folder, "oulu_npu", OULU_LAYOUT)):
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
    df = _frame(rows, ("phone", "session"))
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
    return IndexResult(_frame(rows), unrec)


# --------------------------------------------------------------------------------------
# registry of the built-in real datasets
# --------------------------------------------------------------------------------------

SPECS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec(
        "msu_mfsd", "M", "MSU-MFSD (MSU Mobile Face Spoofing Database)",
        "https://sites.google.com/site/huhanhomepage/datasetcode", index_msu,
        {"videos": 280, "live": 70, "spoof": 210, "splits": {"train": 120, "test": 160},
         "attacks": {"printed_photo": 70, "ipad_video": 70, "iphone_video": 70}, "subjects": 35},
        MSU_LAYOUT),
    DatasetSpec(
        "casia_fasd", "C", "CASIA-FASD (CASIA Face Anti-Spoofing Database)",
        "http://www.cbsr.ia.ac.cn/english/FaceAntiSpoof%20Databases.asp", index_casia,
        {"videos": 600, "live": 150, "spoof": 450, "splits": {"train": 240, "test": 360},
         "attacks": {"warped_photo": 150, "cut_photo": 150, "video_replay": 150}, "subjects": 50},
        CASIA_LAYOUT),
    DatasetSpec(
        "replay_attack", "I", "Idiap Replay-Attack",
        "https://www.idiap.ch/en/scientific-research/data/replayattack", index_replay,
        {"videos": 1200, "live": 200, "spoof": 1000, "splits": {"train": 360, "dev": 360, "test": 480},
         "attacks": {"print": 200, "photo": 400, "video": 400}, "subjects": 50},
        REPLAY_LAYOUT),
    DatasetSpec(
        "oulu_npu", "O", "OULU-NPU",
        "https://sites.google.com/site/oulunpudatabase/", index_oulu,
        {"videos": 4950, "live": 990, "spoof": 3960, "splits": {"train": 1800, "dev": 1350, "test": 1800},
         "attacks": {"print1": 990, "print2": 990, "replay1": 990, "replay2": 990}, "subjects": 55},
        OULU_LAYOUT),
    DatasetSpec(
        "celeba_spoof", "A", "CelebA-Spoof",
        "https://github.com/ZhangYuanhan-AI/CelebA-Spoof", index_celeba_spoof,
        {"videos": 625537, "live": 156384, "spoof": 469153, "subjects": 10177},
        CELEBA_LAYOUT),
)}
BY_LETTER = {s.letter: s for s in SPECS.values()}


def spec(name_or_letter: str) -> DatasetSpec:
    """A built-in dataset by name (``msu_mfsd``) or domain letter (``M``)."""
    key = str(name_or_letter)
    if key in SPECS:
        return SPECS[key]
    if key.upper() in BY_LETTER and len(key) == 1:
        return BY_LETTER[key.upper()]
    import difflib

    close = difflib.get_close_matches(key.lower(), list(SPECS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise FasbenchError(
        f"unknown real dataset {key!r}{hint} Known: "
        + ", ".join(f"{s.name} ({s.letter})" for s in SPECS.values())
    )


def index(name_or_letter: str, root: str | Path, *, probe: bool = True, progress: bool = True,
          workers: int = 4) -> IndexResult:
    """Index the copy at ``root``; with ``probe`` also read every video's frame count."""
    s = spec(name_or_letter)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FasbenchError(f"{s.name}: root {root} is not a directory; set it to your copy of {s.title} "
                            f"(its official layout: {s.layout})")
    res = s.index(root)
    if res.videos.empty:
        raise FasbenchError(f"{s.name}: no video found under {root} in the official layout ({s.layout})")
    if probe:
        res.videos = probe_all(res.videos, root, progress=progress, workers=workers)
    return res


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
