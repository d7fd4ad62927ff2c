"""Figures of run records (``fasbench plot``): ROC and DET curves per task, score histograms and
training curves per run, and the leaderboard chart per protocol and threshold policy.

Every figure is drawn from data computed by :mod:`fasbench.plots.data` (records, their checked
scores files and the leaderboard tables; no metric is computed a second way) and is written
with that data as ``<figure>.json`` beside the PNG/SVG (:mod:`fasbench.plots.draw`).

Layout under the output folder ``OUT`` (``P``: the protocol, ``TASK``: ``OCI_to_M`` etc.)::

    OUT/P/roc.png|svg|json                     ROC of every task (one panel each), every record
    OUT/P/det.png|svg|json                     DET of the same, normal-deviate axes
    OUT/P/leaderboard-POLICY.png|svg|json      the chart of the leaderboard table of POLICY
    OUT/P/METHOD-RUN/TASK-seedN/hist.*         live / attack-type score histograms of one run
    OUT/P/METHOD-RUN/TASK-seedN/curves.*       losses, source-val and target metrics over steps

``RUN`` is the 8-hex run id of the leaderboard (:func:`fasbench.records.run_key_id`).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError
from fasbench.plots.data import (
    FIGURES,
    SCORE_FIGURES,
    chart_data,
    operating_curve,
    record_info,
    run_name,
    run_scores,
    score_histograms,
    task_panels,
    training_curves,
)
from fasbench.records import POLICIES, RecordWarning, RunRecord
from fasbench.util import slug

__all__ = ["FIGURES", "FORMATS", "PlotIndex", "parse_figures", "parse_formats", "plot_records", "chart_title",
           "chart_data", "operating_curve", "record_info", "run_scores", "score_histograms", "training_curves"]

FORMATS = ("png", "svg")


@dataclass
class PlotIndex:
    """What :func:`plot_records` wrote: files, and per protocol / record the figure stems
    (paths without the format suffix)."""

    files: list[Path] = field(default_factory=list)
    #: protocol -> {"roc": stem, "det": stem, "leaderboard-POLICY": stem}
    protocols: dict[str, dict[str, Path]] = field(default_factory=dict)
    #: record source -> {"hist": stem, "curves": stem}
    runs: dict[str, dict[str, Path]] = field(default_factory=dict)
    #: records whose score figures were left out (no readable scores file), with the reason
    skipped: dict[str, str] = field(default_factory=dict)


def _parse_list(text: str | Sequence[str] | None, allowed: Sequence[str], what: str) -> list[str]:
    if text is None:
        return list(allowed)
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise FasbenchError(f"{what} {','.join(bad) or '(empty)'} is not known; choose from {','.join(allowed)}")
    return list(dict.fromkeys(items))


def parse_formats(text: str | Sequence[str] | None) -> list[str]:
    """``"png,svg"`` -> ``["png", "svg"]`` (one clear error for anything else)."""
    return _parse_list(text, FORMATS, "--format")


def parse_figures(text: str | Sequence[str] | None) -> list[str]:
    return _parse_list(text, FIGURES, "--figures")


def chart_title(protocol: str, policy: str, metric: str, selections: Sequence[str]) -> str:
    from fasbench.leaderboard import policy_label

    sel = "; ".join(selections)
    return (f"{protocol}: target {metric} per task and average, mean ± std over seeds\n"
            f"threshold policy: {policy_label(policy)}" + (f"\ncheckpoint selection: {sel}" if sel else ""))


def _task_order(protocol: str, recs: list[RunRecord]) -> list[RunRecord]:
    """Records in the leaderboard's task order (canonical targets first), stable otherwise."""
    from fasbench.leaderboard.grouping import _task_order as order  # the leaderboard's one rule

    tasks = order(protocol, recs)
    return sorted(recs, key=lambda r: tasks.index(r.task.name))


def plot_records(records: Iterable[RunRecord], out: str | Path, formats: Sequence[str] = FORMATS,
                 figures: Sequence[str] = FIGURES, metric: str = "HTER", missing_scores: str = "error",
                 tables: dict[str, Any] | None = None) -> PlotIndex:
    """Draw ``figures`` of ``records`` under ``out`` (layout in the module docstring).

    ``missing_scores``: ``"error"`` (a record without a readable, matching scores file is a
    :class:`FasbenchError`) or ``"warn"`` (its ROC, DET and histogram are left out with a
    :class:`~fasbench.records.RecordWarning`). ``tables``: the leaderboard tables to chart
    (default: :func:`fasbench.leaderboard.build_tables` of ``records``).
    """
    from fasbench.plots import draw

    records = list(records)
    out = Path(out)
    index = PlotIndex()
    by_protocol: dict[str, list[RunRecord]] = {}
    for rec in records:
        by_protocol.setdefault(rec.protocol, []).append(rec)
    for protocol, recs in sorted(by_protocol.items()):
        pdir = out / slug(protocol)
        pindex = index.protocols.setdefault(protocol, {})
        curves: dict[str, dict[str, Any]] = {}
        for rec in recs:
            rdir = pdir / run_name(rec)
            rindex = index.runs.setdefault(rec.source, {})
            scores = None
            if set(figures) & set(SCORE_FIGURES):
                try:
                    scores = run_scores(rec)
                except FasbenchError as exc:
                    if missing_scores == "error":
                        raise FasbenchError(f"{exc} (or draw only --figures curves,leaderboard)") from None
                    index.skipped[rec.source] = str(exc)
                    warnings.warn(RecordWarning(f"no ROC, DET or histogram for {rec.source}: {exc}"), stacklevel=2)
            if scores is not None and ("roc" in figures or "det" in figures):
                curves[rec.source] = operating_curve(rec, scores)
            if scores is not None and "hist" in figures:
                data = score_histograms(rec, scores)
                index.files += draw.save(draw.draw_histograms(data), data, rdir / "hist", formats)
                rindex["hist"] = rdir / "hist"
            if "curves" in figures and rec.curve:
                data = training_curves(rec)
                index.files += draw.save(draw.draw_curves(data), data, rdir / "curves", formats)
                rindex["curves"] = rdir / "curves"
        panels = task_panels(_task_order(protocol, recs), curves)
        for name in ("roc", "det"):
            if name in figures and panels:
                data = {"figure": name, "protocol": protocol, "data": "target", "panels": panels,
                        "x": "FPR = APCER pooled over attack types (FAR), fraction",
                        "y": "TPR = 1 - BPCER, fraction" if name == "roc" else "FRR = BPCER, fraction"}
                title = f"{protocol}: {name.upper()} on the target, per task"
                index.files += draw.save(draw.draw_operating(panels, det=name == "det", title=title), data,
                                         pdir / name, formats)
                pindex[name] = pdir / name
        if "leaderboard" in figures:
            index.files += _charts(protocol, recs, pdir, formats, metric, pindex, tables)
    return index


def _charts(protocol: str, recs: list[RunRecord], pdir: Path, formats: Sequence[str], metric: str,
            pindex: dict[str, Path], tables: dict[str, Any] | None) -> list[Path]:
    from fasbench.leaderboard import build_tables
    from fasbench.plots import draw

    if tables is None or protocol not in tables:
        tables = build_tables(recs)
    df = tables[protocol]
    if metric not in df.attrs.get("metrics", []):
        raise FasbenchError(f"metric {metric!r} is not in the {protocol} records; they report: "
                            f"{', '.join(df.attrs.get('metrics', []))}")
    written = []
    for policy in df.attrs.get("policies", POLICIES):
        data = chart_data(df, policy, metric)
        if not data["groups"]:
            continue
        fig = draw.draw_chart(data, chart_title(protocol, policy, metric, data["selections"]))
        stem = pdir / f"leaderboard-{policy}"
        written += draw.save(fig, data, stem, formats)
        pindex[f"leaderboard-{policy}"] = stem
    return written
