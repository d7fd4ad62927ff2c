"""Sample manifests and uint8 frame stores.

A :class:`FrameSet` is what every dataset plugin hands to the harness: a pandas manifest
with one row per frame and a uint8 image array (in memory or memory-mapped) whose row ``i``
is the pixels of manifest row ``i``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fasbench.errors import FasbenchError

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
    """A manifest (one row per frame) plus the matching uint8 ``(N, H, W, 3)`` pixels."""

    manifest: pd.DataFrame
    images: np.ndarray
    identity: dict[str, Any] = field(default_factory=dict)

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

    def fingerprint(self) -> str:
        """A short hash of the identity dict (what the data is, not where it lives)."""
        blob = json.dumps(self.identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
