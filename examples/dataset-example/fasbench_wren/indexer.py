"""Wren-PAD's indexer: a copy in the official layout -> one manifest row per video.

Official layout (the root is the folder that holds ``clips/`` and ``lists/``)::

    clips/S001/S001_bonafide_cam1.mp4   live, camera 1
    clips/S001/S001_bonafide_cam2.mp4   live, camera 2
    clips/S001/S001_print_cam1.mp4      printed-photo attack
    clips/S001/S001_screen_cam2.mp4     photo/video shown on a screen (a replay attack)
    ...                                 30 subjects x 2 cameras x (bonafide, print, screen)
    lists/train.txt                     the subject split: one subject id per line (18 subjects)
    lists/test.txt                      (12 subjects)
"""
from __future__ import annotations

import re
from pathlib import Path

from fasbench.data.indexers import IndexResult, need_dir, read_list, video_files, video_manifest
from fasbench.errors import FasbenchError
from fasbench_wren.plugin import LAYOUT

_NAME = re.compile(r"^(?P<subject>S\d{3})_(?P<kind>bonafide|print|screen)_(?P<camera>cam[12])$")
#: presentation -> fasbench's shared attack kind (none/print/replay/mask/mask3d)
_KIND = {"bonafide": "none", "print": "print", "screen": "replay"}


def index_wren(root: Path) -> IndexResult:
    clips = need_dir(root, "clips", "wren_pad", LAYOUT)
    split_of: dict[str, str] = {}
    for split in ("train", "test"):
        lst = root / "lists" / f"{split}.txt"
        if not lst.is_file():
            raise FasbenchError(f"wren_pad: {lst} not found; it ships with Wren-PAD and defines the official "
                                f"subject split ({LAYOUT})")
        for subject in read_list(lst):
            split_of[subject] = split
    rows, unrecognised = [], []
    for folder in sorted(d for d in clips.iterdir() if d.is_dir()):
        for p in video_files(folder):
            rel = str(p.relative_to(root))
            m = _NAME.match(p.stem)
            if not m or m["subject"] != folder.name:
                unrecognised.append(rel)  # reported by `fasbench data check`, never guessed at
                continue
            if m["subject"] not in split_of:
                raise FasbenchError(f"wren_pad: subject {m['subject']} ({rel}) is in neither lists/train.txt nor "
                                    "lists/test.txt; the lists or the video do not belong to this copy")
            kind = m["kind"]
            rows.append({
                "dataset": "wren_pad", "domain": "W", "video_id": p.stem, "subject": m["subject"],
                "split": split_of[m["subject"]], "label": int(kind == "bonafide"), "attack": _KIND[kind],
                "attack_type": "none" if kind == "bonafide" else kind, "path": rel, "camera": m["camera"],
            })
    return IndexResult(video_manifest(rows, extra=("camera",)), unrecognised)
