"""The leaderboard as one self-contained HTML page per protocol (``fasbench leaderboard --html``).

A page holds, per threshold policy, the policy and the checkpoint selection stated in words,
the leaderboard chart (inline SVG, :mod:`fasbench.plots`) and a sortable table (a few lines of
inline JavaScript: click a header); then the paper-reported rows in a table of their own,
each marked "reported (not reproduced)". CSS and JavaScript are inline; the only links are
relative: to each row's run records, to their figures (histograms, training curves) and to
the protocol's ROC and DET figures, which :func:`write_html` draws under ``OUT/figures/``.

Numbers: each metric cell shows the text of the markdown table (``mean ± std (±ci)``,
:func:`fasbench.leaderboard.render.display_frame`) and carries the unrounded numbers it was
made from as ``data-mean``, ``data-std`` and ``data-ci95``, with ``data-key`` naming the CSV
column (``"<task> <metric>"`` + `` mean`` etc.): the page and ``P.csv`` come from one table
(:func:`fasbench.leaderboard.build_tables`).

Hand-written on purpose: the page is assembled with :func:`html.escape` on every value rather
than a template engine (fasbench has none among its dependencies, and one page does not need
one), and the table sorting is 20 lines of inline JavaScript rather than a library, which would
have to be inlined into every page to keep it self-contained.
"""
from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from fasbench.leaderboard.grouping import AVERAGE, REPORTED_LABEL, build_tables, prepare
from fasbench.leaderboard.render import (
    POLICY_NOTES,
    _selection_line,
    display_frame,
    policy_label,
    reported_display,
)
from fasbench.leaderboard.reported import load_reported
from fasbench.records import RunRecord, run_key_id
from fasbench.util import atomic_write_text

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1400px;
 padding:0 16px;color:#1b1f23}
h1{font-size:24px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}
ul.notes{color:#444;margin:6px 0 10px;padding-left:20px;font-size:12.5px}ul.notes li{margin:1px 0}
p.policy{background:#f6f8fa;border-left:4px solid #0969da;padding:8px 12px;margin:8px 0}
section.reported p.policy{border-left-color:#bf8700}
.chart{margin:8px 0}.chart svg{max-width:100%;max-height:300px;width:auto;height:auto}
.wrap{overflow-x:auto;border:1px solid #d0d7de;border-radius:6px}
table{border-collapse:collapse;font-size:13px;white-space:nowrap}
th,td{padding:4px 8px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0;cursor:pointer;user-select:none}
th.sorted-asc::after{content:" \\25B2";font-size:10px}th.sorted-desc::after{content:" \\25BC";font-size:10px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.avg{font-weight:600}tr:hover td{background:#fafbfc}
code{font-size:12px}span.badge{background:#fff8c5;border:1px solid #d4a72c;border-radius:10px;padding:0 7px;
 font-size:11px;color:#7d4e00}
details summary{cursor:pointer;color:#0969da}details ul{margin:4px 0;padding-left:18px}
td.setting{font-size:12px;color:#444}
a{color:#0969da}footer{color:#666;font-size:12px;margin:24px 0}
"""

_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("sorted-asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(asc ? "sorted-asc" : "sorted-desc");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col], v = cell.getAttribute("data-mean");
        if (v !== null) { return v === "" ? null : parseFloat(v); }
        return cell.textContent.trim().toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var c = typeof x === "number" ? x - y : (x < y ? -1 : x > y ? 1 : 0);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num_attr(value: Any) -> str:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(f) else repr(f)


def _href(target: Path | str, out_dir: Path) -> str:
    return quote(Path(os.path.relpath(Path(target).resolve(), out_dir.resolve())).as_posix())


def _cell(row: pd.Series, key: str, text: str, avg: bool = False) -> str:
    attrs = (f' data-key="{_e(key)}" data-mean="{_num_attr(row.get(f"{key} mean"))}"'
             f' data-std="{_num_attr(row.get(f"{key} std"))}" data-ci95="{_num_attr(row.get(f"{key} ci95"))}"')
    return f'<td class="num{" avg" if avg else ""}"{attrs}>{_e(text)}</td>'


def _links(recs: list[RunRecord], index: Any, out_dir: Path, fmt: str) -> tuple[str, str]:
    """``(records cell, figures cell)`` of one table row: the row's records, in task/seed order."""
    rec_items, fig_items = [], []
    for rec in recs:
        name = f"{rec.task.name} seed {rec.seed}"
        rec_items.append(f'<li><a href="{_href(rec.source, out_dir)}">{_e(name)}</a></li>')
        figs = (index.runs.get(rec.source, {}) if index is not None else {})
        links = [f'<a href="{_href(f"{stem}.{fmt}", out_dir)}">{_e(kind)}</a>' for kind, stem in figs.items()]
        if links:
            fig_items.append(f"<li>{_e(name)}: {' · '.join(links)}</li>")

    def details(items: list[str], what: str) -> str:
        if not items:
            return "<td>—</td>"
        return f"<td><details><summary>{len(items)} {what}</summary><ul>{''.join(items)}</ul></details></td>"

    return details(rec_items, "record" + ("s" if len(rec_items) != 1 else "")), details(fig_items, "runs")


def _notes(protocol: str, df: pd.DataFrame) -> list[str]:
    shown, names = df.attrs.get("shown", []), df.attrs.get("metrics", [])
    n = df.attrs.get("n_records", 0)
    return [
        f"Tasks: {', '.join(df.attrs.get('measured_tasks', []))}.",
        f"Metrics in % on the target domain: {', '.join(shown)} (the CSV has every metric the runs report: "
        f"{', '.join(names)}).",
        "A cell reads mean ± std (±ci): the mean and sample std (ddof=1) over seeds (one seed: no std), then "
        "the mean over seeds of the 95% bootstrap CI half-width over target videos.",
        "Avg: mean over tasks of the per-task means (only for rows covering every task), ± the std over "
        "seeds of the per-seed average.",
        "One row per run setting: run is the short id of the run key (method, component versions and "
        "weights, data fingerprint, precision, checkpoint selection, config hash); rows of different "
        "settings are never averaged together. Click a column header to sort.",
        f"Generated by fasbench leaderboard --html from {n} run record{'s' if n != 1 else ''}.",
    ]


def render_page(protocol: str, df: pd.DataFrame, records: Sequence[RunRecord], out_dir: Path,
                index: Any = None, charts: dict[str, str] | None = None, fmt: str = "png") -> str:
    """The page of one protocol (``df``: its table from :func:`build_tables`)."""
    tasks = df.attrs.get("measured_tasks", [])
    shown = df.attrs.get("shown", [])
    names = set(df.attrs.get("metrics", []))
    by_run: dict[str, list[RunRecord]] = {}
    order = {t: i for i, t in enumerate(df.attrs.get("tasks", []))}
    for rec in sorted(records, key=lambda r: (order.get(r.task.name, len(order)), r.seed)):
        by_run.setdefault(run_key_id(rec), []).append(rec)
    from fasbench.leaderboard import _safe_name

    base = _safe_name(protocol)
    parts = [f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
             f"<title>{_e(protocol)} leaderboard</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
             f"<h1>{_e(protocol)} leaderboard</h1>\n<ul class=\"notes\">"
             + "".join(f"<li>{_e(n)}</li>" for n in _notes(protocol, df)) + "</ul>\n"]
    files = [f'<a href="{quote(base)}.{ext}">{_e(base)}.{ext}</a>' for ext in ("csv", "md", "tex")]
    pfigs = index.protocols.get(protocol, {}) if index is not None else {}
    files += [f'<a href="{_href(f"{pfigs[k]}.{fmt}", out_dir)}">{k.upper()} per task</a>'
              for k in ("roc", "det") if k in pfigs]
    parts.append(f"<p>Files: {' · '.join(files)}</p>\n")

    frame = display_frame(df)
    measured = df[df["reported"] == ""].reset_index(drop=True)
    for policy in df.attrs.get("policies", []):
        mask = (measured["policy"] == policy).to_numpy()
        rows, texts = measured[mask], frame[mask]
        note = POLICY_NOTES.get(policy)
        sentence = f"Threshold policy <code>{_e(policy)}</code>: {_e(note) if note else ''}"
        sel = df.attrs.get("selections", {}).get(policy, [])
        if sel:
            line = _selection_line(sel).replace("`", "")
            sentence += f" {_e(line[0].upper() + line[1:])}."
        parts.append(f'<section class="measured" data-policy="{_e(policy)}">\n<h2>{_e(policy_label(policy))}</h2>\n'
                     f'<p class="policy">{sentence}</p>\n')
        if charts and policy in charts:
            parts.append(f'<figure class="chart">{charts[policy]}</figure>\n')
        head = ["method", "run"] + [f"{t} {m}" for t in tasks for m in shown] + [f"Avg {m}" for m in shown]
        head += ["seeds", "data", "fasbench", "setting", "records", "figures"]
        parts.append('<div class="wrap"><table class="board sortable"><thead><tr>'
                     + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>\n")
        for (_, row), (_, text) in zip(rows.iterrows(), texts.iterrows()):
            cells = [f"<td>{_e(row['method'])}</td>", f"<td><code>{_e(row['run'])}</code></td>"]
            for task in tasks:
                for metric in shown:
                    key = f"{task} {metric}"
                    cells.append(_cell(row, key, text[key]) if metric in names else "<td>—</td>")
            for metric in shown:
                cells.append(_cell(row, f"{AVERAGE} {metric}", text[f"Avg {metric}"], avg=True)
                             if metric in names else "<td>—</td>")
            cells += [f"<td>{_e(row['seeds'])}</td>", f"<td>{_e(row['data'])}</td>", f"<td>{_e(row['fasbench'])}</td>",
                      f'<td class="setting">{_e(row["setting"])}</td>']
            cells += list(_links(by_run.get(row["run"], []), index, out_dir, fmt))
            parts.append(f'<tr data-run="{_e(row["run"])}" data-policy="{_e(policy)}">' + "".join(cells) + "</tr>\n")
        parts.append("</tbody></table></div>\n</section>\n")

    reported = reported_display(df)
    if reported is not None:
        rep = df[df["reported"] != ""].reset_index(drop=True)
        all_tasks = df.attrs.get("tasks", [])
        parts.append(f'<section class="reported">\n<h2>{_e(REPORTED_LABEL[0].upper() + REPORTED_LABEL[1:])}</h2>\n'
                     '<p class="policy">Numbers copied from papers, not produced by this harness; their setup '
                     "(data, preprocessing, threshold policy, checkpoint selection) may differ, see the caveat "
                     "column. Never averaged with the rows above.</p>\n")
        head = ["method", "status"] + [f"{t} {m}" for t in all_tasks for m in shown] + [f"Avg {m}" for m in shown]
        head += ["source", "caveat"]
        parts.append('<div class="wrap"><table class="reported sortable"><thead><tr>'
                     + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>\n")
        for (_, row), (_, text) in zip(rep.iterrows(), reported.iterrows()):
            cells = [f"<td>{_e(row['method'])}</td>", f'<td><span class="badge">{_e(REPORTED_LABEL)}</span></td>']
            for task in all_tasks + [AVERAGE]:
                for metric in shown:
                    col = f"{'Avg' if task == AVERAGE else task} {metric}"
                    cells.append(_cell(row, f"{task} {metric}", text[col], avg=task == AVERAGE)
                                 if metric in names else "<td>—</td>")
            cells += [f"<td>{_e(row['source'])}</td>", f'<td class="setting">{_e(row["caveat"])}</td>']
            parts.append(f'<tr class="reported" data-reported="{_e(row["reported"])}">' + "".join(cells) + "</tr>\n")
        parts.append("</tbody></table></div>\n</section>\n")
    parts.append(f"<footer>Every number on this page is in {_e(base)}.csv (the same table).</footer>\n"
                 f"<script>{_JS}</script>\n</body>\n</html>\n")
    return "".join(parts)


def write_html(records: Iterable[RunRecord], out_dir: str | Path, reported: str | Path | None = None,
               protocols: Sequence[str] | None = None, metrics: Sequence[str] | None = None,
               figures: bool = True, fmt: str = "png") -> list[Path]:
    """Write ``OUT/P.html`` per protocol (and, with ``figures``, the figures it links under
    ``OUT/figures/``); return the paths written. Records without a readable scores file get
    no ROC, DET or histogram (a warning each); their rows and records are still on the page."""
    from fasbench.leaderboard import _safe_name
    from fasbench.plots import chart_title, plot_records
    from fasbench.plots import draw as plot_draw
    from fasbench.plots.data import chart_data

    out_dir = Path(out_dir)
    prepared = prepare(records)
    reported_rows = load_reported(reported) if reported is not None else []
    tables = build_tables(prepared, metrics=metrics, reported=reported_rows)
    if protocols is not None:
        tables = {p: t for p, t in tables.items() if p in set(protocols)}
    written: list[Path] = []
    for protocol, df in tables.items():
        recs = [r for r in prepared if r.protocol == protocol]
        index = None
        if figures:
            index = plot_records(recs, out_dir / "figures", formats=(fmt,), missing_scores="warn",
                                 tables={protocol: df})
            written += index.files
        charts = {}
        for policy in df.attrs.get("policies", []):
            data = chart_data(df, policy, "HTER" if "HTER" in df.attrs.get("metrics", []) else df.attrs["metrics"][0])
            if data["groups"]:
                fig = plot_draw.draw_chart(data, chart_title(protocol, policy, data["metric"], data["selections"]))
                charts[policy] = plot_draw.svg_text(fig)
        page = render_page(protocol, df, recs, out_dir, index, charts, fmt)
        written.append(atomic_write_text(out_dir / f"{_safe_name(protocol)}.html", page))
    return written
