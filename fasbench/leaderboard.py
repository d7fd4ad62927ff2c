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
"""
from __future__ import annotations

import csv
import math
import re
import statistics
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
from tabulate import tabulate

from fasbench.errors import FasbenchError
from fasbench.records import (
    POLICIES,
    SOURCE_VAL_THRESHOLD,
    TARGET_EER_THRESHOLD,
    RecordWarning,
    RunRecord,
    atomic_write_text,
    identity_fields,
    parse_record,
    run_key,
    run_key_id,
    run_label,
)

#: Metrics the markdown and LaTeX tables show unless ``metrics=`` (``--metrics``) says otherwise.
DEFAULT_SHOWN = ("HTER", "AUC", "TPR@FPR=1%")
POLICY_LABELS = {
    SOURCE_VAL_THRESHOLD: "target, threshold from source-val (deployable)",
    TARGET_EER_THRESHOLD: "target, threshold at target EER (idealized: reads target labels)",
}
POLICY_NOTES = {
    SOURCE_VAL_THRESHOLD: (
        "the threshold is the EER threshold of the source domains' validation split, applied "
        "unchanged to the target: a deployable result, no target data chose it."
    ),
    TARGET_EER_THRESHOLD: (
        "the threshold is the target domain's own EER point; it reads target labels, so it is an "
        "idealized bound, not a deployable result."
    ),
}
#: Canonical target order of the O/C/I/M benchmarks (MICO: OCI->M, OMI->C, OCM->I, ICM->O).
#: Tasks whose target is not listed follow, in order of first appearance.
CANONICAL_TARGETS = {
    "MICO": ("M", "C", "I", "O"),
    "LimitedSource": ("M", "C", "I", "O"),
}
DEFAULT_TARGETS = ("M", "C", "I", "O")
AVERAGE = "Average"
MISSING = "—"
STD_DDOF = 1
REPORTED_LABEL = "reported (not reproduced)"
#: Metrics that can only go up to be better (used to sort rows; others: lower is better).
_HIGHER_IS_BETTER_FALLBACK = ("AUC", "TPR@FPR=1%", "TPR@FPR=0.1%")


def policy_label(policy: str) -> str:
    return POLICY_LABELS.get(policy, policy)


def _policy_rank(policy: str) -> tuple:
    if policy in POLICIES:
        return (POLICIES.index(policy), "")
    return (len(POLICIES), policy)


def selection_text(rule: str, metric: str | None) -> str:
    """How a checkpoint was selected, and on what data (for table headers)."""
    if rule == "last":
        return "last (no target data)"
    if rule == "source-val":
        return f"source-val: best {metric or '?'} on the source-val split (source data only)"
    if rule == "target-oracle":
        return f"target-oracle: best {metric or '?'} on the target (reads target labels: idealized)"
    return rule


def _higher_is_better(name: str) -> bool:
    try:
        from fasbench.metrics import get_metric

        return get_metric(name).higher_is_better
    except FasbenchError:  # an unregistered plugin metric: the known names, else ascending
        return name in _HIGHER_IS_BETTER_FALLBACK


# --------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1) of ``values``; std is None for fewer than two values."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _half_width(interval: Any) -> float | None:
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return None
    lo, hi = _finite(interval[0]), _finite(interval[1])
    return None if lo is None or hi is None else (hi - lo) / 2.0


def _created_key(rec: RunRecord) -> tuple:
    """Sort key for "newest": parsed ``created`` (UTC), unparsable timestamps are oldest."""
    raw = rec.created
    if raw:
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            return (1, when.timestamp(), raw)
        except ValueError:
            return (1, float("-inf"), raw)
    return (0, float("-inf"), "")


# --------------------------------------------------------------------------- grouping


@dataclass
class _Group:
    protocol: str
    policy: str
    method: str
    key: str
    run: str
    setting: str
    selection: str
    selection_text: str
    precision: str
    dataset: str
    fingerprint: str
    data_label: str
    fasbench: set = field(default_factory=set)
    # task -> seed -> metric -> value
    values: dict = field(default_factory=dict)
    # task -> seed -> metric -> 95% CI half-width
    ci: dict = field(default_factory=dict)
    n_records: int = 0


def _as_record(rec: Any, index: int) -> RunRecord:
    if isinstance(rec, RunRecord):
        return rec
    return parse_record(rec, f"record #{index}")


def prepare(records: Iterable[RunRecord | dict]) -> list[RunRecord]:
    """Records to tabulate: incomplete ones dropped, the newest of duplicated runs kept.

    A duplicate is the same (protocol, :func:`~fasbench.records.run_key`, task, seed); the
    record with the newest ``created`` is kept (ties: the later one in input order) and a
    :class:`RecordWarning` names both files. Dicts are validated as records first.
    """
    kept: dict[tuple, RunRecord] = {}
    for i, raw in enumerate(records):
        rec = _as_record(raw, i)
        if rec.status != "complete":
            warnings.warn(f"skipping {rec.source}: status is {rec.status!r}, not 'complete'",
                          RecordWarning, stacklevel=3)
            continue
        key = (rec.protocol, run_key(rec), rec.task.name, rec.seed)
        old = kept.get(key)
        if old is None:
            kept[key] = rec
            continue
        newer, older = (rec, old) if _created_key(rec) >= _created_key(old) else (old, rec)
        warnings.warn(
            f"duplicate run of {rec.method} on {rec.protocol} {rec.task.name} seed {rec.seed} "
            f"(run {run_key_id(rec)}): keeping the newest, {newer.source} (created {newer.created}), "
            f"ignoring {older.source} (created {older.created})",
            RecordWarning,
            stacklevel=3,
        )
        kept[key] = newer
    return list(kept.values())


def _task_order(protocol: str, records: list[RunRecord]) -> list[str]:
    targets = CANONICAL_TARGETS.get(protocol, DEFAULT_TARGETS)
    first_seen: dict[str, tuple[int, str]] = {}
    for rec in records:
        first_seen.setdefault(rec.task.name, (len(first_seen), rec.task.target))

    def rank(task: str) -> tuple:
        seen, target = first_seen[task]
        return (targets.index(target) if target in targets else len(targets), seen)

    return sorted(first_seen, key=rank)


def metric_union(records: Iterable[RunRecord]) -> list[str]:
    """The union of the records' ``metric_names``, in order of first appearance."""
    out: dict[str, None] = {}
    for rec in records:
        for name in rec.metric_names:
            out.setdefault(name, None)
    return list(out)


def _groups(records: list[RunRecord], metrics: list[str]) -> dict[tuple, _Group]:
    groups: dict[tuple, _Group] = {}
    for rec in records:
        key = run_key(rec)
        for policy, block in rec.target.items():
            group = groups.get((key, policy))
            if group is None:
                comp = rec.components.dataset
                group = groups[(key, policy)] = _Group(
                    protocol=rec.protocol,
                    policy=policy,
                    method=rec.method,
                    key=key,
                    run=run_key_id(rec),
                    setting=run_label(rec),
                    selection=identity_fields(rec)["selection"],
                    selection_text=selection_text(rec.selection.rule, rec.selection.metric),
                    precision=rec.precision,
                    dataset=rec.data.dataset,
                    fingerprint=rec.data.fingerprint,
                    data_label=f"{rec.data.dataset}@{comp.version} ({rec.data.fingerprint[:8]})",
                )
            version = rec.versions.get("fasbench")
            if version is not None:
                group.fasbench.add(str(version))
            group.n_records += 1
            cell = group.values.setdefault(rec.task.name, {}).setdefault(rec.seed, {})
            ci = group.ci.setdefault(rec.task.name, {}).setdefault(rec.seed, {})
            for metric in metrics:
                cell[metric] = _finite(block.metrics.get(metric))
                ci[metric] = _half_width(block.ci.get(metric))
    return groups


def _seeds_label(seeds: Sequence[int]) -> str:
    return f"{len(seeds)} ({','.join(str(s) for s in seeds)})"


def _version_sort_key(v: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+-]", v))


def _row(group: _Group, tasks: list[str], metrics: list[str]) -> dict[str, Any]:
    seeds = sorted({s for per_seed in group.values.values() for s in per_seed})
    row: dict[str, Any] = {
        "protocol": group.protocol,
        "policy": group.policy,
        "method": group.method,
        "run": group.run,
        "setting": group.setting,
        "selection": group.selection,
        "precision": group.precision,
        "data": group.data_label,
        "seeds": _seeds_label(seeds),
        "n_seeds": len(seeds),
        "n_records": group.n_records,
        "fasbench": ",".join(sorted(group.fasbench, key=_version_sort_key)),
        "reported": "",
        "source": "",
        "caveat": "",
        "dataset": group.dataset,
        "fingerprint": group.fingerprint,
        "run_key": group.key,
        "_selection_text": group.selection_text,
    }
    covers_all = bool(tasks) and all(t in group.values for t in tasks)
    for metric in metrics:
        task_means = []
        for task in tasks:
            per_seed = group.values.get(task, {})
            vals = [m[metric] for m in per_seed.values() if m.get(metric) is not None]
            mean, std = mean_std(vals)
            widths = [c[metric] for c in group.ci.get(task, {}).values() if c.get(metric) is not None]
            row[f"{task} {metric} mean"] = mean
            row[f"{task} {metric} std"] = std
            row[f"{task} {metric} n"] = len(vals)
            row[f"{task} {metric} ci95"] = statistics.fmean(widths) if widths else None
            if mean is not None:
                task_means.append(mean)
        avg_mean = avg_std = None
        if covers_all and len(task_means) == len(tasks):
            avg_mean = statistics.fmean(task_means)
            per_seed_avgs = []
            for seed in seeds:
                vals = [group.values[t].get(seed, {}).get(metric) for t in tasks]
                if any(v is None for v in vals):
                    per_seed_avgs = []
                    break
                per_seed_avgs.append(statistics.fmean(vals))
            if len(per_seed_avgs) > 1:
                avg_std = statistics.stdev(per_seed_avgs)
        row[f"{AVERAGE} {metric} mean"] = avg_mean
        row[f"{AVERAGE} {metric} std"] = avg_std
    return row


_LEAD_COLUMNS = ["protocol", "policy", "method", "run", "setting", "selection", "precision", "data",
                 "seeds", "n_seeds", "n_records", "fasbench"]
_TAIL_COLUMNS = ["reported", "source", "caveat", "dataset", "fingerprint", "run_key"]
_INT_COLUMNS = ("n_seeds", "n_records")


def _columns(tasks: list[str], metrics: list[str]) -> list[str]:
    cols = list(_LEAD_COLUMNS)
    for task in tasks:
        for metric in metrics:
            cols += [f"{task} {metric} mean", f"{task} {metric} std", f"{task} {metric} n",
                     f"{task} {metric} ci95"]
    for metric in metrics:
        cols += [f"{AVERAGE} {metric} mean", f"{AVERAGE} {metric} std"]
    return cols + _TAIL_COLUMNS


def _frame(rows: list[dict], tasks: list[str], metrics: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=_columns(tasks, metrics))
    for col in df.columns:
        if col.endswith((" mean", " std", " ci95")):
            df[col] = df[col].astype("float64")  # None -> NaN, even in empty columns
        elif col.endswith(" n") or col in _INT_COLUMNS:
            df[col] = df[col].astype("Int64")  # blank, not 3.0000, in the reported rows
        else:
            df[col] = df[col].fillna("").astype(object)
    return df


def _check_metrics(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    requested = [str(m).strip() for m in requested if str(m).strip()]
    if not requested:
        raise FasbenchError(f"--metrics is empty; name at least one of: {', '.join(available)}")
    unknown = [m for m in requested if m not in available]
    if unknown:
        raise FasbenchError(
            f"unknown metric(s) {', '.join(unknown)} for --metrics; the records report: "
            f"{', '.join(available) or '(none)'}"
        )
    return list(dict.fromkeys(requested))


def parse_metrics(text: str | Sequence[str] | None) -> list[str] | None:
    """``"HTER,AUC"`` -> ``["HTER", "AUC"]`` (``None`` stays ``None``: the default columns)."""
    if text is None:
        return None
    if isinstance(text, str):
        return [t.strip() for t in text.split(",") if t.strip()]
    return [str(t).strip() for t in text]


def build_tables(records: Iterable[RunRecord | dict], metrics: Sequence[str] | None = None,
                 reported: list[dict] | None = None) -> dict[str, pd.DataFrame]:
    """One numeric table per protocol (sorted by protocol name), one row per group.

    Columns: ``protocol, policy, method, run, setting, selection, precision, data, seeds,
    n_seeds, n_records, fasbench``; per task and metric (every metric the records name)
    ``"<task> <metric> mean"``, ``"... std"``, ``"... n"``, ``"... ci95"``; per metric
    ``"Average <metric> mean"/"std"``; then ``reported, source, caveat, dataset, fingerprint,
    run_key``.  Missing values are NaN (counts: ``<NA>``).  Measured rows are sorted by policy
    (:data:`~fasbench.records.POLICIES` order), then Average HTER ascending (rows without an
    average last), then method; the ``reported`` rows (from :func:`load_reported`) follow.
    ``df.attrs``: ``tasks`` (ordered, measured tasks first), ``measured_tasks``, ``metrics``
    (the CSV metrics), ``shown`` (the metrics the markdown/LaTeX show), ``policies``,
    ``n_records`` and ``selections`` (policy -> selection descriptions of its rows).

    ``metrics``: the metrics to show; each must be named by some record (else a
    :class:`FasbenchError` listing the available ones).  Default: those of
    :data:`DEFAULT_SHOWN` the records name.
    """
    prepared = prepare(records)
    available = metric_union(prepared)
    if metrics is not None:
        metrics = _check_metrics(metrics, available)
    by_protocol: dict[str, list[RunRecord]] = {}
    for rec in prepared:
        by_protocol.setdefault(rec.protocol, []).append(rec)

    tables: dict[str, pd.DataFrame] = {}
    for protocol in sorted(by_protocol):
        recs = by_protocol[protocol]
        measured_tasks = _task_order(protocol, recs)
        names = metric_union(recs)
        rows = [_row(g, measured_tasks, names) for g in _groups(recs, names).values()]
        sort_metric = "HTER" if "HTER" in names else (names[0] if names else None)
        sign = -1.0 if sort_metric is not None and _higher_is_better(sort_metric) else 1.0

        def sort_key(row: dict) -> tuple:
            avg = row.get(f"{AVERAGE} {sort_metric} mean")
            return (_policy_rank(row["policy"]), avg is None, sign * avg if avg is not None else 0.0,
                    row["method"], row["setting"], row["run"])

        rows.sort(key=sort_key)
        selections: dict[str, list[str]] = {}
        for row in rows:
            texts = selections.setdefault(row["policy"], [])
            if row["_selection_text"] not in texts:
                texts.append(row["_selection_text"])
        shown = list(metrics) if metrics is not None else [m for m in DEFAULT_SHOWN if m in names]
        if not shown:
            shown = names[:3]
        tasks = list(measured_tasks)
        rep_rows: list[dict] = []
        if reported:
            rep_rows, tasks, names = _reported_rows(reported, protocol, tasks, names)
        df = _frame(rows + rep_rows, tasks, names)
        df.attrs["tasks"] = tasks
        df.attrs["measured_tasks"] = list(measured_tasks)
        df.attrs["metrics"] = list(names)
        df.attrs["shown"] = shown
        df.attrs["policies"] = sorted({r["policy"] for r in rows}, key=_policy_rank)
        df.attrs["n_records"] = len(recs)
        df.attrs["selections"] = selections
        tables[protocol] = df
    return tables


# --------------------------------------------------------------------------- display


def _num(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def format_cell(mean: Any, std: Any = None, ci: Any = None, pm: str = "±", missing: str = MISSING) -> str:
    """``12.34 ± 1.20 (±2.9)``: mean ± std over seeds (±mean 95% CI half-width over videos)."""
    mean, std, ci = _num(mean), _num(std), _num(ci)
    if mean is None:
        return missing
    text = f"{mean:.2f}" if std is None else f"{mean:.2f} {pm} {std:.2f}"
    return text if ci is None else f"{text} ({pm}{ci:.1f})"


def _metric_columns(tasks: list[str], shown: list[str]) -> list[str]:
    return [f"{t} {m}" for t in tasks for m in shown] + [f"Avg {m}" for m in shown]


def display_frame(df: pd.DataFrame, pm: str = "±", missing: str = MISSING) -> pd.DataFrame:
    """String table of the measured rows: method, run, the shown metrics, seeds, setting..."""
    tasks = df.attrs.get("measured_tasks", df.attrs.get("tasks", []))
    shown = df.attrs.get("shown", [])
    names = set(df.attrs.get("metrics", []))
    out_rows = []
    for _, row in df[df["reported"] == ""].iterrows():
        out = {"method": row["method"], "run": row["run"], "policy": row["policy"]}
        for metric in shown:
            for task in tasks:
                out[f"{task} {metric}"] = (
                    format_cell(row[f"{task} {metric} mean"], row[f"{task} {metric} std"],
                                row[f"{task} {metric} ci95"], pm, missing)
                    if metric in names else missing)
            out[f"Avg {metric}"] = (
                format_cell(row[f"{AVERAGE} {metric} mean"], row[f"{AVERAGE} {metric} std"], None, pm, missing)
                if metric in names else missing)
        out["seeds"] = row["seeds"]
        out["data"] = row["data"]
        out["fasbench"] = row["fasbench"]
        out["setting"] = row["setting"]
        out_rows.append(out)
    columns = ["method", "run", "policy"] + _metric_columns(tasks, shown)
    columns += ["seeds", "data", "fasbench", "setting"]
    return pd.DataFrame(out_rows, columns=columns)


def reported_display(df: pd.DataFrame, missing: str = MISSING) -> pd.DataFrame | None:
    """String table of the reported rows (``None`` if there are none)."""
    rep = df[df["reported"] != ""]
    if not len(rep):
        return None
    tasks = df.attrs.get("tasks", [])
    shown = df.attrs.get("shown", [])
    names = set(df.attrs.get("metrics", []))
    out_rows = []
    for _, row in rep.iterrows():
        out = {"method": row["method"]}
        for task in tasks + [AVERAGE]:
            for metric in shown:
                col = f"{'Avg' if task == AVERAGE else task} {metric}"
                value = _num(row[f"{task} {metric} mean"]) if metric in names else None
                out[col] = missing if value is None else f"{value:.2f}"
        out["source"] = row["source"]
        out["caveat"] = row["caveat"]
        out_rows.append(out)
    columns = ["method"] + _metric_columns(tasks, shown) + ["source", "caveat"]
    return pd.DataFrame(out_rows, columns=columns)


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _md_table(frame: pd.DataFrame, numeric_cols: set[str]) -> str:
    headers = [_md_escape(c) for c in frame.columns]
    rows = [[_md_escape(v) for v in row] for row in frame.itertuples(index=False)]
    align = ["right" if c in numeric_cols else "left" for c in frame.columns]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                    colalign=align)


def _selection_line(texts: list[str]) -> str:
    if len(texts) == 1:
        return f"checkpoint selection: {texts[0]}"
    return ("checkpoint selection (the `ckpt=` part of the setting; none: last): "
            + "; ".join(texts))


def _numeric_columns(frame: pd.DataFrame, tasks: list[str], shown: list[str]) -> set[str]:
    return set(_metric_columns(tasks, shown)) & set(frame.columns)


def render_markdown(protocol: str, df: pd.DataFrame) -> str:
    """The markdown leaderboard of one protocol (measured blocks, then the reported block)."""
    measured_tasks = df.attrs.get("measured_tasks", [])
    tasks = df.attrs.get("tasks", [])
    shown = df.attrs.get("shown", [])
    names = df.attrs.get("metrics", [])
    n_records = df.attrs.get("n_records", 0)
    lines = [
        f"# {protocol} leaderboard",
        "",
        f"- Tasks: {', '.join(measured_tasks)}.",
        f"- Metrics in % on the target domain: {', '.join(shown)} (`fasbench leaderboard --metrics` "
        f"chooses; the CSV has every metric the runs report: {', '.join(names)}).",
        "- A cell reads `mean ± std (±ci)`: the mean and sample std (ddof=1) over seeds (one seed: "
        "no std), then in parentheses the mean over seeds of the 95% bootstrap CI half-width over "
        "target videos (the uncertainty of one run from the number of target videos).",
        "- Avg: mean over tasks of the per-task means (only for rows covering every task), "
        "± the std over seeds of the per-seed average.",
        "- One row per run setting: `run` is the short id of the run key (method, component "
        "versions and weights, data fingerprint, precision, checkpoint selection, config hash), "
        "`setting` spells it out; rows of different settings are never averaged together.",
        "- One block per threshold policy; the target-EER threshold is idealized (it reads target labels).",
        f"- Generated by `fasbench leaderboard` from {n_records} run record"
        f"{'s' if n_records != 1 else ''}.",
    ]
    shown_frame = display_frame(df)
    numeric = _numeric_columns(shown_frame, measured_tasks, shown)
    policies = df.attrs.get("policies", [])
    measured_policy = df.loc[df["reported"] == "", "policy"].to_numpy()
    for policy in policies:
        block = shown_frame[measured_policy == policy].drop(columns=["policy"])
        lines += ["", f"## {policy_label(policy)}", ""]
        note = POLICY_NOTES.get(policy)
        text = f"Threshold policy `{policy}`" + (f": {note}" if note else ".")
        selections = df.attrs.get("selections", {}).get(policy, [])
        if selections:
            sel = _selection_line(selections)
            text += f" {sel[0].upper()}{sel[1:]}."
        lines += [text, ""]
        lines.append(_md_table(block, numeric))
    reported = reported_display(df)
    if reported is not None:
        lines += [
            "",
            f"## {REPORTED_LABEL[0].upper()}{REPORTED_LABEL[1:]}",
            "",
            "Numbers copied from papers, not produced by this harness; their setup (data, "
            "preprocessing, threshold policy, checkpoint selection) may differ, see the caveat "
            "column.  Never averaged with the rows above.",
            "",
            _md_table(reported, _numeric_columns(reported, tasks, shown)),
        ]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "±": r"$\pm$",
    "—": "--",
}


def latex_escape(text: Any) -> str:
    """Escape LaTeX special characters; ``->`` becomes ``$\\rightarrow$``."""
    parts = str(text).split("->")
    escaped = ["".join(_LATEX_SPECIAL.get(ch, ch) for ch in part) for part in parts]
    return r"$\rightarrow$".join(escaped)


def render_latex(protocol: str, df: pd.DataFrame) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), one block per policy, then
    the reported (not reproduced) rows in a block of their own."""
    measured_tasks = df.attrs.get("measured_tasks", [])
    tasks = df.attrs.get("tasks", [])
    shown = df.attrs.get("shown", [])
    frame = display_frame(df).drop(columns=["data", "fasbench"])
    reported = reported_display(df)
    extra = [t for t in tasks if t not in measured_tasks] if reported is not None else []
    metric_cols = _metric_columns(measured_tasks + extra, shown)
    cols = ["method", "run"] + metric_cols + ["seeds", "setting"]
    spec = "".join("r" if c in metric_cols else "l" for c in cols)
    lines = [
        f"% {protocol} leaderboard generated by `fasbench leaderboard`; needs \\usepackage{{booktabs}}.",
        f"% Target metrics in %: {', '.join(shown)}; a cell is mean $\\pm$ sample std over seeds "
        "(mean 95% bootstrap CI half-width over target videos).",
        "% Avg: mean over tasks of the per-task means, $\\pm$ the std over seeds of the per-seed average.",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(c) for c in cols) + r" \\",
    ]
    measured_policy = df.loc[df["reported"] == "", "policy"].to_numpy()
    for policy in df.attrs.get("policies", []):
        block = frame[measured_policy == policy]
        heading = policy_label(policy)
        selections = df.attrs.get("selections", {}).get(policy, [])
        if selections:
            heading += "; " + _selection_line(selections).replace("`", "")
        lines.append("\\midrule")
        lines.append(f"\\multicolumn{{{len(cols)}}}{{l}}{{\\textit{{{latex_escape(heading)}}}}} \\\\")
        lines.append("\\midrule")
        for _, row in block.iterrows():
            lines.append(" & ".join(latex_escape(row.get(c, MISSING)) for c in cols) + r" \\")
    if reported is not None:
        lines.append("\\midrule")
        lines.append(f"\\multicolumn{{{len(cols)}}}{{l}}{{\\textit{{{latex_escape(REPORTED_LABEL)}: "
                     f"numbers copied from papers, setups may differ}}}} \\\\")
        lines.append("\\midrule")
        for _, row in reported.iterrows():
            setting = row["source"] + (f" ({row['caveat']})" if row["caveat"] else "")
            cells = {"method": row["method"], "run": "", "seeds": "", "setting": setting}
            lines.append(" & ".join(latex_escape(cells.get(c, row.get(c, MISSING))) for c in cols) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.4f", lineterminator="\n")


# --------------------------------------------------------------------------- reported rows

REPORTED_COLUMNS = ("protocol", "method", "task", "HTER", "AUC", "source", "caveat")
#: Optional numeric columns of a reported-results file.
REPORTED_OPTIONAL = ("TPR@FPR=1%",)
REPORTED_METRICS = ("HTER", "AUC") + REPORTED_OPTIONAL
_AVERAGE_NAMES = {"average", "avg", "mean"}


def _task_identity(name: str) -> tuple:
    """(sources, target) for names like ``OCI->M``, ``O&C&I->M`` or ``O, C, I -> M``."""
    name = name.replace("→", "->")
    if "->" not in name:
        return (name.strip(),)
    lhs, rhs = name.split("->", 1)
    tokens = [t for t in re.split(r"[&,+\s]+", lhs.strip()) if t]
    if len(tokens) == 1:
        tokens = list(tokens[0])
    return (frozenset(tokens), rhs.strip())


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


def _reported_rows(rows: list[dict], protocol: str, tasks: list[str],
                   metrics: list[str]) -> tuple[list[dict], list[str], list[str]]:
    """Numeric table rows of the reported numbers of ``protocol`` (aligned on the measured
    tasks; a task no run measured gets columns of its own), the tasks and the metrics."""
    rows = [r for r in rows if r["protocol"] == protocol]
    tasks, metrics = list(tasks), list(metrics)
    by_identity = {_task_identity(t): t for t in tasks}
    entries: dict[tuple, dict] = {}
    for r in rows:
        if r["task"].strip().lower() in _AVERAGE_NAMES:
            task = AVERAGE
        else:
            task = by_identity.get(_task_identity(r["task"]), r["task"])
            if task not in tasks:
                tasks.append(task)
                by_identity[_task_identity(task)] = task
        cells = entries.setdefault((r["method"], r["source"], r["caveat"]), {})
        for metric, value in r["metrics"].items():
            if value is not None:
                cells[(task, metric)] = value
                if metric not in metrics:
                    metrics.append(metric)
    out = []
    for (method, source, caveat), cells in entries.items():
        row: dict[str, Any] = {"protocol": protocol, "method": method, "reported": REPORTED_LABEL,
                               "source": source, "caveat": caveat}
        for (task, metric), value in cells.items():
            row[f"{task} {metric} mean"] = value
        out.append(row)
    return out, tasks, metrics


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
