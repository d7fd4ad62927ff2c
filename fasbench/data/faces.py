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


def detector(min_face: int):
    """One MTCNN per process (CPU; the three small nets are faster there than a GPU round trip
    at these batch sizes)."""
    if min_face not in _DETECTORS:
        from facenet_pytorch import MTCNN

        _DETECTORS[min_face] = MTCNN(keep_all=False, select_largest=True, min_face_size=int(min_face),
                                     post_process=False, device="cpu")
    return _DETECTORS[min_face]


def detect(frames: list[np.ndarray], cfg: FaceConfig) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per frame: ``(box [x0, y0, x1, y1], landmarks (5, 2))`` of the largest face, or None."""
    if not frames:
        return []
    mt = detector(cfg.min_face)
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    # frames of one video share a size, but be safe: detect per distinct size
    for f in frames:
        h, w = f.shape[:2]
        scale = min(1.0, cfg.detect_max_side / max(h, w))
        img = f if scale == 1.0 else np.asarray(
            Image.fromarray(f).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR))
        boxes, probs, lms = mt.detect(img, landmarks=True)
        if boxes is None or len(boxes) == 0 or probs[0] is None or float(probs[0]) < cfg.threshold:
            out.append(None)
        else:
            out.append((np.asarray(boxes[0], dtype=np.float64) / scale, np.asarray(lms[0], dtype=np.float64) / scale))
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
