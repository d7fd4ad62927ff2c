"""Leaderboard tables built from run records only.

Grouping.  Records (:class:`~fasbench.records.RunRecord`) are grouped by (protocol,
:func:`~fasbench.records.run_key`) and, within a record, by threshold policy (the blocks of
``rec.target``: ``source-val-threshold``, ``target-eer-threshold``).  One group is one table
row; nothing else decides identity, and groups are never merged: runs that differ in a
component version or its weights, the data fingerprint, the effective precision, the
checkpoint selection or the result-relevant config form their own rows.  A row shows
:func:`~fasbench.records.run_label` (``setting``) and :func:`~fasbench.records.run_key_id`
(``run``, 8 hex digits; ``fasbench compare`` accepts it as ``METHOD#RUN``).

Statistics.  Numbers are the target metrics of each record (percent).  Per task and metric:
the mean and the *sample* standard deviation (``ddof=1``, :func:`statistics.stdev`) over
seeds, with one seed only the mean (the CSV std cell is empty); ``n``, the number of seeds
with a value; and ``ci95``, the mean over seeds of the half-width ``(high - low) / 2`` of each
record's 95% bootstrap interval over target videos (``MetricBlock.ci``): the uncertainty of
one run that comes from the finite number of target videos.  ``Average`` is the mean over
tasks of the per-task means and is given only when the row covers every task of the protocol
(as seen in the records); its std is the sample std over seeds of the per-seed task average,
given only when every seed covers every task.

Metrics.  The CSV has every metric in the union of the records' ``metric_names`` (in order of
first appearance); the markdown and LaTeX tables show the ``metrics`` chosen (default
:data:`DEFAULT_SHOWN`; CLI ``--metrics``), a cell reading ``mean ± std (±ci95)``.

Duplicates.  If the same (run key, task, seed) was run twice, the record with the newest
``created`` timestamp is kept and a :class:`~fasbench.records.RecordWarning` names both
files.

Reported rows.  Paper numbers (``--reported CSV``: :data:`REPORTED_COLUMNS`, optionally a
``TPR@FPR=1%`` column) are never mixed with measured rows: they follow them in the CSV
(column ``reported`` = ``reported (not reproduced)``, with ``source`` and ``caveat``) and
form a separate "reported (not reproduced)" block in the markdown and the LaTeX.

Outputs (:func:`write_leaderboard`): per protocol ``P.md`` (GitHub markdown), ``P.csv``
(numeric columns) and ``P.tex`` (booktabs tabular), written atomically and
deterministically (no timestamps), so they can be compared against golden files.

Modules: :mod:`~fasbench.leaderboard.grouping` (records -> rows, run keys, statistics, the
numeric tables), :mod:`~fasbench.leaderboard.render` (cells, markdown, CSV, LaTeX) and
:mod:`~fasbench.leaderboard.reported` (reading paper numbers); this package re-exports their
public names and writes the files.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from fasbench.leaderboard.grouping import (
    AVERAGE,
    CANONICAL_TARGETS,
    DEFAULT_SHOWN,
    DEFAULT_TARGETS,
    REPORTED_LABEL,
    STD_DDOF,
    build_tables,
    mean_std,
    metric_union,
    parse_metrics,
    prepare,
    selection_text,
)
from fasbench.leaderboard.render import (
    MISSING,
    POLICY_LABELS,
    POLICY_NOTES,
    display_frame,
    format_cell,
    latex_escape,
    policy_label,
    render_csv,
    render_latex,
    render_markdown,
    reported_display,
)
from fasbench.leaderboard.reported import REPORTED_COLUMNS, REPORTED_METRICS, REPORTED_OPTIONAL, load_reported
from fasbench.records import RunRecord
from fasbench.util import atomic_write_text

__all__ = [
    "AVERAGE", "CANONICAL_TARGETS", "DEFAULT_SHOWN", "DEFAULT_TARGETS", "MISSING", "POLICY_LABELS",
    "POLICY_NOTES", "REPORTED_COLUMNS", "REPORTED_LABEL", "REPORTED_METRICS", "REPORTED_OPTIONAL",
    "STD_DDOF", "build_tables", "display_frame", "format_cell", "latex_escape", "load_reported",
    "mean_std", "metric_union", "parse_metrics", "policy_label", "prepare", "render_csv",
    "render_latex", "render_markdown", "reported_display", "selection_text", "write_leaderboard",
]


# --------------------------------------------------------------------------- writing


def _safe_name(protocol: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", protocol).strip("._") or "protocol"


def write_leaderboard(
    records: Iterable[RunRecord | dict],
    out_dir: str | Path,
    reported: str | Path | None = None,
    protocols: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> list[Path]:
    """Write ``P.md``, ``P.csv`` and ``P.tex`` for each protocol ``P``; return the paths.

    ``reported``: optional CSV of paper-reported numbers (:func:`load_reported`), shown in a
    separate "reported (not reproduced)" block/rows.  ``protocols``: restrict to these.
    ``metrics``: the metrics the markdown and LaTeX show (default :data:`DEFAULT_SHOWN`).
    """
    reported_rows = load_reported(reported) if reported is not None else []
    tables = build_tables(records, metrics=metrics, reported=reported_rows)
    if protocols is not None:
        tables = {p: t for p, t in tables.items() if p in set(protocols)}
    out_dir = Path(out_dir)
    written: list[Path] = []
    for protocol, df in tables.items():
        stem = _safe_name(protocol)
        written.append(atomic_write_text(out_dir / f"{stem}.md", render_markdown(protocol, df)))
        written.append(atomic_write_text(out_dir / f"{stem}.csv", render_csv(df)))
        written.append(atomic_write_text(out_dir / f"{stem}.tex", render_latex(protocol, df)))
    return written
