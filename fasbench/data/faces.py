"""Face detection (MTCNN from facenet-pytorch, weights shipped in its wheel), in-plane
alignment on the eye landmarks, and square crops with a margin."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class FaceConfig:
    """Face crop settings; built from ``data.preprocess`` (declared, with defaults, in
    fasbench.data.real_options.PreprocessOptions)."""

    size: int             # output crop side (pixels)
    margin: float         # extra context: crop side = (1 + margin) * max(box width, box height)
    align: bool           # rotate so the eyes are level (MTCNN landmarks)
    min_face: int         # MTCNN min_face_size, in detection pixels
    detect_max_side: int  # frames are downscaled to at most this long side for detection
    threshold: float      # minimum face probability (MTCNN's last stage)


_DETECTORS: dict[Any, Any] = {}


def detect_device() -> str:
    """Where MTCNN runs: ``cuda`` when torch sees a GPU, else ``cpu``; ``FASBENCH_DETECT_DEVICE``
    (``cpu``, ``cuda``, ``cuda:1``, ...) overrides. On a machine without a GPU nothing changes."""
    import os

    env = os.environ.get("FASBENCH_DETECT_DEVICE", "").strip()
    if env:
        return env
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def detector(min_face: int, device: str | None = None):
    """One MTCNN per process and device (the preparation pool loads it in each worker's
    initialiser, once; see :func:`detect_device` for the default device)."""
    device = device or detect_device()
    key = (int(min_face), device)
    if key not in _DETECTORS:
        from facenet_pytorch import MTCNN

        _DETECTORS[key] = MTCNN(keep_all=False, select_largest=True, min_face_size=int(min_face),
                                post_process=False, device=device)
    return _DETECTORS[key]


def _detect_size(h: int, w: int, cfg: FaceConfig) -> tuple[float, tuple[int, int]]:
    scale = min(1.0, cfg.detect_max_side / max(h, w))
    return scale, (max(1, round(w * scale)), max(1, round(h * scale)))


def detect(frames: list[np.ndarray], cfg: FaceConfig, *, batch: bool = True) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per frame: ``(box [x0, y0, x1, y1], landmarks (5, 2))`` of the largest face, or None.

    Frames are downscaled to ``cfg.detect_max_side``; frames of one size (a video's) go through
    MTCNN as one batch (``batch=False``: one call per frame; the same faces either way)."""
    if not frames:
        return []
    mt = detector(cfg.min_face)
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(frames)
    groups: dict[tuple[int, int], list[int]] = {}
    for j, f in enumerate(frames):
        groups.setdefault(f.shape[:2], []).append(j)
    for (h, w), idx in groups.items():
        scale, size = _detect_size(h, w, cfg)
        imgs = [frames[j] if scale == 1.0 else np.asarray(Image.fromarray(frames[j]).resize(size, Image.BILINEAR))
                for j in idx]
        if batch:
            boxes, probs, lms = mt.detect(np.stack(imgs), landmarks=True)
        else:
            boxes, probs, lms = zip(*(mt.detect(im, landmarks=True) for im in imgs))
        for j, b, p, lm in zip(idx, boxes, probs, lms):
            if b is None or len(b) == 0 or p[0] is None or float(p[0]) < cfg.threshold:
                continue
            out[j] = (np.asarray(b[0], dtype=np.float64) / scale, np.asarray(lm[0], dtype=np.float64) / scale)
    return out


def crop(frame: np.ndarray, face: tuple[np.ndarray, np.ndarray] | None, cfg: FaceConfig) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 crop: the face (aligned, with margin), or with ``face=None``
    the centred square of the frame."""
    h, w = frame.shape[:2]
    img = Image.fromarray(frame)
    if face is None:
        side = min(h, w)
        left, top = (w - side) // 2, (h - side) // 2
        return np.asarray(img.crop((left, top, left + side, top + side)).resize((cfg.size, cfg.size), Image.BILINEAR))
    box, lm = face
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    side = max(box[2] - box[0], box[3] - box[1]) * (1.0 + cfg.margin)
    angle = 0.0
    if cfg.align:
        (lx, ly), (rx, ry) = lm[0], lm[1]  # MTCNN: left eye, right eye, nose, mouth corners
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
    # cut a region big enough for any rotation, rotate it about the face centre, take the square
    half = side * 0.75
    region = img.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))  # pads with black
    if angle:
        region = region.rotate(angle, resample=Image.BILINEAR, center=(half, half))
    q = side / 2.0
    sq = region.crop((round(half - q), round(half - q), round(half + q), round(half + q)))
    return np.asarray(sq.resize((cfg.size, cfg.size), Image.BILINEAR))
