"""Frame scoring: live scores of a method on rows of a frame set, and the per-run scores file."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fasbench.data.frames import FrameSet
from fasbench.data.loader import FrameDataset, Preprocess
from fasbench.metrics import ScoreSet


@torch.inference_mode()
def score_rows(method, dataset: FrameDataset, frames: FrameSet, rows: np.ndarray, pre: Preprocess,
               device: torch.device, batch_size: int) -> ScoreSet:
    """Live scores of ``rows`` (one per frame), always in float32: training may run under
    autocast, evaluation never does, so scores do not tie through bfloat16 rounding."""
    was_training = method.training
    method.eval()
    out = []
    try:
        for start in range(0, len(rows), batch_size):
            b = dataset.__getitems__(rows[start:start + batch_size].tolist())
            x = pre(b["image"], device, train=False)
            with torch.autocast(device.type, enabled=False):
                out.append(method.predict(x).float().cpu())
    finally:
        method.train(was_training)
    m = frames.manifest.iloc[rows]
    scores = torch.cat(out).numpy().astype(np.float64)
    return ScoreSet(
        scores=scores,
        labels=m["label"].to_numpy(),
        attacks=m["attack"].astype(str).to_numpy(),
        videos=(m["domain"].astype(str) + "/" + m["video_id"].astype(str)).to_numpy(),
    )


SCORE_COLUMNS = ("split", "video", "frame", "label", "attack", "score")


def write_scores(run_dir: Path, splits: list[tuple[str, ScoreSet, np.ndarray]]) -> dict[str, Any]:
    """Write ``scores.csv.gz`` (:func:`encode_scores`) atomically into ``run_dir``; return its record entry."""
    from fasbench.util import atomic_write_bytes

    blob, entry = encode_scores(splits)
    atomic_write_bytes(Path(run_dir) / entry["file"], blob)
    return entry


def encode_scores(splits: list[tuple[str, ScoreSet, np.ndarray]]) -> tuple[bytes, dict[str, Any]]:
    """``scores.csv.gz`` (one row per evaluated frame) as bytes, and its record entry.

    Scores are written with Python's shortest round-trip repr, so reading them back gives the
    same float64 values and ``fasbench score RUN_DIR`` reproduces the record exactly. The gzip
    stream carries no timestamp: equal scores give an equal file and sha256.
    """
    import gzip
    import hashlib
    import io

    import pandas as pd

    from fasbench.records import SCORES_FILENAME

    parts = []
    for split, s, frame in splits:
        parts.append(pd.DataFrame({
            "split": split, "video": s.videos, "frame": np.asarray(frame, dtype=np.int64),
            "label": s.labels, "attack": s.attacks, "score": s.scores,
        }, columns=list(SCORE_COLUMNS)))
    df = pd.concat(parts, ignore_index=True)
    text = df.to_csv(index=False, lineterminator="\n", float_format=lambda v: repr(float(v)))
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.encode("utf-8"))
    blob = buf.getvalue()
    return blob, {"file": SCORES_FILENAME, "sha256": hashlib.sha256(blob).hexdigest(), "rows": int(len(df)),
            "columns": list(SCORE_COLUMNS)}
