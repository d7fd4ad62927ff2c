"""The ``data.*`` options every real dataset shares (``--data real`` and ``--data NAME`` of
any registered real dataset, plugins' included): declared once here, typed, with their
defaults (docs/datasets.md explains each). Torch- and pandas-free: `fasbench run` and
`fasbench data` check them before anything heavy loads.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from fasbench.options import Options
from fasbench.settings import DataSettings


class PreprocessOptions(Options):
    """``data.preprocess.*``: how frames are sampled and faces cropped into the frame cache."""

    sampling: Literal["ssdg", "evenly"] = "ssdg"  # ssdg: frames offset + j*(n//k), j<k (SSDG's sample_frames)
    frames_per_video: int = Field(2, ge=1)  # k
    ssdg_offset: int = Field(6, ge=0)
    fallback: Literal["nearest", "center"] = "nearest"  # frames without a face: nearest face box | centre crop
    size: int = Field(256, ge=16, le=1024)  # crop side (pixels)
    margin: float = Field(0.2, ge=0.0)  # crop side = (1 + margin) * face box side
    align: bool = True  # level the eyes (MTCNN landmarks)
    min_face: int = Field(20, ge=1)  # MTCNN min_face_size, in detection pixels
    detect_max_side: int = Field(640, ge=16)  # frames are downscaled to this long side for detection
    threshold: float = Field(0.9, gt=0.0, le=1.0)  # minimum face probability (MTCNN's last stage)


class RealDataOptions(DataSettings):
    """``data.*`` of a real dataset. Roots: ``data.roots.M=/path`` (letter or name),
    ``FASBENCH_ROOT_M=/path``, or ``roots:`` in ``~/.config/fasbench/config.yaml``."""

    name: str = "real"  # the dataset's entry: real (every dataset with a root), msu_mfsd, ...
    domains: str | list[str] | None = None  # the dataset's letter; null: the domains the protocol needs
    roots: dict[str, str | None] = Field(default_factory=dict)  # letter or name -> root of the official layout
    split_convention: Literal["whole", "official"] = "whole"  # whole (SSDG-CVPR2020) | official (SSAN)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # subjects of each source held out for source-val
    auto_prepare: bool = True  # prepare missing frame caches on first use (else: fasbench data prepare)
    preprocess: PreprocessOptions = Field(default_factory=PreprocessOptions)
    crop_size: int = Field(224, ge=1)  # network input (random crop in training, centre crop in evaluation)
    cache_dir: str | None = None  # default: $FASBENCH_CACHE or ~/.cache/fasbench
