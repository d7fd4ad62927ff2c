"""A contact sheet of prepared face crops (``fasbench data preview``): one row block per domain
x live / attack type, ``n`` crops each, sampled deterministically, every block labelled from
the manifest, and the fallback crops (frames where MTCNN found no face) framed in red, so one
picture shows whether the crops are upright, centred and tight before anything trains on them.

:func:`contact_sheet` is a pure function of a FrameSet-like object (``.manifest`` with one row
per frame: ``domain``, ``dataset``, ``label``, ``attack``, optionally ``attack_type``,
``video_id``; ``.images`` uint8 ``(N, H, W, 3)``) and a per-frame fallback flag; it returns the
image and its :class:`Layout` (which manifest row went into which tile), so the picture can be
checked without the CLI. :func:`fallback_flags` reads the flags from a prepared cache's video
table (``videos.csv``).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fasbench.errors import FasbenchError

#: Geometry (pixels): outer padding, header (title + legend), label line above each row block,
#: the frame around each tile (red for a fallback crop), the gap between tiles and blocks, and
#: the narrowest sheet (so that labels fit when ``n`` is small).
PAD, HEADER_H, LABEL_H, BORDER, GAP, MIN_WIDTH = 8, 34, 18, 3, 4, 480
BACKGROUND = (255, 255, 255)
FACE_FRAME = (205, 205, 205)  # a light grey frame: a crop of a frame where a face was found
FALLBACK_FRAME = (220, 0, 0)  # red: a fallback crop (no face found in that frame, or in its video)
TEXT = (20, 20, 20)


@dataclass
class Group:
    """One row block: the frames of one domain and one live / attack type."""

    domain: str
    dataset: str
    kind: str                 # "live" or the dataset's own attack type (attack_type)
    attack: str               # the shared attack kind (print, replay, ...; none for live)
    label: str                # the text drawn above the block
    frames: int               # frames of this group (the split selected)
    videos: int               # videos of this group
    rows: list[int]           # manifest positions of the crops shown, left to right
    fallback: list[bool]      # per crop shown: framed in red
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # per crop: (x0, y0, x1, y1) of its cell, frame included

    def as_dict(self, manifest: pd.DataFrame | None = None) -> dict[str, Any]:
        d = {"domain": self.domain, "dataset": self.dataset, "type": self.kind, "attack": self.attack, "label": self.label,
             "frames": self.frames, "videos": self.videos, "shown": len(self.rows), "fallback": int(sum(self.fallback))}
        if manifest is not None:
            d["tiles"] = [{"video_id": str(manifest.at[r, "video_id"]), "path": str(manifest.at[r, "path"]),
                           "frame": int(manifest.at[r, "frame"]), "fallback": bool(f)} for r, f in zip(self.rows, self.fallback)]
        return d


@dataclass
class Layout:
    size: tuple[int, int]     # (width, height) of the sheet
    n: int                    # crops per block (at most)
    tile: int                 # side of a crop on the sheet (pixels, frame not included)
    groups: list[Group]


def fallback_flags(prepared_videos: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Per cached frame (cache order): was it a fallback crop? From a prepared cache's video
    table (``videos.csv``: ``slots``, ``no_face`` per video). ``("frame" | "video")`` says how
    precise that is: the cache records the number of frames without a face per *video*, not
    which ones, so every crop of a video with a frame without a face is flagged ("video"),
    unless the table has a per-slot ``face_slots`` column (``"1;0"``: 1 = face found), which
    is then used ("frame")."""
    slots = prepared_videos["slots"].astype(int).to_numpy()
    if "face_slots" in prepared_videos.columns:
        flags = [int(x) == 0 for s in prepared_videos["face_slots"].astype(str) for x in s.split(";") if x != ""]
        if len(flags) == int(slots.sum()):
            return np.asarray(flags, dtype=bool), "frame"
    return np.repeat(prepared_videos["no_face"].astype(int).to_numpy() > 0, slots), "video"


def _kind(row_label: int, attack: str, attack_type: str) -> str:
    return "live" if int(row_label) == 1 else (attack_type or attack or "attack")


def groups_of(manifest: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """``(domain, kind, manifest positions)`` of every domain x live / attack type, domains in
    order of first appearance, live first, then the attack types sorted by name."""
    m = manifest.reset_index(drop=True)
    at = m["attack_type"].astype(str) if "attack_type" in m.columns else pd.Series("", index=m.index)
    kinds = pd.Series([_kind(lb, a, t) for lb, a, t in zip(m["label"], m["attack"].astype(str), at)], index=m.index)
    out = []
    for dom in pd.unique(m["domain"].astype(str)):
        sel = m["domain"].astype(str) == dom
        ks = sorted(set(kinds[sel]), key=lambda k: (k != "live", k))
        for k in ks:
            out.append((dom, k, np.flatnonzero((sel & (kinds == k)).to_numpy())))
    return out


def sample(positions: np.ndarray, video_ids: Sequence[str], n: int, key: str, seed: int = 0) -> list[int]:
    """``n`` of ``positions``, the same for the same inputs: a shuffle seeded by ``seed`` and
    ``key`` (the group), as many different videos as possible first, shown in cache order."""
    positions = np.asarray(positions)
    k = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    order = np.random.default_rng([seed, k]).permutation(len(positions))
    seen: dict[str, int] = {}
    rank = []
    for i in order:  # 0 for the first crop of each video in the shuffled order, 1 for its second, ...
        v = str(video_ids[i])
        rank.append(seen.get(v, 0))
        seen[v] = seen.get(v, 0) + 1
    picked = [order[j] for j in sorted(range(len(order)), key=lambda j: rank[j])[:n]]
    return sorted(int(positions[i]) for i in picked)


def sheet_size(groups: int, n: int, tile: int) -> tuple[int, int]:
    """``(width, height)`` of a sheet of ``groups`` row blocks of ``n`` tiles."""
    cell = tile + 2 * BORDER
    width = max(2 * PAD + n * cell + (n - 1) * GAP, MIN_WIDTH)
    height = 2 * PAD + HEADER_H + groups * (LABEL_H + cell + GAP) - (GAP if groups else 0)
    return width, height


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw, text: str, font, width: int) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels (never clipped mid-glyph)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def contact_sheet(frames: Any, fallback: Sequence[bool] | np.ndarray | None = None, *, n: int = 8, tile: int = 96,
                  seed: int = 0, title: str = "", fallback_per: str = "frame"):
    """The contact sheet of ``frames`` (``.manifest``, ``.images``): ``(PIL.Image, Layout)``.

    ``fallback``: per frame (manifest order), whether it is a fallback crop (framed in red);
    ``fallback_per`` ("frame" or "video") only changes the legend. ``n`` crops per domain x
    live / attack type (fewer when a group has fewer frames), each resized to ``tile`` pixels.
    """
    from PIL import Image, ImageDraw

    if n < 1:
        raise FasbenchError(f"n={n}: show at least 1 crop per group")
    if tile < 8:
        raise FasbenchError(f"tile={tile}: give at least 8 pixels")
    manifest = frames.manifest.reset_index(drop=True)
    images = frames.images
    if len(manifest) != len(images):
        raise FasbenchError(f"the manifest has {len(manifest)} rows but there are {len(images)} frames")
    if len(manifest) == 0:
        raise FasbenchError("no frame to preview (is the split empty?)")
    flags = np.zeros(len(manifest), bool) if fallback is None else np.asarray(fallback, dtype=bool)
    if flags.shape != (len(manifest),):
        raise FasbenchError(f"fallback flags: {flags.shape[0] if flags.ndim else 0} given for {len(manifest)} frames")
    vids = manifest["video_id"].astype(str).to_numpy() if "video_id" in manifest.columns else np.arange(len(manifest)).astype(str)
    datasets = manifest["dataset"].astype(str) if "dataset" in manifest.columns else manifest["domain"].astype(str)

    groups: list[Group] = []
    for dom, kind, pos in groups_of(manifest):
        rows = sample(pos, vids[pos], n, f"{dom}/{kind}", seed)
        fb = [bool(flags[r]) for r in rows]
        attack = str(manifest.at[int(pos[0]), "attack"])
        dataset = str(datasets.iat[int(pos[0])])
        nvid = len(set(vids[pos]))
        name = kind if kind == "live" or kind == attack else f"{kind} ({attack})"
        label = (f"{dom} {dataset} · {name} · {len(rows)} of {len(pos)} frames, {nvid} video{'s' * (nvid != 1)}"
                 + (f" · {sum(fb)} fallback" if any(fb) else ""))
        groups.append(Group(dom, dataset, kind, attack, label, len(pos), nvid, rows, fb))

    width, height = sheet_size(len(groups), n, tile)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    cell = tile + 2 * BORDER
    room = width - 2 * PAD
    draw.text((PAD, PAD), _fit(draw, title or "prepared face crops", font, room), fill=TEXT, font=font)
    legend = ("red frame: fallback crop (no face found in that frame)" if fallback_per == "frame" else
              "red frame: crop of a video with sampled frames without a face (recorded per video)")
    draw.text((PAD, PAD + HEADER_H // 2), _fit(draw, legend, font, room), fill=FALLBACK_FRAME, font=font)
    y = PAD + HEADER_H
    for g in groups:
        draw.text((PAD, y + 2), _fit(draw, g.label, font, room), fill=TEXT, font=font)
        top = y + LABEL_H
        for j, (r, fb) in enumerate(zip(g.rows, g.fallback)):
            x = PAD + j * (cell + GAP)
            box = (x, top, x + cell, top + cell)
            draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=FALLBACK_FRAME if fb else FACE_FRAME)
            crop = Image.fromarray(np.asarray(images[r], dtype=np.uint8))
            if crop.size != (tile, tile):
                crop = crop.resize((tile, tile), Image.BILINEAR)
            sheet.paste(crop, (x + BORDER, top + BORDER))
            g.boxes.append(box)
        y += LABEL_H + cell + GAP
    return sheet, Layout((width, height), n, tile, groups)


def write_png(image, path: str | Path) -> Path:
    """Save ``image`` as a PNG at ``path``, atomically (:func:`fasbench.util.atomic_target`)."""
    from fasbench.util import atomic_target

    path = Path(path)
    try:
        with atomic_target(path) as tmp:
            image.save(tmp, format="PNG", optimize=True)
    except OSError as exc:
        raise FasbenchError(f"cannot write the preview {path}: {exc.strerror or exc}; give another --out FILE.png") from None
    return path
