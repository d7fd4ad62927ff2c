"""Paper-reported numbers: reading a ``reported.csv`` (never mixed with measured rows)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from fasbench.errors import FasbenchError

REPORTED_COLUMNS = ("protocol", "method", "task", "HTER", "AUC", "source", "caveat")
#: Optional numeric columns of a reported-results file.
REPORTED_OPTIONAL = ("TPR@FPR=1%",)
REPORTED_METRICS = ("HTER", "AUC") + REPORTED_OPTIONAL

def load_reported(path: str | Path) -> list[dict]:
    """Read a ``reported.csv`` of paper numbers (columns :data:`REPORTED_COLUMNS`, and
    optionally :data:`REPORTED_OPTIONAL`); numbers are percent, empty cells allowed."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            reader.fieldnames = fields
            missing = [c for c in REPORTED_COLUMNS if c not in fields]
            if missing:
                raise FasbenchError(
                    f"{path}: missing column(s) {missing}; a reported-results file needs "
                    f"{', '.join(REPORTED_COLUMNS)} (optional: {', '.join(REPORTED_OPTIONAL)})"
                )
            metrics = [m for m in REPORTED_METRICS if m in fields]
            rows = []
            for line, row in enumerate(reader, start=2):
                out = {k: (row.get(k) or "").strip() for k in REPORTED_COLUMNS if k not in REPORTED_METRICS}
                out["metrics"] = {}
                for metric in metrics:
                    raw = (row.get(metric) or "").strip()
                    try:
                        value = float(raw) if raw else None
                    except ValueError:
                        value = math.nan
                    if value is not None and not math.isfinite(value):
                        raise FasbenchError(
                            f"{path}:{line}: column {metric} must be a number or empty, got {raw!r}"
                        ) from None
                    out["metrics"][metric] = value
                rows.append(out)
            return rows
    except OSError as exc:
        raise FasbenchError(f"cannot read reported results {path}: {exc}") from exc
