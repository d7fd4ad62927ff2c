"""A procedurally generated cross-domain face anti-spoofing world.

The real FAS datasets (MSU-MFSD "M", CASIA-FASD "C", Idiap Replay-Attack "I", OULU-NPU "O")
are licence-gated, so fasbench ships a synthetic stand-in that exercises the same protocol:
several *domains* that differ in capture conditions, subjects split into ``train`` / ``dev`` /
``test`` by identity, and for every subject live videos plus ``print`` and ``replay`` attack
videos of a few frames each.

How an image is made
--------------------
1. **A person** is drawn analytically on a coordinate grid: an ellipsoidal head with a narrower
   jaw, skin tone, hair style and colour, ears, neck and shoulders, eyes (sclera, iris, pupil,
   blinks), brows, nose shadow and nostrils, lips (opening and smiling), optional glasses and
   stubble, lit by a moving light.  Every identity parameter comes from a random stream seeded
   by ``(seed, domain, subject)``; every frame jitters pose, expression and light.
2. **An attack medium** (for spoofs) re-renders the person in the coordinates of a sheet of
   paper or a screen that moves rigidly in front of the camera:

   * ``print``: a *static* photo (no expression change between frames) with compressed
     dynamic range, desaturation, a paper tint, a rotated halftone screen, paper grain, inkjet
     banding, a white margin, sometimes a visible paper edge and a bend (warped photo).
   * ``replay``: a *video* on a display: a gamut / white-point shift, raised black level,
     a sub-pixel RGB grid (which aliases into moiré when sampled by the camera), explicit
     moiré bands, rolling-shutter banding, a specular glare and sometimes the bezel.

   Cue strengths are drawn per video, so some attacks are blatant and some subtle.
3. **A domain camera** captures the scene: illumination gain / flicker, gamma and contrast,
   colour cast, optical blur, sensor resolution (area down-sampling, then bilinear
   up-sampling back to ``image_size``), sensor noise and JPEG compression at sensor resolution.

The four domains also differ in *how attacks look* (printer screen frequency, display pixel
pitch and gamut, moiré frequency), as different printers and screens do, and in background
type.  Cues learnt on three domains therefore transfer only partly to the fourth: ``I`` is
low-resolution and blurry (fine halftone / pixel-grid cues vanish), ``O`` has coarse halftones,
warm displays and strongly varying session illumination, ``C`` is cool-cast with warped
prints, ``M`` is sharp and warm with fine halftones.

A fifth domain, ``T``, is the **teacher corpus**: its own camera, light and people, used by
no protocol. Face teachers that stand in for networks trained on web-scale face data (the DTDA
plugin's synthetic-world teachers) are pretrained on its live videos only, so they have never
seen a benchmark domain nor a benchmark subject.

Everything is numpy (Pillow only for JPEG and the preview sheet); the demo configuration
generates in a few seconds.  Output is bit-identical for the same configuration on the same
platform, and a domain's frames do not depend on which other domains are requested.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fasbench.data.frames import (
    MANIFEST_COLUMNS,
    FrameCacheModified,
    FrameSet,
    check_content,
    hash_bar,
    verify_content,
    write_content,
)
from fasbench.errors import FasbenchError
from fasbench.util import atomic_directory, cache_root

#: Bump whenever the generated pixels or manifest change for an unchanged config.
GENERATOR_VERSION = 2

#: Fractions of a domain's subjects in the train / dev / test splits (dev and test rounded,
#: at least one subject each; train takes the rest).
SPLIT_FRACTIONS = (0.5, 0.25, 0.25)

ATTACKS = ("none", "print", "replay")

_F = np.float32


@dataclass
class SyntheticConfig:
    """Size and seed of a synthetic world.  Defaults are the demo size (3,072 frames, ~150 MB at 128 px)."""

    seed: int = 0
    #: One letter per domain, each one of ``M``, ``C``, ``I``, ``O`` (the benchmark's) or ``T``
    #: (the teacher corpus, which no protocol uses).
    domains: str = "MCIO"
    #: Subjects per domain (distinct identities), split by subject into train/dev/test:
    #: 50/25/25 unless ``dev_subjects`` / ``test_subjects`` are given (then train = the rest).
    subjects: int = 48
    #: Subjects per domain in the dev split (source-val) and the test split; None = 25% each.
    #: The demo config sets them so that evaluation is large (tight confidence intervals)
    #: while training keeps 24 subjects per domain.
    dev_subjects: int | None = None
    test_subjects: int | None = None
    #: Videos per subject of each kind: live : spoof is 1 : 1 by default.
    live_videos: int = 2
    print_videos: int = 1
    replay_videos: int = 1
    frames_per_video: int = 4
    #: Square frame side in pixels.
    image_size: int = 128


# ---------------------------------------------------------------------------------------------
# Domain profiles
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Domain:
    """Capture conditions and attack appearance of one domain (lengths in 128-px pixels)."""

    cast: tuple[float, float, float]  # camera white-balance error (per-channel gain)
    cast_jitter: float  # per-video std of the cast
    brightness: float  # exposure gain
    brightness_jitter: float  # per-video std of the exposure (sessions)
    flicker: float  # per-frame std of the exposure
    gamma: float
    gamma_jitter: float
    contrast: float
    blur: tuple[float, float]  # optical blur sigma range (px)
    resolution: float  # sensor side / image side
    noise: float  # sensor noise std (0..1 scale)
    jpeg: int  # JPEG quality at sensor resolution
    background: str  # gradient | texture | office | mixed
    # print attacks
    halftone_period: tuple[float, float]  # px at unit paper scale
    print_saturation: tuple[float, float]
    print_black: tuple[float, float]
    print_white: tuple[float, float]
    paper_tint: tuple[float, float, float]
    print_bend: float  # max bend (warped photos)
    # replay attacks
    pixel_pitch: tuple[float, float]  # display pixel period, px at unit screen scale
    moire_freq: tuple[float, float]  # explicit moire bands, cycles / px
    screen_tint: tuple[float, float, float]  # display white point
    screen_black: tuple[float, float]


_DOMAINS: dict[str, _Domain] = {
    # MSU-MFSD stand-in: sharp laptop / phone cameras, warm cast, fine halftone,
    # blueish tablet displays.
    "M": _Domain(
        cast=(1.06, 1.0, 0.91), cast_jitter=0.02, brightness=1.0, brightness_jitter=0.06,
        flicker=0.015, gamma=1.0, gamma_jitter=0.05, contrast=1.0, blur=(0.3, 0.7),
        resolution=1.0, noise=0.012, jpeg=88, background="gradient",
        halftone_period=(2.3, 2.8), print_saturation=(0.5, 0.8), print_black=(0.08, 0.16),
        print_white=(0.78, 0.9), paper_tint=(1.0, 0.98, 0.92), print_bend=0.08,
        pixel_pitch=(1.35, 1.6), moire_freq=(0.035, 0.06), screen_tint=(0.92, 0.98, 1.10),
        screen_black=(0.06, 0.12),
    ),
    # CASIA-FASD stand-in: medium / low quality cameras, cool cast, strongly warped prints,
    # coarser halftone, iPad-like display.
    "C": _Domain(
        cast=(0.93, 1.0, 1.09), cast_jitter=0.025, brightness=1.02, brightness_jitter=0.08,
        flicker=0.02, gamma=1.1, gamma_jitter=0.06, contrast=1.05, blur=(0.7, 1.2),
        resolution=0.75, noise=0.02, jpeg=75, background="texture",
        halftone_period=(3.3, 3.9), print_saturation=(0.55, 0.8), print_black=(0.07, 0.15),
        print_white=(0.78, 0.92), paper_tint=(1.0, 1.0, 0.97), print_bend=0.22,
        pixel_pitch=(1.7, 2.0), moire_freq=(0.06, 0.10), screen_tint=(0.95, 1.0, 1.07),
        screen_black=(0.05, 0.11),
    ),
    # Replay-Attack stand-in: 320x240 webcam (low resolution, blur, heavy JPEG), greenish
    # fluorescent office light with low contrast: fine textures are mostly wiped out.
    "I": _Domain(
        cast=(0.95, 1.06, 0.95), cast_jitter=0.02, brightness=0.95, brightness_jitter=0.10,
        flicker=0.03, gamma=0.9, gamma_jitter=0.05, contrast=0.85, blur=(1.0, 1.5),
        resolution=0.5, noise=0.025, jpeg=60, background="office",
        halftone_period=(2.0, 2.4), print_saturation=(0.5, 0.8), print_black=(0.09, 0.18),
        print_white=(0.76, 0.9), paper_tint=(0.98, 1.0, 0.96), print_bend=0.05,
        pixel_pitch=(2.2, 2.6), moire_freq=(0.02, 0.04), screen_tint=(0.98, 1.03, 1.05),
        screen_black=(0.07, 0.14),
    ),
    # OULU-NPU stand-in: sharp phone front cameras, strongly varying session illumination,
    # coarse laser-printer halftone and warm displays.
    "O": _Domain(
        cast=(1.02, 1.0, 0.97), cast_jitter=0.03, brightness=0.95, brightness_jitter=0.22,
        flicker=0.015, gamma=1.0, gamma_jitter=0.15, contrast=1.0, blur=(0.2, 0.5),
        resolution=1.0, noise=0.016, jpeg=92, background="mixed",
        halftone_period=(4.3, 5.0), print_saturation=(0.6, 0.85), print_black=(0.06, 0.14),
        print_white=(0.8, 0.93), paper_tint=(0.97, 0.99, 1.03), print_bend=0.1,
        pixel_pitch=(1.15, 1.3), moire_freq=(0.10, 0.15), screen_tint=(1.08, 1.0, 0.90),
        screen_black=(0.05, 0.1),
    ),
}

#: The teacher-corpus domain: no protocol lists it. Its own camera (magenta-neutral cast that
#: varies from video to video, like photos from many cameras; medium resolution, moderate blur and
#: JPEG), its own light (brighter, higher-contrast exposure with large session changes) and its own
#: people: every identity is drawn from a stream keyed by ``(seed, domain, subject)``, so the
#: subjects of ``T`` are never the subjects of M, C, I or O re-rendered. The synthetic stand-ins of
#: face teachers (the DTDA plugin's ``dtda-synthetic:`` weights) are pretrained on its live videos
#: alone, so that they know faces but nothing of the benchmark's domains or people. Its attack
#: media are defined (a world with ``domains="T"`` and attack videos renders) but never used.
_DOMAINS["T"] = _Domain(
    cast=(1.03, 0.96, 1.02), cast_jitter=0.04, brightness=1.06, brightness_jitter=0.14,
    flicker=0.01, gamma=1.05, gamma_jitter=0.08, contrast=1.1, blur=(0.4, 1.0),
    resolution=0.85, noise=0.014, jpeg=82, background="mixed",
    halftone_period=(2.8, 3.4), print_saturation=(0.55, 0.8), print_black=(0.07, 0.15),
    print_white=(0.78, 0.92), paper_tint=(1.0, 0.99, 0.95), print_bend=0.1,
    pixel_pitch=(1.4, 1.8), moire_freq=(0.04, 0.08), screen_tint=(1.0, 1.0, 1.0),
    screen_black=(0.05, 0.11),
)

KNOWN_DOMAINS = tuple(_DOMAINS)
#: The domains the protocols use (stand-ins for MSU-MFSD, CASIA-FASD, Replay-Attack, OULU-NPU).
BENCHMARK_DOMAINS = ("M", "C", "I", "O")
#: Domains for pretraining face teachers only; no registered protocol lists them.
TEACHER_DOMAINS = ("T",)

# ---------------------------------------------------------------------------------------------
# Random streams
# ---------------------------------------------------------------------------------------------

_KIND_CODE = {"identity": 1, "none": 2, "print": 3, "replay": 4}


def _rng(seed: int, domain: str, *keys: int) -> np.random.Generator:
    """A stream that depends only on (seed, domain, keys): domains never share draws."""
    entropy = [int(seed) % (1 << 64), zlib.crc32(domain.encode()), *[int(k) for k in keys]]
    return np.random.default_rng(np.random.SeedSequence(entropy))


# ---------------------------------------------------------------------------------------------
# Drawing helpers (all on float32 arrays shaped (F, H, W) / (F, H, W, 3))
# ---------------------------------------------------------------------------------------------


def _col(a: Any) -> np.ndarray:
    """Per-frame scalars (F,) -> (F, 1, 1) for broadcasting over images."""
    return np.asarray(a, dtype=_F).reshape(-1, 1, 1)


def _ellipse(x, y, x0, y0, a, b, px) -> np.ndarray:
    """Anti-aliased ellipse mask; ``px`` = pixels per coordinate unit."""
    r = np.hypot((x - x0) / a, (y - y0) / b)
    return np.clip((1.0 - r) * (np.minimum(a, b) * px) + 0.5, 0.0, 1.0)


def _paint(img: np.ndarray, mask: np.ndarray, colour: Any) -> None:
    """Alpha-composite ``colour`` (RGB or per-pixel) over ``img`` in place."""
    tmp = np.asarray(colour, dtype=_F) - img
    tmp *= mask[..., None]
    img += tmp


def _lum(img: np.ndarray) -> np.ndarray:
    # explicit sums: small matmuls go through BLAS, which is slow and thread-hungry here
    return 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]


_HAIR = np.array(
    [[0.08, 0.06, 0.05], [0.22, 0.13, 0.07], [0.42, 0.27, 0.13], [0.72, 0.58, 0.32],
     [0.55, 0.22, 0.10], [0.62, 0.61, 0.60]], dtype=_F)
_IRIS = np.array([[0.30, 0.18, 0.08], [0.18, 0.32, 0.55], [0.25, 0.40, 0.22], [0.12, 0.08, 0.05]],
                 dtype=_F)


def _identity(rng: np.random.Generator) -> dict[str, Any]:
    t = rng.uniform(0.0, 1.0)
    skin = np.array([0.97, 0.80, 0.68]) * (1 - t) + np.array([0.40, 0.26, 0.18]) * t
    skin = np.clip(skin * rng.uniform(0.95, 1.05, 3), 0, 1)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.15)
    return {
        "a": rng.uniform(0.34, 0.44), "b": rng.uniform(0.48, 0.58), "jaw": rng.uniform(0.15, 0.5),
        "skin": skin.astype(_F), "hair": np.clip(hair, 0, 1).astype(_F),
        "style": int(rng.integers(4)),  # 0 short, 1 long, 2 bald, 3 voluminous
        "hairline": rng.uniform(0.5, 0.72), "fringe": rng.uniform(-0.6, 0.6),
        "eye_x": rng.uniform(0.13, 0.18), "eye_y": rng.uniform(-0.1, -0.03),
        "eye_w": rng.uniform(0.055, 0.075), "eye_h": rng.uniform(0.026, 0.036),
        "iris": _IRIS[rng.integers(len(_IRIS))],
        "brow_th": rng.uniform(0.016, 0.03), "brow_gap": rng.uniform(0.085, 0.12),
        "brow_tilt": rng.uniform(-0.25, 0.25),
        "nose_len": rng.uniform(0.14, 0.2), "nose_w": rng.uniform(0.035, 0.055),
        "mouth_y": rng.uniform(0.25, 0.32), "mouth_w": rng.uniform(0.09, 0.14),
        "lip": np.clip(skin * np.array([1.0, 0.62, 0.62]) * rng.uniform(0.8, 1.0), 0, 1).astype(_F),
        "glasses": bool(rng.random() < 0.2), "beard": bool(rng.random() < 0.2),
        "clothes": rng.uniform(0.05, 0.9, 3).astype(_F),
    }


def _person_pose(rng: np.random.Generator, n: int, animate: bool) -> dict[str, np.ndarray]:
    """Per-frame pose / expression / light; ``animate=False`` freezes them (a photo)."""
    base = {
        "cx": rng.uniform(-0.1, 0.1), "cy": rng.uniform(-0.12, 0.02), "sc": rng.uniform(0.88, 1.12),
        "rot": rng.uniform(-0.12, 0.12), "lx": rng.uniform(-0.6, 0.6), "ly": rng.uniform(-0.5, 0.1),
        "mouth": rng.uniform(0, 0.4), "smile": rng.uniform(-0.2, 0.8), "gaze": rng.uniform(-0.3, 0.3),
    }
    jit = {"cx": 0.03, "cy": 0.025, "sc": 0.03, "rot": 0.05, "lx": 0.08, "ly": 0.05,
           "mouth": 0.35, "smile": 0.3, "gaze": 0.3}
    out = {}
    for k, v in base.items():
        d = rng.normal(0, jit[k], n) if animate else np.zeros(n)
        out[k] = (v + d).astype(_F)
    out["mouth"] = np.clip(out["mouth"], 0, 1)
    open_ = np.ones(n, dtype=_F)
    if animate:
        open_[rng.random(n) < 0.15] = rng.uniform(0.0, 0.3)
    out["open"] = open_
    return out


def _background(rng: np.random.Generator, kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Scene background on coordinates (F, H, W)."""
    if kind == "mixed":
        kind = ("gradient", "texture", "office")[int(rng.integers(3))]
    c0 = rng.uniform(0.2, 0.85, 3).astype(_F)
    c1 = np.clip(c0 * rng.uniform(0.6, 1.2, 3), 0, 1).astype(_F)
    if kind == "gradient":
        ang = rng.uniform(0, 2 * np.pi)
        t = np.clip(0.5 + 0.35 * (u * np.cos(ang) + v * np.sin(ang)), 0, 1)
        img = c0 + t[..., None] * (c1 - c0)
    elif kind == "texture":
        t = np.zeros_like(u)
        for _ in range(3):
            f = rng.uniform(2.0, 7.0)
            ang = rng.uniform(0, np.pi)
            t += np.cos(f * np.pi * (u * np.cos(ang) + v * np.sin(ang)) + rng.uniform(0, 6.3))
        t = 0.5 + t / 6.0
        img = c0 + t[..., None] * (c1 - c0)
    else:  # office: pale wall with a few darker / lighter panels (door, shelf, window)
        wall = np.clip(0.55 + 0.35 * c0, 0, 1).astype(_F)
        img = np.broadcast_to(wall, u.shape + (3,)).copy()
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = rng.uniform(-1.1, 1.1, 2)
            w, h = rng.uniform(0.15, 0.6, 2)
            m = ((np.abs(u - x0) < w) & (np.abs(v - y0) < h)).astype(_F)
            _paint(img, m, np.clip(wall * rng.uniform(0.5, 1.25, 3), 0, 1))
    return img.astype(_F)


class _Canvas:
    """Draws primitives on ``img`` in face-local coordinates ``x, y`` (F, H, W).

    Every primitive is evaluated only inside the pixel window where it can be non-zero,
    found on a coarse sub-grid of the coordinates (valid for any smooth warp), which makes
    a face ~5x cheaper than full-frame masks.
    """

    def __init__(self, img: np.ndarray, x: np.ndarray, y: np.ndarray, px: np.ndarray, step: int = 4):
        self.img, self.x, self.y, self.px = img, x, y, px
        self.step = step
        self.xs, self.ys = x[:, ::step, ::step], y[:, ::step, ::step]
        self.margin = 2.0 * step / float(np.min(px))
        self.h, self.w = x.shape[1], x.shape[2]

    def window(self, x0, y0, rx, ry):
        m = self.margin
        inside = (np.abs(self.xs - x0) < rx + m) & (np.abs(self.ys - y0) < ry + m)
        rows = np.flatnonzero(inside.any(axis=(0, 2)))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(inside.any(axis=(0, 1)))
        st = self.step
        r0, r1 = max(0, (rows[0] - 1) * st), min(self.h, (rows[-1] + 2) * st)
        c0, c1 = max(0, (cols[0] - 1) * st), min(self.w, (cols[-1] + 2) * st)
        return (slice(None), slice(r0, r1), slice(c0, c1))

    def ellipse(self, x0, y0, a, b, win=None):
        """(window, mask) of an anti-aliased ellipse, or None when it is off-canvas."""
        w = win or self.window(x0, y0, a, b)
        if w is None:
            return None
        return w, _ellipse(self.x[w], self.y[w], x0, y0, a, b, self.px)

    def paint(self, wm, colour, alpha: Any = 1.0) -> None:
        if wm is None:
            return
        w, m = wm
        view = self.img[w]
        if callable(colour):
            colour = colour(self.x[w], self.y[w])
        _paint(view, m * alpha if alpha is not None else m, colour)

    def scale(self, wm, factor: float) -> None:
        if wm is not None:
            w, m = wm
            self.img[w] *= (1.0 - factor * m)[..., None]


def _render_person(u, v, idt: dict[str, Any], pose: dict[str, np.ndarray], bg: np.ndarray,
                   px_unit) -> np.ndarray:
    """Draw a person over ``bg`` on scene coordinates ``u, v`` (F, H, W), frame = [-1, 1]^2."""
    cx, cy, sc, rot = (_col(pose[k]) for k in ("cx", "cy", "sc", "rot"))
    c, s = np.cos(rot), np.sin(rot)
    du, dv = u - cx, v - cy
    x = (du * c + dv * s) / sc
    y = (-du * s + dv * c) / sc
    px = _col(px_unit) * sc  # pixels per face unit
    img = bg.copy()
    cv = _Canvas(img, x, y, px)
    a, b, jaw = idt["a"], idt["b"], idt["jaw"]
    skin, hair = idt["skin"], idt["hair"]

    # shoulders and neck
    cv.paint(cv.ellipse(0.0, b + 0.78, 1.0, 0.55),
             lambda xw, yw: idt["clothes"] * (0.85 + 0.15 * np.clip(-xw, -1, 1))[..., None])
    w = cv.window(0.0, b * 0.5 + 0.3, 0.17, b * 0.5 + 0.25)
    if w is not None:
        xw, yw = x[w], y[w]
        half_w = 0.12 + 0.05 * np.clip((yw - b) / 0.4, 0, 1)  # widens towards the shoulders
        neck = np.clip((half_w - np.abs(xw)) * px + 0.5, 0, 1) * np.clip((yw - 0.1) * px, 0, 1)
        neck *= np.clip((b + 0.45 - yw) * px, 0, 1)
        _paint(img[w], neck, skin * 0.78)
    style = idt["style"]
    if style == 1:  # long hair behind the head
        cv.paint(cv.ellipse(0.0, 0.12, a * 1.3, b * 1.15), hair)
    if style == 3:
        cv.paint(cv.ellipse(0.0, -0.1, a * 1.35, b * 1.05), hair)
    if style != 2:
        cv.paint(cv.ellipse(0.0, -0.07, a * 1.08, b * 1.0), hair)
    for side in (-1.0, 1.0):  # ears
        cv.paint(cv.ellipse(side * a * 0.97, -0.01, 0.06, 0.11), skin * 0.88)
    # head with a narrower jaw, hairline and stubble
    w = cv.window(0.0, 0.0, a, b)
    if w is not None:
        xw, yw, pw = x[w], y[w], px
        ax = a * (1.0 - jaw * np.clip(yw / b, 0, 1) ** 2)
        face = np.clip((1.0 - np.hypot(xw / ax, yw / b)) * (a * pw) + 0.5, 0, 1)
        view = img[w]
        _paint(view, face, skin)
        if style != 2:
            hl = -b * idt["hairline"] + 0.35 * (xw / a) ** 2 * b + idt["fringe"] * 0.08 * xw / a
            _paint(view, face * np.clip((hl - yw) * pw + 0.5, 0, 1), hair)
        if idt["beard"]:
            _paint(view, face * np.clip((yw - 0.18) * pw, 0, 1) * 0.45, hair * 0.8)

    # eyes, brows, glasses
    ex, ey, ew, eh = idt["eye_x"], idt["eye_y"], idt["eye_w"], idt["eye_h"]
    opn = _col(pose["open"])
    gaze = _col(pose["gaze"]) * ew * 0.4
    for side in (-1.0, 1.0):
        x0 = side * ex
        cv.scale(cv.ellipse(x0, ey, ew * 1.5, eh * 2.2), 0.12)
        w = cv.window(x0, ey, ew, eh)
        if w is not None:
            xw, yw = x[w], y[w]
            sclera = _ellipse(xw, yw, x0, ey, ew, eh * opn + 1e-3, px)
            view = img[w]
            _paint(view, sclera, (0.93, 0.91, 0.88))
            _paint(view, _ellipse(xw, yw, x0 + gaze, ey, eh * 0.95, eh * 0.95, px) * sclera, idt["iris"])
            _paint(view, _ellipse(xw, yw, x0 + gaze, ey, eh * 0.4, eh * 0.4, px) * sclera,
                   (0.02, 0.02, 0.02))
        yb = ey - idt["brow_gap"]
        w = cv.window(x0, yb, ew * 1.35, idt["brow_th"] + ew * 0.4)
        if w is not None:
            xw, yw = x[w], y[w]
            shift = side * idt["brow_tilt"] * (xw - x0) * 0.5
            _paint(img[w], _ellipse(xw, yw - shift, x0, yb, ew * 1.35, idt["brow_th"], px), hair * 0.75)
        if idt["glasses"]:
            w = cv.window(x0, ey, ew * 1.7, eh * 2.6)
            if w is not None:
                xw, yw = x[w], y[w]
                rim = _ellipse(xw, yw, x0, ey, ew * 1.7, eh * 2.6, px)
                rim -= _ellipse(xw, yw, x0, ey, ew * 1.7 - 0.012, eh * 2.6 - 0.012, px)
                _paint(img[w], np.clip(rim, 0, 1), (0.05, 0.05, 0.06))
    if idt["glasses"]:
        w = cv.window(0.0, ey - eh, ex - ew * 1.5, 0.02)
        if w is not None:
            xw, yw = x[w], y[w]
            bridge = np.clip((ex - ew * 1.7 - np.abs(xw)) * px + 0.5, 0, 1) * np.clip(
                (0.008 - np.abs(yw - ey + eh)) * px + 0.5, 0, 1)
            _paint(img[w], bridge, (0.05, 0.05, 0.06))

    # nose: a side shadow and two nostrils
    lx = _col(pose["lx"])
    nl, nw = idt["nose_len"], idt["nose_w"]
    cv.scale(cv.ellipse(-np.sign(lx) * nw * 0.7, ey + nl * 0.6, nw * 0.7, nl * 0.55), 0.18)
    for side in (-1.0, 1.0):
        cv.paint(cv.ellipse(side * nw * 0.55, ey + nl + 0.02, nw * 0.35, nw * 0.18), skin * 0.35, 0.8)

    # mouth: lips, opening, smile curvature
    my, mw = idt["mouth_y"], idt["mouth_w"]
    mo, sm = _col(pose["mouth"]), _col(pose["smile"])
    w = cv.window(0.0, my, mw, 0.07 + 0.06 * float(np.max(np.abs(sm))))
    if w is not None:
        xw, yw = x[w], y[w]
        ym = yw - sm * 0.25 * ((xw / mw) ** 2) * mw
        view = img[w]
        _paint(view, _ellipse(xw, ym, 0.0, my, mw, 0.022 + 0.03 * mo, px), idt["lip"])
        _paint(view, _ellipse(xw, ym, 0.0, my, mw * 0.8, 0.004 + 0.028 * mo, px), (0.18, 0.05, 0.05))

    # light: ellipsoidal head normals, applied over the head and hair
    w = cv.window(0.0, -0.05, a * 1.1, b * 1.05)
    if w is not None:
        ly = _col(pose["ly"])
        lz = np.sqrt(np.clip(1.0 - lx**2 - ly**2, 0.1, 1.0))
        rx, ry = x[w] / (a * 1.1), (y[w] + 0.05) / (b * 1.05)
        nz = np.sqrt(np.clip(1.0 - rx**2 - ry**2, 0.0, 1.0))
        shade = 0.55 + 0.5 * np.clip(rx * lx + ry * ly + nz * lz, 0, 1)
        head = np.clip((1.0 - np.hypot(rx, ry)) * 8.0, 0, 1)
        img[w] *= (1.0 + head * (shade - 1.0))[..., None]
    return img


# ---------------------------------------------------------------------------------------------
# Attack media
# ---------------------------------------------------------------------------------------------


def _medium_coords(rng, n, u, v, animate_std: float):
    """Rigid pose of a sheet / screen per frame; returns medium coords and its scale."""
    sc = rng.uniform(0.85, 1.2)
    cx, cy = rng.uniform(-0.08, 0.08, 2)
    rot = rng.uniform(-0.08, 0.08)
    cxs = _col(cx + rng.normal(0, animate_std, n))
    cys = _col(cy + rng.normal(0, animate_std, n))
    scs = _col(sc * (1 + rng.normal(0, animate_std * 0.6, n)))
    rots = _col(rot + rng.normal(0, animate_std * 0.8, n))
    c, s = np.cos(rots), np.sin(rots)
    du, dv = u - cxs, v - cys
    um = (du * c + dv * s) / scs
    vm = (-du * s + dv * c) / scs
    return um, vm, scs


def _apply_print(rng, dom: _Domain, content, um, vm, scale_px) -> tuple[np.ndarray, np.ndarray]:
    """Turn content into a printed photo on medium coords; returns (image, paper mask)."""
    sat = rng.uniform(*dom.print_saturation)
    black = rng.uniform(*dom.print_black)
    white = rng.uniform(*dom.print_white)
    lum = _lum(content)[..., None]
    img = lum + sat * (content - lum)
    img = black + (white - black) * np.clip(img, 0, 1)
    img *= np.asarray(dom.paper_tint, dtype=_F) * rng.uniform(0.97, 1.03, 3).astype(_F)
    # rotated halftone screen; the period is in 128-px pixels at unit paper scale
    period = rng.uniform(*dom.halftone_period) / 64.0  # in medium units (frame half = 64 px)
    ang = rng.uniform(0.3, 1.2)
    p1 = um * np.cos(ang) + vm * np.sin(ang)
    p2 = -um * np.sin(ang) + vm * np.cos(ang)
    dots = np.cos(2 * np.pi * p1 / period) * np.cos(2 * np.pi * p2 / period)
    amp = rng.uniform(1.0, 1.8)
    img *= (1.0 + amp * dots * 0.25 * (1.2 - _lum(img)))[..., None]
    # paper grain and inkjet banding
    grain = np.zeros_like(um)
    for _ in range(4):
        f = rng.uniform(25, 60)
        a2 = rng.uniform(0, np.pi)
        grain += np.cos(f * (um * np.cos(a2) + vm * np.sin(a2)) + rng.uniform(0, 6.3))
    band = np.cos(2 * np.pi * vm * rng.uniform(6, 18) + rng.uniform(0, 6.3))
    img *= (1.0 + 0.012 * grain + rng.uniform(0.0, 0.03) * band)[..., None]
    # white margin and paper extent; a visible edge needs the sheet to be small enough
    margin = rng.uniform(0.02, 0.12)
    inside = np.clip((1.0 - np.maximum(np.abs(um), np.abs(vm))) * scale_px + 0.5, 0, 1)
    paper_col = np.asarray(dom.paper_tint, dtype=_F) * white
    img = paper_col + inside[..., None] * (img - paper_col)
    ext = 1.0 + margin
    paper = np.clip((ext - np.maximum(np.abs(um) * 0.92, np.abs(vm) * 0.85)) * scale_px + 0.5, 0, 1)
    return img, paper


def _apply_screen(rng, dom: _Domain, content, u, v, um, vm, scale_px, size: int):
    """Turn content into a display capture; returns (image, screen+bezel mask)."""
    tint = np.asarray(dom.screen_tint, dtype=_F) * rng.uniform(0.97, 1.03, 3).astype(_F)
    mix = rng.uniform(0.0, 0.12)
    img = (content * (1 - mix) + content.mean(axis=-1, keepdims=True) * mix) * tint  # gamut compression
    black = rng.uniform(*dom.screen_black)
    img = black + (1 - black) * np.clip(img, 0, 1) ** rng.uniform(0.85, 1.1)
    # sub-pixel grid (point-sampled by the camera, so it aliases into moire)
    pitch = rng.uniform(*dom.pixel_pitch) / 64.0
    depth = rng.uniform(0.25, 0.5)
    phase = 2 * np.pi * um / pitch
    sub = [1.0 - depth * (0.5 - 0.5 * np.cos(phase - k * 2.0944)) for k in range(3)]
    rows = 1.0 - depth * 0.5 * (0.5 - 0.5 * np.cos(2 * np.pi * vm / pitch))
    img *= np.stack(sub, axis=-1) * rows[..., None]
    img *= 1.0 / (1.0 - depth * 0.5)  # keep the mean brightness
    # explicit moire bands in camera pixels, moving with the screen
    f = rng.uniform(*dom.moire_freq) * size / 2.0 * (128.0 / size)  # cycles per frame unit
    ang = rng.uniform(0, np.pi)
    mamp = rng.uniform(0.04, 0.12)
    ph = _col(rng.uniform(0, 6.3, u.shape[0]))
    moire = np.cos(2 * np.pi * f * (um * np.cos(ang) + vm * np.sin(ang)) + ph)
    moire *= np.cos(2 * np.pi * f * 0.8 * (um * np.cos(ang + 0.4) + vm * np.sin(ang + 0.4)))
    # rolling-shutter refresh bands in camera coordinates
    rs = rng.uniform(0.0, 0.04) * np.cos(2 * np.pi * v * rng.uniform(1.5, 4) + ph)
    img *= (1.0 + mamp * moire + rs)[..., None]
    # specular glare of a room light on the glass
    if rng.random() < 0.9:
        gx, gy = rng.uniform(-0.8, 0.8, 2)
        gr = rng.uniform(0.15, 0.5)
        g = rng.uniform(0.1, 0.45) * np.exp(-((um - gx) ** 2 + (vm - gy) ** 2) / (2 * gr**2))
        img += g[..., None] * (1.0 - img)
    inside = np.clip((1.0 - np.maximum(np.abs(um), np.abs(vm))) * scale_px + 0.5, 0, 1)
    bezel_col = np.asarray((0.04, 0.04, 0.05), dtype=_F)
    img = bezel_col + inside[..., None] * (img - bezel_col)
    ext = 1.0 + rng.uniform(0.04, 0.1)
    screen = np.clip((ext - np.maximum(np.abs(um) * 0.95, np.abs(vm) * 0.9)) * scale_px + 0.5, 0, 1)
    return img, screen


# ---------------------------------------------------------------------------------------------
# Camera
# ---------------------------------------------------------------------------------------------


def _gauss_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over axes 1 and 2 of (F, H, W, C), edge padding."""
    if sigma < 0.2:
        return img
    r = int(np.ceil(2.5 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(_F)
    h, w = img.shape[1], img.shape[2]
    p = np.pad(img, ((0, 0), (r, r), (0, 0), (0, 0)), mode="edge")
    out = sum(k[i] * p[:, i:i + h] for i in range(2 * r + 1))
    p = np.pad(out, ((0, 0), (0, 0), (r, r), (0, 0)), mode="edge")
    return sum(k[i] * p[:, :, i:i + w] for i in range(2 * r + 1))


def _resize(frames: np.ndarray, size: int, box: bool) -> np.ndarray:
    """Resize float (F, H, W, C) frames to (F, size, size, C) with Pillow (BOX or BILINEAR)."""
    from PIL import Image

    method = Image.Resampling.BOX if box else Image.Resampling.BILINEAR
    f, _, _, c = frames.shape
    out = np.empty((f, size, size, c), dtype=_F)
    for i in range(f):
        for k in range(c):
            im = Image.fromarray(np.ascontiguousarray(frames[i, :, :, k], dtype=_F), mode="F")
            out[i, :, :, k] = np.asarray(im.resize((size, size), method))
    return out


def _jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    out = np.empty_like(frames)
    for i, fr in enumerate(frames):
        buf = io.BytesIO()
        Image.fromarray(fr).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf).convert("RGB"))
    return out


def _noise(rng: np.random.Generator, bank: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Unit Gaussian noise of ``shape``: a random window of a pre-drawn bank (drawing fresh
    normals for every pixel was the single most expensive step of the generator)."""
    n = int(np.prod(shape))
    start = int(rng.integers(0, bank.size - n + 1))
    return bank[start:start + n].reshape(shape)


def _capture(rng, dom: _Domain, scene: np.ndarray, size: int, noise_bank: np.ndarray) -> np.ndarray:
    """Domain camera: exposure, gamma, cast, blur, resolution, noise, JPEG -> uint8."""
    n = scene.shape[0]
    gain = dom.brightness * np.exp(rng.normal(0, dom.brightness_jitter))
    gain = gain * (1 + rng.normal(0, dom.flicker, n))
    cast = np.asarray(dom.cast) * (1 + rng.normal(0, dom.cast_jitter, 3))
    gamma = dom.gamma * np.exp(rng.normal(0, dom.gamma_jitter))
    # vignetting / uneven scene light
    img = np.clip(scene * _col(gain)[..., None], 0, 1) ** gamma
    img = 0.5 + dom.contrast * (img - 0.5)
    img = img * cast.astype(_F)
    img = _gauss_blur(img.astype(_F), rng.uniform(*dom.blur) * size / 128.0)
    sensor = max(16, int(round(size * dom.resolution)))
    if sensor != size:
        img = _resize(img, sensor, box=True)
    img += _noise(rng, noise_bank, img.shape) * _F(dom.noise)
    img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    img = _jpeg(img, dom.jpeg)
    if sensor != size:
        img = np.clip(_resize(img.astype(_F), size, box=False) + 0.5, 0, 255).astype(np.uint8)
    return img


# ---------------------------------------------------------------------------------------------
# Videos and the world
# ---------------------------------------------------------------------------------------------


def _render_video(cfg: SyntheticConfig, domain: str, idt: dict[str, Any], kind: str,
                  rng: np.random.Generator, grid: tuple[np.ndarray, np.ndarray],
                  noise_bank: np.ndarray) -> np.ndarray:
    dom = _DOMAINS[domain]
    n, size = cfg.frames_per_video, cfg.image_size
    u = np.broadcast_to(grid[0], (n, size, size))
    v = np.broadcast_to(grid[1], (n, size, size))
    half = size / 2.0
    # the camera is static: one background image for all frames
    scene_bg = np.broadcast_to(_background(rng, dom.background, u[:1], v[:1]), (n, size, size, 3))
    if kind == "none":
        pose = _person_pose(rng, n, animate=True)
        scene = _render_person(u, v, idt, pose, scene_bg, half)
    else:
        um, vm, ms = _medium_coords(rng, n, u, v, 0.012 if kind == "print" else 0.006)
        scale_px = half * ms
        content_bg = _background(rng, dom.background, um, vm)
        if kind == "print":
            bend = rng.uniform(0, dom.print_bend)
            um_w = um * (1.0 + bend * um**2)
            pose = _person_pose(rng, n, animate=False)
            content = _render_person(um_w, vm, idt, pose, content_bg, scale_px)
            medium, mask = _apply_print(rng, dom, content, um_w, vm, scale_px)
            medium *= (1.0 - bend * 1.5 * um**2)[..., None]  # a curved sheet darkens at the sides
        else:
            pose = _person_pose(rng, n, animate=True)
            content = _render_person(um, vm, idt, pose, content_bg, scale_px)
            medium, mask = _apply_screen(rng, dom, content, u, v, um, vm, scale_px, size)
        scene = scene_bg + mask[..., None] * (medium - scene_bg)
    return _capture(rng, dom, scene, size, noise_bank)


def _splits(n: int, n_dev: int | None = None, n_test: int | None = None) -> list[str]:
    if n < 3:
        raise FasbenchError(f"synthetic: subjects must be at least 3 (train/dev/test), got {n}")
    if n_dev is not None or n_test is not None:
        n_dev = max(1, int(round(n * SPLIT_FRACTIONS[1]))) if n_dev is None else int(n_dev)
        n_test = max(1, int(round(n * SPLIT_FRACTIONS[2]))) if n_test is None else int(n_test)
        if n_dev < 1 or n_test < 1 or n - n_dev - n_test < 1:
            raise FasbenchError(
                f"synthetic: subjects={n} with dev_subjects={n_dev} and test_subjects={n_test} leaves "
                f"{n - n_dev - n_test} train subjects; the train split is subjects - dev_subjects - "
                "test_subjects and needs at least 1 (raise data.subjects, or set data.dev_subjects=null "
                "data.test_subjects=null for a 50/25/25 split)"
            )
        return ["train"] * (n - n_dev - n_test) + ["dev"] * n_dev + ["test"] * n_test
    n_dev = max(1, int(round(n * SPLIT_FRACTIONS[1])))
    n_test = max(1, int(round(n * SPLIT_FRACTIONS[2])))
    n_train = n - n_dev - n_test
    if n_train < 1:
        n_train, n_dev, n_test = 1, (n - 1) // 2, n - 1 - (n - 1) // 2
    return ["train"] * n_train + ["dev"] * n_dev + ["test"] * n_test


def _check(cfg: SyntheticConfig) -> None:
    doms = list(cfg.domains)
    if not doms or len(set(doms)) != len(doms) or any(d not in _DOMAINS for d in doms):
        raise FasbenchError(
            f"synthetic: domains must be distinct letters from {''.join(KNOWN_DOMAINS)!r}, got {cfg.domains!r}"
        )
    for name in ("live_videos", "print_videos", "replay_videos"):
        if getattr(cfg, name) < 0:
            raise FasbenchError(f"synthetic: {name} must be >= 0")
    if cfg.live_videos + cfg.print_videos + cfg.replay_videos < 1:
        raise FasbenchError("synthetic: a subject needs at least one video")
    if cfg.frames_per_video < 1:
        raise FasbenchError("synthetic: frames_per_video must be >= 1")
    if not 32 <= cfg.image_size <= 1024:
        raise FasbenchError(f"synthetic: image_size must be in [32, 1024], got {cfg.image_size}")
    _splits(cfg.subjects, cfg.dev_subjects, cfg.test_subjects)


def _config_dict(cfg: SyntheticConfig) -> dict[str, Any]:
    """The config as identity: split counts left at None are omitted, so worlds made before
    they existed keep their identity (and cache entry)."""
    return {k: v for k, v in asdict(cfg).items() if not (k in ("dev_subjects", "test_subjects") and v is None)}


def identity_of(cfg: SyntheticConfig) -> dict[str, Any]:
    return {"dataset": "synthetic", "generator_version": GENERATOR_VERSION, "config": _config_dict(cfg)}


def generate(cfg: SyntheticConfig, progress: bool = False) -> FrameSet:
    """Render the synthetic world described by ``cfg`` (deterministic from ``cfg.seed``)."""
    _check(cfg)
    size, n = cfg.image_size, cfg.frames_per_video
    coords = (np.arange(size, dtype=_F) + 0.5) / (size / 2.0) - 1.0
    grid = (coords[None, :], coords[:, None])  # u: x (columns), v: y (rows)
    splits = _splits(cfg.subjects, cfg.dev_subjects, cfg.test_subjects)
    plan = []
    for domain in cfg.domains:
        for si in range(cfg.subjects):
            for kind, count in (("none", cfg.live_videos), ("print", cfg.print_videos),
                                ("replay", cfg.replay_videos)):
                for k in range(count):
                    plan.append((domain, si, kind, k))
    total = len(plan) * n
    images = np.empty((total, size, size, 3), dtype=np.uint8)
    rows: dict[str, list[Any]] = {c: [] for c in MANIFEST_COLUMNS}
    it: Any = plan
    if progress:
        from tqdm import tqdm

        it = tqdm(plan, desc="synthetic", unit="video")
    idt_cache: dict[tuple[str, int], dict[str, Any]] = {}
    # per-domain noise banks (3 videos' worth, drawn once) keep domains independent
    bank_len = 3 * n * size * size * 3
    banks = {d: _rng(cfg.seed, d, 0xB0).standard_normal(bank_len, dtype=_F) for d in cfg.domains}
    pos = 0
    for domain, si, kind, k in it:
        if (domain, si) not in idt_cache:
            idt_cache[(domain, si)] = _identity(_rng(cfg.seed, domain, si, _KIND_CODE["identity"]))
        rng = _rng(cfg.seed, domain, si, _KIND_CODE[kind], k)
        frames = _render_video(cfg, domain, idt_cache[(domain, si)], kind, rng, grid, banks[domain])
        images[pos:pos + n] = frames
        pos += n
        subject = f"{domain}-s{si + 1:03d}"
        name = "live" if kind == "none" else kind
        video_id = f"{subject}-{name}{k + 1}"
        for f in range(n):
            rows["dataset"].append("synthetic")
            rows["domain"].append(domain)
            rows["video_id"].append(video_id)
            rows["subject"].append(subject)
            rows["split"].append(splits[si])
            rows["label"].append(1 if kind == "none" else 0)
            rows["attack"].append(kind)
            rows["path"].append(f"synthetic://{domain}/{video_id}")
            rows["frame"].append(f)
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest["label"] = manifest["label"].astype("int64")
    manifest["frame"] = manifest["frame"].astype("int64")
    return FrameSet(manifest=manifest, images=images, identity=identity_of(cfg))


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def cache_key(cfg: SyntheticConfig) -> str:
    blob = json.dumps({"generator_version": GENERATOR_VERSION, "config": _config_dict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_manifest(path: Path) -> pd.DataFrame:
    str_cols = [c for c in MANIFEST_COLUMNS if c not in ("label", "frame")]
    df = pd.read_csv(path, dtype={**{c: str for c in str_cols}, "label": "int64", "frame": "int64"},
                     keep_default_na=False)
    return df[list(MANIFEST_COLUMNS)]


def _open_entry(entry: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """An entry's manifest table and memory-mapped frames, as every reader sees them."""
    return _read_manifest(entry / "manifest.csv"), np.load(entry / "images.npy", mmap_mode="r")


def _load_entry(entry: Path, cfg: SyntheticConfig, progress: bool = False) -> FrameSet:
    """Load a cache entry, raising ValueError (or another non-fasbench error) on anything
    missing, truncated or inconsistent, and :class:`FrameCacheModified` when its pixels or
    manifest changed after it was written (:func:`fasbench.data.frames.check_content`)."""
    ident = json.loads((entry / "identity.json").read_text())
    expected = identity_of(cfg)
    if ident != json.loads(json.dumps(expected)):
        raise ValueError("identity mismatch")
    manifest, images = _open_entry(entry)
    size = cfg.image_size
    n_videos = len(cfg.domains) * cfg.subjects * (cfg.live_videos + cfg.print_videos + cfg.replay_videos)
    n = n_videos * cfg.frames_per_video
    if images.shape != (n, size, size, 3) or images.dtype != np.uint8 or len(manifest) != n:
        raise ValueError("shape mismatch")
    content = check_content(entry, images, manifest, manifest_file="manifest.csv",
                            progress=hash_bar(int(images.nbytes), f"hash {entry.name[:12]}") if progress else None)
    return FrameSet(manifest=manifest, images=images, identity=expected, sha256=content["sha256"],
                    images_sha256=content["images_sha256"])


def verify_entry(entry: Path, progress=None) -> dict[str, Any]:
    """``fasbench data verify`` of one world: :func:`fasbench.data.frames.verify_content`, or
    ``{"status": "unreadable", ...}`` when its files cannot be read (it is regenerated on next use)."""
    try:
        manifest, images = _open_entry(entry)
    except Exception as exc:  # a damaged entry can upset any reader: report it
        return {"status": "unreadable", "sha256": None, "expected": None, "changed": [], "bytes": 0,
                "message": f"unreadable ({type(exc).__name__}: {exc}); it is regenerated on next use"}
    return verify_content(entry, images, manifest, manifest_file="manifest.csv", progress=progress)


def load_or_generate(cfg: SyntheticConfig, cache_dir: str | Path | None = None,
                     progress: bool = False) -> FrameSet:
    """The world for ``cfg`` from the on-disk cache, generating (and caching) it if needed.

    Entries live in ``<cache_dir>/synthetic/<sha256 of (GENERATOR_VERSION, config)>/`` as
    ``images.npy`` (memory-mapped on load), ``manifest.csv``, ``identity.json`` and, written
    last, ``content.json`` (the content hash, :mod:`fasbench.data.frames`). They are written to
    a temporary sibling directory and renamed into place, so readers never see a partial
    entry; an unreadable entry is deleted and regenerated. An entry whose pixels or manifest
    were changed after it was written is an error (:class:`FrameCacheModified`), never used
    nor silently replaced; an entry of older code without ``content.json`` is hashed once.
    """
    _check(cfg)
    root = cache_root(cache_dir)
    parent = root / "synthetic"
    entry = parent / cache_key(cfg)
    if entry.exists():  # the common case, without a lock
        try:
            return _load_entry(entry, cfg, progress)
        except FrameCacheModified:
            raise
        except Exception:  # unreadable or partial: regenerated below, under the lock
            pass
    # one process generates, the others wait and then read its entry (same host or a shared disk)
    from filelock import FileLock

    parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(parent / f".{entry.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Exception:
        print(f"fasbench: waiting for another process generating {entry} (lock {lock.lock_file})", file=sys.stderr)
        lock.acquire()
    try:
        return _generate_locked(cfg, entry, parent, progress)
    finally:
        lock.release()


def _generate_locked(cfg: SyntheticConfig, entry: Path, parent: Path, progress: bool) -> FrameSet:
    if entry.exists():
        try:
            return _load_entry(entry, cfg, progress)
        except FrameCacheModified:
            raise
        except Exception:  # corrupt / partial / foreign entry: move it aside and regenerate
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=parent))
            try:
                os.replace(entry, trash / "old")
            except OSError:
                pass
            shutil.rmtree(trash, ignore_errors=True)
    fs = generate(cfg, progress=progress)
    with atomic_directory(entry) as tmp:  # another writer may win the race: its entry is equivalent
        np.save(tmp / "images.npy", fs.images)
        fs.manifest.to_csv(tmp / "manifest.csv", index=False)
        (tmp / "identity.json").write_text(json.dumps(fs.identity, sort_keys=True, indent=1))
        # last: the hashes of what was written (the manifest as readers will parse it)
        content = write_content(tmp, fs.images, _read_manifest(tmp / "manifest.csv"), manifest_file="manifest.csv")
    fs.images_sha256 = content["images_sha256"]
    try:
        return _load_entry(entry, cfg)
    except FrameCacheModified:
        raise
    except Exception:
        return fs


# ---------------------------------------------------------------------------------------------
# Preview
# ---------------------------------------------------------------------------------------------


def preview(frameset: FrameSet, path: str | Path, n: int = 2, split: str | None = None) -> Path:
    """Write a PNG contact sheet: one row per domain, ``n`` examples each of live/print/replay."""
    from PIL import Image, ImageDraw

    m = frameset.manifest
    if split is not None:
        m = m[m["split"] == split]
    m = m[m["frame"] == 0]
    size = frameset.images.shape[1]
    pad, label_w, head_h = 4, 28, 16
    domains = sorted(pd.unique(m["domain"]).tolist())
    kinds = [k for k in ATTACKS if (m["attack"] == k).any()]
    cols = len(kinds) * n
    sheet = Image.new("RGB", (label_w + cols * (size + pad), head_h + len(domains) * (size + pad)),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for ci, kind in enumerate(kinds):
        draw.text((label_w + ci * n * (size + pad) + 2, 2), "live" if kind == "none" else kind,
                  fill=(0, 0, 0))
    for ri, domain in enumerate(domains):
        y = head_h + ri * (size + pad)
        draw.text((6, y + size // 2 - 5), domain, fill=(0, 0, 0))
        for ci, kind in enumerate(kinds):
            sel = m[(m["domain"] == domain) & (m["attack"] == kind)]
            # spread the examples over different subjects
            subs = pd.unique(sel["subject"])
            picks = [sel[sel["subject"] == s].index[0] for s in subs[:: max(1, len(subs) // n)][:n]]
            for j, idx in enumerate(picks):
                x = label_w + (ci * n + j) * (size + pad)
                sheet.paste(Image.fromarray(np.asarray(frameset.images[idx])), (x, y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
