"""``fasbench plot``: figures of run records (PNG and SVG, each with the data drawn as JSON).

Reads the records under each PATH (a run directory, a ``record.json``, or a folder searched
for ``**/record.json``; default ``runs``) and draws, per protocol ``P``, under ``--out``:

  P/roc.*, P/det.*                    ROC and DET curves on the target, one panel per task, one
                                      curve per record, the operating point of each threshold
                                      policy marked (source-val threshold: filled circle;
                                      target-EER threshold, idealized: open square)
  P/METHOD-RUN/TASK-seedN/hist.*      live and attack-type score histograms (per video), source-val
                                      split and target, with both thresholds
  P/METHOD-RUN/TASK-seedN/curves.*    losses, source-val and target metrics over the evaluated steps
  P/leaderboard-POLICY.*              the leaderboard chart: HTER (--metric) per task and average,
                                      mean ± std over seeds, one bar group per leaderboard row

ROC, DET and histograms read the run's ``scores.csv.gz`` (its sha256 is checked against the
record); ``--figures`` chooses which figures are drawn. The default ``--out`` is ``figures``
inside the first PATH (beside it when PATH is a record file).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError


def add_parser(subparsers: Any) -> None:
    """Register ``plot`` on an ``argparse`` ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "plot",
        help="figures of run records: ROC/DET, score histograms, training curves, leaderboard chart",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="run directory, record.json, or folder searched for **/record.json (default: runs)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="folder the figures are written to (default: PATH/figures for the first PATH)")
    p.add_argument("--format", dest="formats", metavar="png,svg", default="png,svg",
                   help="image formats (default: png,svg); the data of each figure is always written as .json")
    p.add_argument("--figures", metavar="roc,det,...", default=None,
                   help="figures to draw: roc,det,hist,curves,leaderboard (default: all)")
    p.add_argument("--metric", metavar="M", default="HTER",
                   help="metric of the leaderboard chart (default: HTER; any metric of the leaderboard CSV)")
    p.add_argument("--strict", action="store_true",
                   help="fail on a malformed record instead of skipping it with a warning")
    p.set_defaults(func=main)


def default_out(paths: list[str]) -> Path:
    first = Path(paths[0])
    return (first.parent if first.is_file() else first) / "figures"


def main(args: argparse.Namespace) -> int:
    from fasbench.commands.leaderboard import warnings_to_stderr
    from fasbench.leaderboard import prepare
    from fasbench.plots import parse_figures, parse_formats, plot_records
    from fasbench.records import load_records

    paths = list(getattr(args, "paths", None) or ["runs"])
    formats = parse_formats(getattr(args, "formats", None))
    figures = parse_figures(getattr(args, "figures", None))
    out = Path(args.out) if getattr(args, "out", None) else default_out(paths)
    with warnings_to_stderr():
        records = []
        for path in paths:
            if not Path(path).exists():
                raise FasbenchError(f"{path}: no such file or folder; give a run directory, a record.json or a "
                                    "folder of runs (e.g. runs)")
            records += load_records(path, strict=bool(getattr(args, "strict", False)))
        if not records:
            raise FasbenchError(f"no run records under {', '.join(paths)}; run `fasbench run METHOD --protocol P` "
                                "first, or give the folder that holds the runs")
        records = prepare(records)
        index = plot_records(records, out, formats=formats, figures=figures, metric=args.metric)
    images = [p for p in index.files if p.suffix != ".json"]
    print(f"{len(records)} run record{'s' if len(records) != 1 else ''}: {len(images)} image file(s) "
          f"({', '.join(formats)}) and their data (.json) under {out}")
    for protocol, stems in index.protocols.items():
        for name, stem in stems.items():
            print(f"  {protocol} {name}: {stem}.{formats[0]}")
    return 0
