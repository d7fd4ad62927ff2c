"""``fasbench leaderboard``: tables built from the run records under a runs directory.

Reads every ``record.json`` under ``--runs`` (repeatable: records of several machines merge) and writes, per protocol ``P``, ``P.md``
(markdown), ``P.csv`` (numeric columns: every metric the runs report) and ``P.tex`` (LaTeX
tabular) into ``--out``, one block per threshold policy on the target.  ``--out`` defaults to
``leaderboard`` inside the (first) runs directory, e.g. ``runs/leaderboard/``: your tables stay
beside your runs.  The committed board of a fasbench checkout is rebuilt only by naming it:
``--out leaderboard``.  ``--html`` also writes ``P.html``, a self-contained page (sortable
tables, the chart of each threshold policy, links to every record and its figures, which it
draws under ``OUT/figures/``).  Metrics are
percentages; a cell reads ``mean ± std (±ci)``: mean and sample std over seeds, then the mean
95% bootstrap CI half-width over target videos.  ``--metrics`` chooses the metrics of the
markdown and LaTeX tables (default: HTER, AUC, TPR@FPR=1%).  One row per run setting (the
run key: component versions and weights, data, precision, checkpoint selection, config);
different settings are never averaged together.  Malformed or unfinished records are
skipped with a warning (``--strict``: malformed ones are errors); of a run repeated with the
same seed, the newest record is kept.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fasbench.errors import FasbenchError


def add_parser(subparsers: Any) -> None:
    """Register ``leaderboard`` on an ``argparse`` ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "leaderboard",
        help="build leaderboard tables (markdown, CSV, LaTeX) from run records",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", metavar="DIR", action="append", default=None,
                   help="directory searched for **/record.json (default: runs); repeat it to merge the records "
                        "of several machines or sweeps (--runs A --runs B)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="directory the tables are written to (default: RUNS/leaderboard, inside the first --runs; "
                        "--out leaderboard rebuilds a checkout's committed board)")
    p.add_argument("--protocol", metavar="P", default=None,
                   help="only this protocol (default: every protocol found)")
    p.add_argument("--metrics", metavar="M1,M2", default=None,
                   help="comma-separated metrics the markdown and LaTeX tables show "
                        "(default: HTER,AUC,TPR@FPR=1%%; the CSV has every metric)")
    p.add_argument("--reported", metavar="CSV", default=None,
                   help="paper-reported numbers (columns protocol,method,task,HTER,AUC,"
                        "source,caveat; optional TPR@FPR=1%%), shown apart as 'reported "
                        "(not reproduced)' in every table")
    p.add_argument("--print", dest="print_tables", action="store_true",
                   help="also print the markdown tables")
    p.add_argument("--html", action="store_true",
                   help="also write P.html per protocol: sortable tables, charts, links to records and their figures "
                        "(drawn under OUT/figures/)")
    p.add_argument("--strict", action="store_true",
                   help="fail on a malformed record instead of skipping it with a warning")
    p.set_defaults(func=main)


@contextlib.contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """Print each :class:`~fasbench.records.RecordWarning` raised inside as one ``warning: ...``
    line on stderr (other warnings as usual), also when the body fails."""
    from fasbench.records import RecordWarning

    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RecordWarning)
            yield
    finally:
        # outside catch_warnings: showwarning is the real one again, not the recorder
        for w in caught:
            if issubclass(w.category, RecordWarning):
                print(f"warning: {w.message}", file=sys.stderr)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def default_out(runs: list[str]) -> Path:
    """Where a user's tables go without ``--out``: ``leaderboard`` inside the first runs directory."""
    return Path(runs[0]) / "leaderboard"


def main(args: argparse.Namespace) -> int:
    from fasbench.leaderboard import parse_metrics, write_leaderboard
    from fasbench.records import RecordWarning, load_records

    dirs = getattr(args, "runs", None) or ["runs"]
    dirs = [dirs] if isinstance(dirs, str) else list(dirs)
    runs = ", ".join(str(d) for d in dirs)
    out = getattr(args, "out", None) or default_out(dirs)
    protocol = getattr(args, "protocol", None)
    reported = getattr(args, "reported", None)
    metrics = parse_metrics(getattr(args, "metrics", None))
    strict = bool(getattr(args, "strict", False))
    print_tables = bool(getattr(args, "print_tables", False) or getattr(args, "print", False))

    with warnings_to_stderr():
        records = []
        for d in dirs:  # merged: the same run found twice (a copied record) is one run, newest kept
            found = load_records(d, strict=strict)
            if not found and len(dirs) > 1:
                warnings.warn(RecordWarning(f"no run records under {d}"), stacklevel=1)
            records.extend(found)
        if not records:
            raise FasbenchError(
                f"no run records under {runs}; run `fasbench run METHOD --protocol P` "
                "first, or point --runs at the directory that holds the runs "
                "(it is searched for **/record.json)"
            )
        if protocol is not None:
            found = sorted({r.protocol for r in records})
            if protocol not in found:
                raise FasbenchError(
                    f"no run records for protocol {protocol!r} under {runs}; "
                    f"protocols found: {', '.join(found)}"
                )
            records = [r for r in records if r.protocol == protocol]
        paths = write_leaderboard(records, out, reported=reported, metrics=metrics)
        figures: list = []
        if getattr(args, "html", False):
            from fasbench.leaderboard.html import write_html

            written = write_html(records, out, reported=reported, metrics=metrics)
            pages = [p for p in written if p.suffix == ".html"]
            figures = [p for p in written if p.suffix not in (".html", ".json")]
            paths += pages

    print(f"{len(records)} run record{'s' if len(records) != 1 else ''} from {runs}")
    for path in paths:
        print(f"wrote {path}")
    if figures:
        print(f"wrote {len(figures)} figure(s) under {Path(out) / 'figures'}")
    if print_tables:
        for path in paths:
            if path.suffix == ".md":
                print()
                print(path.read_text(encoding="utf-8"), end="")
    return 0
